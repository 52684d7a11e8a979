"""The video memory manager: placement, residency and the BuildPagingBuffer loop.

Each residency change is a classic paging operation the driver builds:

================================  =======================================================
kernel action                     paging operations
================================  =======================================================
first placement, memory segment   FILL with 0
first placement, aperture         (system pages allocated) MAP_APERTURE_SEGMENT
evict from a memory segment       TRANSFER segment -> MDL (Unswizzle if swizzled), or
                                  SPECIAL_LOCK_TRANSFER to the alternate VA if locked so
evict from an aperture segment    UNMAP_APERTURE_SEGMENT to the dummy page
page in to a memory segment       TRANSFER MDL -> segment (Swizzle if swizzled)
page in to an aperture segment    MAP_APERTURE_SEGMENT of the backing pages
relocate within a segment         TRANSFER segment -> segment, or UNMAP + MAP
discard                           DISCARD_CONTENT
================================  =======================================================

The loop (:meth:`VidMm.run`) follows the seed's pseudo-code: INSUFFICIENT_DMA_BUFFER
submits the partial buffer and calls again with a fresh one and MultipassOffset as
the driver left it; ALLOCATION_BUSY waits for the GPU and calls again with
AllocationIsIdle set; any other status is bug check 0x10E. It also proves what the
seed asks: each call on an empty buffer makes progress, the partial buffers together
write every destination byte exactly once, and the content arrives as it should.
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..ddi import (
    DXGK_ALLOCATIONINFOFLAGS,
    DXGK_DISCARDCONTENTFLAGS,
    DXGK_FILL_DESTINATION,
    DXGK_MAPAPERTUREFLAGS,
    DXGK_SEGMENTDESCRIPTOR,
    DXGK_TRANSFER_LOCATION,
    DXGK_TRANSFERFLAGS,
    DXGKARG_BUILDPAGINGBUFFER,
    MDL,
    PAGE_SIZE,
)
from ..ddi import (
    DXGK_BUILDPAGINGBUFFER_OPERATION as OP,
)
from ..driver import DDI_METHODS, GpuExecution
from ..errors import (
    VIDEO_MEMORY_MANAGEMENT_INTERNAL,
    VIDMM_INVALID_BUILDPAGINGBUFFER_STATUS,
    BugCheck,
    DriverViolation,
    HarnessError,
)
from ..memory import UNWRITTEN, KernelBuffer, Ptr, unwritten
from ..program import describe_difference, fill_bytes
from ..status import (
    BUILD_PAGING_BUFFER_STATUSES,
    STATUS_GRAPHICS_ALLOCATION_BUSY,
    STATUS_GRAPHICS_INSUFFICIENT_DMA_BUFFER,
    STATUS_SUCCESS,
    status_name,
)
from .ddicall import memory_violations
from .objects import Allocation, Change, State

if TYPE_CHECKING:
    from .kernel import Kernel

DDI = DDI_METHODS["build_paging_buffer"]
_SWIZZLE, _UNSWIZZLE = int(DXGK_TRANSFERFLAGS.Swizzle), int(DXGK_TRANSFERFLAGS.Unswizzle)
_TRANSFER_START = int(DXGK_TRANSFERFLAGS.TransferStart)
_TRANSFER_END = int(DXGK_TRANSFERFLAGS.TransferEnd)
#: Made once per value: an IntFlag operation builds a new flag object each time.
_transfer_flags = functools.cache(DXGK_TRANSFERFLAGS)
Range = tuple[int, int]  # (physical address, length)

#: Which requirement a wrong result of each operation breaks.
OPERATION_RULE = {
    OP.DXGK_OPERATION_TRANSFER: "PGB-TRANSFER",
    OP.DXGK_OPERATION_FILL: "PGB-FILL",
    OP.DXGK_OPERATION_DISCARD_CONTENT: "PGB-DISCARD",
    OP.DXGK_OPERATION_READ_PHYSICAL: "PGB-PHYS",
    OP.DXGK_OPERATION_WRITE_PHYSICAL: "PGB-PHYS",
    OP.DXGK_OPERATION_MAP_APERTURE_SEGMENT: "PGB-MAP",
    OP.DXGK_OPERATION_UNMAP_APERTURE_SEGMENT: "PGB-UNMAP",
    OP.DXGK_OPERATION_SPECIAL_LOCK_TRANSFER: "PGB-SPECIALLOCK",
}


class OutOfVideoMemory(HarnessError):
    """The configured segments cannot hold what the test asked for (raise KernelConfig sizes)."""


class Heap:
    """Free-space bookkeeping of one segment: sorted, non-overlapping (offset, size) blocks."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.starts: list[int] = []
        self.sizes: list[int] = []

    def gaps(self) -> list[Range]:
        out: list[Range] = []
        pos = 0
        for start, size in zip(self.starts, self.sizes, strict=True):
            if start > pos:
                out.append((pos, start - pos))
            pos = start + size
        if pos < self.size:
            out.append((pos, self.size - pos))
        return out

    def fits(self, size: int, alignment: int) -> list[int]:
        """Aligned offsets, one per gap (lowest and highest fit), where ``size`` bytes fit."""
        out: list[int] = []
        for start, length in self.gaps():
            lo = -(-start // alignment) * alignment
            hi = ((start + length - size) // alignment) * alignment
            if lo + size <= start + length:
                out.append(lo)
                if hi > lo:
                    out.append(hi)
        return out

    def take(self, offset: int, size: int) -> None:
        i = bisect.bisect_left(self.starts, offset)
        self.starts.insert(i, offset)
        self.sizes.insert(i, size)

    def release(self, offset: int) -> None:
        i = bisect.bisect_left(self.starts, offset)
        if i == len(self.starts) or self.starts[i] != offset:
            raise HarnessError(f"releasing segment offset 0x{offset:X} that is not allocated")
        del self.starts[i]
        del self.sizes[i]


@dataclass(frozen=True)
class _Transfer:
    """One TRANSFER (SPECIAL_LOCK_TRANSFER when ``special``) the memory manager asks for."""

    hAllocation: int
    size: int
    src: DXGK_TRANSFER_LOCATION
    dst: DXGK_TRANSFER_LOCATION
    flags: DXGK_TRANSFERFLAGS
    special: bool


@dataclass
class PagingRun:
    """What one paging operation did: its GPU executions and the number of DDI calls."""

    executions: list[GpuExecution]
    calls: int

    @property
    def writes(self) -> list[Range]:
        return [w for e in self.executions for w in e.writes]

    @property
    def reads(self) -> list[Range]:
        return [r for e in self.executions for r in e.reads]


def coverage(ranges: list[Range]) -> tuple[list[Range], bool]:
    """Merge ``ranges``; also say whether any byte is covered more than once."""
    merged: list[Range] = []
    overlap = False
    for start, length in sorted(r for r in ranges if r[1] > 0):
        if merged and start < merged[-1][0] + merged[-1][1]:
            overlap = True
        if merged and start <= merged[-1][0] + merged[-1][1]:
            last_start, last_len = merged[-1]
            merged[-1] = (last_start, max(last_start + last_len, start + length) - last_start)
        else:
            merged.append((start, length))
    return merged, overlap


def _skipped_between_calls(run: PagingRun, want: list[Range]) -> bool:
    """Whether a later partial buffer of ``run`` starts writing past a hole right after
    where an earlier one stopped: a byte of ``want`` nobody wrote between the two."""
    merged, _ = coverage(run.writes)
    ends = {start + n for e in run.executions for start, n in e.writes}
    for i, later in enumerate(run.executions[1:], 1):
        for start, _n in later.writes:
            stopped = max((e for e in ends if e < start), default=None)
            if stopped is None or any(s <= stopped < s + n for s, n in merged):
                continue  # the byte after the earlier write is written by someone
            if not any(s <= stopped < s + n for s, n in want):
                continue  # not a byte of the operation (the next page of an MDL, say)
            if any(stopped == a + n for e in run.executions[:i] for a, n in e.writes):
                return True
    return False


def mdl_ranges(mdl: MDL, offset: int, length: int) -> list[Range]:
    """Physical ranges of ``length`` bytes at byte ``offset`` of an MDL."""
    out: list[Range] = []
    while length > 0:
        n = min(length, PAGE_SIZE - offset % PAGE_SIZE)
        out.append((mdl.physical_address(offset), n))
        offset += n
        length -= n
    return out


class VidMm:
    """Residency and paging for one adapter."""

    def __init__(self, kernel: Kernel) -> None:
        self.k = kernel
        self.heaps = {sid: Heap(desc.Size) for sid, desc in kernel.segments.items()}
        self.resident: dict[int, Allocation] = {}  # allocation id -> allocation, in placement order

    # ------------------------------------------------------------------ helpers

    def segment(self, segment_id: int) -> DXGK_SEGMENTDESCRIPTOR:
        return self.k.segments[segment_id]

    def _candidates(self, a: Allocation) -> list[int]:
        allowed = a.segment_set()
        order = [s for s in a.info.PreferredSegment if s in self.k.segments and allowed >> s & 1]
        order += [s for s in sorted(self.k.segments) if allowed >> s & 1 and s not in order]
        if not order:
            raise HarnessError(f"{a} names no segment the adapter has")
        return order

    def _alignment(self, a: Allocation, segment_id: int) -> int:
        alignment = max(a.info.Alignment, 1)
        return max(alignment, PAGE_SIZE) if self.segment(segment_id).is_aperture else alignment

    def _place(
        self, a: Allocation, segment_id: int, pinned: frozenset[int], avoid: Range | None = None
    ) -> int | None:
        """Find (evicting others if needed) an offset for ``a`` in ``segment_id``; None if impossible."""
        heap = self.heaps[segment_id]
        size = (
            -(-a.size // PAGE_SIZE) * PAGE_SIZE if self.segment(segment_id).is_aperture else a.size
        )
        alignment = self._alignment(a, segment_id)
        while True:
            fits = [
                off
                for off in heap.fits(size, alignment)
                if avoid is None or off + size <= avoid[0] or off >= avoid[0] + avoid[1]
            ]
            if fits:
                return fits[self.k.rng.randrange(len(fits))]
            victims = [
                v
                for v in self.resident.values()
                if v.segment_id == segment_id and v.id not in pinned and v is not a
            ]
            if not victims:
                return None
            self.evict(victims[0])

    # ------------------------------------------------------------------ residency

    def make_resident(
        self,
        a: Allocation,
        pinned: frozenset[int] = frozenset(),
        segment_id: int | None = None,
        avoid: Range | None = None,
    ) -> None:
        """Page ``a`` in (first placement, or back from system memory)."""
        if a.state == State.RESIDENT:
            return
        a.require(State.UNPLACED, State.EVICTED)
        for sid in [segment_id] if segment_id is not None else self._candidates(a):
            offset = self._place(a, sid, pinned | {a.id}, avoid)
            if offset is None and avoid is not None:  # no other place: the old one will do
                offset = self._place(a, sid, pinned | {a.id})
            if offset is not None:
                break
        else:
            raise OutOfVideoMemory(f"no segment can hold {a} (raise KernelConfig segment sizes)")
        desc = self.segment(sid)
        size = -(-a.size // PAGE_SIZE) * PAGE_SIZE if desc.is_aperture else a.size
        self.heaps[sid].take(offset, size)
        address = desc.BaseAddress + offset
        if desc.is_aperture:
            if a.backing is None:
                a.backing = self.k.sysmem.allocate_mdl(a.size)
            self.map_aperture(a, sid, offset // PAGE_SIZE, a.backing)
        elif a.backing is None:
            self.fill(a.hAllocation, sid, address, a.size, 0)
        else:
            backing = a.backing
            src = DXGK_TRANSFER_LOCATION(0, 0, backing)
            dst = DXGK_TRANSFER_LOCATION(sid, address)
            flags = DXGK_TRANSFERFLAGS.Swizzle if a.swizzled else DXGK_TRANSFERFLAGS(0)
            special = a.alternate_va is not None and backing is a.alternate_va
            self.transfer(a.hAllocation, a.size, src, dst, flags, special=special)
            if not special:
                self.k.sysmem.free(backing.pfns)
            a.backing = None
        a.segment_id, a.offset, a.address = sid, offset, address
        a.last_address = address
        a.transition(Change.PAGE_IN)
        self.resident[a.id] = a

    def evict(self, a: Allocation) -> None:
        """Move ``a`` out of its segment to system memory (or unmap it from the aperture)."""
        a.require(State.RESIDENT)
        desc = self.segment(a.segment_id)
        if desc.is_aperture:
            self.unmap_aperture(a, a.segment_id, a.offset // PAGE_SIZE, -(-a.size // PAGE_SIZE))
        else:
            special = a.alternate_va is not None and self.k.caps.SupportsAlternateVA
            mdl = (
                a.alternate_va
                if special and a.alternate_va is not None
                else self.k.sysmem.allocate_mdl(a.size)
            )
            src = DXGK_TRANSFER_LOCATION(a.segment_id, a.address)
            dst = DXGK_TRANSFER_LOCATION(0, 0, mdl)
            flags = DXGK_TRANSFERFLAGS.Unswizzle if a.swizzled else DXGK_TRANSFERFLAGS(0)
            self.transfer(a.hAllocation, a.size, src, dst, flags, special=special)
            a.backing = mdl
        self.heaps[a.segment_id].release(a.offset)
        del self.resident[a.id]
        a.segment_id = a.offset = a.address = 0
        a.transition(Change.EVICT)

    def discard(self, a: Allocation) -> None:
        """Evict ``a`` without keeping its content (DISCARD_CONTENT); it comes back zeroed.

        An aperture allocation is simply unmapped (its system pages keep their content).
        """
        a.require(State.RESIDENT)
        if self.segment(a.segment_id).is_aperture:
            self.evict(a)
            return
        run = self.run(
            OP.DXGK_OPERATION_DISCARD_CONTENT,
            lambda args: _set_discard(args, a),
            idle_flag=lambda args: _set_flag(
                args.DiscardContent, DXGK_DISCARDCONTENTFLAGS.AllocationIsIdle
            ),
        )
        outside = [
            w
            for w in run.writes
            if not any(s <= w[0] and w[0] + w[1] <= s + n for s, n in self.physical_ranges(a))
        ]
        if outside:
            address, length = outside[0]
            raise DriverViolation(
                "PGB-DISCARD",
                DDI,
                f"discarding {a} wrote {length} byte(s) at 0x{address:X}, outside the allocation",
            )
        self.heaps[a.segment_id].release(a.offset)
        del self.resident[a.id]
        a.backing = self.k.sysmem.allocate_mdl(a.size)
        a.segment_id = a.offset = a.address = 0
        a.transition(Change.DISCARD)

    def relocate(
        self, a: Allocation, pinned: frozenset[int] = frozenset(), *, by_hand: bool = False
    ) -> None:
        """Move resident ``a`` to another place in its segment (content preserved); with
        ``by_hand`` a memory-segment allocation's content is copied by the kernel, not by
        a paging buffer (KernelConfig.forced_moves_by_driver)."""
        a.require(State.RESIDENT)
        sid, old_offset, old_address = a.segment_id, a.offset, a.address
        desc = self.segment(sid)
        size = -(-a.size // PAGE_SIZE) * PAGE_SIZE if desc.is_aperture else a.size
        offset = self._place(a, sid, pinned | {a.id}, avoid=(old_offset, size))
        if offset is None:
            return  # nowhere else to go: a real memory manager would leave it too
        self.heaps[sid].take(offset, size)
        address = desc.BaseAddress + offset
        if desc.is_aperture:
            backing = a.backing
            if backing is None:
                raise HarnessError(f"{a} is in an aperture segment without backing pages")
            self.unmap_aperture(a, sid, old_offset // PAGE_SIZE, size // PAGE_SIZE)
            self.map_aperture(a, sid, offset // PAGE_SIZE, backing)
        elif by_hand:
            self.k.gpu.write(address, self.k.gpu.read(old_address, a.size))
        else:
            self.transfer(
                a.hAllocation,
                a.size,
                DXGK_TRANSFER_LOCATION(sid, old_address),
                DXGK_TRANSFER_LOCATION(sid, address),
                DXGK_TRANSFERFLAGS(0),
            )
        self.heaps[sid].release(old_offset)
        a.offset, a.address, a.last_address = offset, address, address
        a.transition(Change.RELOCATE)

    def release(self, a: Allocation) -> None:
        """Free everything ``a`` holds (it is being destroyed); aperture pages are unmapped first."""
        if a.state == State.RESIDENT:
            desc = self.segment(a.segment_id)
            if desc.is_aperture:
                self.unmap_aperture(a, a.segment_id, a.offset // PAGE_SIZE, -(-a.size // PAGE_SIZE))
            self.heaps[a.segment_id].release(a.offset)
            del self.resident[a.id]
        if a.backing is not None and a.backing is not a.alternate_va:
            self.k.sysmem.free(a.backing.pfns)
        if a.alternate_va is not None:
            self.k.sysmem.free(a.alternate_va.pfns)
        a.backing = a.alternate_va = None

    # ------------------------------------------------------------------ CPU access (Lock)

    def cpu_read(self, a: Allocation, offset: int, length: int) -> bytes:
        """Read allocation bytes as the CPU sees them (linear, wherever the allocation lives)."""
        if a.state == State.UNPLACED:
            return bytes(length)
        if a.state == State.RESIDENT and not self.segment(a.segment_id).is_aperture:
            if a.swizzled:
                return self.k.tiling.read_linear(a)[offset : offset + length]
            return self.k.gpu.read(a.address + offset, length)
        if a.backing is None:
            raise HarnessError(f"{a} has no backing store")
        return self.k.sysmem.read_mdl(a.backing, offset, length)

    def cpu_write(self, a: Allocation, offset: int, data: bytes) -> None:
        """Write allocation bytes as the CPU does (linear, wherever the allocation lives)."""
        if offset < 0 or offset + len(data) > a.size:
            raise HarnessError(f"CPU write of {len(data)} bytes at +{offset} outside {a}")
        if a.state == State.UNPLACED:
            self.make_resident(a)
        if a.state == State.RESIDENT and not self.segment(a.segment_id).is_aperture:
            if a.swizzled:
                linear = bytearray(self.k.tiling.read_linear(a))
                linear[offset : offset + len(data)] = data
                self.k.tiling.write_linear(a, linear)
            else:
                self.k.gpu.write(a.address + offset, data)
            return
        if a.backing is None:
            raise HarnessError(f"{a} has no backing store")
        self.k.sysmem.write_mdl(a.backing, offset, data)

    def physical_ranges(self, a: Allocation) -> list[Range]:
        """Physical memory a resident allocation occupies (system pages behind an aperture range)."""
        if a.state != State.RESIDENT:
            return []
        if self.segment(a.segment_id).is_aperture:
            return mdl_ranges(a.backing, 0, a.size) if a.backing is not None else []
        return [(a.address, a.size)]

    # ------------------------------------------------------------------ paging operations

    def transfer(
        self,
        hAllocation: int,
        size: int,
        src: DXGK_TRANSFER_LOCATION,
        dst: DXGK_TRANSFER_LOCATION,
        flags: DXGK_TRANSFERFLAGS,
        *,
        special: bool = False,
    ) -> None:
        """TRANSFER (or SPECIAL_LOCK_TRANSFER) of ``size`` bytes, split into sub-transfers if configured."""
        t = _Transfer(hAllocation, size, src, dst, flags, special)
        expected = self._read_location(src, 0, size) if self.k.config.verify_paging else b""
        runs = self._sub_transfers(t)
        if not self.k.config.verify_paging:
            return
        rule = "PGB-SPECIALLOCK" if special else "PGB-TRANSFER"
        self._exactly_once(runs, self._location_ranges(dst, size), rule, "transfer destination")
        self._judge_transfer_content(t, expected, rule)

    def _sub_transfers(self, t: _Transfer) -> list[PagingRun]:
        """One paging operation per sub-transfer of ``subtransfer_size`` bytes (one if unset),
        TransferStart on the first and TransferEnd on the last."""
        size, src, dst, special = t.size, t.src, t.dst, t.special
        step = self.k.config.subtransfer_size or size or 1
        operation = (
            OP.DXGK_OPERATION_SPECIAL_LOCK_TRANSFER if special else OP.DXGK_OPERATION_TRANSFER
        )
        runs: list[PagingRun] = []
        offset = 0
        while offset < size or (size == 0 and not runs):
            n = min(step, size - offset)
            bits = int(t.flags)
            if offset == 0:
                bits |= _TRANSFER_START
            if offset + n >= size:
                bits |= _TRANSFER_END
            sub_flags = _transfer_flags(bits)

            def configure(
                args: DXGKARG_BUILDPAGINGBUFFER,
                off: int = offset,
                n: int = n,
                f: DXGK_TRANSFERFLAGS = sub_flags,
            ) -> None:
                member = args.SpecialLockTransfer if special else args.Transfer
                member.hAllocation = t.hAllocation
                member.TransferOffset = off
                member.TransferSize = n
                member.Source = DXGK_TRANSFER_LOCATION(src.SegmentId, src.SegmentAddress, src.pMdl)
                member.Destination = DXGK_TRANSFER_LOCATION(
                    dst.SegmentId, dst.SegmentAddress, dst.pMdl
                )
                member.Flags = f
                member.MdlOffset = off // PAGE_SIZE

            def idle(args: DXGKARG_BUILDPAGINGBUFFER) -> None:
                member = args.SpecialLockTransfer if special else args.Transfer
                member.Flags |= DXGK_TRANSFERFLAGS.AllocationIsIdle

            runs.append(self.run(operation, configure, idle_flag=idle))
            offset += n
            if size == 0:
                break
        return runs

    def _by_handle(self, t: _Transfer) -> Allocation:
        for a in self.k.allocations.values():
            if a.hAllocation == t.hAllocation and a.state != State.DESTROYED:
                return a
        raise HarnessError(f"a transfer of hAllocation 0x{t.hAllocation:X}, which is not live")

    def _judge_transfer_content(self, t: _Transfer, expected: bytes, rule: str) -> None:
        """The destination holds the source's bytes ``expected``, (un)swizzled as the flags
        ask; a transfer of no allocation (hAllocation 0) is never swizzled (PGB-NOSWIZZLE)."""
        got = self._read_location(t.dst, 0, t.size)
        if t.hAllocation == 0:
            want, rule = expected, "PGB-NOSWIZZLE"
        elif int(t.flags) & _UNSWIZZLE:
            want, rule = self.k.tiling.unswizzle(self._by_handle(t), expected), "PGB-UNSWIZZLE"
        elif int(t.flags) & _SWIZZLE:
            want = self.k.tiling.swizzle(self._by_handle(t), expected)
        else:
            want = expected
        if got != want:
            raise DriverViolation(
                rule,
                DDI,
                f"transfer of {t.size} bytes ({_describe(t.src)} -> {_describe(t.dst)}, "
                f"flags {t.flags!r}) left wrong content {describe_difference(got, want)}",
            )

    def fill(
        self, hAllocation: int, segment_id: int, address: int, size: int, pattern: int
    ) -> None:
        """FILL ``size`` bytes at ``address`` of a memory segment with ``pattern``."""
        if self.segment(segment_id).is_aperture:
            raise HarnessError("the memory manager never fills an aperture segment (PGB-FILL)")

        def configure(args: DXGKARG_BUILDPAGINGBUFFER) -> None:
            args.Fill.hAllocation = hAllocation
            args.Fill.FillSize = size
            args.Fill.FillPattern = pattern
            args.Fill.Destination = DXGK_FILL_DESTINATION(segment_id, address)

        run = self.run(OP.DXGK_OPERATION_FILL, configure)
        if not self.k.config.verify_paging:
            return
        self._exactly_once([run], [(address, size)], "PGB-FILL", "fill destination")
        if self.k.gpu.read(address, size) != fill_bytes(size, pattern):
            raise DriverViolation(
                "PGB-FILL",
                DDI,
                f"fill of {size} bytes at 0x{address:X} with 0x{pattern:08X} left wrong content",
            )

    def physical(self, write: bool, segment_id: int, address: int, size: int) -> PagingRun:
        """READ_PHYSICAL or WRITE_PHYSICAL of 1-8 bytes at a physical address."""
        if not 1 <= size <= 8:
            raise HarnessError(f"physical access size {size} is not 1-8")
        operation = OP.DXGK_OPERATION_WRITE_PHYSICAL if write else OP.DXGK_OPERATION_READ_PHYSICAL

        def configure(args: DXGKARG_BUILDPAGINGBUFFER) -> None:
            member = args.WritePhysical if write else args.ReadPhysical
            member.SegmentId, member.PhysicalAddress, member.Size = segment_id, address, size

        run = self.run(operation, configure)
        accesses = run.writes if write else run.reads
        expected: list[Range] = []
        pos = address
        while pos < address + size:  # page by page: an aperture range may reach scattered frames
            step = min(address + size - pos, PAGE_SIZE - pos % PAGE_SIZE)
            target = self.k.gpu.translate(pos)
            if target is not None:
                expected.append((target, step))
            pos += step
        if self.k.config.verify_paging and coverage(accesses)[0] != coverage(expected)[0]:
            raise DriverViolation(
                "PGB-PHYS",
                DDI,
                f"{operation.name} of {size} byte(s) at 0x{address:X} did not "
                f"{'write' if write else 'read'} exactly there (GPU accesses: {accesses[:4]})",
            )
        return run

    def map_aperture(
        self, a: Allocation | None, segment_id: int, first_page: int, mdl: MDL, mdl_offset: int = 0
    ) -> None:
        """MAP_APERTURE_SEGMENT: map the MDL's pages at ``first_page`` of an aperture segment."""
        pages = len(mdl.pfns) - mdl_offset
        desc = self.segment(segment_id)
        # Only cacheable memory in a cache-coherent segment is mapped CacheCoherent (seed 004).
        cached = a is not None and bool(a.info.Flags & DXGK_ALLOCATIONINFOFLAGS.Cached)
        coherent = cached and bool(desc.Flags & desc.Flags.CacheCoherent)

        def configure(args: DXGKARG_BUILDPAGINGBUFFER) -> None:
            m = args.MapApertureSegment
            m.hDevice = self._live_device(a)
            m.hAllocation = a.hAllocation if a is not None else 0
            m.SegmentId, m.OffsetInPages, m.NumberOfPages = segment_id, first_page, pages
            m.pMdl, m.MdlOffset = mdl, mdl_offset
            m.Flags = DXGK_MAPAPERTUREFLAGS.CacheCoherent if coherent else DXGK_MAPAPERTUREFLAGS(0)

        run = self.run(OP.DXGK_OPERATION_MAP_APERTURE_SEGMENT, configure)
        for i in range(pages):
            self.k.dummy_mapped.discard(desc.BaseAddress + (first_page + i) * PAGE_SIZE)
        if not self.k.config.verify_paging:
            return
        self._no_writes(run, "PGB-MAP", "map")
        for i in range(pages):
            at = desc.BaseAddress + (first_page + i) * PAGE_SIZE
            want = mdl.pfns[mdl_offset + i] * PAGE_SIZE
            got = self.k.gpu.translate(at)
            if got != want:
                raise DriverViolation(
                    "PGB-MAP",
                    DDI,
                    f"after mapping {pages} page(s) at aperture page {first_page}, page "
                    f"{first_page + i} reaches {_phys(got)} instead of the MDL page 0x{want:X}",
                )

    def unmap_aperture(
        self, a: Allocation | None, segment_id: int, first_page: int, pages: int
    ) -> None:
        """UNMAP_APERTURE_SEGMENT: point every page of the range at the dummy page."""
        desc = self.segment(segment_id)
        dummy = self.k.dummy_page_address

        def configure(args: DXGKARG_BUILDPAGINGBUFFER) -> None:
            m = args.UnmapApertureSegment
            m.hDevice = self._live_device(a)
            m.hAllocation = a.hAllocation if a is not None else 0
            m.SegmentId, m.OffsetInPages, m.NumberOfPages, m.DummyPage = (
                segment_id,
                first_page,
                pages,
                dummy,
            )

        run = self.run(OP.DXGK_OPERATION_UNMAP_APERTURE_SEGMENT, configure)
        for i in range(pages):
            self.k.dummy_mapped.add(desc.BaseAddress + (first_page + i) * PAGE_SIZE)
        if not self.k.config.verify_paging:
            return
        self._no_writes(run, "PGB-UNMAP", "unmap")
        for i in range(pages):
            at = desc.BaseAddress + (first_page + i) * PAGE_SIZE
            got = self.k.gpu.translate(at)
            if got != dummy:
                raise DriverViolation(
                    "PGB-UNMAP",
                    DDI,
                    f"after unmapping {pages} page(s) at aperture page {first_page}, page "
                    f"{first_page + i} reaches {_phys(got)} instead of the dummy page 0x{dummy:X}",
                )

    def _live_device(self, a: Allocation | None) -> int:
        """A device that still exists and has ``a`` open, for the hDevice of map/unmap; 0 if none."""
        if a is None:
            return 0
        for device in self.k.devices:
            if device.state != State.DESTROYED and id(device) in a.opened:
                return device.hDevice
        return 0

    # ------------------------------------------------------------------ the loop

    def run(
        self,
        operation: OP,
        configure: Callable[[DXGKARG_BUILDPAGINGBUFFER], None],
        idle_flag: Callable[[DXGKARG_BUILDPAGINGBUFFER], None] | None = None,
    ) -> PagingRun:
        """Drive one paging operation to completion through DxgkDdiBuildPagingBuffer."""
        k = self.k
        rule = OPERATION_RULE[operation]
        multipass = 0
        idle = False
        seen: set[tuple[int, bytes]] = set()
        executions: list[GpuExecution] = []
        calls = 0
        while True:
            calls += 1
            if calls > k.config.max_paging_passes:
                raise DriverViolation(
                    "PGB-MULTIPASS",
                    DDI,
                    f"{operation.name} still unfinished after {calls - 1} calls",
                )
            args, buffer, private = self._paging_args(operation, configure, multipass)
            if idle and idle_flag is not None:
                idle_flag(args)
            status = self._judge_paging_status(
                operation, k.caller.call("build_paging_buffer", args)
            )
            written = self._judge_paging_cursor(operation, args, buffer, private)
            if status == STATUS_GRAPHICS_ALLOCATION_BUSY:
                self._judge_busy(operation, idle_flag is not None, idle)
                idle = True
                multipass = args.MultipassOffset
                continue  # the GPU is synchronous here: it is idle once this call returns
            if status == STATUS_GRAPHICS_INSUFFICIENT_DMA_BUFFER:
                self._judge_progress(operation, args, buffer, written, calls, seen)
            if written:
                executions.append(
                    k.scheduler.submit_paging(buffer, written, private, rule, operation.name)
                )
            if status == STATUS_SUCCESS:
                return PagingRun(executions, calls)
            multipass = args.MultipassOffset

    def _paging_args(
        self,
        operation: OP,
        configure: Callable[[DXGKARG_BUILDPAGINGBUFFER], None],
        multipass: int,
    ) -> tuple[DXGKARG_BUILDPAGINGBUFFER, KernelBuffer, KernelBuffer]:
        """A fresh paging buffer and private data, and the arguments of one call on them."""
        size = self.k.config.paging_buffer_size
        buffer = KernelBuffer("paging buffer", size, fill=UNWRITTEN)
        private = KernelBuffer("paging buffer private data", self.k.caps.DmaBufferPrivateDataSize)
        args = DXGKARG_BUILDPAGINGBUFFER(
            pDmaBuffer=buffer.ptr(),
            DmaSize=size,
            pDmaBufferPrivateData=private.ptr(),
            DmaBufferPrivateDataSize=private.size,
            Operation=operation,
        )
        configure(args)
        args.MultipassOffset = multipass
        return args, buffer, private

    def _judge_paging_status(self, operation: OP, status: object) -> int:
        """PGB-STATUS: only SUCCESS, ALLOCATION_BUSY and INSUFFICIENT_DMA_BUFFER; else bug check 0x10E."""
        if (
            not isinstance(status, int)
            or isinstance(status, bool)
            or status not in BUILD_PAGING_BUFFER_STATUSES
        ):
            raw = status if isinstance(status, int) else 0
            raise BugCheck(
                VIDEO_MEMORY_MANAGEMENT_INTERNAL,
                (VIDMM_INVALID_BUILDPAGINGBUFFER_STATUS, raw & 0xFFFFFFFF, operation, 0),
                "PGB-STATUS",
                DDI,
                f"{operation.name} returned {status_name(status)}; only SUCCESS, ALLOCATION_BUSY and "
                f"INSUFFICIENT_DMA_BUFFER are allowed",
            )
        return status

    def _judge_paging_cursor(
        self,
        operation: OP,
        args: DXGKARG_BUILDPAGINGBUFFER,
        buffer: KernelBuffer,
        private: KernelBuffer,
    ) -> int:
        """PGB-CURSOR: pDmaBuffer stays in the paging buffer and nothing is written past it,
        nor outside either buffer. Returns the bytes written."""
        size = buffer.size
        cursor = args.pDmaBuffer
        if (
            not isinstance(cursor, Ptr)
            or cursor.region is not buffer
            or not 0 <= cursor.offset <= size
        ):
            raise DriverViolation(
                "PGB-CURSOR",
                DDI,
                f"{operation.name}: pDmaBuffer left at {cursor!r}, outside the {size}-byte paging buffer",
            )
        memory_violations(
            DDI, [(buffer, "PGB-CURSOR"), (private, "PGB-CURSOR")], f" during {operation.name}"
        )
        written = cursor.offset
        if not unwritten(buffer.data, written, size):
            raise DriverViolation(
                "PGB-CURSOR",
                DDI,
                f"{operation.name}: bytes written past pDmaBuffer (+{written})",
            )
        return written

    def _judge_busy(self, operation: OP, retryable: bool, idle: bool) -> None:
        """PGB-BUSY: ALLOCATION_BUSY only where AllocationIsIdle can be set, and not once it is."""
        if not retryable:
            raise DriverViolation(
                "PGB-BUSY",
                DDI,
                f"{operation.name} answered ALLOCATION_BUSY, which this operation has no AllocationIsIdle retry for",
            )
        if idle:
            raise DriverViolation(
                "PGB-BUSY",
                DDI,
                f"{operation.name} answered ALLOCATION_BUSY although AllocationIsIdle was set",
            )

    def _judge_progress(
        self,
        operation: OP,
        args: DXGKARG_BUILDPAGINGBUFFER,
        buffer: KernelBuffer,
        written: int,
        calls: int,
        seen: set[tuple[int, bytes]],
    ) -> None:
        """PGB-MULTIPASS: an INSUFFICIENT_DMA_BUFFER answer wrote something, and not the same
        partial buffer with the same MultipassOffset as an earlier call (adds it to ``seen``).

        Judged on the bytes BuildPagingBuffer wrote, before Patch: a Patch that stamps a new
        fence into every partial buffer must not hide the first repeat."""
        if written == 0:
            raise DriverViolation(
                "PGB-MULTIPASS",
                DDI,
                f"{operation.name} returned INSUFFICIENT_DMA_BUFFER on an empty {buffer.size}-byte paging buffer "
                f"without writing anything (MultipassOffset {args.MultipassOffset}): no progress",
            )
        state = (args.MultipassOffset, bytes(buffer.data[:written]))
        if state in seen:
            raise DriverViolation(
                "PGB-MULTIPASS",
                DDI,
                f"{operation.name} livelocks: call {calls} built the same partial buffer with the same "
                f"MultipassOffset ({args.MultipassOffset}) as an earlier call, so it never finishes",
            )
        seen.add(state)

    # ------------------------------------------------------------------ verification helpers

    def _location_ranges(self, loc: DXGK_TRANSFER_LOCATION, size: int) -> list[Range]:
        if loc.SegmentId == 0:
            if loc.pMdl is None:
                raise HarnessError("transfer location without segment or MDL")
            return mdl_ranges(loc.pMdl, 0, size)
        desc = self.segment(loc.SegmentId)
        if desc.is_aperture:
            out: list[Range] = []
            for start, n in [(loc.SegmentAddress, size)]:
                pos = start
                while pos < start + n:
                    step = min(start + n - pos, PAGE_SIZE - (pos - desc.BaseAddress) % PAGE_SIZE)
                    target = self.k.gpu.translate(pos)
                    if target is not None:
                        out.append((target, step))
                    pos += step
            return out
        return [(loc.SegmentAddress, size)]

    def _read_location(self, loc: DXGK_TRANSFER_LOCATION, offset: int, size: int) -> bytes:
        if loc.SegmentId == 0:
            if loc.pMdl is None:
                raise HarnessError("transfer location without segment or MDL")
            return self.k.sysmem.read_mdl(loc.pMdl, offset, size)
        return self.k.gpu.read(loc.SegmentAddress + offset, size)

    def _exactly_once(
        self, runs: list[PagingRun], expected: list[Range], rule: str, what: str
    ) -> None:
        writes = [w for run in runs for w in run.writes]
        merged, overlap = coverage(writes)
        want, _ = coverage(expected)
        if overlap:
            # Overlap inside one operation's partial buffers is a multipass fault; across the
            # sub-transfers of one transfer it is the sub-range (TransferOffset) that is wrong.
            within = any(run.calls > 1 and coverage(run.writes)[1] for run in runs)
            raise DriverViolation(
                "PGB-MULTIPASS" if within else rule,
                DDI,
                f"the partial paging buffers wrote some bytes of the {what} more than once "
                f"({sum(n for _, n in writes)} bytes written for {sum(n for _, n in want)})",
            )
        if merged != want:
            missing = sum(n for _, n in want) - sum(n for _, n in merged)
            # A hole one partial buffer stops before and a later one resumes after is a
            # resume in the wrong place; a hole at the end is the operation's own fault.
            skipped = any(_skipped_between_calls(r, want) for r in runs if r.calls > 1)
            raise DriverViolation(
                "PGB-MULTIPASS" if skipped else rule,
                DDI,
                f"the paging buffers did not write exactly the {what}: wrote {merged[:4]}, expected {want[:4]}"
                + (f" ({missing} bytes short)" if missing > 0 else ""),
            )

    def _no_writes(self, run: PagingRun, rule: str, what: str) -> None:
        if run.writes:
            raise DriverViolation(
                rule,
                DDI,
                f"{what} wrote memory at {run.writes[:4]}; it should only program the page table",
            )


def _set_discard(args: DXGKARG_BUILDPAGINGBUFFER, a: Allocation) -> None:
    d = args.DiscardContent
    d.hAllocation, d.SegmentId, d.SegmentAddress = a.hAllocation, a.segment_id, a.address


def _set_flag(member: object, flag: int) -> None:
    member.Flags = member.Flags | flag  # type: ignore[attr-defined]


def _describe(loc: DXGK_TRANSFER_LOCATION) -> str:
    if loc.SegmentId == 0:
        return f"MDL({len(loc.pMdl.pfns) if loc.pMdl else 0} pages)"
    return f"segment {loc.SegmentId} @0x{loc.SegmentAddress:X}"


def _phys(address: int | None) -> str:
    return "nothing (unmapped)" if address is None else f"0x{address:X}"
