"""Every seed and regression input of the fuzz corpora, replayed on the driver under test.

The fuzz targets use the same kernel and oracles as the rest of the suite, so an input
that once found a bug keeps checking that rule here: a fixed bug stays fixed. The inputs
come from the packaged corpora (or ``--fuzz-corpora=DIR``) and from the driver
repository's own regression inputs (``--fuzz-regressions=DIR``, see ``fuzz promote``).
"""

from __future__ import annotations

import shlex

import pytest

from ..errors import DriverFailure
from ..fuzz import target_class
from ..fuzz.triage import inputs
from ..run import Run
from ..watchdog import WatchdogInvoker

requirement = pytest.mark.requirement

COVERS = {
    "render": (
        "REN-TRANSLATE",
        "REN-VALIDATE",
        "REN-USERFAULT",
        "REN-COPYFIRST",
        "REN-PATCHIN",
        "REN-ALLOCINDEX",
        "ALL-ISOLATION",
    ),
    "patch": ("PAT-RANGE", "PAT-FENCE", "PAT-REPATCH", "PAT-PAGING", "REN-TRANSLATE"),
    "build_paging_buffer": (
        "PGB-TRANSFER",
        "PGB-MULTIPASS",
        "PGB-FILL",
        "PGB-MAP",
        "PGB-UNMAP",
        "PGB-PHYS",
        "PGB-DISCARD",
        "PGB-SPECIALLOCK",
    ),
    "create_allocation": (
        "ALC-PRIVDATA",
        "ALC-STATUS",
        "ALC-INFO",
        "ALC-HANDLE",
        "ALC-ATOMIC",
        "ALC-RESOURCE",
        "ALC-GDISIZE",
        "ALC-HISTORY",
    ),
    "lifecycle": ("REN-TRANSLATE", "PGB-TRANSFER", "ALC-ADAPTER"),
    "statemachine": ("REN-TRANSLATE", "PGB-TRANSFER", "PGB-MAP", "PGB-UNMAP", "ALC-ADAPTER"),
}


@pytest.mark.parametrize(
    "target", [pytest.param(name, marks=requirement(*ids)) for name, ids in COVERS.items()]
)
def test_fuzz_inputs_replay_cleanly(wddm_run: Run, target: str) -> None:
    # The driver repository's own regressions first: a failure names its input.
    folders = [wddm_run.corpora / "regressions" / target, wddm_run.corpora / target]
    if wddm_run.regressions is not None:
        folders.insert(0, wddm_run.regressions / target)
    files = list(inputs([f for f in folders if f.is_dir()]))
    if not files:
        pytest.skip(f"no {target} inputs to replay in {', '.join(map(str, folders))}")
    runner = target_class(target)(wddm_run.spec, WatchdogInvoker(wddm_run.ddi_timeout))  # type: ignore[call-arg]
    for path in files:
        try:
            runner.run(path.read_bytes())
        except DriverFailure as exc:
            command = ["wddm-conformance", "fuzz", "repro", str(path), f"--target={target}"]
            exc.reproduce = shlex.join([*command, f"--driver={wddm_run.spec.spec}"])
            exc.add_note(f"fuzz input {path}: replay with `{exc.reproduce}`")
            raise
