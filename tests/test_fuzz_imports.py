"""The fuzzers import no test code: neither the pytest plugin nor any module of the suite.

A fuzz target runs under libFuzzer, with no pytest; what it shares with the suite (the
run, the life-cycle state machine, the oracles) lives in the package's own modules.
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest

import wddm_conformance.fuzz

#: Every module of the fuzz package: the targets, their ``fuzz_<name>.py`` scripts, the
#: runner, campaigns, triage and the command line.
MODULES = sorted(
    f"wddm_conformance.fuzz.{m.name}" for m in pkgutil.iter_modules(wddm_conformance.fuzz.__path__)
)

#: Run in a fresh interpreter: import the module (a script's ``atheris`` stubbed, so the
#: verdict does not depend on atheris being installed), then list the test modules loaded.
PROBE = """
import importlib, sys, types
sys.modules.setdefault("atheris", types.ModuleType("atheris"))
importlib.import_module(sys.argv[1])
print("\\n".join(
    name for name in sorted(sys.modules)
    if name == "wddm_conformance.plugin" or name.startswith("wddm_conformance.suite")
))
"""


def test_every_fuzz_target_is_probed() -> None:
    targets = {spec.partition(":")[0] for spec in wddm_conformance.fuzz.TARGETS.values()}
    assert targets <= set(MODULES)
    assert {f"wddm_conformance.fuzz.fuzz_{name}" for name in wddm_conformance.fuzz.TARGETS} <= set(
        MODULES
    )


@pytest.mark.parametrize("module", MODULES)
def test_a_fuzz_module_imports_neither_the_plugin_nor_the_suite(module: str) -> None:
    probe = subprocess.run(
        [sys.executable, "-c", PROBE, module], capture_output=True, text=True, timeout=120
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split() == [], f"{module} imports test code: {probe.stdout.split()}"
