"""Deliberately broken drivers: each breaks exactly one rule of REQUIREMENTS.md.

Every mutant is the reference miniport with one behaviour changed, so a check that
catches it is known to catch that rule and nothing else. ``BREAKS`` names the
requirement each one breaks.
"""

from __future__ import annotations

import contextlib
import dataclasses
import struct
from pathlib import Path
from typing import ClassVar

from wddm_conformance.ddi import (
    D3DDDI_PATCHLOCATIONLIST,
    DXGK_ALLOCATIONINFOFLAGS,
    DXGK_ALLOCATIONLIST,
    DXGK_BUILDPAGINGBUFFER_OPERATION,
    DXGK_BUILDPAGINGBUFFER_TRANSFER,
    DXGK_CREATEALLOCATIONFLAGS,
    DXGK_OPENALLOCATIONINFO,
    DXGK_PATCHFLAGS,
    DXGK_TRANSFERFLAGS,
    DXGKARG_BUILDPAGINGBUFFER,
    DXGKARG_CLOSEALLOCATION,
    DXGKARG_CREATEALLOCATION,
    DXGKARG_DESTROYALLOCATION,
    DXGKARG_OPENALLOCATION,
    DXGKARG_PATCH,
    DXGKARG_RENDER,
    DXGKARG_SUBMITCOMMAND,
)
from wddm_conformance.memory import UNWRITTEN, KernelBuffer, Ptr, UserAccessFault
from wddm_conformance.native.abi import open_library
from wddm_conformance.native.adapter import NativeMiniport
from wddm_conformance.native.build import build
from wddm_conformance.reference import formats as fmt
from wddm_conformance.reference import isa
from wddm_conformance.reference import miniport as ref
from wddm_conformance.reference.miniport import ContractReferenceMiniport, ReferenceMiniport
from wddm_conformance.status import (
    STATUS_GRAPHICS_ALLOCATION_BUSY,
    STATUS_GRAPHICS_GPU_EXCEPTION_ON_DEVICE,
    STATUS_GRAPHICS_INSUFFICIENT_DMA_BUFFER,
    STATUS_INVALID_PARAMETER,
    STATUS_NOT_SUPPORTED,
    STATUS_SUCCESS,
)

OP = DXGK_BUILDPAGINGBUFFER_OPERATION
#: The WDK-style C sample driver and its broken variants (WdkSample below).
WDK_SAMPLE = Path(__file__).resolve().parent / "wdk_driver" / "wdkdisp.c"
#: The WDK-style C++ sample driver and its broken variants (WdkCppSample below).
WDK_CPP_SAMPLE = Path(__file__).resolve().parent / "wdk_driver" / "wdkdisp_cpp.cpp"


class NoPrePatch(ReferenceMiniport):
    """Ignores SegmentId: never pre-patches, so a skipped Patch leaves NULL addresses."""

    @staticmethod
    def _prepatch(entry: DXGK_ALLOCATIONLIST, offset: int) -> int:
        return 0


class TrustsPagedOut(ReferenceMiniport):
    """Trusts PhysicalAddress when SegmentId is 0 and leaves such references out of the patch list."""

    def render(self, hContext: int, args: DXGKARG_RENDER) -> int:
        paged_out = {
            i
            for i in range(args.AllocationListSize)
            if DXGK_ALLOCATIONLIST.read(args.pAllocationList, i).SegmentId == 0
        }
        start = args.pPatchLocationListOut
        status = super().render(hContext, args)
        count = args.pPatchLocationListOut - start
        kept = [
            e
            for e in (D3DDDI_PATCHLOCATIONLIST.read(start, i) for i in range(count))
            if e.AllocationIndex not in paged_out
        ]
        size = count * D3DDDI_PATCHLOCATIONLIST.SIZE
        start.region.data[start.offset : start.offset + size] = bytes([UNWRITTEN]) * size
        for i, e in enumerate(kept):
            e.write(start, i)
        args.pPatchLocationListOut = start + len(kept)
        return status

    @staticmethod
    def _prepatch(entry: DXGK_ALLOCATIONLIST, offset: int) -> int:
        return entry.PhysicalAddress + offset


class DropsPatchEntry(ReferenceMiniport):
    """Pre-patches correctly but leaves the source of every COPY out of the patch list."""

    @staticmethod
    def _translate(opcode, fields, reference, entries):  # type: ignore[no-untyped-def]
        emitted, refs = ReferenceMiniport._translate(opcode, fields, reference, entries)
        if opcode == 0x01:
            refs = refs[:1]
        return emitted, refs


class OverflowsDmaBuffer(ReferenceMiniport):
    """Forgets to reserve room for its trailing fence: writes past DmaSize when the buffer fills."""

    def render(self, hContext: int, args: DXGKARG_RENDER) -> int:
        args.DmaSize += ref._FENCE.size
        try:
            return super().render(hContext, args)
        finally:
            args.DmaSize -= ref._FENCE.size


class LetsUserFaultEscape(ReferenceMiniport):
    """Copies the command buffer first, but with no __try/__except around the copy."""

    def render(self, hContext: int, args: DXGKARG_RENDER) -> int:
        data = args.pCommand.read(args.CommandLength)  # a fault escapes from here
        copy = KernelBuffer("command copy", len(data), writable=False, initial=data)
        user = args.pCommand
        args.pCommand = copy.ptr()
        try:
            return super().render(hContext, args)
        finally:
            args.pCommand = user + args.pCommand.offset


class DoubleFetch(ReferenceMiniport):
    """Validates the command buffer, then translates a second read of it (TOCTOU window)."""

    def render(self, hContext: int, args: DXGKARG_RENDER) -> int:
        try:
            first = args.pCommand.read(args.CommandLength)
        except UserAccessFault:
            return STATUS_INVALID_PARAMETER
        del first  # "validated"
        return super().render(hContext, args)


class WritesAllocationList(ReferenceMiniport):
    """Scribbles on the kernel-owned allocation list."""

    def render(self, hContext: int, args: DXGKARG_RENDER) -> int:
        if args.AllocationListSize:
            args.pAllocationList.write(b"\0" * 8)
        return super().render(hContext, args)


class BadRenderStatus(ReferenceMiniport):
    """Returns a status Render may not return."""

    def render(self, hContext: int, args: DXGKARG_RENDER) -> int:
        super().render(hContext, args)
        return STATUS_NOT_SUPPORTED


class RaisesInRender(ReferenceMiniport):
    """Lets a Python exception escape the DDI."""

    def render(self, hContext: int, args: DXGKARG_RENDER) -> int:
        raise ZeroDivisionError("oops")


class HangsInRender(ReferenceMiniport):
    """Never returns from Render."""

    def render(self, hContext: int, args: DXGKARG_RENDER) -> int:
        while True:
            pass


class SplitLivelock(ReferenceMiniport):
    """Answers INSUFFICIENT_DMA_BUFFER without doing anything."""

    def render(self, hContext: int, args: DXGKARG_RENDER) -> int:
        return STATUS_GRAPHICS_INSUFFICIENT_DMA_BUFFER


class BadPatchIndex(ReferenceMiniport):
    """Emits a patch location whose AllocationIndex is past AllocationListSize."""

    def render(self, hContext: int, args: DXGKARG_RENDER) -> int:
        start = args.pPatchLocationListOut
        status = super().render(hContext, args)
        if args.pPatchLocationListOut - start > 0:
            start.write(struct.pack("<I", args.AllocationListSize + 7))
        return status


class IgnoresWriteOperation(ReferenceMiniport):
    """Lets commands write allocations that are not marked WriteOperation."""

    @staticmethod
    def _may_write(entry: DXGK_ALLOCATIONLIST) -> bool:
        return True


class PatchFails(ReferenceMiniport):
    """DxgkDdiPatch returns an error for render DMA buffers: bug check 0x119 with parameter 1 = 3."""

    def patch(self, args: DXGKARG_PATCH) -> int:
        if args.Flags & DXGK_PATCHFLAGS.Paging:
            return super().patch(args)
        return STATUS_INVALID_PARAMETER


class PatchIgnoresSubmissionStart(ReferenceMiniport):
    """Walks the patch list from entry 0 instead of PatchLocationListSubmissionStart."""

    def patch(self, args: DXGKARG_PATCH) -> int:
        args.PatchLocationListSubmissionLength += args.PatchLocationListSubmissionStart
        args.PatchLocationListSubmissionStart = 0
        return super().patch(args)


class PatchWritesOutsideRange(ReferenceMiniport):
    """Patches every entry, also those outside the submission range."""

    def patch(self, args: DXGKARG_PATCH) -> int:
        start, end = args.DmaBufferSubmissionStartOffset, args.DmaBufferSubmissionEndOffset
        args.DmaBufferSubmissionStartOffset, args.DmaBufferSubmissionEndOffset = (
            0,
            args.DmaBufferSize,
        )
        try:
            return super().patch(args)
        finally:
            args.DmaBufferSubmissionStartOffset, args.DmaBufferSubmissionEndOffset = start, end


class WrongFence(ReferenceMiniport):
    """Writes a fence ID that was never submitted."""

    def patch(self, args: DXGKARG_PATCH) -> int:
        args.SubmissionFenceId += 1000
        try:
            return super().patch(args)
        finally:
            args.SubmissionFenceId -= 1000


class StaleFence(ReferenceMiniport):
    """Writes the previous fence ID into the trailing fence."""

    def patch(self, args: DXGKARG_PATCH) -> int:
        args.SubmissionFenceId -= 1
        try:
            return super().patch(args)
        finally:
            args.SubmissionFenceId += 1


class GrowsPagingBuffer(ReferenceMiniport):
    """Appends a NOP to paging buffers in Patch (changes their size)."""

    def patch(self, args: DXGKARG_PATCH) -> int:
        if args.pPatchLocationList is None:
            args.pDmaBuffer.write(isa.encode("NOP"), args.DmaBufferSubmissionEndOffset)
        return super().patch(args)


class SubmitFails(ReferenceMiniport):
    """DxgkDdiSubmitCommand fails."""

    def submit_command(self, args: DXGKARG_SUBMITCOMMAND) -> int:
        return STATUS_INVALID_PARAMETER


class BadPagingStatus(ReferenceMiniport):
    """BuildPagingBuffer returns a status it may not return."""

    def build_paging_buffer(self, args: DXGKARG_BUILDPAGINGBUFFER) -> int:
        return STATUS_INVALID_PARAMETER


class PagingOverflow(ReferenceMiniport):
    """Writes past DmaSize in its paging buffers."""

    def build_paging_buffer(self, args: DXGKARG_BUILDPAGINGBUFFER) -> int:
        args.DmaSize += 64
        try:
            return super().build_paging_buffer(args)
        finally:
            args.DmaSize -= 64


class PagingFaults(ReferenceMiniport):
    """Fills at GPU address 0 instead of the destination: the paging buffer faults on the GPU."""

    def build_paging_buffer(self, args: DXGKARG_BUILDPAGINGBUFFER) -> int:
        if args.Operation == OP.DXGK_OPERATION_FILL:
            args.Fill.Destination.SegmentAddress = 0
        return super().build_paging_buffer(args)


class MultipassRestarts(ReferenceMiniport):
    """Ignores MultipassOffset: every call restarts the transfer from the beginning."""

    def build_paging_buffer(self, args: DXGKARG_BUILDPAGINGBUFFER) -> int:
        args.MultipassOffset = 0
        return super().build_paging_buffer(args)


class MultipassNoProgress(ReferenceMiniport):
    """Answers INSUFFICIENT_DMA_BUFFER on an empty paging buffer without writing anything."""

    def build_paging_buffer(self, args: DXGKARG_BUILDPAGINGBUFFER) -> int:
        if args.Operation == OP.DXGK_OPERATION_TRANSFER:
            return STATUS_GRAPHICS_INSUFFICIENT_DMA_BUFFER
        return super().build_paging_buffer(args)


class MultipassRepeats(ReferenceMiniport):
    """Resumes one chunk too early: the partial buffers copy a chunk twice."""

    def _build_transfer(
        self, args: DXGKARG_BUILDPAGINGBUFFER, t: DXGK_BUILDPAGINGBUFFER_TRANSFER
    ) -> int:
        if args.MultipassOffset:
            args.MultipassOffset = max(0, args.MultipassOffset - 4096)
            t.Flags &= ~DXGK_TRANSFERFLAGS.TransferStart
        return super()._build_transfer(args, t)


class LivelocksBehindFence(ReferenceMiniport):
    """Never resumes a transfer: every later call emits only a fence that Patch stamps with a
    new SubmissionFenceId, and asks to be called again with the same MultipassOffset."""

    def build_paging_buffer(self, args: DXGKARG_BUILDPAGINGBUFFER) -> int:
        if args.Operation == OP.DXGK_OPERATION_TRANSFER and args.MultipassOffset:
            fence = ref._FENCE.struct.pack(ref._FENCE.opcode, 0)
            args.pDmaBuffer.write(fence)
            args.pDmaBuffer += len(fence)
            assert args.pDmaBufferPrivateData is not None
            args.pDmaBufferPrivateData.write(fmt.DMA_PRIVATE_DATA.pack(fmt.DMA_PRIVATE_MAGIC, 0))
            return STATUS_GRAPHICS_INSUFFICIENT_DMA_BUFFER
        return super().build_paging_buffer(args)


class FillsTooLittle(ReferenceMiniport):
    """Fills one byte short."""

    def build_paging_buffer(self, args: DXGKARG_BUILDPAGINGBUFFER) -> int:
        if args.Operation == OP.DXGK_OPERATION_FILL and args.MultipassOffset == 0:
            args.Fill.FillSize -= 1
        return super().build_paging_buffer(args)


class BusyWhenIdle(ReferenceMiniport):
    """Answers ALLOCATION_BUSY even when AllocationIsIdle is set."""

    def build_paging_buffer(self, args: DXGKARG_BUILDPAGINGBUFFER) -> int:
        if args.Operation == OP.DXGK_OPERATION_TRANSFER and args.Transfer.hAllocation:
            return STATUS_GRAPHICS_ALLOCATION_BUSY
        return super().build_paging_buffer(args)


class BusyOnFill(ReferenceMiniport):
    """Answers ALLOCATION_BUSY for a fill, which has no idle retry."""

    def build_paging_buffer(self, args: DXGKARG_BUILDPAGINGBUFFER) -> int:
        if args.Operation == OP.DXGK_OPERATION_FILL:
            return STATUS_GRAPHICS_ALLOCATION_BUSY
        return super().build_paging_buffer(args)


class UnmapToNothing(ReferenceMiniport):
    """Unmaps aperture pages by clearing them instead of pointing them at the dummy page."""

    def build_paging_buffer(self, args: DXGKARG_BUILDPAGINGBUFFER) -> int:
        if args.Operation == OP.DXGK_OPERATION_UNMAP_APERTURE_SEGMENT:
            u = args.UnmapApertureSegment
            out = b"".join(
                isa.encode("PTE", u.OffsetInPages + i, 0, 0) for i in range(u.NumberOfPages)
            )
            args.pDmaBuffer.write(out)
            args.pDmaBuffer += len(out)
            return STATUS_SUCCESS
        return super().build_paging_buffer(args)


class UnmapLeavesOldPage(ReferenceMiniport):
    """Treats unmap as a no-op: the aperture keeps reaching the old system pages."""

    def build_paging_buffer(self, args: DXGKARG_BUILDPAGINGBUFFER) -> int:
        if args.Operation == OP.DXGK_OPERATION_UNMAP_APERTURE_SEGMENT:
            return STATUS_SUCCESS
        return super().build_paging_buffer(args)


class MapsWrongPage(ReferenceMiniport):
    """Maps every aperture page to the MDL's first page."""

    def build_paging_buffer(self, args: DXGKARG_BUILDPAGINGBUFFER) -> int:
        if (
            args.Operation == OP.DXGK_OPERATION_MAP_APERTURE_SEGMENT
            and args.MapApertureSegment.pMdl
        ):
            m = args.MapApertureSegment
            m.pMdl = type(m.pMdl)((m.pMdl.pfns[0],) * len(m.pMdl.pfns), m.pMdl.ByteCount)
        return super().build_paging_buffer(args)


class NeverUnswizzles(ReferenceMiniport):
    """Copies swizzled allocations to system memory as they are (ignores Unswizzle)."""

    def build_paging_buffer(self, args: DXGKARG_BUILDPAGINGBUFFER) -> int:
        if args.Operation == OP.DXGK_OPERATION_TRANSFER:
            args.Transfer.Flags &= ~DXGK_TRANSFERFLAGS.Unswizzle
        return super().build_paging_buffer(args)


class SwizzlesWithoutHandle(ReferenceMiniport):
    """Swizzles even when hAllocation is NULL."""

    def build_paging_buffer(self, args: DXGKARG_BUILDPAGINGBUFFER) -> int:
        if args.Operation == OP.DXGK_OPERATION_TRANSFER and not args.Transfer.hAllocation:
            args.Transfer.hAllocation = 1
        return super().build_paging_buffer(args)


class ReadsWrongPhysical(ReferenceMiniport):
    """Read-physical reads 8 bytes further than asked."""

    def build_paging_buffer(self, args: DXGKARG_BUILDPAGINGBUFFER) -> int:
        if args.Operation == OP.DXGK_OPERATION_READ_PHYSICAL:
            args.ReadPhysical.PhysicalAddress += 8
        return super().build_paging_buffer(args)


class DuplicateHandles(ReferenceMiniport):
    """Returns the same hAllocation for every allocation of a batch."""

    def create_allocation(self, args: DXGKARG_CREATEALLOCATION) -> int:
        status = super().create_allocation(args)
        for info in args.pAllocationInfo:
            info.hAllocation = args.pAllocationInfo[0].hAllocation
        return status


class OddAlignment(ReferenceMiniport):
    """Reports an Alignment that is not a power of two."""

    def create_allocation(self, args: DXGKARG_CREATEALLOCATION) -> int:
        status = super().create_allocation(args)
        for info in args.pAllocationInfo:
            info.Alignment = 3000
        return status


class CreateAllocationBadStatus(ReferenceMiniport):
    """Returns a status CreateAllocation may not return."""

    def create_allocation(self, args: DXGKARG_CREATEALLOCATION) -> int:
        return STATUS_NOT_SUPPORTED


class RejectsValidPrivateData(ReferenceMiniport):
    """Rejects well-formed private data."""

    def create_allocation(self, args: DXGKARG_CREATEALLOCATION) -> int:
        return STATUS_INVALID_PARAMETER


BREAKS: dict[type[ReferenceMiniport], str] = {
    NoPrePatch: "REN-PREPATCH",
    TrustsPagedOut: "REN-PAGEDOUT",
    DropsPatchEntry: "REN-FULLPATCH",
    OverflowsDmaBuffer: "REN-CURSORS",
    LetsUserFaultEscape: "REN-USERFAULT",
    DoubleFetch: "REN-COPYFIRST",
    WritesAllocationList: "ALL-READONLY",
    BadRenderStatus: "REN-STATUS",
    RaisesInRender: "ALL-NORAISE",
    HangsInRender: "ALL-BOUNDED",
    SplitLivelock: "REN-SPLIT",
    BadPatchIndex: "REN-PATCHOUT",
    IgnoresWriteOperation: "REN-ALLOCINDEX",
    PatchFails: "PAT-BUGCHECK",
    PatchIgnoresSubmissionStart: "PAT-RANGE",
    PatchWritesOutsideRange: "PAT-RANGE",
    WrongFence: "PAT-FENCE",
    StaleFence: "PAT-FENCE",
    GrowsPagingBuffer: "PGB-PATCHED",
    BadPagingStatus: "PGB-STATUS",
    PagingOverflow: "PGB-CURSOR",
    PagingFaults: "PGB-FILL",
    MultipassRestarts: "PGB-MULTIPASS",
    MultipassNoProgress: "PGB-MULTIPASS",
    MultipassRepeats: "PGB-MULTIPASS",
    LivelocksBehindFence: "PGB-MULTIPASS",
    FillsTooLittle: "PGB-FILL",
    BusyWhenIdle: "PGB-BUSY",
    BusyOnFill: "PGB-BUSY",
    UnmapToNothing: "PGB-UNMAP",
    UnmapLeavesOldPage: "PGB-UNMAP",
    MapsWrongPage: "PGB-MAP",
    NeverUnswizzles: "PGB-UNSWIZZLE",
    SwizzlesWithoutHandle: "PGB-NOSWIZZLE",
    ReadsWrongPhysical: "PGB-PHYS",
    DuplicateHandles: "ALC-HANDLE",
    OddAlignment: "ALC-INFO",
    CreateAllocationBadStatus: "ALC-STATUS",
    RejectsValidPrivateData: "ALC-PRIVDATA",
}


class PatchNotIdempotent(ReferenceMiniport):
    """Adds to the addresses already in the buffer instead of overwriting them (breaks on a second Patch)."""

    def patch(self, args: DXGKARG_PATCH) -> int:
        seen = self.__dict__.setdefault("patched", [])
        key = (args.pDmaBuffer.region, args.DmaBufferSubmissionStartOffset)
        if any(r is key[0] and s == key[1] for r, s in seen) and args.pPatchLocationList:
            args.pDmaBuffer.write(b"\x01", args.DmaBufferSubmissionStartOffset + 4)  # range again
            return STATUS_SUCCESS
        seen.append(key)  # keeps the buffer alive, so its identity is never reused
        return super().patch(args)


class NullAllocationToGarbage(ReferenceMiniport):
    """Patches the NULL allocation to a non-zero address instead of a harmless one."""

    def patch(self, args: DXGKARG_PATCH) -> int:
        status = super().patch(args)
        if args.pPatchLocationList is not None and args.pAllocationList is not None:
            for i in range(args.PatchLocationListSubmissionLength):
                entry = D3DDDI_PATCHLOCATIONLIST.read(
                    args.pPatchLocationList, args.PatchLocationListSubmissionStart + i
                )
                handle = DXGK_ALLOCATIONLIST.read(args.pAllocationList, entry.AllocationIndex)
                if handle.hDeviceSpecificAllocation == 0:
                    args.pDmaBuffer.write(struct.pack("<Q", 0xDEAD0000), entry.PatchOffset)
        return status


BREAKS[PatchNotIdempotent] = "PAT-REPATCH"
BREAKS[NullAllocationToGarbage] = "REN-NULLALLOC"


class WritesFarPastDmaBuffer(ReferenceMiniport):
    """Writes a kilobyte past the end of its DMA buffer: memory corruption beyond the guard zone."""

    def render(self, hContext: int, args: DXGKARG_RENDER) -> int:
        args.pDmaBuffer.write(b"\xff" * 8, args.DmaSize + 1024)
        return super().render(hContext, args)


BREAKS[WritesFarPastDmaBuffer] = "REN-CURSORS"


class ExitsInRender(ReferenceMiniport):
    """Calls sys.exit() inside a DDI."""

    def render(self, hContext: int, args: DXGKARG_RENDER) -> int:
        raise SystemExit(0)


class RenderNopLivelock(ReferenceMiniport):
    """Writes a NOP and asks for more room forever, never consuming the command buffer."""

    def render(self, hContext: int, args: DXGKARG_RENDER) -> int:
        args.pDmaBuffer.write(isa.encode("NOP"))
        args.pDmaBuffer += 4
        return STATUS_GRAPHICS_INSUFFICIENT_DMA_BUFFER


class SwallowsTimeout(ReferenceMiniport):
    """Catches everything, including the watchdog's timeout, and returns late."""

    def render(self, hContext: int, args: DXGKARG_RENDER) -> int:
        import contextlib
        import time

        deadline = time.monotonic() + 0.4
        while time.monotonic() < deadline:
            with contextlib.suppress(BaseException):  # swallows the watchdog's DdiTimeout too
                time.sleep(0.01)
        return super().render(hContext, args)


class PagingPrivateOverflow(ReferenceMiniport):
    """Writes past the paging buffer's private data."""

    def build_paging_buffer(self, args: DXGKARG_BUILDPAGINGBUFFER) -> int:
        if args.pDmaBufferPrivateData is not None:
            args.pDmaBufferPrivateData.write(b"\x01" * 8, args.DmaBufferPrivateDataSize)
        return super().build_paging_buffer(args)


class NoAlternateVA(ReferenceMiniport):
    """A conforming driver that does not support UseAlternateVA (it is never asked for special lock)."""

    def query_driver_caps(self):  # type: ignore[no-untyped-def]
        import dataclasses

        return dataclasses.replace(super().query_driver_caps(), SupportsAlternateVA=False)


BREAKS[ExitsInRender] = "ALL-NORAISE"
BREAKS[RenderNopLivelock] = "REN-SPLIT"
BREAKS[SwallowsTimeout] = "ALL-BOUNDED"
BREAKS[PagingPrivateOverflow] = "PGB-CURSOR"


# ---------------------------------------------------------------------------------------------
# One mutant for every remaining testable requirement (the suite's kill matrix needs them all).


class FillsWrongPattern(ReferenceMiniport):
    """Translates FILL with the pattern's lowest bit flipped: the DMA buffer means something else."""

    @staticmethod
    def _translate(opcode, fields, reference, entries):  # type: ignore[no-untyped-def]
        if opcode == fmt.U_FILL:
            fields = (*fields[:3], fields[3] ^ 1)
        return ReferenceMiniport._translate(opcode, fields, reference, entries)


class PassesPrivilegedCommands(ReferenceMiniport):
    """Forwards privileged user commands (SETPTE, SETREG) to the GPU instead of rejecting them."""

    @staticmethod
    def _check_command(command: fmt.UserCommand, reserved: int) -> None:
        return None

    @staticmethod
    def _translate(opcode, fields, reference, entries):  # type: ignore[no-untyped-def]
        if opcode == fmt.U_SETPTE:
            return isa.encode("PTE", *fields), []
        if opcode == fmt.U_SETREG:
            return isa.encode("REG", *fields), []
        return ReferenceMiniport._translate(opcode, fields, reference, entries)


class PadsTruncatedCommand(ReferenceMiniport):
    """Pads a command cut short by CommandLength with zeros and translates it."""

    @staticmethod
    def _stage(args, consumed, staged, remaining, need=0):  # type: ignore[no-untyped-def]
        out = ReferenceMiniport._stage(args, consumed, staged, remaining, need)
        want = max(need, fmt.HEADER.size)
        if consumed + len(out) >= remaining and len(out) < want:  # cut short: pad with zeros
            out += bytes(want - len(out))
        return out


class RequiresPatchListIn(ReferenceMiniport):
    """Refuses a Render without the user-mode patch-location list (which is optional)."""

    def render(self, hContext: int, args: DXGKARG_RENDER) -> int:
        if args.pPatchLocationListIn is None or args.PatchLocationListInSize == 0:
            return STATUS_INVALID_PARAMETER
        return super().render(hContext, args)


class LosesDeviceOnValidWork(ReferenceMiniport):
    """Answers GRAPHICS_GPU_EXCEPTION_ON_DEVICE for valid work: the device is lost for nothing."""

    def render(self, hContext: int, args: DXGKARG_RENDER) -> int:
        status = super().render(hContext, args)
        return STATUS_GRAPHICS_GPU_EXCEPTION_ON_DEVICE if status == STATUS_SUCCESS else status


class NullContextHandle(ReferenceMiniport):
    """Creates the context but hands back hContext = NULL."""

    def create_context(self, args):  # type: ignore[no-untyped-def]
        status = super().create_context(args)
        args.hContext = 0
        return status


class PatchChangesSize(ReferenceMiniport):
    """Patch trims DmaBufferSubmissionEndOffset (it must patch in place, size unchanged)."""

    def patch(self, args: DXGKARG_PATCH) -> int:
        status = super().patch(args)
        if not args.Flags & DXGK_PATCHFLAGS.Paging:
            args.DmaBufferSubmissionEndOffset -= 4
        return status


class NewResourceEveryCall(ReferenceMiniport):
    """Ignores the hResource it is given and makes a new resource every call."""

    def create_allocation(self, args: DXGKARG_CREATEALLOCATION) -> int:
        args.hResource = 0
        return super().create_allocation(args)


class AllocationsDieWithDevice(ReferenceMiniport):
    """Frees a device's allocations when the device is destroyed (they belong to the adapter)."""

    def create_allocation(self, args: DXGKARG_CREATEALLOCATION) -> int:
        status = super().create_allocation(args)
        if status == STATUS_SUCCESS:
            self.__dict__.setdefault("batches", []).append(
                [i.hAllocation for i in args.pAllocationInfo]
            )
        return status

    def destroy_device(self, hDevice: int) -> int:
        for batch in self.__dict__.get("batches", []):
            for handle in batch:
                self.allocations.pop(handle, None)
        return super().destroy_device(hDevice)


class DropsHistoryFlag(ReferenceMiniport):
    """Does not report the HistoryBuffer flag it was asked for."""

    def create_allocation(self, args: DXGKARG_CREATEALLOCATION) -> int:
        status = super().create_allocation(args)
        for info in args.pAllocationInfo:
            info.Flags &= ~DXGK_ALLOCATIONINFOFLAGS.HistoryBuffer
        return status


class IgnoresTransferOffset(ReferenceMiniport):
    """Copies every sub-transfer from the start of the allocation (ignores TransferOffset)."""

    def _build_transfer(self, args, t):  # type: ignore[no-untyped-def]
        return super()._build_transfer(args, dataclasses.replace(t, TransferOffset=0))


class DiscardClobbers(ReferenceMiniport):
    """Discard zeroes the 16 bytes before the allocation."""

    def build_paging_buffer(self, args: DXGKARG_BUILDPAGINGBUFFER) -> int:
        if args.Operation == OP.DXGK_OPERATION_DISCARD_CONTENT:
            before = args.DiscardContent.SegmentAddress - 16
            args.pDmaBuffer.write(isa.encode("FILL", before, 16, 0))
            args.pDmaBuffer += isa.BY_MNEMONIC["FILL"].size
        return super().build_paging_buffer(args)


class IgnoresSpecialLock(ReferenceMiniport):
    """Claims UseAlternateVA support but builds nothing for SPECIAL_LOCK_TRANSFER."""

    def build_paging_buffer(self, args: DXGKARG_BUILDPAGINGBUFFER) -> int:
        if args.Operation == OP.DXGK_OPERATION_SPECIAL_LOCK_TRANSFER:
            return STATUS_SUCCESS
        return super().build_paging_buffer(args)


class PatchRejectsPagingBuffer(ReferenceMiniport):
    """Patch insists on a patch-location list, so it fails on paging buffers."""

    def patch(self, args: DXGKARG_PATCH) -> int:
        if args.pPatchLocationList is None:
            return STATUS_INVALID_PARAMETER
        return super().patch(args)


class ReadsForeignMemory(ReferenceMiniport):
    """Debug code: a DMA buffer also reads the last allocation another context rendered with."""

    def render(self, hContext: int, args: DXGKARG_RENDER) -> int:
        entries = [
            DXGK_ALLOCATIONLIST.read(args.pAllocationList, i)
            for i in range(args.AllocationListSize)
        ]
        owner, previous = self.__dict__.get("previous", (0, 0))
        if previous and owner != hContext and args.DmaSize >= 64:
            read = isa.BY_MNEMONIC["READ"].size
            args.DmaSize -= read
            try:
                status = super().render(hContext, args)
            finally:
                args.DmaSize += read
            if status == STATUS_SUCCESS:  # after the fence: the GPU runs to the end
                args.pDmaBuffer.write(isa.encode("READ", 8, previous))
                args.pDmaBuffer += read
        else:
            status = super().render(hContext, args)
        resident = [
            e.PhysicalAddress for e in entries if e.SegmentId and e.hDeviceSpecificAllocation
        ]
        if resident:
            self.__dict__["previous"] = (hContext, resident[0])
        return status


class LeaksOnFailure(ReferenceMiniport):
    """When one allocation of a batch is invalid, keeps the ones it already made."""

    def create_allocation(self, args: DXGKARG_CREATEALLOCATION) -> int:
        made = []
        for info in args.pAllocationInfo:
            single = dataclasses.replace(
                args,
                NumAllocations=1,
                pAllocationInfo=[info],
                Flags=DXGK_CREATEALLOCATIONFLAGS(0),  # the resource is the whole batch's
            )
            status = super().create_allocation(single)
            if status != STATUS_SUCCESS:
                return status  # the earlier ones stay live, their handles in pAllocationInfo
            made.append(info.hAllocation)
        return super().create_allocation(args) if not made else self._finish(args, made)

    def _finish(self, args: DXGKARG_CREATEALLOCATION, made: list[int]) -> int:
        if args.Flags & DXGK_CREATEALLOCATIONFLAGS.Resource:
            resource = args.hResource if args.hResource in self.resources else next(self._handles)
            self.resources.setdefault(resource, set()).update(made)
            for handle in made:
                self.allocations[handle].resource = resource
            args.hResource = resource
        return STATUS_SUCCESS


class GdiSizeOneRow(ReferenceMiniport):
    """Sizes a GDI surface as one row: forgets the height (and the pitch)."""

    def _parse_allocation_data(self, raw: bytes):  # type: ignore[no-untyped-def]
        size, pitched, flags = super()._parse_allocation_data(raw)
        if flags & fmt.AllocationDataFlags.Gdi:
            row = fmt.ALLOCATION_DATA.unpack(raw)[3]
            return row, min(pitched, row), flags
        return size, pitched, flags


class ContractSplits(ContractReferenceMiniport):
    """Declares guaranteed-contract DMA but still splits with INSUFFICIENT_DMA_BUFFER."""

    def render(self, hContext: int, args: DXGKARG_RENDER) -> int:
        return ReferenceMiniport.render(self, hContext, args)


BREAKS.update(
    {
        FillsWrongPattern: "REN-TRANSLATE",
        PassesPrivilegedCommands: "REN-VALIDATE",
        PadsTruncatedCommand: "REN-UNDERRUN",
        RequiresPatchListIn: "REN-PATCHIN",
        LosesDeviceOnValidWork: "REN-DEVICELOST",
        NullContextHandle: "REN-CONTEXT",
        PatchChangesSize: "PAT-INPLACE",
        NewResourceEveryCall: "ALC-RESOURCE",
        AllocationsDieWithDevice: "ALC-ADAPTER",
        DropsHistoryFlag: "ALC-HISTORY",
        IgnoresTransferOffset: "PGB-TRANSFER",
        DiscardClobbers: "PGB-DISCARD",
        IgnoresSpecialLock: "PGB-SPECIALLOCK",
        PatchRejectsPagingBuffer: "PAT-PAGING",
        ReadsForeignMemory: "ALL-ISOLATION",
        LeaksOnFailure: "ALC-ATOMIC",
        GdiSizeOneRow: "ALC-GDISIZE",
        ContractSplits: "REN-CONTRACT",
    }
)


class NoBoundsCheck(ReferenceMiniport):
    """Validates allocation indices but not offsets: a reference may run past its allocation."""

    def _allocation_of(self, device_handle: int):  # type: ignore[no-untyped-def]
        allocation = super()._allocation_of(device_handle)
        return None if allocation is None else dataclasses.replace(allocation, size=1 << 32)


BREAKS[NoBoundsCheck] = "REN-VALIDATE"


# --------------------------------------------------------------------------- the harness's objects


class ClearsAllocationInfo(ReferenceMiniport):
    """Empties the kernel's pAllocationInfo list after a successful CreateAllocation."""

    def create_allocation(self, args: DXGKARG_CREATEALLOCATION) -> int:
        status = super().create_allocation(args)
        if status == STATUS_SUCCESS:
            args.pAllocationInfo.clear()
        return status


class AppendsAllocationInfo(ReferenceMiniport):
    """Appends an element of its own to the kernel's pAllocationInfo list after a successful CreateAllocation."""

    def create_allocation(self, args: DXGKARG_CREATEALLOCATION) -> int:
        status = super().create_allocation(args)
        if status == STATUS_SUCCESS:
            args.pAllocationInfo.append(dataclasses.replace(args.pAllocationInfo[-1]))
        return status


class ReplacesOpenAllocationInfo(ReferenceMiniport):
    """Opens allocations into DXGK_OPENALLOCATIONINFO objects of its own and puts them in the kernel's list."""

    def open_allocation(self, hDevice: int, args: DXGKARG_OPENALLOCATION) -> int:
        mine = [DXGK_OPENALLOCATIONINFO(hAllocation=i.hAllocation) for i in args.pOpenAllocation]
        status = super().open_allocation(hDevice, dataclasses.replace(args, pOpenAllocation=mine))
        args.pOpenAllocation[:] = mine
        return status


class ClearsDestroyList(ReferenceMiniport):
    """Empties the kernel's pAllocationList (the handles to destroy) once it destroyed them."""

    def destroy_allocation(self, args: DXGKARG_DESTROYALLOCATION) -> int:
        status = super().destroy_allocation(args)
        args.pAllocationList.clear()
        return status


class KeepsDmaBuffer(ReferenceMiniport):
    """Keeps each Render's pDmaBuffer and writes a NOP through it, inside its bounds, during the next Render."""

    def render(self, hContext: int, args: DXGKARG_RENDER) -> int:
        kept = self.__dict__.get("kept_dma")
        if kept is not None:
            kept.write(isa.encode("NOP"))
        self.__dict__["kept_dma"] = args.pDmaBuffer
        return super().render(hContext, args)


class KeepsCommandBuffer(ReferenceMiniport):
    """Keeps each Render's pCommand and reads through it again during the next Render."""

    def render(self, hContext: int, args: DXGKARG_RENDER) -> int:
        kept, length = self.__dict__.get("kept_command", (None, 0))
        if kept is not None and length:
            kept.read(min(length, 4))
        self.__dict__["kept_command"] = (args.pCommand, args.CommandLength)
        return super().render(hContext, args)


BREAKS.update(
    {
        ClearsAllocationInfo: "ALL-READONLY",
        AppendsAllocationInfo: "ALL-READONLY",
        ReplacesOpenAllocationInfo: "ALL-READONLY",
        ClearsDestroyList: "ALL-READONLY",
        KeepsDmaBuffer: "ALL-READONLY",
        KeepsCommandBuffer: "ALL-NORAISE",
    }
)


class AddsOffsetsIn32Bits(ReferenceMiniport):
    """Checks offset + size in 32 bits: an offset near 2^32 wraps and passes the bounds check."""

    @staticmethod
    def _fits(offset: int, size: int, allocation_size: int) -> bool:
        return (offset + size) & 0xFFFF_FFFF <= allocation_size


class ComparesIndicesSigned(ReferenceMiniport):
    """Compares allocation indices as signed 32-bit: bit 31 set passes, and the list is read before its start."""

    @staticmethod
    def _in_list(index: int, count: int) -> bool:
        return index - (index & 0x8000_0000) * 2 < count

    @staticmethod
    def _entry(
        args: DXGKARG_RENDER, entries: list[DXGK_ALLOCATIONLIST], index: int
    ) -> DXGK_ALLOCATIONLIST:
        return DXGK_ALLOCATIONLIST.read(args.pAllocationList, index - (index & 0x8000_0000) * 2)


BREAKS[AddsOffsetsIn32Bits] = "REN-VALIDATE"
BREAKS[ComparesIndicesSigned] = "REN-VALIDATE"


class PatchListLosesOffset(ReferenceMiniport):
    """Pre-patches right but writes AllocationOffset 0 into the output patch list: after Patch
    each reference lands at the start of the right allocation, not at its offset."""

    def render(self, hContext: int, args: DXGKARG_RENDER) -> int:
        start = args.pPatchLocationListOut
        status = super().render(hContext, args)
        for i in range(args.pPatchLocationListOut - start):
            entry = D3DDDI_PATCHLOCATIONLIST.read(start, i)
            entry.AllocationOffset = 0
            entry.write(start, i)
        return status


class PatchEntryAtZero(ReferenceMiniport):
    """Writes PatchOffset 0 (and SplitOffset 0) into the first output patch entry: Patch
    then writes an address over the first command of the DMA buffer."""

    def render(self, hContext: int, args: DXGKARG_RENDER) -> int:
        start = args.pPatchLocationListOut
        status = super().render(hContext, args)
        if args.pPatchLocationListOut - start:
            entry = D3DDDI_PATCHLOCATIONLIST.read(start, 0)
            entry.PatchOffset = entry.SplitOffset = 0
            entry.write(start, 0)
        return status


class PrePatchLosesOffset(ReferenceMiniport):
    """Pre-patches each reference with the start of its allocation, without the offset; the
    patch list is right, so only a run that skips Patch goes wrong."""

    @staticmethod
    def _prepatch(entry: DXGK_ALLOCATIONLIST, offset: int) -> int:
        return entry.PhysicalAddress if entry.SegmentId else 0


class PatchLoopEndsAtLength(ReferenceMiniport):
    """Walks the patch list from PatchLocationListSubmissionStart up to Length, not Start +
    Length: right for the first range of a split submission, short for every later one."""

    def patch(self, args: DXGKARG_PATCH) -> int:
        start = args.PatchLocationListSubmissionStart
        args.PatchLocationListSubmissionLength = max(
            0, args.PatchLocationListSubmissionLength - start
        )
        return super().patch(args)


class TrustsPatchListIn(ReferenceMiniport):
    """Takes each reference's allocation index and offset from pPatchLocationListIn (the
    i-th reference of a call from the i-th input entry at or past pCommand) instead of the
    command it decoded, for the pre-patched address and the output patch list alike."""

    def render(self, hContext: int, args: DXGKARG_RENDER) -> int:
        here, dma, plo = args.pCommand.offset, args.pDmaBuffer, args.pPatchLocationListOut
        try:
            given = _patch_list_in(args, here)
        except UserAccessFault:
            given = []
        status = super().render(hContext, args)
        _trust(args, dma, plo, given)
        return status


class ValidatesPatchListInThenRereads(ReferenceMiniport):
    """Checks pPatchLocationListIn against the references it decoded and, when they agree,
    reads the list again and trusts that second read (a double fetch of the input list)."""

    def render(self, hContext: int, args: DXGKARG_RENDER) -> int:
        here, dma, plo = args.pCommand.offset, args.pDmaBuffer, args.pPatchLocationListOut
        try:
            first = _patch_list_in(args, here)
        except UserAccessFault:
            first = []
        status = super().render(hContext, args)
        made = [
            D3DDDI_PATCHLOCATIONLIST.read(plo, i) for i in range(args.pPatchLocationListOut - plo)
        ]
        if not made or [(e.AllocationIndex, e.AllocationOffset) for e in first[: len(made)]] != [
            (e.AllocationIndex, e.AllocationOffset) for e in made
        ]:
            return status
        with contextlib.suppress(UserAccessFault):
            _trust(args, dma, plo, _patch_list_in(args, here))
        return status


def _patch_list_in(args: DXGKARG_RENDER, here: int) -> list[D3DDDI_PATCHLOCATIONLIST]:
    """The input entries whose PatchOffset is at or past ``here``, read from user memory."""
    plin = args.pPatchLocationListIn
    if plin is None:
        return []
    entries = [D3DDDI_PATCHLOCATIONLIST.read(plin, i) for i in range(args.PatchLocationListInSize)]
    return [e for e in entries if e.PatchOffset >= here]


def _trust(args: DXGKARG_RENDER, dma: Ptr, plo: Ptr, given: list[D3DDDI_PATCHLOCATIONLIST]) -> None:
    """Overwrite the output entries written from ``plo`` on, and the addresses pre-patched
    into ``dma``, with the index and offset of the matching ``given`` entries."""
    entries = [
        DXGK_ALLOCATIONLIST.read(args.pAllocationList, i) for i in range(args.AllocationListSize)
    ]
    for i in range(min(len(given), args.pPatchLocationListOut - plo)):
        entry = D3DDDI_PATCHLOCATIONLIST.read(plo, i)
        lie = given[i]
        if lie.AllocationIndex >= len(entries):
            continue
        entry.AllocationIndex, entry.AllocationOffset = lie.AllocationIndex, lie.AllocationOffset
        entry.write(plo, i)
        target = entries[lie.AllocationIndex]
        if target.hDeviceSpecificAllocation:
            address = target.PhysicalAddress + lie.AllocationOffset if target.SegmentId else 0
            (dma + entry.PatchOffset).write(address.to_bytes(8, "little"))


BREAKS[PatchListLosesOffset] = "REN-FULLPATCH"
BREAKS[PatchEntryAtZero] = "REN-FULLPATCH"
BREAKS[PrePatchLosesOffset] = "REN-PREPATCH"
BREAKS[PatchLoopEndsAtLength] = "PAT-RANGE"
BREAKS[TrustsPatchListIn] = "REN-PATCHIN"


class UnbindsToNeighbour(ReferenceMiniport):
    """Translates an unbind (the NULL element) into a bind of the first other allocation of
    the list: pre-patched and in the patch list alike, so the slot holds memory the
    submission may use, and no foreign access ever shows it."""

    @staticmethod
    def _translate(opcode, fields, reference, entries):  # type: ignore[no-untyped-def]
        if opcode == fmt.U_BIND:
            slot, index, _ = fields
            if index < len(entries) and entries[index].hDeviceSpecificAllocation == 0:
                other = next(
                    (i for i, e in enumerate(entries) if e.hDeviceSpecificAllocation), None
                )
                if other is not None:
                    fields = (slot, other, 0)
        return ReferenceMiniport._translate(opcode, fields, reference, entries)


BREAKS[UnbindsToNeighbour] = "REN-NULLALLOC"


class HangsInSecondPatch(ReferenceMiniport):
    """Hangs in its second DxgkDdiPatch call on a render buffer (per adapter); the first
    returns. Hypothesis re-running every hanging example while shrinking made a suite run
    take one DDI timeout per re-run."""

    def __init__(self) -> None:
        super().__init__()
        self.render_patches = 0

    def patch(self, args: DXGKARG_PATCH) -> int:
        if not args.Flags & DXGK_PATCHFLAGS.Paging:
            self.render_patches += 1
            while self.render_patches >= 2:
                pass
        return super().patch(args)


BREAKS[HangsInSecondPatch] = "ALL-BOUNDED"


class ChecksOnlyTheStart(ReferenceMiniport):
    """Checks that a reference starts inside its allocation, not that it ends there: a
    reference that runs one byte past the end passes."""

    @staticmethod
    def _fits(offset: int, size: int, allocation_size: int) -> bool:
        return offset <= allocation_size


class RejectsExactEnd(ReferenceMiniport):
    """Off by one the other way: a reference that ends exactly at its allocation's end is
    rejected, so valid work fails."""

    @staticmethod
    def _fits(offset: int, size: int, allocation_size: int) -> bool:
        return offset + size < allocation_size


BREAKS[ChecksOnlyTheStart] = "REN-VALIDATE"
BREAKS[RejectsExactEnd] = "REN-TRANSLATE"


class SplitOffsetIsAnIndex(ReferenceMiniport):
    """Numbers SplitOffset 0, 1, 2, ... down the output patch list (strictly increasing,
    but not where the commands are): a split submission patches entries in the wrong range."""

    def render(self, hContext: int, args: DXGKARG_RENDER) -> int:
        start = args.pPatchLocationListOut
        status = super().render(hContext, args)
        for i in range(args.pPatchLocationListOut - start):
            entry = D3DDDI_PATCHLOCATIONLIST.read(start, i)
            entry.SplitOffset = i
            entry.write(start, i)
        return status


BREAKS[SplitOffsetIsAnIndex] = "REN-PATCHOUT"


class IgnoresPatchListRoom(ReferenceMiniport):
    """Checks the DMA buffer's room but not the patch list's: with a short patch list and
    a roomy DMA buffer it writes patch locations past PatchLocationListOutSize."""

    def render(self, hContext: int, args: DXGKARG_RENDER) -> int:
        size = args.PatchLocationListOutSize
        args.PatchLocationListOutSize = 1 << 20
        try:
            return super().render(hContext, args)
        finally:
            args.PatchLocationListOutSize = size


BREAKS[IgnoresPatchListRoom] = "REN-CURSORS"


class TruncatesLargeTransfers(ReferenceMiniport):
    """Copies at most 256 KiB of a transfer, whatever TransferSize says (a size field one
    width too narrow): every allocation the suite moved was smaller."""

    def build_paging_buffer(self, args: DXGKARG_BUILDPAGINGBUFFER) -> int:
        if args.Operation == OP.DXGK_OPERATION_TRANSFER:
            args.Transfer.TransferSize = min(args.Transfer.TransferSize, 256 << 10)
        return super().build_paging_buffer(args)


class SkipsLargeFills(ReferenceMiniport):
    """Answers SUCCESS without filling when FillSize is over 128 KiB."""

    def build_paging_buffer(self, args: DXGKARG_BUILDPAGINGBUFFER) -> int:
        if args.Operation == OP.DXGK_OPERATION_FILL and args.Fill.FillSize > 128 << 10:
            return STATUS_SUCCESS
        return super().build_paging_buffer(args)


BREAKS[TruncatesLargeTransfers] = "PGB-TRANSFER"
BREAKS[SkipsLargeFills] = "PGB-FILL"


class RereadsPatchListIn(ReferenceMiniport):
    """Reads pPatchLocationListIn twice (once to count, once to use), inside its __try:
    user memory fetched twice can change between the reads."""

    def render(self, hContext: int, args: DXGKARG_RENDER) -> int:
        plin = args.pPatchLocationListIn
        if plin is not None and args.PatchLocationListInSize:
            try:
                for _ in range(2):
                    plin.read(args.PatchLocationListInSize * D3DDDI_PATCHLOCATIONLIST.SIZE)
            except UserAccessFault:
                return STATUS_INVALID_PARAMETER
        return super().render(hContext, args)


BREAKS[RereadsPatchListIn] = "REN-COPYFIRST"
BREAKS[ValidatesPatchListInThenRereads] = "REN-COPYFIRST"


class LeaksOnFailedBatch(ReferenceMiniport):
    """Stages what it parsed of each entry and clears the stage only when the batch
    succeeds: a failed batch keeps the earlier entries' state (status and handles right)."""

    def _parse_allocation_data(self, raw: bytes):  # type: ignore[no-untyped-def]
        parsed = super()._parse_allocation_data(raw)
        self.__dict__.setdefault("staged", []).append(parsed)
        return parsed

    def create_allocation(self, args: DXGKARG_CREATEALLOCATION) -> int:
        status = super().create_allocation(args)
        if status == STATUS_SUCCESS:
            self.__dict__.get("staged", []).clear()
        return status


class LeaksOnDestroy(ReferenceMiniport):
    """DestroyAllocation forgets to drop the allocation's record (the handle never opens again
    only because the kernel never asks)."""

    def destroy_allocation(self, args: DXGKARG_DESTROYALLOCATION) -> int:
        records = {h: self.allocations[h] for h in args.pAllocationList if h in self.allocations}
        status = super().destroy_allocation(args)
        self.allocations.update(records)
        return status


class LeaksOnDestroyDevice(ReferenceMiniport):
    """DestroyDevice frees the device's contexts and open handles but leaves the device in
    the adapter's device table."""

    def destroy_device(self, hDevice: int) -> int:
        device = self.devices.get(hDevice)
        status = super().destroy_device(hDevice)
        if device is not None:
            self.devices[hDevice] = device
        return status


BREAKS[LeaksOnFailedBatch] = "ALC-ATOMIC"
BREAKS[LeaksOnDestroy] = "ALC-ADAPTER"
BREAKS[LeaksOnDestroyDevice] = "ALC-ADAPTER"


class SkipsValidationAfterCopy(ReferenceMiniport):
    """Trusts the command that follows a COPY (a fast path for copy chains): skips its
    privilege and bounds checks. Validation that depends on the previous command."""

    def render(self, hContext: int, args: DXGKARG_RENDER) -> int:
        self._previous, self._trusted = -1, False
        return super().render(hContext, args)

    def _check_command(self, command: fmt.UserCommand, reserved: int) -> None:  # type: ignore[override]
        self._trusted = self._previous == fmt.U_COPY
        self._previous = command.opcode
        if not self._trusted:
            ReferenceMiniport._check_command(command, reserved)

    def _fits(self, offset: int, size: int, allocation_size: int) -> bool:  # type: ignore[override]
        return self._trusted or ReferenceMiniport._fits(offset, size, allocation_size)


class ReservedBitDisablesChecks(ReferenceMiniport):
    """Reads bit 7 of the header's reserved byte as a "kernel-built" flag: a user command that
    sets it skips the privilege check and reaches the GPU (the reference ignores the byte)."""

    @staticmethod
    def _check_command(command: fmt.UserCommand, reserved: int) -> None:
        if not reserved & 0x80:
            ReferenceMiniport._check_command(command, reserved)

    @staticmethod
    def _translate(opcode, fields, reference, entries):  # type: ignore[no-untyped-def]
        if opcode == fmt.U_SETPTE:
            return isa.encode("PTE", *fields), []
        if opcode == fmt.U_SETREG:
            return isa.encode("REG", *fields), []
        return ReferenceMiniport._translate(opcode, fields, reference, entries)


#: Its opcode dispatch: a 128-entry table, opcodes 0x00-0x7F.
_DISPATCH = [fmt.BY_OPCODE.get(opcode) for opcode in range(0x80)]


class RaisesOnUnknownOpcode(ReferenceMiniport):
    """Looks opcodes up in a 128-entry table: an opcode of 0x80 or more raises IndexError
    (the encoder's own illegal command, 0x3C, is rejected as it should be)."""

    @staticmethod
    def _lookup(opcode: int) -> fmt.UserCommand | None:
        return _DISPATCH[opcode]


BREAKS[SkipsValidationAfterCopy] = "REN-VALIDATE"
BREAKS[ReservedBitDisablesChecks] = "REN-VALIDATE"
BREAKS[RaisesOnUnknownOpcode] = "ALL-NORAISE"


class EmptyBufferBadStatus(ReferenceMiniport):
    """Answers an empty command buffer (CommandLength 0) with STATUS_NOT_SUPPORTED, a status
    Render may not return; every other buffer is handled right."""

    def render(self, hContext: int, args: DXGKARG_RENDER) -> int:
        if args.CommandLength == 0:
            return STATUS_NOT_SUPPORTED
        return super().render(hContext, args)


class ChecksSizeIn16Bits(ReferenceMiniport):
    """Bounds-checks a reference's size in 16 bits (the width the suite's generators once
    used): a 65,600-byte fill of an 8 KiB allocation passes as 64 bytes."""

    @staticmethod
    def _fits(offset: int, size: int, allocation_size: int) -> bool:
        return offset + (size & 0xFFFF) <= allocation_size


class EmptyListUnchecked(ReferenceMiniport):
    """Skips the index check when AllocationListSize is 0 ("no list, no limit") and reads
    the entry through pAllocationList: past the end of the kernel's buffer."""

    @staticmethod
    def _in_list(index: int, count: int) -> bool:
        return count == 0 or index < count

    @staticmethod
    def _entry(
        args: DXGKARG_RENDER, entries: list[DXGK_ALLOCATIONLIST], index: int
    ) -> DXGK_ALLOCATIONLIST:
        return entries[index] if entries else DXGK_ALLOCATIONLIST.read(args.pAllocationList, index)


BREAKS[EmptyBufferBadStatus] = "REN-STATUS"
BREAKS[ChecksSizeIn16Bits] = "REN-VALIDATE"
BREAKS[EmptyListUnchecked] = "REN-VALIDATE"


class HandleCounterWraps16(ReferenceMiniport):
    """Numbers allocations with a 16-bit counter: the 65,537th creation gets the first
    allocation's handle again while that one still lives."""

    def create_allocation(self, args: DXGKARG_CREATEALLOCATION) -> int:
        status = super().create_allocation(args)
        if status != STATUS_SUCCESS:
            return status
        for info in args.pAllocationInfo:
            serial = self.__dict__.get("serial", 0)
            self.serial = serial + 1
            handle = 0x1_0000_0000 | serial & 0xFFFF
            allocation = self.allocations.pop(info.hAllocation)
            if allocation.resource:
                self.resources[allocation.resource].discard(info.hAllocation)
                self.resources[allocation.resource].add(handle)
            self.allocations[handle] = allocation
            info.hAllocation = handle
        return status


class FreesOnLastClose(ReferenceMiniport):
    """Frees an allocation when the last device that has it open closes it or is destroyed:
    it belongs to the adapter until DestroyAllocation, so a device that opens it later
    (a shared surface) finds it gone."""

    def _free_unopened(self, closed: set[int]) -> None:
        still_open = set(self.opened.values())
        for handle in closed - still_open:
            self.allocations.pop(handle, None)

    def close_allocation(self, hDevice: int, args: DXGKARG_CLOSEALLOCATION) -> int:
        closed = {self.opened.get(h, 0) for h in args.pOpenHandleList[: args.NumAllocations]}
        status = super().close_allocation(hDevice, args)
        self._free_unopened(closed)
        return status

    def destroy_device(self, hDevice: int) -> int:
        device = self.devices.get(hDevice)
        closed = {self.opened.get(h, 0) for h in device.opened} if device else set()
        status = super().destroy_device(hDevice)
        self._free_unopened(closed)
        return status


class MultipassSkipsAChunk(ReferenceMiniport):
    """Resumes a transfer between two segments one chunk (1 MiB) too late: when the paging
    buffer runs out inside such a transfer, a chunk is never copied."""

    def _build_transfer(
        self, args: DXGKARG_BUILDPAGINGBUFFER, t: DXGK_BUILDPAGINGBUFFER_TRANSFER
    ) -> int:
        if args.MultipassOffset and t.Source.SegmentId and t.Destination.SegmentId:
            args.MultipassOffset = min(args.MultipassOffset + ref.PAGING_CHUNK, t.TransferSize)
        return super()._build_transfer(args, t)


class MapSkipsABlock(ReferenceMiniport):
    """Writes page-table entries a block of 512 (2 MiB of aperture) at a time and skips the
    second block of a range: a map of more than 512 pages leaves pages 512-1023 of it as
    they were."""

    def build_paging_buffer(self, args: DXGKARG_BUILDPAGINGBUFFER) -> int:
        amap = args.MapApertureSegment
        if args.Operation != OP.DXGK_OPERATION_MAP_APERTURE_SEGMENT or amap.NumberOfPages <= 512:
            return super().build_paging_buffer(args)
        start, status = args.pDmaBuffer, super().build_paging_buffer(args)
        nop = isa.encode("NOP").ljust(isa.BY_MNEMONIC["PTE"].size, b"\0")
        for at in range(0, args.pDmaBuffer - start, len(nop)):
            page = struct.unpack_from("<I", start.read(8, at), 4)[0] - amap.OffsetInPages
            if 512 <= page < 1024:
                start.write(nop, at)
        return status


class PatchesOnlyOnce(ReferenceMiniport):
    """Remembers the DMA buffers (and ranges) it patched and leaves them alone on a later
    Patch: after a relocation the second Patch keeps the old addresses."""

    def patch(self, args: DXGKARG_PATCH) -> int:
        seen = self.__dict__.setdefault("patched", [])
        key = (args.pDmaBuffer.region, args.DmaBufferSubmissionStartOffset)
        if not any(r is key[0] and s == key[1] for r, s in seen):
            seen.append(key)  # keeps the buffer alive, so its identity is never reused
            return super().patch(args)
        patch_list, args.pPatchLocationList = args.pPatchLocationList, None
        try:
            return super().patch(args)  # the fence only
        finally:
            args.pPatchLocationList = patch_list


class CachesFirstFill(ReferenceMiniport):
    """Keeps the pattern of the first FILL it builds and uses it for every later fill."""

    def build_paging_buffer(self, args: DXGKARG_BUILDPAGINGBUFFER) -> int:
        if args.Operation == OP.DXGK_OPERATION_FILL:
            pattern = self.__dict__.setdefault("first_pattern", args.Fill.FillPattern)
            args.Fill.FillPattern = pattern
        return super().build_paging_buffer(args)


BREAKS[HandleCounterWraps16] = "ALC-HANDLE"
BREAKS[FreesOnLastClose] = "ALC-ADAPTER"
BREAKS[MultipassSkipsAChunk] = "PGB-MULTIPASS"
BREAKS[MapSkipsABlock] = "PGB-MAP"
BREAKS[PatchesOnlyOnce] = "PAT-REPATCH"
BREAKS[CachesFirstFill] = "PGB-FILL"


#: Mutants that break a validation or isolation rule, and the target that finds each.


FUZZABLE: dict[type[ReferenceMiniport], str] = {
    NoBoundsCheck: "render",
    DoubleFetch: "render",
    PassesPrivilegedCommands: "render",
    LetsUserFaultEscape: "render",
    PadsTruncatedCommand: "render",
    OverflowsDmaBuffer: "render",
    IgnoresWriteOperation: "render",
    TrustsPagedOut: "render",
    PatchIgnoresSubmissionStart: "patch",
    PatchNotIdempotent: "patch",
    PatchLoopEndsAtLength: "patch",
    PatchListLosesOffset: "patch",
    TrustsPatchListIn: "render",
    PrePatchLosesOffset: "render",
    UnbindsToNeighbour: "render",
    ChecksOnlyTheStart: "render",
    UnmapLeavesOldPage: "build_paging_buffer",
    MultipassRestarts: "build_paging_buffer",
    MapsWrongPage: "build_paging_buffer",
    IgnoresTransferOffset: "build_paging_buffer",
    LeaksOnFailure: "create_allocation",
    GdiSizeOneRow: "create_allocation",
    ReadsForeignMemory: "lifecycle",
    IgnoresPatchListRoom: "render",
    SkipsValidationAfterCopy: "render",
    RaisesOnUnknownOpcode: "render",
}


# --------------------------------------------------------------------------- WDK-style C


class WdkSample(NativeMiniport):
    """The WDK-style C sample (tests/wdk_driver/wdkdisp.c): DriverEntry + DxgkInitialize, conforming."""

    #: WDKDISP_BUG_* macros of the variant (built once per machine, cached).
    BUGS: ClassVar[tuple[str, ...]] = ()
    #: The sample's source and library name.
    SOURCE: ClassVar[Path] = WDK_SAMPLE
    NAME: ClassVar[str] = "wdkdisp"
    #: Other WDKDISP_* macros (how a conforming variant differs).
    OPTIONS: ClassVar[tuple[str, ...]] = ()

    def __init__(self) -> None:
        cls = type(self)
        if "LIBRARY" not in cls.__dict__:
            path = build(
                [cls.SOURCE],
                name=cls.NAME + "".join(f"-{x.lower()}" for x in (*cls.OPTIONS, *cls.BUGS)),
                defines=[
                    *(f"WDKDISP_{option}" for option in cls.OPTIONS),
                    *(f"WDKDISP_BUG_{bug}" for bug in cls.BUGS),
                ],
                wdk=True,
            )
            cls.LIBRARY = open_library(path, f"tests.mutants:{cls.__name__}")
        super().__init__()


class WdkSampleLeaksFailedBatch(WdkSample):
    """WDK sample: a failed CreateAllocation batch keeps the pool of the allocations it made."""

    BUGS = ("LEAK_FAILED_BATCH",)


class WdkSampleDoubleFree(WdkSample):
    """WDK sample: DestroyAllocation frees each allocation's pool twice (0xC2 BAD_POOL_CALLER)."""

    BUGS = ("DOUBLE_FREE",)


class WdkSampleReturnsHoldingLock(WdkSample):
    """WDK sample: CreateAllocation returns with its adapter's spin lock held (0x4A)."""

    BUGS = ("LOCK_HELD",)


class WdkSampleAssertsOnValid(WdkSample):
    """WDK sample: an NT_ASSERT that fires on a valid allocation size (0x1E)."""

    BUGS = ("ASSERT_VALID",)


class WdkSampleCopiesUnderLock(WdkSample):
    """WDK sample: reads the command buffer holding a spin lock, at DISPATCH_LEVEL (0xD1)."""

    BUGS = ("COPY_UNDER_LOCK",)


class WdkSampleNoTry(WdkSample):
    """WDK sample: copies the command buffer with memcpy and no __try: a real fault escapes (0x1E)."""

    BUGS = ("NO_TRY",)


class WdkCppSample(WdkSample):
    """The WDK-style C++ sample (tests/wdk_driver/wdkdisp_cpp.cpp): classes, operator new on pool, conforming."""

    SOURCE = WDK_CPP_SAMPLE
    NAME = "wdkdispcpp"


class WdkCppSampleNoTry(WdkCppSample):
    """WDK C++ sample: copies the command buffer with memcpy and no __try: a real fault escapes (0x1E)."""

    BUGS = ("NO_TRY",)


class WdkCppSampleLeaksFailedBatch(WdkCppSample):
    """WDK C++ sample: a failed CreateAllocation batch keeps the objects it made with new."""

    BUGS = ("LEAK_FAILED_BATCH",)


BREAKS[WdkSampleNoTry] = "REN-USERFAULT"  # type: ignore[index]
BREAKS[WdkCppSampleNoTry] = "REN-USERFAULT"  # type: ignore[index]
BREAKS[WdkCppSampleLeaksFailedBatch] = "ALC-ATOMIC"  # type: ignore[index]


class WdkSampleLeaksOnOpen(WdkSample):
    """WDK sample: OpenAllocation keeps a pool record CloseAllocation never frees (only
    RemoveDevice does): the pool grows with every open (ALC-ADAPTER, the pool census)."""

    BUGS = ("LEAK_OPEN",)


BREAKS[WdkSampleNoTry] = "REN-USERFAULT"  # type: ignore[index]
BREAKS[WdkSampleLeaksOnOpen] = "ALC-ADAPTER"  # type: ignore[index]


class WdkSampleDirectCopy(WdkSample):
    """WDK sample, conforming: copies the command buffer with memcpy inside __try (direct reads)."""

    OPTIONS = ("DIRECT_COPY",)


class WdkSampleDirectDoubleFetch(WdkSample):
    """WDK sample copying with memcpy: checks each chunk's opcode byte in user memory with a
    plain load, then copies it again with the rest (a direct double fetch)."""

    OPTIONS = ("DIRECT_COPY",)
    BUGS = ("DOUBLE_FETCH",)


class WdkSampleRereadsPatchListIn(WdkSample):
    """WDK sample: checks pPatchLocationListIn against the entries it made, then reads it
    again directly and trusts that second read (as ValidatesPatchListInThenRereads)."""

    BUGS = ("REREAD_PATCH_LIST",)


BREAKS[WdkSampleDirectDoubleFetch] = "REN-COPYFIRST"  # type: ignore[index]
BREAKS[WdkSampleRereadsPatchListIn] = "REN-COPYFIRST"  # type: ignore[index]
BREAKS[WdkSampleLeaksFailedBatch] = "ALC-ATOMIC"  # type: ignore[index]
BREAKS[WdkSampleDoubleFree] = "ALL-NORAISE"  # type: ignore[index]
BREAKS[WdkSampleReturnsHoldingLock] = "REN-IRQL"  # type: ignore[index]
BREAKS[WdkSampleAssertsOnValid] = "ALL-NORAISE"  # type: ignore[index]
BREAKS[WdkSampleCopiesUnderLock] = "REN-IRQL"  # type: ignore[index]


#: Drivers that follow every rule: the suite must pass them (with SKIPs for what they do not support).
CONFORMING = [
    ReferenceMiniport,
    ref.BusyReferenceMiniport,
    ref.ContractReferenceMiniport,
    NoAlternateVA,
    WdkSample,
    WdkCppSample,
    WdkSampleDirectCopy,
]
