"""A failing property check keeps no kernel alive (issue 16, "Memory bounded").

The suite's two kinds of property check, a ``@given`` check and the driver-life state
machine, each run on a mutant that fails it and on the reference driver, in pytest's own
process (``--isolate=none``) with tests/memory_probe.py measuring each check. Once a
check has ended no Kernel, driver instance, GPU or system memory of its examples is
alive; while it runs, at most twice the reference's kernels are alive at once and
Python's peak allocation stays within five times the reference's (a failure's report
and hypothesis' shrinking cost a few MiB of their own). Counts and bytes, never seconds.
Before the fix the checks ended with 13 and 14 kernels alive, and the ``@given`` one
had 3.5 times the reference's kernels alive at once and 8 times its peak.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from hypothesis import Phase

from wddm_conformance import profiles
from wddm_conformance.release import per_example

ROOT = Path(__file__).resolve().parent.parent
SUITE = ROOT / "wddm_conformance" / "suite"
PROPERTY = f"{SUITE / 'test_properties.py'}::test_gpu_memory_matches_the_program_model[default]"
MACHINE = (
    f"{SUITE / 'test_lifecycle.py'}::test_the_driver_keeps_memory_consistent_through_its_whole_life"
)
#: A mutant that fails each check, and the rule it breaks there.
FAILING = {
    PROPERTY: ("tests.mutants:NoPrePatch", "REN-PREPATCH"),
    MACHINE: ("tests.mutants:MapsWrongPage", "PGB-MAP"),
}


def probe(tmp: Path, driver: str, *args: str) -> tuple[subprocess.CompletedProcess[str], Any]:
    out = tmp / f"probe-{driver.replace(':', '-')}.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-p",
            "tests.memory_probe",
            "--isolate=none",
            f"--wddm-driver={driver}",
            "--hypothesis-profile=wddm-default",
            *args,
        ],
        cwd=tmp,
        env={**os.environ, "PYTHONPATH": str(ROOT), "WDDM_MEMORY_PROBE": str(out)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    return result, json.loads(out.read_text()) if out.exists() else {}


def test_a_failing_property_check_keeps_no_kernel_alive_and_peaks_near_the_reference(
    tmp_path: Path,
) -> None:
    reference, base = probe(tmp_path, "reference", *FAILING)
    assert reference.returncode == 0, reference.stdout[-3000:]
    assert len(base) == len(FAILING), base
    for check, (mutant, rule) in FAILING.items():
        failing, measured = probe(tmp_path, mutant, check)
        assert failing.returncode == 1, failing.stdout[-3000:]
        assert f"FAIL: [{rule}]" in failing.stdout, failing.stdout[-3000:]
        # What a report needs is there, without hypothesis' explain phase.
        assert "Failing test case: " in failing.stdout
        assert "Explanation:" not in failing.stdout
        ((name, got),) = measured.items()
        want = base[name]
        assert set(got["left"].values()) == {0}, f"{name}: still alive after it ended: {got}"
        assert set(want["left"].values()) == {0}, f"{name} (reference): {want}"
        assert got["most"] <= 2 * want["most"], f"{name}: kernels at once {got} vs {want}"
        assert got["peak"] <= 5 * want["peak"], f"{name}: peak {got} vs reference {want}"


def test_hypothesis_explain_brings_back_the_explain_phase(tmp_path: Path) -> None:
    failing, _ = probe(tmp_path, FAILING[PROPERTY][0], PROPERTY, "--hypothesis-explain")
    assert failing.returncode == 1, failing.stdout[-3000:]
    assert "Explanation:" in failing.stdout


def test_the_suites_checks_leave_out_the_explain_phase_unless_asked() -> None:
    try:
        for name in profiles.NAMES:
            profiles.select(name)
            profiles.explain(False)
            assert Phase.explain not in profiles.suite_settings().phases, name
            kept = [p for p in profiles.suite_settings().phases if p is not Phase.explain]
            profiles.explain(True)
            with_explain = profiles.suite_settings().phases
            assert [p for p in with_explain if p is not Phase.explain] == kept, name
            if Phase.shrink in kept:
                assert Phase.explain in with_explain, name
    finally:
        profiles.explain(False)
        profiles._selected = None


def test_every_given_check_of_the_suite_releases_its_failing_examples() -> None:
    """Each ``@given`` check of the suite has :func:`per_example` under its ``@given``
    (hypothesis exposes the function it calls as ``.hypothesis.inner_test``)."""
    wrapper = per_example(lambda: None).__code__
    found = []
    for path in sorted(SUITE.glob("test_*.py")):
        module = importlib.import_module(f"wddm_conformance.suite.{path.stem}")
        for name, fn in vars(module).items():
            if name.startswith("test_") and hasattr(fn, "hypothesis"):
                found.append(name)
                inner = fn.hypothesis.inner_test
                while getattr(inner, "wddm_noted", False):  # the plugin's example note
                    inner = inner.__wrapped__
                assert inner.__code__ is wrapper, f"{path.name}::{name}"
    assert len(found) >= 2, found
