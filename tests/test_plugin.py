"""The pytest plugin end to end: statuses, baselines, reports, header, xdist parity.

Each test runs the installed suite in a subprocess (as a driver team would) on a mutant,
restricted with ``-k`` to a few checks so it stays fast.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from wddm_conformance import CONTRACT_VERSION

ROOT = Path(__file__).resolve().parent.parent
PREPATCH = "test_pre_patched_buffer_reaches_resident_allocations_without_a_patch_call"
CHECKS = (
    f"{PREPATCH} or test_patch_succeeds_on_every_valid_dma_buffer or test_render_rejects_illegal"
)


def run(tmp: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, object]]:
    report = tmp / "report.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "--pyargs",
            "wddm_conformance.suite",
            f"--report-json={report}",
            "--hypothesis-profile=quick",
            *args,
        ],
        cwd=tmp,
        env={**os.environ, "PYTHONPATH": str(ROOT)},  # the mutants live in this checkout
        capture_output=True,
        text=True,
        timeout=300,
    )
    data = json.loads(report.read_text()) if report.exists() else {}
    return result, data


def statuses(data: dict[str, object]) -> dict[str, str]:
    return {t["id"]: t["status"] for t in data["tests"]}  # type: ignore[attr-defined,index]


def test_header_names_a_module_class_driver_once(tmp_path: Path) -> None:
    result, _ = run(tmp_path, "-k", PREPATCH, "--driver=tests.mutants:DoubleFetch")
    assert result.returncode == 0, result.stdout
    assert "): driver tests.mutants:DoubleFetch, kernel mode" in result.stdout


def test_header_says_whether_a_native_drivers_direct_reads_are_traced(tmp_path: Path) -> None:
    result, _ = run(tmp_path, "-k", PREPATCH, "--driver=tests.mutants:WdkSample")
    assert result.returncode == 0, result.stdout
    assert "direct reads of user memory (WDK-style driver): " in result.stdout
    result, _ = run(tmp_path, "-k", PREPATCH, "--driver=tests.mutants:DoubleFetch")
    assert "direct reads of user memory" not in result.stdout  # a Python driver


def test_header_names_driver_version_mode_and_seed(tmp_path: Path) -> None:
    result, _ = run(tmp_path, "-k", PREPATCH, "--kernel-mode=tiny-buffers", "--wddm-seed=7")
    assert result.returncode == 0, result.stdout
    assert (
        f"wddm-conformance 0.1.0 (contract {CONTRACT_VERSION}): driver reference" in result.stdout
    )
    assert "kernel mode tiny-buffers, seed 7" in result.stdout
    assert (
        "repeat with: pytest --pyargs wddm_conformance.suite -k "
        f"{PREPATCH} --wddm-driver=reference --kernel-mode=tiny-buffers --wddm-seed=7 "
        "--ddi-timeout=5 --hypothesis-profile=quick"
    ) in result.stdout


def test_fail_and_crash_are_reported_with_requirement_and_bug_check(tmp_path: Path) -> None:
    result, data = run(tmp_path, "--driver=tests.mutants:NoPrePatch", "-k", PREPATCH)
    assert result.returncode == 1
    assert set(statuses(data).values()) == {"FAIL"}
    assert "FAIL: [REN-PREPATCH] DxgkDdiRender" in result.stdout
    result, data = run(
        tmp_path, "--driver=tests.mutants:PatchFails", "-k", "test_patch_succeeds_on_every"
    )
    assert result.returncode == 1
    assert set(statuses(data).values()) == {"CRASH"}
    crash = data["tests"][0]  # type: ignore[index]
    assert crash["bugcheck"].startswith("BugCheck 0x119 (VIDEO_SCHEDULER_INTERNAL_ERROR) (0x3,")
    assert crash["violated"] == "PAT-BUGCHECK"


def test_a_hung_ddi_is_timeout(tmp_path: Path) -> None:
    result, data = run(
        tmp_path, "--driver=tests.mutants:HangsInRender", "--ddi-timeout=0.2", "-k", PREPATCH
    )
    assert result.returncode == 1
    assert set(statuses(data).values()) == {"TIMEOUT"}


def test_a_declared_absent_feature_is_skip_with_the_reason(tmp_path: Path) -> None:
    result, data = run(tmp_path, "--driver=tests.mutants:NoAlternateVA", "-k", "special_lock")
    assert result.returncode == 0
    (test,) = data["tests"]  # type: ignore[misc]
    assert test["status"] == "SKIP" and "UseAlternateVA" in test["message"]


def test_baseline_gates_on_unexpected_results_only(tmp_path: Path) -> None:
    baseline = tmp_path / "baseline.csv"
    mutant = "--driver=tests.mutants:NoPrePatch"
    result, data = run(
        tmp_path, mutant, "-k", CHECKS, f"--baseline={baseline}", "--update-baseline"
    )
    assert result.returncode == 1  # the run that writes the baseline still reports the failures
    written = baseline.read_text()
    assert f"test_render.py::{PREPATCH},FAIL" in written
    result, data = run(tmp_path, mutant, "-k", CHECKS, f"--baseline={baseline}")
    assert result.returncode == 0, result.stdout  # every failure is expected
    assert data["summary"]["expected"] >= 1  # type: ignore[index]
    result, data = run(tmp_path, "-k", CHECKS, f"--baseline={baseline}")  # the fixed driver
    assert result.returncode == 1 and "UNEXPECTED-PASS" in result.stdout
    assert "unexpected PASS: the baseline expects FAIL" in result.stdout
    baseline.write_text(written.replace(",FAIL", ",FLAKY"))
    for driver in (mutant, "--driver=reference"):
        result, _ = run(tmp_path, driver, "-k", CHECKS, f"--baseline={baseline}")
        assert result.returncode == 0, result.stdout


def test_a_baseline_written_into_a_new_directory_is_made_with_it(tmp_path: Path) -> None:
    baseline = tmp_path / "ci" / "wddm-baseline.csv"
    mutant = "--driver=tests.mutants:NoPrePatch"
    result, _ = run(tmp_path, mutant, "-k", CHECKS, f"--baseline={baseline}", "--update-baseline")
    assert result.returncode == 1, result.stdout  # the failures, not a traceback
    assert f"test_render.py::{PREPATCH},FAIL" in baseline.read_text()


def test_html_report_is_written_beside_junit(tmp_path: Path) -> None:
    html, junit = tmp_path / "out" / "report.html", tmp_path / "junit.xml"
    result, data = run(
        tmp_path,
        "--driver=tests.mutants:NoPrePatch",
        "-k",
        CHECKS,
        f"--report-html={html}",
        f"--junitxml={junit}",
    )
    assert result.returncode == 1
    page = html.read_text()
    assert ("REN-PREPATCH" in page and "=&gt;" in page) or "<mark" in page
    assert "<testsuite" in junit.read_text()
    rows = {r["id"]: r for r in data["requirements"]}  # type: ignore[attr-defined]
    assert rows["REN-PREPATCH"]["status"] == "FAIL"
    assert rows["REN-IRQL"]["status"] == "DOCUMENTED-ONLY"


def test_xdist_gives_the_same_results_as_a_serial_run(tmp_path: Path) -> None:
    args = ("--driver=tests.mutants:DropsPatchEntry", "-k", "render or patch")
    _, serial = run(tmp_path, *args)
    _, parallel = run(tmp_path, *args, "-n", "2")
    assert statuses(serial) == statuses(parallel)
    assert "FAIL" in statuses(serial).values()
