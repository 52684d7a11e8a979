"""bench/fuzz_cpu.py: inputs per CPU second of a target over a fixed corpus."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "bench" / "fuzz_cpu.py"


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )


def test_the_seed_corpus_runs_through_the_lean_target(tmp_path: Path) -> None:
    out = tmp_path / "cpu.json"
    done = _run(tmp_path, "--targets", "create_allocation", "--passes", "1", "--json", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    (record,) = json.loads(out.read_text())
    assert record["target"] == "create_allocation" and record["inputs"] > 0
    assert record["failed"] == 0 and record["inputs_per_cpu_second"] > 0
    assert "inputs per CPU second" in done.stdout


def test_an_empty_corpus_is_one_line_and_status_2(tmp_path: Path) -> None:
    (tmp_path / "corpus" / "render").mkdir(parents=True)
    done = _run(tmp_path, "--targets", "render", "--corpus", str(tmp_path / "corpus"))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: no inputs in {tmp_path / 'corpus' / 'render'}"
    ]
