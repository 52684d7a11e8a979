"""The simulated kernel catches each broken driver with the right outcome.

Every row runs one scenario under one kernel mode against one mutant from
``tests/mutants.py`` and asserts exactly what the kernel reports: a violation and its
requirement ID, a bug check with its code and first parameter, or a TDR. The same
scenarios pass on the reference driver in every kernel mode.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from tests import mutants as m
from wddm_conformance.ddi import DXGK_TRANSFER_LOCATION, DXGK_TRANSFERFLAGS
from wddm_conformance.driver import AllocationRequest, load_driver
from wddm_conformance.errors import BugCheck, DriverViolation, Tdr
from wddm_conformance.kernel import ALL_MODES, AllocationUse, Kernel, KernelConfig, KernelMode
from wddm_conformance.oracles import expect_memory, expect_single_fetch
from wddm_conformance.program import AllocRef, Copy, Op
from wddm_conformance.status import STATUS_INVALID_PARAMETER, STATUS_SUCCESS
from wddm_conformance.suite.support import pair, program

Scenario = Callable[[Kernel], None]


def _pair(k: Kernel, size: int = 64 << 10, **kw: bool) -> tuple[object, object, object]:
    return pair(k, size, **kw)


def _program(n: int = 1) -> list[Op]:
    return program(n)


def render_program(k: Kernel, evict_first: bool = False, ops: int = 1, **kw: object) -> None:
    ctx, a, b = _pair(k, aperture=False)
    if evict_first:
        k.evict(a)  # type: ignore[arg-type]
        k.evict(b)  # type: ignore[arg-type]
    alist = [None, a, b]
    program = _program(ops)
    want = k.expected_after(alist, program)  # type: ignore[arg-type]
    result = k.run_program(ctx, alist, program, **kw)  # type: ignore[arg-type]
    assert result.status == STATUS_SUCCESS, hex(result.status)
    expect_memory(k, alist, want, "render_program")  # type: ignore[arg-type]
    expect_single_fetch(result)


def render_paged_out(k: Kernel) -> None:
    render_program(k, evict_first=True)


def render_many(k: Kernel) -> None:
    render_program(k, ops=40)


def render_with_user_fault(k: Kernel) -> None:
    ctx, a, b = _pair(k)
    result = k.run_program(ctx, [None, a, b], _program(), fault_at=30)  # type: ignore[arg-type]
    assert result.status == STATUS_INVALID_PARAMETER


def render_into_read_only(k: Kernel) -> None:
    ctx, a, b = _pair(k, aperture=False)
    encoded = k.encoder.encode([Copy(AllocRef(1), AllocRef(2), 64)])
    result = k.render(
        ctx, encoded.command, [None, AllocationUse(a, False), AllocationUse(b, False)]
    )  # type: ignore[arg-type]
    assert result.status == STATUS_INVALID_PARAMETER


def evict_round_trip(k: Kernel) -> None:
    dev = k.create_device()
    (a,) = k.create_allocations(dev, [AllocationRequest(256 << 10, aperture=False)])
    data = random.Random(2).randbytes(a.size)
    k.cpu_write(a, 0, data)
    k.evict(a)
    k.make_resident(a)
    k.relocate(a)
    assert k.cpu_read(a) == data


def aperture_unmap(k: Kernel) -> None:
    dev = k.create_device()
    (a,) = k.create_allocations(dev, [AllocationRequest(16 << 10, aperture_only=True)])
    k.cpu_write(a, 0, b"x" * a.size)
    k.evict(a)
    k.make_resident(a)
    k.relocate(a)


def swizzled_evict(k: Kernel) -> None:
    dev = k.create_device()
    (a,) = k.create_allocations(dev, [AllocationRequest(16 << 10, cpu_visible=True, swizzled=True)])
    data = random.Random(3).randbytes(a.size)
    k.cpu_write(a, 0, data)
    k.evict(a)
    assert k.cpu_read(a) == data


def raw_transfer_without_handle(k: Kernel) -> None:
    dev = k.create_device()
    (a,) = k.create_allocations(dev, [AllocationRequest(8192, aperture=False)])
    k.make_resident(a)
    mdl = k.sysmem.allocate_mdl(8192)
    k.sysmem.write_mdl(mdl, 0, random.Random(4).randbytes(8192))
    k.vidmm.transfer(
        0,
        8192,
        DXGK_TRANSFER_LOCATION(0, 0, mdl),
        DXGK_TRANSFER_LOCATION(a.segment_id, a.address),
        DXGK_TRANSFERFLAGS.Swizzle,
    )


def read_physical(k: Kernel) -> None:
    k.vidmm.physical(False, 0, k.dummy_page_address, 4)
    k.vidmm.physical(True, 0, k.dummy_page_address + 8, 8)


def create_batch(k: Kernel) -> None:
    dev = k.create_device()
    k.create_allocations(
        dev, [AllocationRequest(4096), AllocationRequest(8192), AllocationRequest(100)]
    )


SCENARIOS: dict[str, Scenario] = {
    "render_program": render_program,
    "render_paged_out": render_paged_out,
    "render_many": render_many,
    "render_with_user_fault": render_with_user_fault,
    "render_into_read_only": render_into_read_only,
    "evict_round_trip": evict_round_trip,
    "aperture_unmap": aperture_unmap,
    "swizzled_evict": swizzled_evict,
    "raw_transfer_without_handle": raw_transfer_without_handle,
    "read_physical": read_physical,
    "create_batch": create_batch,
}

FAST = KernelConfig(ddi_timeout=5.0)


def _kernel(driver: type, mode: str, **config: object) -> Kernel:
    spec = load_driver(f"{driver.__module__}:{driver.__qualname__}")
    return Kernel(spec, KernelMode.parse(mode), KernelConfig(**config) if config else FAST)  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ALL_MODES, ids=str)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_reference_driver_passes_every_scenario_in_every_mode(
    scenario: str, mode: KernelMode
) -> None:
    SCENARIOS[scenario](Kernel("reference", mode, FAST))


# (mutant, kernel mode, scenario, requirement the kernel reports)
VIOLATIONS = [
    (m.NoPrePatch, "default", "render_program", "REN-PREPATCH"),
    (m.TrustsPagedOut, "default", "render_paged_out", "REN-PAGEDOUT"),
    (m.DropsPatchEntry, "forced-relocation", "render_program", "REN-FULLPATCH"),
    (m.DropsPatchEntry, "forced-eviction", "render_program", "REN-FULLPATCH"),
    (m.OverflowsDmaBuffer, "tiny-buffers", "render_many", "REN-CURSORS"),
    (m.DoubleFetch, "default", "render_program", "REN-COPYFIRST"),
    (m.WritesAllocationList, "default", "render_program", "ALL-READONLY"),
    (m.BadRenderStatus, "default", "render_program", "REN-STATUS"),
    (m.SplitLivelock, "default", "render_program", "REN-SPLIT"),
    (m.RenderNopLivelock, "default", "render_program", "REN-SPLIT"),
    (m.PagingPrivateOverflow, "default", "evict_round_trip", "PGB-CURSOR"),
    (m.BadPatchIndex, "default", "render_program", "REN-PATCHOUT"),
    (m.IgnoresWriteOperation, "default", "render_into_read_only", "REN-ALLOCINDEX"),
    (m.PatchIgnoresSubmissionStart, "split-submissions", "render_program", "PAT-RANGE"),
    (m.PatchNotIdempotent, "always-repatch", "render_program", "PAT-REPATCH"),
    (m.PatchEntryAtZero, "always-repatch", "render_program", "REN-FULLPATCH"),
    (m.PatchEntryAtZero, "split-submissions", "render_program", "REN-FULLPATCH"),
    (m.NullAllocationToGarbage, "always-repatch", "render_program", "REN-NULLALLOC"),
    (m.PatchWritesOutsideRange, "split-submissions", "render_program", "PAT-RANGE"),
    (m.StaleFence, "always-repatch", "render_program", "PAT-FENCE"),
    (m.GrowsPagingBuffer, "default", "evict_round_trip", "PGB-PATCHED"),
    (m.PagingOverflow, "tiny-buffers", "evict_round_trip", "PGB-CURSOR"),
    (m.MultipassRestarts, "tiny-buffers", "evict_round_trip", "PGB-MULTIPASS"),
    (m.MultipassNoProgress, "default", "evict_round_trip", "PGB-MULTIPASS"),
    (m.MultipassRepeats, "tiny-buffers", "evict_round_trip", "PGB-MULTIPASS"),
    (m.LivelocksBehindFence, "tiny-buffers", "evict_round_trip", "PGB-MULTIPASS"),
    (m.FillsTooLittle, "default", "evict_round_trip", "PGB-FILL"),
    (m.BusyWhenIdle, "default", "evict_round_trip", "PGB-BUSY"),
    (m.BusyOnFill, "default", "evict_round_trip", "PGB-BUSY"),
    (m.UnmapToNothing, "default", "aperture_unmap", "PGB-UNMAP"),
    (m.UnmapLeavesOldPage, "default", "aperture_unmap", "PGB-UNMAP"),
    (m.MapsWrongPage, "default", "aperture_unmap", "PGB-MAP"),
    (m.NeverUnswizzles, "default", "swizzled_evict", "PGB-UNSWIZZLE"),
    (m.SwizzlesWithoutHandle, "default", "raw_transfer_without_handle", "PGB-NOSWIZZLE"),
    (m.ReadsWrongPhysical, "default", "read_physical", "PGB-PHYS"),
    (m.DuplicateHandles, "default", "create_batch", "ALC-HANDLE"),
    (m.OddAlignment, "default", "create_batch", "ALC-INFO"),
    (m.CreateAllocationBadStatus, "default", "create_batch", "ALC-STATUS"),
    (m.RejectsValidPrivateData, "default", "create_batch", "ALC-PRIVDATA"),
]


@pytest.mark.parametrize(
    ("mutant", "mode", "scenario", "requirement"),
    VIOLATIONS,
    ids=[f"{c[0].__name__}-{c[1]}-{c[2]}" for c in VIOLATIONS],
)
def test_kernel_reports_the_broken_rule(
    mutant: type, mode: str, scenario: str, requirement: str
) -> None:
    with pytest.raises(DriverViolation) as caught:
        SCENARIOS[scenario](_kernel(mutant, mode))
    assert caught.value.requirement == requirement, str(caught.value)
    assert f"[{requirement}]" in str(caught.value)


def test_a_paging_livelock_is_flagged_at_its_first_repeat() -> None:
    """Patch stamps a new fence into every partial buffer; the repeat is in what
    BuildPagingBuffer wrote, so the second identical call is the finding, not the pass cap."""
    with pytest.raises(DriverViolation) as caught:
        SCENARIOS["evict_round_trip"](_kernel(m.LivelocksBehindFence, "tiny-buffers"))
    assert "livelocks: call 3 built the same partial buffer" in str(caught.value)


# (mutant, mode, scenario, bug check code, parameter 1, requirement)
BUGCHECKS = [
    (m.PatchFails, "always-repatch", "render_program", 0x119, 0x3, "PAT-BUGCHECK"),
    (m.PatchRejectsPagingBuffer, "default", "evict_round_trip", 0x119, 0x3, "PAT-PAGING"),
    (m.WrongFence, "always-repatch", "render_program", 0x119, 0x1, "PAT-FENCE"),
    (m.SubmitFails, "default", "render_program", 0x119, 0x2, ""),
    (m.PagingFaults, "default", "evict_round_trip", 0x119, 0x5, "PGB-FILL"),
    (m.BadPagingStatus, "default", "evict_round_trip", 0x10E, 0xB, "PGB-STATUS"),
    (m.RaisesInRender, "default", "render_program", 0x1E, 0x0, "ALL-NORAISE"),
    (m.ExitsInRender, "default", "render_program", 0x1E, 0x0, "ALL-NORAISE"),
    (m.LetsUserFaultEscape, "default", "render_with_user_fault", 0x1E, 0xC0000005, "REN-USERFAULT"),
    (m.WritesFarPastDmaBuffer, "default", "render_program", 0x1E, 0xC0000005, "REN-CURSORS"),
]


@pytest.mark.parametrize(
    ("mutant", "mode", "scenario", "code", "p1", "requirement"),
    BUGCHECKS,
    ids=[f"{c[0].__name__}-{c[1]}-{c[2]}" for c in BUGCHECKS],
)
def test_kernel_bug_checks_like_windows(
    mutant: type, mode: str, scenario: str, code: int, p1: int, requirement: str
) -> None:
    with pytest.raises(BugCheck) as caught:
        SCENARIOS[scenario](_kernel(mutant, mode))
    assert (caught.value.code, caught.value.parameters[0]) == (code, p1), str(caught.value)
    assert caught.value.requirement == requirement
    assert f"BugCheck 0x{code:X}" in str(caught.value)


def test_patch_failure_bug_check_carries_three_scheduler_pointers() -> None:
    with pytest.raises(BugCheck) as caught:
        render_program(_kernel(m.PatchFails, "always-repatch"))
    assert caught.value.parameters[0] == 0x3
    assert all(p != 0 for p in caught.value.parameters[1:])


def test_hung_ddi_is_a_tdr_not_a_hang() -> None:
    k = _kernel(m.HangsInRender, "default", ddi_timeout=0.2)
    with pytest.raises(Tdr) as caught:
        render_program(k)
    assert caught.value.code == 0x116
    assert caught.value.requirement == "ALL-BOUNDED"
    assert "did not return within 0.2 s" in str(caught.value)


def test_gpu_exception_on_device_marks_the_device_lost_and_refuses_further_work() -> None:
    k = Kernel("reference", "default", FAST)
    ctx, a, b = _pair(k)
    original = k.driver.render
    k.driver.render = lambda h, args: 0xC01E0200  # type: ignore[method-assign]
    first = k.run_program(ctx, [None, a, b], _program())  # type: ignore[arg-type]
    assert first.status == 0xC01E0200 and ctx.device.state == "lost"  # type: ignore[attr-defined]
    k.driver.render = original  # type: ignore[method-assign]
    calls = k.caller.calls
    second = k.run_program(ctx, [None, a, b], _program())  # type: ignore[arg-type]
    assert second.refused and not second.ok
    assert k.caller.calls == calls, "the kernel must not call Render for a lost device"


def test_failure_message_shows_the_dma_stream_near_the_fault() -> None:
    with pytest.raises(DriverViolation) as caught:
        render_program(_kernel(m.NoPrePatch, "default"))
    text = str(caught.value)
    assert "=>" in text and "COPY" in text and "page-fault" in text


@pytest.mark.parametrize(
    ("mode", "patched"),
    [
        ("default", False),
        ("forced-relocation", True),
        ("always-repatch", True),
        ("no-prepatching", True),
    ],
)
def test_patch_is_skipped_only_for_a_pre_patched_buffer_nothing_moved_under(
    mode: str, patched: bool
) -> None:
    k = Kernel("reference", mode, FAST)
    ctx, a, b = _pair(k)
    result = k.run_program(ctx, [None, a, b], _program())  # type: ignore[arg-type]
    assert [s.patched for s in result.submissions] == [patched]


def test_tiny_buffers_split_render_and_page_in_many_passes() -> None:
    k = Kernel("reference", "tiny-buffers", FAST)
    ctx, a, b = _pair(k, size=64 << 10, aperture=False)
    result = k.run_program(ctx, [None, a, b], _program(10))  # type: ignore[arg-type]
    assert result.render_calls > 10 and len(result.submissions) == result.render_calls
    offsets: list[int] = []
    original = k.driver.build_paging_buffer

    def spy(args):  # type: ignore[no-untyped-def]
        offsets.append(args.MultipassOffset)
        return original(args)

    k.driver.build_paging_buffer = spy  # type: ignore[method-assign]
    k.evict(a)  # type: ignore[arg-type]
    # 64 KiB to 16 system pages, two page copies per 64-byte paging buffer, 16 KiB sub-transfers
    assert len(offsets) >= 8 and offsets.count(0) == 4 and max(offsets) > 0


def test_busy_driver_is_retried_with_allocation_is_idle() -> None:
    k = Kernel("wddm_conformance.reference.miniport:BusyReferenceMiniport", "default", FAST)
    seen: list[int] = []
    original = k.driver.build_paging_buffer

    def spy(args):  # type: ignore[no-untyped-def]
        seen.append(int(args.Transfer.Flags))
        return original(args)

    k.driver.build_paging_buffer = spy  # type: ignore[method-assign]
    evict_round_trip(k)
    transfer_calls = [f for f in seen if f]
    assert any(not f & 0x4 for f in transfer_calls) and any(f & 0x4 for f in transfer_calls)


def test_same_seed_same_ddi_sequence() -> None:
    def trace(seed: int) -> list[str]:
        k = Kernel("reference", "forced-relocation", KernelConfig(seed=seed))
        render_program(k)
        return k.caller.sequence().splitlines() + [str(a) for a in k.allocations.values()]

    assert trace(7) == trace(7)


def test_a_driver_that_swallows_the_timeout_is_still_a_tdr() -> None:
    with pytest.raises(Tdr):
        render_program(_kernel(m.SwallowsTimeout, "default", ddi_timeout=0.2))


def test_driver_without_alternate_va_passes_the_workload_and_is_never_asked_for_special_lock() -> (
    None
):
    from wddm_conformance.workload import run_workload

    ops: list[int] = []
    spec = load_driver("tests.mutants:NoAlternateVA")
    original = spec.cls.build_paging_buffer

    def spy(self, args):  # type: ignore[no-untyped-def]
        ops.append(int(args.Operation))
        return original(self, args)

    spec.cls.build_paging_buffer = spy
    try:
        run_workload(spec, "default")
    finally:
        spec.cls.build_paging_buffer = original
    assert ops and 7 not in ops  # DXGK_OPERATION_SPECIAL_LOCK_TRANSFER


def test_render_multipass_offset_is_kept_across_split_calls() -> None:
    k = Kernel("reference", "tiny-buffers", FAST)
    seen: list[int] = []
    original = k.driver.render

    def spy(h, args):  # type: ignore[no-untyped-def]
        seen.append(args.MultipassOffset)
        status = original(h, args)
        args.MultipassOffset = len(seen)  # the driver's own progress marker
        return status

    k.driver.render = spy  # type: ignore[method-assign]
    render_program(k, ops=5)
    assert seen[:4] == [0, 1, 2, 3]


def test_forced_eviction_of_an_allocation_larger_than_half_its_segment() -> None:
    k = Kernel("reference", "forced-eviction", KernelConfig(memory_segment_size=4 << 20))
    dev = k.create_device()
    ctx = k.create_context(dev)
    a, b = k.create_allocations(
        dev, [AllocationRequest(3 << 20, aperture=False), AllocationRequest(4096)]
    )
    k.cpu_write(a, 0, b"x" * 4096)
    assert k.run_program(ctx, [None, a, b], [Copy(AllocRef(2), AllocRef(1), 4096)]).ok
    assert k.cpu_read(b, 0, 4) == b"xxxx"
