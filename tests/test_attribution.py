"""Differential attribution (wddm_conformance/attribution.py, INTERPRETING.md §5).

Each kind of issue 12 that one run cannot tell apart is named with the right rule by
the suite's way of running a program, by `check` (the workload) and by the fuzz target
that reaches it; a correct driver never meets a replay, and what the replays do not
refine passes through unchanged.
"""

from __future__ import annotations

import pytest

from tests import mutants as m
from wddm_conformance import attribution
from wddm_conformance.driver import GpuExecution, load_driver
from wddm_conformance.errors import BugCheck, DriverFailure, DriverViolation
from wddm_conformance.fuzz.base import VARIANTS
from wddm_conformance.fuzz.patch import PatchInput, PatchTarget
from wddm_conformance.fuzz.render import Entry, PatchList, RenderInput, RenderTarget
from wddm_conformance.kernel import Kernel, KernelMode
from wddm_conformance.program import AllocRef, Bind, Copy, Fill, Op, Write
from wddm_conformance.suite.support import pair, program
from wddm_conformance.workload import run_workload

#: (mutant, kernel mode where one run names a neighbour, the rule it breaks)
KINDS = [
    (m.PatchListLosesOffset, "always-repatch", "REN-FULLPATCH"),
    (m.PatchListLosesOffset, "forced-relocation", "REN-FULLPATCH"),
    (m.PrePatchLosesOffset, "default", "REN-PREPATCH"),
    (m.PatchLoopEndsAtLength, "forced-relocation,split-submissions", "PAT-RANGE"),
]


def _kernel(mutant: type, mode: str) -> Kernel:
    return Kernel(f"tests.mutants:{mutant.__name__}", mode)


def _run(k: Kernel, ops: list[Op], **kwargs: object) -> None:
    ctx, a, b = pair(k, aperture=False)
    attribution.run_program_checked(k, ctx, [None, a, b], ops, "program", **kwargs)


@pytest.mark.parametrize(("mutant", "mode", "rule"), KINDS, ids=lambda v: getattr(v, "__name__", v))
def test_the_suite_names_the_step_that_broke_the_program(
    mutant: type, mode: str, rule: str
) -> None:
    with pytest.raises(DriverViolation) as caught:
        _run(_kernel(mutant, mode), program(4))
    assert caught.value.requirement == rule, caught.value
    assert "The run itself named" in str(caught.value)


@pytest.mark.parametrize(("mutant", "mode", "rule"), KINDS, ids=lambda v: getattr(v, "__name__", v))
def test_check_names_the_step_that_broke_the_program(mutant: type, mode: str, rule: str) -> None:
    with pytest.raises(DriverViolation) as caught:
        run_workload(f"tests.mutants:{mutant.__name__}", mode)
    assert caught.value.requirement == rule, caught.value


def test_a_pat_range_failure_names_patch_as_the_ddi() -> None:
    with pytest.raises(DriverViolation) as caught:
        _run(_kernel(m.PatchLoopEndsAtLength, "forced-relocation,split-submissions"), program(4))
    assert caught.value.ddi == "DxgkDdiPatch"


@pytest.mark.parametrize(
    "lie",
    [
        0x100 << 12,  # AllocationOffset off by 0x100, inside the allocation: wrong content
        3 << 8,  # AllocationIndex 1 -> 2: the other allocation
    ],
)
@pytest.mark.parametrize("variant", ["default", "always-repatch", "forced-relocation"])
def test_the_render_fuzz_target_names_a_trusted_lying_input_list_ren_patchin(
    lie: int, variant: str
) -> None:
    program = (
        Write(AllocRef(2, 512), 0x1234_5678),  # the pool is uniform: make the bytes differ
        Copy(AllocRef(1, 64), AllocRef(2, 512), 256),
        Fill(AllocRef(2, 1024), 64, 7),
    )
    names = [v.name for v in VARIANTS]

    def data(target: RenderTarget) -> bytes:
        sizes = tuple(a.size for a in target.rig.pool)
        entries = (Entry(1, True), Entry(2, True))
        return RenderInput(
            names.index(variant),
            entries,
            program,
            patch_list=PatchList.LYING,
            lie=lie,
            sizes=(0, sizes[0], sizes[1]),
        ).encode()

    reference = RenderTarget(load_driver("reference"))
    reference.run(data(reference))
    target = RenderTarget(load_driver("tests.mutants:TrustsPatchListIn"))
    with pytest.raises(DriverFailure) as caught:
        target.run(data(target))
    assert caught.value.requirement == "REN-PATCHIN", caught.value


def test_the_suite_names_a_trusted_lying_input_list_ren_patchin_whatever_the_gpu_did() -> None:
    k = _kernel(m.TrustsPatchListIn, "default")
    ctx, a, b = pair(k, aperture=False)
    ops: list[Op] = [Write(AllocRef(1, 16), 0xFEED)]
    honest = k.encoder.encode(ops).patch_locations
    lies = [
        type(e)(e.AllocationIndex, 0, 0, 0x10_0000, e.PatchOffset, e.PatchOffset) for e in honest
    ]
    with pytest.raises(DriverViolation) as caught:  # pre-patched 1 MiB past the allocation
        attribution.run_program_checked(
            k, ctx, [None, a, b], ops, "a lying list", "REN-PATCHIN", patch_list_in=lies
        )
    assert caught.value.requirement == "REN-PATCHIN", caught.value


@pytest.mark.parametrize(
    ("mutant", "variant", "rule"),
    [
        (m.PatchLoopEndsAtLength, "split-submissions", "PAT-RANGE"),
        (m.PatchListLosesOffset, "always-repatch", "REN-FULLPATCH"),
    ],
    ids=lambda v: getattr(v, "__name__", v),
)
def test_the_patch_fuzz_target_names_the_step(mutant: type, variant: str, rule: str) -> None:
    names = [v.name for v in VARIANTS]
    ops = (
        Copy(AllocRef(1, 64), AllocRef(2, 512), 256),
        Fill(AllocRef(2, 1024), 64, 7),
        Write(AllocRef(1, 4000), 9),
        Copy(AllocRef(2, 3000), AllocRef(1, 100), 100),
    )

    def data(target: PatchTarget) -> bytes:
        sizes = tuple(a.size for a in target.rig.pool)
        return PatchInput(
            names.index(variant), (1, 2), ops, (1, 3), ((1, 1),), sizes=(0, sizes[0], sizes[1])
        ).encode()

    reference = PatchTarget(load_driver("reference"))
    reference.run(data(reference))
    target = PatchTarget(load_driver(f"tests.mutants:{mutant.__name__}"))
    with pytest.raises(DriverFailure) as caught:
        target.run(data(target))
    assert caught.value.requirement == rule, caught.value


@pytest.mark.parametrize("mode", ["default", "all-stress"])
def test_a_correct_driver_never_meets_a_replay(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def replay(*args: object) -> bool:
        raise AssertionError("a replay ran for a correct driver")

    monkeypatch.setattr(attribution, "_replay_is_right", replay)
    _run(Kernel("reference", mode), program(4))
    run_workload("reference", mode)


def test_a_bug_check_passes_unchanged() -> None:
    with pytest.raises(BugCheck) as caught:
        _run(_kernel(m.PatchFails, "always-repatch"), program(1))
    assert caught.value.requirement == "PAT-BUGCHECK"


def test_a_failure_no_replay_explains_keeps_its_rule() -> None:
    # DropsPatchEntry is wrong with and without a split, and its pre-patch is right: the
    # blame table's REN-FULLPATCH stands, the message is the run's own.
    with pytest.raises(DriverViolation) as caught:
        _run(_kernel(m.DropsPatchEntry, "forced-relocation,split-submissions"), program(2))
    assert caught.value.requirement == "REN-FULLPATCH"
    assert "The run itself named" not in str(caught.value)


def test_replays_leave_the_kernel_mode_and_the_device_as_they_were() -> None:
    k = _kernel(m.PatchLoopEndsAtLength, "forced-relocation,split-submissions")
    ctx, a, b = pair(k, aperture=False)
    with pytest.raises(DriverViolation):
        attribution.run_program_checked(k, ctx, [None, a, b], program(4), "program")
    assert k.mode == KernelMode.parse("forced-relocation,split-submissions")
    assert ctx.device.state == "active"


def test_an_unbind_patched_to_another_allocation_of_the_submission_is_ren_nullalloc() -> None:
    ops: list[Op] = [Bind(3, AllocRef(1, 16)), Bind(3, None)]
    _run(Kernel("reference"), ops)
    with pytest.raises(DriverViolation) as caught:
        _run(_kernel(m.UnbindsToNeighbour, "default"), ops)
    assert caught.value.requirement == "REN-NULLALLOC"
    assert "binding slot 3" in str(caught.value)


def test_an_unbind_no_submission_bound_is_ren_translate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    k = Kernel("reference")
    execute = k.gpu.execute

    def forgetful(dma: bytes, *, privileged: bool) -> GpuExecution:
        execution = execute(dma, privileged=privileged)
        execution.bindings.clear()
        return execution

    monkeypatch.setattr(k.gpu, "execute", forgetful)
    with pytest.raises(DriverViolation, match="unbinds slot 5, but no DMA it ran bound") as caught:
        _run(k, [Bind(5, None)])
    assert caught.value.requirement == "REN-TRANSLATE"
