"""Full-width fields and second calls (issue 13): the generators, the kernel's batch calls,
the paging attribution, and the direct suite check that names each broken driver."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings

from tests import killmatrix as km
from tests import mutants as m
from wddm_conformance.driver import AllocationRequest, GpuExecution
from wddm_conformance.kernel import Kernel
from wddm_conformance.kernel.vidmm import PagingRun, _skipped_between_calls
from wddm_conformance.program import out_of_bounds, touches
from wddm_conformance.strategies import outside_operations

SIZES = [0, 24 << 10, 16 << 10, 4096]


@settings(max_examples=300, derandomize=True, deadline=None)
@given(op=outside_operations(SIZES))
def test_outside_operations_reach_outside_with_fields_an_encoder_carries(op: Any) -> None:
    sizes = {i: s for i, s in enumerate(SIZES) if i}
    assert out_of_bounds([op], sizes, len(SIZES)), op
    for a in touches(op):
        assert 0 <= a.ref.index < 1 << 32 and 0 <= a.ref.offset < 1 << 32
        assert 0 <= a.length < 1 << 32


def test_outside_operations_reach_every_width() -> None:
    """Over a few hundred draws: 32-bit wraps, bit 31 and past 2^16, in each field."""
    seen: set[str] = set()

    @settings(max_examples=1000, derandomize=True, deadline=None)
    @given(op=outside_operations(SIZES))
    def draw(op: Any) -> None:
        a = touches(op)[0]
        if a.ref.index >= 1 << 31:
            seen.add("index bit 31")
        if a.ref.offset + a.length >= 1 << 32 and (a.ref.offset + a.length) % (1 << 32) < 4096:
            seen.add("offset wraps")
        if a.length >= 1 << 31:
            seen.add("size bit 31")
        if 1 << 16 <= a.length < 1 << 17:
            seen.add("size past 16 bits")

    draw()
    assert seen == {"index bit 31", "offset wraps", "size bit 31", "size past 16 bits"}


def _count_calls(k: Kernel, name: str) -> list[int]:
    calls: list[int] = []
    original = getattr(k.driver, name)

    def spy(*args: Any) -> Any:
        calls.append(getattr(args[-1], "NumAllocations", 1))
        return original(*args)

    setattr(k.driver, name, spy)
    return calls


def test_a_batch_is_opened_and_destroyed_in_one_call_each() -> None:
    k = Kernel()
    device = k.create_device()
    opens = _count_calls(k, "open_allocation")
    destroys = _count_calls(k, "destroy_allocation")
    batch = k.create_allocations(device, [AllocationRequest(4096)] * 100)
    assert opens == [100]
    k.destroy_allocations(batch)
    assert destroys == [100]
    assert k.allocations == {} and not any(a.opened for a in batch)


def _run(*writes: list[tuple[int, int]]) -> PagingRun:
    return PagingRun([GpuExecution(writes=list(w)) for w in writes], len(writes))


def test_a_hole_a_later_partial_buffer_resumes_past_is_a_resume_fault() -> None:
    want = [(0, 300)]
    assert _skipped_between_calls(_run([(0, 100)], [(200, 100)]), want)  # 100-199 skipped
    assert not _skipped_between_calls(_run([(0, 100)], [(100, 100)]), want)  # short at the end
    # an MDL's pages lie apart: the bytes between them are not the operation's
    pages = [(0, 100), (1000, 100)]
    assert not _skipped_between_calls(_run([(0, 100)], [(1000, 50)]), pages)


#: Each new broken driver, the direct check that catches it (-k), and the ID it must name.
DIRECT = [
    (m.EmptyBufferBadStatus, "documented_statuses and empty", "REN-STATUS"),
    (m.ChecksSizeIn16Bits, "outside_the_submission and 17-bit-size", "REN-VALIDATE"),
    (m.EmptyListUnchecked, "short_allocation_list", "REN-VALIDATE"),
    (m.HandleCounterWraps16, "through_many_creations", "ALC-HANDLE"),
    (m.FreesOnLastClose, "every_device_that_had_it_open", "ALC-ADAPTER"),
    (m.AllocationsDieWithDevice, "every_device_that_had_it_open", "ALC-ADAPTER"),
    (m.MultipassSkipsAChunk, "several_chunks", "PGB-MULTIPASS"),
    (m.MultipassRepeats, "several_chunks", "PGB-MULTIPASS"),
    (m.MapSkipsABlock, "hundreds_of_pages", "PGB-MAP"),
    (m.PatchesOnlyOnce, "repatching_after_relocation", "PAT-REPATCH"),
]


@pytest.mark.parametrize(
    ("driver", "check", "rule"), DIRECT, ids=lambda v: getattr(v, "__name__", "")
)
def test_a_direct_check_names_the_rule_each_broken_driver_breaks(
    driver: type, check: str, rule: str
) -> None:
    report = km.run_suite(km.spec(driver), "-k", check)
    assert report["tests"], f"no check matched -k {check!r}"
    assert set(km.caught(report)) == {rule}, km.caught(report)
