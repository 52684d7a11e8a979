"""Demo: the mixed workload on the reference driver, in every kernel mode, with memory matching.

Allocations are created, rendered into, evicted, relocated, repatched, mapped and
unmapped through the aperture, discarded and shared across devices; after every step
GPU memory must equal what the commands meant (see wddm_conformance.workload).
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests import mutants
from wddm_conformance.errors import DriverViolation
from wddm_conformance.kernel import ALL_MODES, KernelConfig, KernelMode
from wddm_conformance.workload import run_workload


@pytest.mark.parametrize("mode", ALL_MODES, ids=str)
def test_mixed_workload_matches_the_program_model_in_every_kernel_mode(mode: KernelMode) -> None:
    report = run_workload("reference", mode)
    assert len(report.steps) == 14
    assert report.submissions > 0


@given(seed=st.integers(0, 2**32 - 1))
def test_mixed_workload_passes_for_any_seed(seed: int) -> None:
    run_workload("reference", KernelMode(forced_relocation=True), seed, KernelConfig(seed=seed))


@pytest.mark.parametrize(
    ("mutant", "mode"),
    [
        (mutants.NoPrePatch, "default"),
        (mutants.DropsPatchEntry, "always-repatch,forced-relocation"),
        (mutants.UnmapLeavesOldPage, "default"),
        (mutants.MultipassRestarts, "tiny-buffers"),
        (mutants.NeverUnswizzles, "default"),
    ],
)
def test_mixed_workload_catches_headline_mutants(mutant: type, mode: str) -> None:
    with pytest.raises(DriverViolation) as caught:
        run_workload(f"tests.mutants:{mutant.__name__}", mode)
    assert caught.value.requirement == mutants.BREAKS[mutant] or caught.value.requirement in (
        "ALL-ISOLATION",
        "REN-FULLPATCH",
        "REN-PREPATCH",
        "REN-TRANSLATE",
    )
