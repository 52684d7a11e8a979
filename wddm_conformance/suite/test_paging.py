"""DxgkDdiBuildPagingBuffer: every classic operation, multipass, busy/idle, map and unmap."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from ..ddi import DXGK_TRANSFER_LOCATION, DXGK_TRANSFERFLAGS, PAGE_SIZE
from ..driver import AllocationRequest
from ..errors import DriverViolation, HarnessError
from ..kernel import DUMMY_PATTERN, Allocation, Kernel
from ..kernel.vidmm import DDI
from .support import pair

requirement = pytest.mark.requirement
MakeKernel = Callable[..., Kernel]


def _allocation(k: Kernel, size: int, seed: int = 5, **request: bool) -> Allocation:
    device = k.create_device()
    (a,) = k.create_allocations(device, [AllocationRequest(size, **request)])
    k.cpu_write(a, 0, random.Random(seed).randbytes(a.size))
    return a


def _round_trip(k: Kernel, a: Allocation) -> None:
    """Evict, page in, relocate: the content survives every transfer."""
    data = k.cpu_read(a)
    k.evict(a)
    k.make_resident(a)
    k.relocate(a)
    if k.cpu_read(a) != data:
        raise DriverViolation("PGB-TRANSFER", DDI, f"{a} lost its content in a round trip")


@requirement("PGB-STATUS", "PGB-CURSOR", "PGB-PATCHED")
@pytest.mark.parametrize("mode", ["default", "tiny-buffers"])
def test_paging_operations_return_documented_statuses_and_cursors(
    make_kernel: MakeKernel, mode: str
) -> None:
    k = make_kernel(mode)
    _round_trip(k, _allocation(k, 64 << 10, aperture=False))


@requirement("PGB-TRANSFER")
@pytest.mark.parametrize("where", ["memory", "aperture-capable", "swizzled"])
def test_a_transfer_moves_the_whole_allocation(kernel: Kernel, where: str) -> None:
    request = {
        "memory": {"aperture": False},
        "aperture-capable": {},
        "swizzled": {"cpu_visible": True, "swizzled": True},
    }[where]
    _round_trip(kernel, _allocation(kernel, 96 << 10, **request))


@requirement("PGB-TRANSFER", "PGB-MULTIPASS")
def test_sub_range_transfers_use_transfer_offset(make_kernel: MakeKernel) -> None:
    k = make_kernel("tiny-buffers")
    _round_trip(k, _allocation(k, 80 << 10, aperture=False))


@requirement("PGB-MULTIPASS")
def test_a_transfer_larger_than_the_paging_buffer_is_done_exactly_once(
    make_kernel: MakeKernel,
) -> None:
    """Tiny paging buffers: the partial buffers together copy every byte exactly once."""
    k = make_kernel("tiny-buffers")
    a = _allocation(k, 64 << 10, aperture=False)
    seen: list[int] = []
    original = k.driver.build_paging_buffer

    def spy(args):  # type: ignore[no-untyped-def]
        seen.append(args.MultipassOffset)
        return original(args)

    k.driver.build_paging_buffer = spy  # type: ignore[method-assign]
    _round_trip(k, a)
    if len(seen) < 4 or seen[0] != 0:
        raise HarnessError(f"tiny buffers did not force multipass (offsets {seen[:8]})")


@requirement("PGB-MULTIPASS", "PGB-FILL")
def test_a_fill_larger_than_the_paging_buffer_is_done_exactly_once(
    make_kernel: MakeKernel,
) -> None:
    k = make_kernel("tiny-buffers")
    a = _allocation(k, 256 << 10, aperture=False)
    k.make_resident(a)
    k.vidmm.fill(a.hAllocation, a.segment_id, a.address, a.size, 0x5A5AC3C3)


#: Bytes of an operation several chunks long (a driver moves up to a few MiB per
#: instruction; the reference 1 MiB), unaligned at the end.
SEVERAL_CHUNKS = (3 << 20) + 5


@requirement("PGB-MULTIPASS", "PGB-TRANSFER", "PGB-FILL")
def test_an_operation_of_several_chunks_resumes_exactly_where_it_stopped(
    make_kernel: MakeKernel,
) -> None:
    """Only the paging buffer is small (64 bytes, sub-transfers as the mode has them): a
    relocation between segments, an eviction to and a page-in from system memory and a
    fill, each several MiB, need many calls; every resume must pick up exactly where the
    previous call stopped (a resume a chunk early or late copies twice or skips one)."""
    k = make_kernel(paging_buffer_size=64)
    a = _allocation(k, SEVERAL_CHUNKS, aperture=False)
    seen: list[int] = []
    original = k.driver.build_paging_buffer

    def spy(args):  # type: ignore[no-untyped-def]
        seen.append(args.MultipassOffset)
        return original(args)

    k.driver.build_paging_buffer = spy  # type: ignore[method-assign]
    k.make_resident(a)
    data = k.cpu_read(a)
    k.relocate(a)  # segment to segment
    k.evict(a)  # segment to system memory
    k.make_resident(a)  # and back
    if k.cpu_read(a) != data:
        raise DriverViolation("PGB-TRANSFER", DDI, f"{a} lost its content moving in pieces")
    k.vidmm.fill(a.hAllocation, a.segment_id, a.address, a.size - a.size % 4, 0x1234ABCD)
    if sum(1 for o in seen if o) < 8:
        raise HarnessError(f"a 64-byte paging buffer did not force multipass ({len(seen)} calls)")


@requirement("PGB-MAP")
def test_a_map_of_hundreds_of_pages_reaches_every_page(kernel: Kernel) -> None:
    """Most of the aperture in one map (770 pages): a driver that writes its page table in
    blocks must write every block (the kernel checks every page the map reaches)."""
    a = _allocation(kernel, (3 << 20) + 2 * PAGE_SIZE, aperture_only=True)
    kernel.make_resident(a)
    data = random.Random(11).randbytes(a.size)
    kernel.cpu_write(a, 0, data)
    if kernel.gpu.read(a.address, a.size) != data:
        raise DriverViolation("PGB-MAP", DDI, f"the GPU does not see the pages mapped for {a}")


#: Sizes from one byte to several paging buffers and chunks, unaligned at either end.
SIZES = [1, 3, 4095, 4097, (64 << 10) + 5, (300 << 10) + 1, (1 << 20) + 3]


@requirement("PGB-TRANSFER")
@pytest.mark.parametrize("size", SIZES)
def test_transfers_keep_every_byte_at_every_size(kernel: Kernel, size: int) -> None:
    _round_trip(kernel, _allocation(kernel, size, seed=size, aperture=False))


@requirement("PGB-FILL")
@pytest.mark.parametrize("size", [s for s in SIZES if s >= 4])
def test_fill_covers_the_range_at_every_size_and_unaligned_start(kernel: Kernel, size: int) -> None:
    a = _allocation(kernel, size + 16, aperture=False)
    kernel.make_resident(a)
    kernel.vidmm.fill(a.hAllocation, a.segment_id, a.address + 3, size - size % 4, 0x0A0B0C0D)


@requirement("PGB-FILL")
@pytest.mark.parametrize("size", [4, 6, 4096, 100000])
def test_fill_writes_the_pattern_over_exactly_the_range(kernel: Kernel, size: int) -> None:
    a = _allocation(kernel, 128 << 10, aperture=False)
    kernel.make_resident(a)
    kernel.vidmm.fill(a.hAllocation, a.segment_id, a.address + 8, size, 0x01020304)


@requirement("PGB-BUSY")
def test_busy_is_answered_at_most_once_and_never_when_idle(kernel: Kernel) -> None:
    a = _allocation(kernel, 32 << 10, aperture=False)
    _round_trip(kernel, a)
    kernel.discard(a)
    kernel.make_resident(a)
    kernel.vidmm.fill(a.hAllocation, a.segment_id, a.address, 4096, 7)


@requirement("PGB-NOSWIZZLE")
def test_a_transfer_without_an_allocation_copies_bytes_as_they_are(kernel: Kernel) -> None:
    a = _allocation(kernel, 8192, aperture=False)
    kernel.make_resident(a)
    mdl = kernel.sysmem.allocate_mdl(8192)
    kernel.sysmem.write_mdl(mdl, 0, random.Random(4).randbytes(8192))
    kernel.vidmm.transfer(
        0,
        8192,
        DXGK_TRANSFER_LOCATION(0, 0, mdl),
        DXGK_TRANSFER_LOCATION(a.segment_id, a.address),
        DXGK_TRANSFERFLAGS.Swizzle,
    )


@requirement("PGB-DISCARD")
def test_discard_is_accepted_and_touches_nothing_else(kernel: Kernel) -> None:
    device = kernel.create_device()
    a, b, c = kernel.create_allocations(
        device, [AllocationRequest(16 << 10, aperture=False) for _ in range(3)]
    )
    for x in (a, b, c):
        kernel.cpu_write(x, 0, b"\x5a" * x.size)
    kernel.discard(b)
    for x in (a, c):
        if kernel.cpu_read(x) != b"\x5a" * x.size:
            raise DriverViolation("PGB-DISCARD", DDI, f"discarding {b} changed {x}")


@requirement("PGB-PHYS")
@pytest.mark.parametrize("size", [1, 2, 4, 8])
def test_physical_reads_and_writes_access_exactly_the_bytes_asked(
    kernel: Kernel, size: int
) -> None:
    a = _allocation(kernel, 8192, aperture=False)
    kernel.make_resident(a)
    kernel.vidmm.physical(False, a.segment_id, a.address + 16, size)
    kernel.vidmm.physical(True, a.segment_id, a.address + 40, size)


@requirement("PGB-MAP")
def test_mapped_aperture_pages_reach_the_mdl_pages(kernel: Kernel) -> None:
    a = _allocation(kernel, 40 << 10, aperture_only=True)
    kernel.make_resident(a)
    data = random.Random(9).randbytes(a.size)
    kernel.cpu_write(a, 0, data)
    if kernel.gpu.read(a.address, a.size) != data:
        raise DriverViolation("PGB-MAP", DDI, f"the GPU does not see the pages mapped for {a}")


@requirement("PGB-UNMAP")
def test_an_unmapped_range_reads_the_dummy_page_and_never_the_old_pages(kernel: Kernel) -> None:
    """Map an aperture range onto system pages, unmap it; GPU reads through the range return
    the dummy page, writes never reach the old pages, nothing faults."""
    a = _allocation(kernel, 8 * PAGE_SIZE, aperture_only=True)
    kernel.make_resident(a)
    kernel.cpu_write(a, 0, b"OLDPAGE!" * (a.size // 8))
    address, pages = a.address, a.size // PAGE_SIZE
    old = list(a.backing.pfns) if a.backing is not None else []
    kernel.evict(a)  # unmaps the range
    dummy = DUMMY_PATTERN * (PAGE_SIZE // len(DUMMY_PATTERN))
    for page in range(pages):
        at = address + page * PAGE_SIZE
        try:
            seen = kernel.gpu.read(at, PAGE_SIZE)
            kernel.gpu.write(at, b"\xee" * 64)
        except ValueError as fault:
            raise DriverViolation(
                "PGB-UNMAP", DDI, f"GPU access to unmapped aperture page {page} faulted: {fault}"
            ) from None
        kernel.sysmem.write(kernel.dummy_page_address, dummy)  # the dummy page absorbs writes
        if seen != dummy:
            raise DriverViolation(
                "PGB-UNMAP", DDI, f"unmapped aperture page {page} does not read the dummy page"
            )
    for pfn in old:
        page_bytes = kernel.sysmem.read(pfn * PAGE_SIZE, PAGE_SIZE)
        if b"\xee" * 64 in page_bytes:
            raise DriverViolation(
                "PGB-UNMAP",
                DDI,
                f"a GPU write through the unmapped range reached old page {pfn:#x}",
            )


@requirement("PGB-SPECIALLOCK")
def test_special_lock_transfers_go_to_the_alternate_virtual_address(kernel: Kernel) -> None:
    if not kernel.caps.SupportsAlternateVA:
        pytest.skip("the driver does not support UseAlternateVA (never asked for special lock)")
    a = _allocation(kernel, 32 << 10, aperture=False, alternate_va=True)
    kernel.make_resident(a)
    kernel.lock_alternate_va(a)
    _round_trip(kernel, a)


@requirement("PGB-UNSWIZZLE")
def test_an_evicted_swizzled_allocation_lands_in_cpu_order(kernel: Kernel) -> None:
    a = _allocation(kernel, 32 << 10, cpu_visible=True, swizzled=True)
    data = kernel.cpu_read(a)
    kernel.evict(a)
    if kernel.cpu_read(a) != data:
        raise DriverViolation("PGB-UNSWIZZLE", DDI, f"{a} is not in CPU order after eviction")


@requirement("PGB-PATCHED")
def test_paging_buffers_keep_their_size_through_patch(make_kernel: MakeKernel) -> None:
    k = make_kernel("tiny-buffers")
    ctx, a, b = pair(k, 32 << 10, aperture=False)
    del ctx
    for x in (a, b):
        _round_trip(k, x)
