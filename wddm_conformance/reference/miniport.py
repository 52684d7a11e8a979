"""The reference display miniport: follows every rule of REQUIREMENTS.md.

It drives the emulated GPU of :mod:`wddm_conformance.reference.gpu` and reads the user-mode
formats of :mod:`wddm_conformance.reference.formats`. Handles are opaque non-zero integers;
allocations belong to the adapter, device-specific handles (OpenAllocation) to a
device, so an allocation outlives the device that created it (ALC-ADAPTER).
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import count
from typing import Final

from wddm_conformance.ddi import (
    D3DDDI_PATCHLOCATIONLIST,
    DXGK_ALLOCATIONINFOFLAGS,
    DXGK_ALLOCATIONLIST,
    DXGK_BUILDPAGINGBUFFER_OPERATION,
    DXGK_BUILDPAGINGBUFFER_TRANSFER,
    DXGK_CREATEALLOCATIONFLAGS,
    DXGK_DESTROYALLOCATIONFLAGS,
    DXGK_DISCARDCONTENTFLAGS,
    DXGK_DRIVERCAPS,
    DXGK_MAPAPERTUREFLAGS,
    DXGK_PATCHFLAGS,
    DXGK_SEGMENTDESCRIPTOR,
    DXGK_SEGMENTFLAGS,
    DXGK_START_INFO,
    DXGK_TRANSFER_LOCATION,
    DXGK_TRANSFERFLAGS,
    DXGKARG_BUILDPAGINGBUFFER,
    DXGKARG_CLOSEALLOCATION,
    DXGKARG_CREATEALLOCATION,
    DXGKARG_CREATECONTEXT,
    DXGKARG_CREATEDEVICE,
    DXGKARG_DESTROYALLOCATION,
    DXGKARG_OPENALLOCATION,
    DXGKARG_PATCH,
    DXGKARG_RENDER,
    DXGKARG_SUBMITCOMMAND,
    PAGE_SIZE,
)
from wddm_conformance.driver import DEFAULT_COMMAND_ENCODER, DEFAULT_GPU_MODEL
from wddm_conformance.memory import UserAccessFault
from wddm_conformance.status import (
    STATUS_GRAPHICS_ALLOCATION_BUSY,
    STATUS_GRAPHICS_DRIVER_MISMATCH,
    STATUS_GRAPHICS_INSUFFICIENT_DMA_BUFFER,
    STATUS_ILLEGAL_INSTRUCTION,
    STATUS_INVALID_HANDLE,
    STATUS_INVALID_PARAMETER,
    STATUS_INVALID_USER_BUFFER,
    STATUS_PRIVILEGED_INSTRUCTION,
    STATUS_SUCCESS,
)

from . import formats as fmt
from . import isa
from .gpu import APERTURE_SEGMENT_BASE, MEMORY_SEGMENT_BASE

MEMORY_SEGMENT_ID: Final = 1
APERTURE_SEGMENT_ID: Final = 2
#: Largest piece one COPY/FILL of a paging buffer moves between segments.
PAGING_CHUNK: Final = 1 << 20
#: Register the reference driver uses to mark an allocation transfer in progress.
REG_TRANSFER_IN_PROGRESS: Final = 1
#: User commands are copied into kernel memory this many bytes at a time.
STAGING_CHUNK: Final = 4096

_FENCE = isa.BY_MNEMONIC["FENCE"]
_COPY = isa.BY_MNEMONIC["COPY"]
_FILL = isa.BY_MNEMONIC["FILL"]
_WRITE = isa.BY_MNEMONIC["WRITE"]
_XOR = isa.BY_MNEMONIC["XOR"]
_BIND = isa.BY_MNEMONIC["BIND"]
_PTE = isa.BY_MNEMONIC["PTE"]
_REG = isa.BY_MNEMONIC["REG"]
_SWZCOPY = isa.BY_MNEMONIC["SWZCOPY"]
_UNSWZCOPY = isa.BY_MNEMONIC["UNSWZCOPY"]
_PAGING = int(DXGK_PATCHFLAGS.Paging)
_IDLE = int(DXGK_TRANSFERFLAGS.AllocationIsIdle)
_SWIZZLE = int(DXGK_TRANSFERFLAGS.Swizzle)
_UNSWIZZLE = int(DXGK_TRANSFERFLAGS.Unswizzle)
_TRANSFER_START = int(DXGK_TRANSFERFLAGS.TransferStart)
_TRANSFER_END = int(DXGK_TRANSFERFLAGS.TransferEnd)
_DESTROY_RESOURCE = int(DXGK_DESTROYALLOCATIONFLAGS.DestroyResource)
_DATA_KNOWN = int(sum(fmt.AllocationDataFlags))
_DATA_CPU_VISIBLE = int(fmt.AllocationDataFlags.CpuVisible)
_DATA_SWIZZLED = int(fmt.AllocationDataFlags.Swizzled)
_DATA_APERTURE = int(fmt.AllocationDataFlags.Aperture)
_DATA_APERTURE_ONLY = int(fmt.AllocationDataFlags.ApertureOnly)
_DATA_GDI = int(fmt.AllocationDataFlags.Gdi)
#: Private-data flags and the DXGK_ALLOCATIONINFOFLAGS each one sets.
_INFO_FLAGS = tuple(
    (int(mine), int(theirs))
    for mine, theirs in (
        (fmt.AllocationDataFlags.CpuVisible, DXGK_ALLOCATIONINFOFLAGS.CpuVisible),
        (fmt.AllocationDataFlags.Swizzled, DXGK_ALLOCATIONINFOFLAGS.Swizzled),
        (fmt.AllocationDataFlags.HistoryBuffer, DXGK_ALLOCATIONINFOFLAGS.HistoryBuffer),
        (fmt.AllocationDataFlags.AlternateVA, DXGK_ALLOCATIONINFOFLAGS.UseAlternateVA),
    )
)
_U64 = struct.Struct("<Q")

_ReferenceFn = Callable[[int, int, int, bool], int]
_ChunkFn = Callable[[int, int], bytes]


class _Reject(Exception):
    """Internal: stop translating and return ``status``."""

    def __init__(self, status: int) -> None:
        self.status = status


@dataclass
class _Allocation:
    size: int
    flags: DXGK_ALLOCATIONINFOFLAGS
    resource: int = 0


@dataclass
class _Device:
    contexts: set[int] = field(default_factory=set)
    opened: set[int] = field(default_factory=set)


class ReferenceMiniport:
    """A display miniport that keeps every rule; the harness's default driver."""

    COMMAND_ENCODER = DEFAULT_COMMAND_ENCODER
    GPU_MODEL = DEFAULT_GPU_MODEL
    #: Answer GRAPHICS_ALLOCATION_BUSY once per operation while AllocationIsIdle is clear.
    REPORT_BUSY = False

    def __init__(self) -> None:
        self._handles = count(0x1000, 0x10)
        self.memory_segment_size = 0
        self.aperture_segment_size = 0
        self.allocations: dict[int, _Allocation] = {}
        self.resources: dict[int, set[int]] = {}
        self.opened: dict[int, int] = {}  # device-specific handle -> allocation handle
        self.devices: dict[int, _Device] = {}
        self.contexts: dict[int, int] = {}  # context -> device
        #: The newest SubmissionFenceId and the number of submissions: counters, not a record
        #: of every fence, because one adapter lives through a whole fuzz campaign.
        self.last_submitted_fence = 0
        self.submitted_fence_count = 0

    # ------------------------------------------------------------------ adapter

    def start_device(self, info: DXGK_START_INFO) -> int:
        self.memory_segment_size = info.MemorySegmentSize
        self.aperture_segment_size = info.ApertureSegmentSize
        return STATUS_SUCCESS

    def query_segments(self) -> list[DXGK_SEGMENTDESCRIPTOR]:
        return [
            DXGK_SEGMENTDESCRIPTOR(
                MEMORY_SEGMENT_BASE, self.memory_segment_size, DXGK_SEGMENTFLAGS.CpuVisible
            ),
            DXGK_SEGMENTDESCRIPTOR(
                APERTURE_SEGMENT_BASE,
                self.aperture_segment_size,
                DXGK_SEGMENTFLAGS.Aperture | DXGK_SEGMENTFLAGS.CacheCoherent,
            ),
        ]

    def query_driver_caps(self) -> DXGK_DRIVERCAPS:
        return DXGK_DRIVERCAPS(
            DmaBufferPrivateDataSize=fmt.DMA_PRIVATE_DATA.size,
            SupportsContexts=True,
            SupportsAlternateVA=True,
            MayReportAllocationBusy=self.REPORT_BUSY,
        )

    # ------------------------------------------------------------------ devices, contexts

    def create_device(self, args: DXGKARG_CREATEDEVICE) -> int:
        handle = next(self._handles)
        self.devices[handle] = _Device()
        args.hDevice = handle
        return STATUS_SUCCESS

    def destroy_device(self, hDevice: int) -> int:
        device = self.devices.pop(hDevice, None)
        if device is None:
            return STATUS_INVALID_HANDLE
        for ctx in device.contexts:
            self.contexts.pop(ctx, None)
        for handle in device.opened:
            self.opened.pop(handle, None)
        return STATUS_SUCCESS

    def create_context(self, args: DXGKARG_CREATECONTEXT) -> int:
        device = self.devices.get(args.hDevice)
        if device is None:
            return STATUS_INVALID_HANDLE
        handle = next(self._handles)
        device.contexts.add(handle)
        self.contexts[handle] = args.hDevice
        args.hContext = handle
        return STATUS_SUCCESS

    def destroy_context(self, hContext: int) -> int:
        device = self.contexts.pop(hContext, None)
        if device is None:
            return STATUS_INVALID_HANDLE
        self.devices[device].contexts.discard(hContext)
        return STATUS_SUCCESS

    # ------------------------------------------------------------------ allocations

    def _parse_allocation_data(self, raw: bytes) -> tuple[int, int, fmt.AllocationDataFlags]:
        """(Size, PitchAlignedSize or 0, flags) of valid private data; _Reject otherwise."""
        if len(raw) != fmt.ALLOCATION_DATA.size:
            raise _Reject(STATUS_INVALID_PARAMETER)
        magic, version, flags, size, rows, reserved1 = fmt.ALLOCATION_DATA.unpack(raw)
        if magic != fmt.ALLOCATION_MAGIC:
            raise _Reject(STATUS_INVALID_PARAMETER)
        if version != fmt.ALLOCATION_VERSION:
            raise _Reject(STATUS_GRAPHICS_DRIVER_MISMATCH)
        # flags stays an int: an IntFlag operation builds a flag object each time
        gdi = bool(flags & _DATA_GDI)
        if flags & ~_DATA_KNOWN or reserved1 or size == 0 or gdi != bool(rows):
            raise _Reject(STATUS_INVALID_PARAMETER)
        if flags & _DATA_SWIZZLED and flags & _DATA_APERTURE_ONLY:
            raise _Reject(STATUS_INVALID_PARAMETER)  # swizzled surfaces live in video memory only
        pitched = 0
        if gdi:  # ALC-GDISIZE: the driver sets Size, including the pitch for CPU-visible surfaces
            align = fmt.GDI_PITCH_ALIGNMENT
            pitch = -(-size // align) * align if flags & _DATA_CPU_VISIBLE else size
            size = pitch * rows
            pitched = size if flags & _DATA_CPU_VISIBLE else 0
        aperture_ok = flags & _DATA_APERTURE and not flags & _DATA_SWIZZLED
        data_flags = fmt.AllocationDataFlags(flags)
        if flags & _DATA_APERTURE_ONLY:
            limit = self.aperture_segment_size
        elif aperture_ok:
            limit = max(self.memory_segment_size, self.aperture_segment_size)
        else:  # memory-only: must fit the memory segment
            limit = self.memory_segment_size
        if -(-size // PAGE_SIZE) * PAGE_SIZE > limit:
            raise _Reject(STATUS_INVALID_PARAMETER)
        return size, pitched, data_flags

    def create_allocation(self, args: DXGKARG_CREATEALLOCATION) -> int:
        if args.NumAllocations == 0 or args.NumAllocations != len(args.pAllocationInfo):
            return STATUS_INVALID_PARAMETER
        created: list[int] = []
        try:
            for info in args.pAllocationInfo:
                if info.pPrivateDriverData is None:
                    raise _Reject(STATUS_INVALID_PARAMETER)
                size, pitched, data_flags = self._parse_allocation_data(
                    info.pPrivateDriverData.read(info.PrivateDriverDataSize)
                )
                flags = int(data_flags)  # int & int: no flag object per test
                mem, ap = 1 << MEMORY_SEGMENT_ID, 1 << APERTURE_SEGMENT_ID
                if flags & _DATA_APERTURE_ONLY:
                    segments, preferred = ap, [APERTURE_SEGMENT_ID]
                elif flags & _DATA_APERTURE and not flags & _DATA_SWIZZLED:
                    segments, preferred = mem | ap, [MEMORY_SEGMENT_ID, APERTURE_SEGMENT_ID]
                else:
                    segments, preferred = mem, [MEMORY_SEGMENT_ID]
                out = 0
                for mine, theirs in _INFO_FLAGS:
                    if flags & mine:
                        out |= theirs
                out_flags = DXGK_ALLOCATIONINFOFLAGS(out)
                rounded = -(-size // PAGE_SIZE) * PAGE_SIZE
                info.Size = rounded
                cpu_visible = flags & _DATA_CPU_VISIBLE
                info.PitchAlignedSize = (pitched or rounded) if cpu_visible else 0
                info.Alignment = PAGE_SIZE
                info.SupportedReadSegmentSet = segments
                info.SupportedWriteSegmentSet = segments
                info.EvictionSegmentSet = 0
                info.PreferredSegment = preferred
                info.Flags = out_flags
                handle = next(self._handles)
                self.allocations[handle] = _Allocation(rounded, out_flags)
                created.append(handle)
                info.hAllocation = handle
        except _Reject as reject:
            for handle in created:  # ALC-ATOMIC: leave nothing half-made behind
                del self.allocations[handle]
            for info in args.pAllocationInfo:
                info.hAllocation = 0
            return reject.status
        if args.Flags & DXGK_CREATEALLOCATIONFLAGS.Resource:
            resource = args.hResource if args.hResource in self.resources else next(self._handles)
            self.resources.setdefault(resource, set()).update(created)
            for handle in created:
                self.allocations[handle].resource = resource
            args.hResource = resource
        return STATUS_SUCCESS

    def destroy_allocation(self, args: DXGKARG_DESTROYALLOCATION) -> int:
        for handle in args.pAllocationList[: args.NumAllocations]:
            allocation = self.allocations.pop(handle, None)
            if allocation is not None and allocation.resource:
                self.resources.get(allocation.resource, set()).discard(handle)
        if int(args.Flags) & _DESTROY_RESOURCE and args.hResource:
            self.resources.pop(args.hResource, None)
        return STATUS_SUCCESS

    def open_allocation(self, hDevice: int, args: DXGKARG_OPENALLOCATION) -> int:
        device = self.devices.get(hDevice)
        if device is None:
            return STATUS_INVALID_HANDLE
        if any(info.hAllocation not in self.allocations for info in args.pOpenAllocation):
            return STATUS_INVALID_HANDLE
        for info in args.pOpenAllocation:
            handle = next(self._handles)
            self.opened[handle] = info.hAllocation
            device.opened.add(handle)
            info.hDeviceSpecificAllocation = handle
        return STATUS_SUCCESS

    def close_allocation(self, hDevice: int, args: DXGKARG_CLOSEALLOCATION) -> int:
        device = self.devices.get(hDevice)
        if device is None:
            return STATUS_INVALID_HANDLE
        for handle in args.pOpenHandleList[: args.NumAllocations]:
            self.opened.pop(handle, None)
            device.opened.discard(handle)
        return STATUS_SUCCESS

    # ------------------------------------------------------------------ render

    def render(self, hContext: int, args: DXGKARG_RENDER) -> int:
        if hContext not in self.contexts:
            return STATUS_INVALID_HANDLE
        size = DXGK_ALLOCATIONLIST.SIZE
        raw = args.pAllocationList.read(args.AllocationListSize * size)  # the list, read once
        entries = [DXGK_ALLOCATIONLIST.unpack(raw, i) for i in range(0, len(raw), size)]
        dma = bytearray()
        patches: list[bytes] = []
        room = args.DmaSize - _FENCE.size  # every DMA buffer ends with the fence Patch fills in
        if room < 0:
            return STATUS_INVALID_PARAMETER
        patch_room = args.PatchLocationListOutSize
        staged = b""  # kernel copy of user bytes [consumed, consumed + len(staged))
        consumed = 0
        remaining = args.CommandLength
        status = STATUS_SUCCESS

        def reference(index: int, offset: int, size: int, write: bool) -> int:
            """Validate an allocation reference; return its pre-patch address (0 when paged out)."""
            if not self._in_list(index, len(entries)):
                raise _Reject(STATUS_INVALID_HANDLE)
            entry = self._entry(args, entries, index)
            allocation = self._allocation_of(entry.hDeviceSpecificAllocation)
            if allocation is None:
                raise _Reject(STATUS_INVALID_HANDLE)
            if not self._fits(offset, size, allocation.size):
                raise _Reject(STATUS_INVALID_PARAMETER)
            if write and not self._may_write(entry):
                raise _Reject(STATUS_INVALID_PARAMETER)
            return self._prepatch(entry, offset)

        at = 0  # parse position in staged
        pack_patch = D3DDDI_PATCHLOCATIONLIST.STRUCT.pack
        try:
            while consumed < remaining:
                if len(staged) - at < fmt.HEADER.size:
                    staged, at = self._stage(args, consumed, staged[at:], remaining), 0
                    if len(staged) < fmt.HEADER.size:
                        raise _Reject(STATUS_INVALID_USER_BUFFER)
                opcode, reserved, length = fmt.HEADER.unpack_from(staged, at)
                command = self._lookup(opcode)
                if command is None:
                    raise _Reject(STATUS_ILLEGAL_INSTRUCTION)
                self._check_command(command, reserved)
                if length != command.size:
                    raise _Reject(STATUS_INVALID_USER_BUFFER)
                if len(staged) - at < length:
                    staged, at = self._stage(args, consumed, staged[at:], remaining, length), 0
                    if len(staged) < length:
                        raise _Reject(STATUS_INVALID_USER_BUFFER)
                fields = command.struct.unpack_from(staged, at)[3:]
                emitted, refs = self._translate(opcode, fields, reference, entries)
                if len(emitted) > room or len(refs) > patch_room:
                    if not dma and not patches:
                        raise _Reject(STATUS_INVALID_PARAMETER)  # larger than an empty DMA buffer
                    status = STATUS_GRAPHICS_INSUFFICIENT_DMA_BUFFER
                    break
                base = len(dma)
                for index, alloc_offset, offset in refs:
                    pos = base + offset
                    patches.append(pack_patch(index, 0, 0, alloc_offset, pos, pos))
                dma += emitted
                room -= len(emitted)
                patch_room -= len(refs)
                at += length
                consumed += length
        except _Reject as reject:
            return reject.status
        except UserAccessFault:
            return STATUS_INVALID_PARAMETER  # the __except of the WDK sample

        fence_offset = len(dma)
        dma += _FENCE.struct.pack(_FENCE.opcode, 0)
        args.pDmaBuffer.write(dma)
        args.pDmaBuffer += len(dma)
        if patches:
            args.pPatchLocationListOut.write(b"".join(patches))
            args.pPatchLocationListOut += len(patches)
        if (
            args.pDmaBufferPrivateData is not None
            and args.DmaBufferPrivateDataSize >= fmt.DMA_PRIVATE_DATA.size
        ):
            args.pDmaBufferPrivateData.write(
                fmt.DMA_PRIVATE_DATA.pack(fmt.DMA_PRIVATE_MAGIC, fence_offset)
            )
        if status != STATUS_SUCCESS:
            args.pCommand += consumed
        return status

    @staticmethod
    def _stage(
        args: DXGKARG_RENDER, consumed: int, staged: bytes, remaining: int, need: int = 0
    ) -> bytes:
        """Copy the next user bytes into kernel memory, each byte once (REN-COPYFIRST)."""
        start = consumed + len(staged)
        take = min(remaining - start, max(STAGING_CHUNK, need - len(staged)))
        if take <= 0:
            return staged
        return staged + args.pCommand.read(take, start)

    @staticmethod
    def _lookup(opcode: int) -> fmt.UserCommand | None:
        """The user command ``opcode`` (0-255) names; None for an unknown opcode."""
        return fmt.BY_OPCODE.get(opcode)

    @staticmethod
    def _check_command(command: fmt.UserCommand, reserved: int) -> None:
        """REN-VALIDATE: privileged user commands never reach the GPU, whatever the header's
        ``reserved`` byte holds (the reference ignores it; it switches nothing off)."""
        if command.privileged:
            raise _Reject(STATUS_PRIVILEGED_INSTRUCTION)

    @staticmethod
    def _in_list(index: int, count: int) -> bool:
        """REN-VALIDATE: an allocation index names an entry of the list (unsigned compare)."""
        return index < count

    @staticmethod
    def _entry(
        args: DXGKARG_RENDER, entries: list[DXGK_ALLOCATIONLIST], index: int
    ) -> DXGK_ALLOCATIONLIST:
        """The allocation-list entry ``index`` (already validated)."""
        return entries[index]

    @staticmethod
    def _fits(offset: int, size: int, allocation_size: int) -> bool:
        """REN-VALIDATE: ``size`` bytes at ``offset`` lie inside the allocation (no wrap: 64-bit sum)."""
        return offset + size <= allocation_size

    @staticmethod
    def _may_write(entry: DXGK_ALLOCATIONLIST) -> bool:
        """REN-ALLOCINDEX: only allocations marked WriteOperation may be written."""
        return entry.WriteOperation

    @staticmethod
    def _prepatch(entry: DXGK_ALLOCATIONLIST, offset: int) -> int:
        """REN-PREPATCH: the segment address when SegmentId != 0; 0 (never trusted) when paged out."""
        return entry.PhysicalAddress + offset if entry.SegmentId else 0

    def _allocation_of(self, device_handle: int) -> _Allocation | None:
        handle = self.opened.get(device_handle)
        return None if handle is None else self.allocations.get(handle)

    @staticmethod
    def _translate(
        opcode: int,
        fields: tuple[int, ...],
        reference: _ReferenceFn,
        entries: list[DXGK_ALLOCATIONLIST],
    ) -> tuple[bytes, list[tuple[int, int, int]]]:
        """GPU bytes for one validated user command, and its references (index, offset, byte in the bytes)."""
        if opcode in (fmt.U_COPY, fmt.U_XOR):
            dst_i, dst_o, src_i, src_o, size = fields
            dst = reference(dst_i, dst_o, size, True)
            src = reference(src_i, src_o, size, False)
            ins = _COPY if opcode == fmt.U_COPY else _XOR
            return ins.struct.pack(ins.opcode, dst, src, size), [
                (dst_i, dst_o, 4),
                (src_i, src_o, 12),
            ]
        if opcode == fmt.U_FILL:
            dst_i, dst_o, size, pattern = fields
            dst = reference(dst_i, dst_o, size, True)
            return _FILL.struct.pack(_FILL.opcode, dst, size, pattern), [(dst_i, dst_o, 4)]
        if opcode == fmt.U_WRITE:
            dst_i, dst_o, value = fields
            dst = reference(dst_i, dst_o, 4, True)
            return _WRITE.struct.pack(_WRITE.opcode, 4, dst, value), [(dst_i, dst_o, 4)]
        if opcode == fmt.U_BIND:
            slot, index, offset = fields
            if index < len(entries) and entries[index].hDeviceSpecificAllocation == 0:
                return _BIND.struct.pack(_BIND.opcode, slot, 0), [
                    (index, 0, 8)
                ]  # the NULL element unbinds
            addr = reference(index, offset, 0, False)
            return _BIND.struct.pack(_BIND.opcode, slot, addr), [(index, offset, 8)]
        if opcode == fmt.U_VERSION:
            if fields[0] != fmt.INTERFACE_VERSION:
                raise _Reject(STATUS_GRAPHICS_DRIVER_MISMATCH)
            return b"", []
        return b"", []  # U_NOP

    # ------------------------------------------------------------------ patch and submit

    def patch(self, args: DXGKARG_PATCH) -> int:
        start, end = args.DmaBufferSubmissionStartOffset, args.DmaBufferSubmissionEndOffset
        if not int(args.Flags) & _PAGING and args.pPatchLocationList is not None:
            length = args.PatchLocationListSubmissionLength
            raw = args.pPatchLocationList.read(
                length * D3DDDI_PATCHLOCATIONLIST.SIZE,
                args.PatchLocationListSubmissionStart * D3DDDI_PATCHLOCATIONLIST.SIZE,
            )
            # Patch a copy of the submission range, then write it back in one piece.
            window = bytearray(args.pDmaBuffer.read(end - start, start))
            addresses: dict[int, int] = {}
            for (
                index,
                _,
                _,
                alloc_offset,
                patch_offset,
                _,
            ) in D3DDDI_PATCHLOCATIONLIST.STRUCT.iter_unpack(raw):
                if index >= args.AllocationListSize or not start <= patch_offset <= end - 8:
                    continue
                base = addresses.get(index)
                if base is None and args.pAllocationList is not None:
                    entry = DXGK_ALLOCATIONLIST.read(args.pAllocationList, index)
                    base = addresses[index] = (
                        entry.PhysicalAddress if entry.hDeviceSpecificAllocation else -1
                    )
                address = 0 if base is None or base < 0 else base + alloc_offset
                _U64.pack_into(window, patch_offset - start, address)
            if raw:
                args.pDmaBuffer.write(window, start)
        if (
            args.pDmaBufferPrivateData is not None
            and args.DmaBufferPrivateDataSize >= fmt.DMA_PRIVATE_DATA.size
        ):
            magic, fence_offset = fmt.DMA_PRIVATE_DATA.unpack(
                args.pDmaBufferPrivateData.read(fmt.DMA_PRIVATE_DATA.size)
            )
            if (
                magic == fmt.DMA_PRIVATE_MAGIC
                and start <= fence_offset
                and fence_offset + _FENCE.size <= end
            ):
                args.pDmaBuffer.write(_U64.pack(args.SubmissionFenceId), fence_offset + 4)
        return STATUS_SUCCESS

    def submit_command(self, args: DXGKARG_SUBMITCOMMAND) -> int:
        self.last_submitted_fence = args.SubmissionFenceId
        self.submitted_fence_count += 1
        return STATUS_SUCCESS

    # ------------------------------------------------------------------ paging

    def build_paging_buffer(self, args: DXGKARG_BUILDPAGINGBUFFER) -> int:
        op = args.Operation
        ops = DXGK_BUILDPAGINGBUFFER_OPERATION
        if op in (ops.DXGK_OPERATION_TRANSFER, ops.DXGK_OPERATION_SPECIAL_LOCK_TRANSFER):
            transfer = (
                args.Transfer if op == ops.DXGK_OPERATION_TRANSFER else args.SpecialLockTransfer
            )
            if self._busy(args, transfer.hAllocation, bool(int(transfer.Flags) & _IDLE)):
                return STATUS_GRAPHICS_ALLOCATION_BUSY
            return self._build_transfer(args, transfer)
        if op == ops.DXGK_OPERATION_FILL:
            fill = args.Fill
            base = fill.Destination.SegmentAddress
            return self._emit_chunks(
                args,
                fill.FillSize,
                PAGING_CHUNK,
                _FILL.size,
                lambda done, n: _FILL.struct.pack(_FILL.opcode, base + done, n, fill.FillPattern),
            )
        if op == ops.DXGK_OPERATION_DISCARD_CONTENT:
            discard = args.DiscardContent
            idle = bool(discard.Flags & DXGK_DISCARDCONTENTFLAGS.AllocationIsIdle)
            if self._busy(args, discard.hAllocation, idle):
                return STATUS_GRAPHICS_ALLOCATION_BUSY
            return STATUS_SUCCESS
        if op in (ops.DXGK_OPERATION_READ_PHYSICAL, ops.DXGK_OPERATION_WRITE_PHYSICAL):
            phys = (
                args.ReadPhysical if op == ops.DXGK_OPERATION_READ_PHYSICAL else args.WritePhysical
            )
            width = min(max(phys.Size, 1), 8)
            if op == ops.DXGK_OPERATION_READ_PHYSICAL:
                ins = isa.encode("READ", width, phys.PhysicalAddress)
            else:
                ins = isa.encode("WRITE", width, phys.PhysicalAddress, 0)
            return self._emit_chunks(args, 1, 1, len(ins), lambda done, n: ins)
        if op == ops.DXGK_OPERATION_MAP_APERTURE_SEGMENT:
            amap = args.MapApertureSegment
            mdl = amap.pMdl
            if mdl is None:
                return STATUS_SUCCESS
            flags = isa.PTE_VALID | (
                isa.PTE_CACHE_COHERENT if amap.Flags & DXGK_MAPAPERTUREFLAGS.CacheCoherent else 0
            )
            return self._emit_chunks(
                args,
                amap.NumberOfPages,
                1,
                _PTE.size,
                lambda done, n: _PTE.struct.pack(
                    _PTE.opcode, amap.OffsetInPages + done, flags, mdl.pfns[amap.MdlOffset + done]
                ),
            )
        if op == ops.DXGK_OPERATION_UNMAP_APERTURE_SEGMENT:
            unmap = args.UnmapApertureSegment
            dummy = unmap.DummyPage // PAGE_SIZE
            return self._emit_chunks(
                args,
                unmap.NumberOfPages,
                1,
                _PTE.size,
                lambda done, n: _PTE.struct.pack(
                    _PTE.opcode, unmap.OffsetInPages + done, isa.PTE_VALID, dummy
                ),
            )
        return STATUS_SUCCESS

    def _busy(self, args: DXGKARG_BUILDPAGINGBUFFER, hAllocation: int, idle: bool) -> bool:
        """The optional busy behaviour: ask for the allocation to go idle once, never when it is idle."""
        return self.REPORT_BUSY and bool(hAllocation) and not idle and args.MultipassOffset == 0

    def _emit_chunks(
        self,
        args: DXGKARG_BUILDPAGINGBUFFER,
        total: int,
        chunk: int,
        ins_size: int,
        make: _ChunkFn,
    ) -> int:
        """Emit ``make(done, n)`` for successive chunks of ``total`` units, resuming at MultipassOffset."""
        out = bytearray()
        room = args.DmaSize
        done = args.MultipassOffset
        while done < total:
            if room < ins_size:
                break
            n = min(chunk, total - done)
            out += make(done, n)
            room -= ins_size
            done += n
        args.pDmaBuffer.write(out)
        args.pDmaBuffer += len(out)
        args.MultipassOffset = done
        return STATUS_SUCCESS if done >= total else STATUS_GRAPHICS_INSUFFICIENT_DMA_BUFFER

    def _build_transfer(
        self, args: DXGKARG_BUILDPAGINGBUFFER, t: DXGK_BUILDPAGINGBUFFER_TRANSFER
    ) -> int:
        flags = int(t.Flags)  # int & int: an IntFlag operation builds a flag object
        swizzle = bool(t.hAllocation) and bool(flags & _SWIZZLE)
        unswizzle = bool(t.hAllocation) and bool(flags & _UNSWIZZLE)
        ins = _SWZCOPY if swizzle else _UNSWZCOPY if unswizzle else _COPY
        first = args.MultipassOffset == 0
        starts = first and bool(flags & _TRANSFER_START)
        ends = bool(flags & _TRANSFER_END)
        out = bytearray()
        room = args.DmaSize - (_REG.size if ends else 0)
        ins_size = ins.size
        if starts:
            if room < _REG.size + ins_size:
                return STATUS_GRAPHICS_INSUFFICIENT_DMA_BUFFER
            out += _REG.struct.pack(
                _REG.opcode, REG_TRANSFER_IN_PROGRESS, t.hAllocation & 0xFFFFFFFF
            )
            room -= _REG.size
        done = args.MultipassOffset
        src, dst, size, pack = t.Source, t.Destination, t.TransferSize, ins.struct.pack
        by_page = src.SegmentId == 0 or dst.SegmentId == 0  # an MDL: one page at a time
        while done < size and room >= ins_size:
            pos = t.TransferOffset + done
            n = min(size - done, PAGING_CHUNK)
            if by_page:
                n = min(n, PAGE_SIZE - pos % PAGE_SIZE)
            out += pack(ins.opcode, _location(dst, pos), _location(src, pos), n)
            room -= ins_size
            done += n
        if done >= t.TransferSize and ends:
            out += _REG.struct.pack(_REG.opcode, REG_TRANSFER_IN_PROGRESS, 0)
        args.pDmaBuffer.write(out)
        args.pDmaBuffer += len(out)
        args.MultipassOffset = done
        return STATUS_SUCCESS if done >= t.TransferSize else STATUS_GRAPHICS_INSUFFICIENT_DMA_BUFFER


def _location(loc: DXGK_TRANSFER_LOCATION, allocation_offset: int) -> int:
    """GPU physical address of allocation byte ``allocation_offset`` at a transfer location."""
    if loc.SegmentId == 0:
        if loc.pMdl is None:
            return 0
        return loc.pMdl.physical_address(allocation_offset)
    return loc.SegmentAddress + allocation_offset


class ContractReferenceMiniport(ReferenceMiniport):
    """The reference driver in guaranteed-contract DMA mode: it rejects, never splits, a big buffer.

    REN-CONTRACT: a command buffer that needs more than the DMA buffer is rejected.
    """

    def query_driver_caps(self) -> DXGK_DRIVERCAPS:
        return dataclasses.replace(super().query_driver_caps(), GuaranteedContractDma=True)

    def render(self, hContext: int, args: DXGKARG_RENDER) -> int:
        dma, patches = args.pDmaBuffer, args.pPatchLocationListOut
        status = super().render(hContext, args)
        if status == STATUS_GRAPHICS_INSUFFICIENT_DMA_BUFFER:
            args.pDmaBuffer, args.pPatchLocationListOut = dma, patches
            return STATUS_INVALID_PARAMETER
        return status


class BusyReferenceMiniport(ReferenceMiniport):
    """The reference driver with the optional ALLOCATION_BUSY behaviour on (exercises the kernel's retry)."""

    REPORT_BUSY = True
