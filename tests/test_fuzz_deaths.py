"""A driver that kills its fuzzing process is a finding, never a lost campaign (issue 16).

libFuzzer ends the process on a segfault, an abort or a hang, and a driver can exit it or
kill it while the target is set up; the target cannot record any of these itself. The
campaign replays what libFuzzer kept in a process of its own and records the death as the
bug check it stands for; ``fuzz repro`` tells the same story.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_fuzz import _env

pytest.importorskip("atheris")

#: Generous: a campaign here takes seconds; only a stall reaches it.
STALL = 240


def _campaign(
    tmp_path: Path, target: str, driver: str, seconds: int = 8
) -> tuple[int, str, list[dict[str, str]]]:
    work = tmp_path / "work"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "wddm_conformance",
            "fuzz",
            "run",
            target,
            f"--driver={driver}",
            f"--time={seconds}",
            "--work",
            str(work),
        ],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=STALL,
        check=False,
    )
    findings = [json.loads(p.read_text()) for p in sorted((work / "findings").glob("*.json"))]
    return done.returncode, done.stdout + done.stderr, findings


@pytest.mark.parametrize(
    ("target", "driver", "status", "rule", "ddi"),
    [
        ("render", "SegfaultsInRender", "CRASH", "ALL-NORAISE", "DxgkDdiRender"),
        ("patch", "ExitsInPatch", "CRASH", "ALL-NORAISE", "DxgkDdiPatch"),
        (
            "build_paging_buffer",
            "SwallowsWatchdog",
            "TIMEOUT",
            "ALL-BOUNDED",
            "DxgkDdiBuildPagingBuffer",
        ),
        ("render", "SegfaultsOnLongCommands", "CRASH", "ALL-NORAISE", "DxgkDdiRender"),
    ],
)
def test_a_driver_that_kills_the_fuzzing_process_is_a_finding(
    tmp_path: Path, target: str, driver: str, status: str, rule: str, ddi: str
) -> None:
    code, output, findings = _campaign(tmp_path, target, f"tests.hostile:{driver}")
    assert code == 1, output
    assert findings, output
    assert {(f["status"], f["requirement"], f["ddi"]) for f in findings} == {(status, rule, ddi)}
    again, output, _ = _campaign(tmp_path, target, f"tests.hostile:{driver}", seconds=4)
    assert again == 1, output  # resuming meets the same death: still a finding, not an error


def test_repro_of_an_input_that_kills_the_process_tells_the_story(tmp_path: Path) -> None:
    _, _, findings = _campaign(tmp_path, "render", "tests.hostile:SegfaultsInRender")
    path = tmp_path / "work" / "findings" / findings[0]["input"]
    done = subprocess.run(
        [sys.executable, "-m", "wddm_conformance", "fuzz", "repro", str(path)],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=STALL,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "BugCheck 0x1E" in done.stdout and "SIGSEGV" in done.stdout
    assert "ALL-NORAISE" in done.stdout and "DxgkDdiRender" in done.stdout
