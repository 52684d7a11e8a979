"""bench/soak.py: a real campaign per target, its RSS at start and end, as a markdown table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_a_short_soak_reports_rss_at_start_and_end(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    args = ["--targets", "create_allocation", "--minutes", "0.05", "--interval", "0.5"]
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "soak.py"), *args, "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (row,) = [line for line in done.stdout.splitlines() if line.startswith("| create_allocation")]
    (record,) = json.loads(out.read_text())
    assert record["fuzzer_rss_start"] > 0 and record["fuzzer_rss_end"] >= record["fuzzer_rss_start"]
    assert record["vmrss"], "no VmRSS sample of the fuzzing process"
    assert f"{record['fuzzer_rss_start']} -> {record['fuzzer_rss_end']}" in row
    assert record["problem"] is None


def test_an_unknown_target_is_one_line_naming_it() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "soak.py"), "--targets", "nope"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "unknown target 'nope'" in done.stderr
