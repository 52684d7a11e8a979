"""The second driver: a display miniport written from docs/INTERPRETING.md alone.

It makes legal choices the reference does not make:

* its own user-mode format (:mod:`.umd`), GPU ISA and address map (:mod:`.gpu`, :mod:`.isa`),
  and segment order: segment 1 is the aperture, segment 2 video memory;
* allocation ``Size`` rounded up to 64 KiB, and bounds judged on that size;
* a swizzled allocation that may live only in the aperture is refused (INVALID_PARAMETER);
* Render snapshots the remaining command buffer once per call, validates all of it, and
  translates big operations into 128-byte GPU instructions; a split call may stop inside a
  user command (``MultipassOffset`` = instructions of it already emitted) and the next
  call reads the user bytes again;
* the output patch list holds an instruction's entries last operand first, so it is not
  sorted by PatchOffset; SplitOffset is the instruction's start plus the entry's rank;
* Patch finds the fence by decoding the submission range (no DMA private data);
* paging operations are cut into pieces of its own size (4 KiB against an MDL, 8 KiB
  segment to segment, 16 KiB fills, one page-table entry per instruction), with
  ``MultipassOffset`` counting pieces; DISCARD_CONTENT answers ALLOCATION_BUSY until the
  allocation is idle;
* handles from its own numbering, in separate ranges per kind.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from typing import Final

from wddm_conformance import status as st
from wddm_conformance.ddi import (
    D3DDDI_PATCHLOCATIONLIST,
    DXGK_ALLOCATIONINFO,
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
from wddm_conformance.memory import Ptr, UserAccessFault

from . import isa, umd
from .gpu import APERTURE_BASE, MEMORY_BASE, SecondGpu
from .umd import SecondEncoder

OP = DXGK_BUILDPAGINGBUFFER_OPERATION
SIZE_GRANULE: Final = 64 * 1024
PITCH_ALIGN: Final = 256
RENDER_CHUNK: Final = 128
MDL_CHUNK: Final = PAGE_SIZE
SEGMENT_CHUNK: Final = 8192
FILL_CHUNK: Final = 16384
FENCE_SIZE: Final = isa.FORMS[isa.SIGNAL].size


def _round_up(value: int, granule: int) -> int:
    return -(-value // granule) * granule


@dataclass
class _Allocation:
    size: int  # the Size the driver reported
    flags: int  # umd flags
    resource: int = 0


@dataclass
class _Ref:
    """A patchable address in one GPU instruction: operand, allocation-list index, offset."""

    operand: str
    index: int
    offset: int
    slot: int = 0


@dataclass
class _Chunk:
    """One GPU instruction of a translated command, with its allocation references."""

    opcode: int
    operands: dict[str, int]
    refs: list[_Ref] = field(default_factory=list)
    modifier: int = 0

    @property
    def size(self) -> int:
        return isa.FORMS[self.opcode].size


class _Reject(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class SecondMiniport:
    """A WDDM miniport for the S2 GPU (see the module docstring for its choices)."""

    COMMAND_ENCODER = SecondEncoder
    GPU_MODEL = SecondGpu

    APERTURE_SEGMENT: Final = 1
    MEMORY_SEGMENT: Final = 2

    def __init__(self) -> None:
        self.memory_size = 0
        self.aperture_size = 0
        self._serial = 0
        self.devices: dict[int, set[int]] = {}  # hDevice -> its open (device-specific) handles
        self.contexts: dict[int, int] = {}  # hContext -> hDevice
        self.allocations: dict[int, _Allocation] = {}
        self.opened: dict[int, tuple[int, int]] = {}  # device-specific -> (hDevice, hAllocation)
        self.resources: dict[int, set[int]] = {}
        self._entries: dict[int, DXGK_ALLOCATIONLIST] = {}

    def _handle(self, base: int) -> int:
        self._serial += 1
        return base + (self._serial << 4)

    # ------------------------------------------------------------------ adapter

    def start_device(self, info: DXGK_START_INFO) -> int:
        self.memory_size = info.MemorySegmentSize
        self.aperture_size = info.ApertureSegmentSize
        return st.STATUS_SUCCESS

    def query_segments(self) -> list[DXGK_SEGMENTDESCRIPTOR]:
        return [
            DXGK_SEGMENTDESCRIPTOR(
                APERTURE_BASE,
                self.aperture_size,
                DXGK_SEGMENTFLAGS.Aperture | DXGK_SEGMENTFLAGS.CacheCoherent,
            ),
            DXGK_SEGMENTDESCRIPTOR(MEMORY_BASE, self.memory_size, DXGK_SEGMENTFLAGS.CpuVisible),
        ]

    def query_driver_caps(self) -> DXGK_DRIVERCAPS:
        return DXGK_DRIVERCAPS(
            DmaBufferPrivateDataSize=0,
            SupportsContexts=True,
            SupportsAlternateVA=False,
            MayReportAllocationBusy=True,
            GuaranteedContractDma=False,
        )

    # ------------------------------------------------------------------ devices, contexts

    def create_device(self, args: DXGKARG_CREATEDEVICE) -> int:
        handle = self._handle(0xDE000000)
        self.devices[handle] = set()
        args.hDevice = handle
        return st.STATUS_SUCCESS

    def destroy_device(self, hDevice: int) -> int:
        opened = self.devices.pop(hDevice, None)
        if opened is None:
            return st.STATUS_INVALID_HANDLE
        for h in opened:
            self.opened.pop(h, None)
        for ctx in [c for c, d in self.contexts.items() if d == hDevice]:
            del self.contexts[ctx]
        return st.STATUS_SUCCESS

    def create_context(self, args: DXGKARG_CREATECONTEXT) -> int:
        if args.hDevice not in self.devices:
            return st.STATUS_INVALID_HANDLE
        handle = self._handle(0x7C000000)
        self.contexts[handle] = args.hDevice
        args.hContext = handle
        return st.STATUS_SUCCESS

    def destroy_context(self, hContext: int) -> int:
        if self.contexts.pop(hContext, None) is None:
            return st.STATUS_INVALID_HANDLE
        return st.STATUS_SUCCESS

    # ------------------------------------------------------------------ allocations

    def create_allocation(self, args: DXGKARG_CREATEALLOCATION) -> int:
        if args.NumAllocations == 0:
            return st.STATUS_INVALID_PARAMETER
        made: list[tuple[DXGK_ALLOCATIONINFO, _Allocation]] = []
        for info in args.pAllocationInfo:
            try:
                made.append((info, self._describe(info)))
            except _Reject as reject:
                return reject.status
        resource = 0
        if args.Flags & DXGK_CREATEALLOCATIONFLAGS.Resource:
            resource = args.hResource
            if resource not in self.resources:
                resource = self._handle(0x5E000000)
                self.resources[resource] = set()
                args.hResource = resource
        for info, allocation in made:
            handle = self._handle(0xA1100000)
            allocation.resource = resource
            self.allocations[handle] = allocation
            if resource:
                self.resources[resource].add(handle)
            info.hAllocation = handle
        return st.STATUS_SUCCESS

    def _describe(self, info: DXGK_ALLOCATIONINFO) -> _Allocation:
        """Parse one allocation's private data and fill in ``info`` (all but hAllocation)."""
        if info.pPrivateDriverData is None or info.PrivateDriverDataSize != umd.ALLOC_DATA_SIZE:
            raise _Reject(st.STATUS_INVALID_PARAMETER)
        raw = info.pPrivateDriverData.read(umd.ALLOC_DATA_SIZE)
        magic, version, flags, reserved, size, rows, reserved2 = umd.ALLOC_STRUCT.unpack_from(raw)
        if magic != umd.ALLOC_MAGIC:
            raise _Reject(st.STATUS_INVALID_PARAMETER)
        if version != umd.ALLOC_VERSION:
            raise _Reject(st.STATUS_GRAPHICS_DRIVER_MISMATCH)
        (crc,) = struct.unpack_from("<I", raw, umd.ALLOC_STRUCT.size)
        if crc != zlib.crc32(raw[: umd.ALLOC_STRUCT.size]) or reserved or reserved2:
            raise _Reject(st.STATUS_INVALID_PARAMETER)
        if flags & ~umd.F_ALL or size == 0:
            raise _Reject(st.STATUS_INVALID_PARAMETER)
        aperture_only = bool(flags & umd.F_APERTURE_ONLY)
        if aperture_only and not flags & umd.F_APERTURE:
            raise _Reject(st.STATUS_INVALID_PARAMETER)
        swizzled = bool(flags & umd.F_SWIZZLED)
        if swizzled and aperture_only:  # our aperture cannot linearize a tiled surface
            raise _Reject(st.STATUS_INVALID_PARAMETER)
        cpu_visible = bool(flags & umd.F_CPU_VISIBLE)
        pixels = size * rows if rows else size
        pitch_aligned = 0
        if rows and cpu_visible:
            pitch_aligned = _round_up(size, PITCH_ALIGN) * rows
        total = _round_up(max(pixels, pitch_aligned), SIZE_GRANULE)
        memory = 1 << self.MEMORY_SEGMENT
        aperture = 1 << self.APERTURE_SEGMENT
        if aperture_only:
            segments, preferred, room = aperture, [self.APERTURE_SEGMENT], self.aperture_size
        elif swizzled or not flags & umd.F_APERTURE:
            segments, preferred, room = memory, [self.MEMORY_SEGMENT], self.memory_size
        else:
            segments = memory | aperture
            preferred = [self.MEMORY_SEGMENT, self.APERTURE_SEGMENT]
            room = max(self.memory_size, self.aperture_size)
        if total > room:
            raise _Reject(st.STATUS_INVALID_PARAMETER)
        out_flags = DXGK_ALLOCATIONINFOFLAGS(0)
        if cpu_visible:
            out_flags |= DXGK_ALLOCATIONINFOFLAGS.CpuVisible
            if not swizzled:
                out_flags |= DXGK_ALLOCATIONINFOFLAGS.Cached
        if swizzled:
            out_flags |= DXGK_ALLOCATIONINFOFLAGS.Swizzled
        if flags & umd.F_HISTORY:
            out_flags |= DXGK_ALLOCATIONINFOFLAGS.HistoryBuffer
        info.Size = total
        info.Alignment = SIZE_GRANULE
        info.PitchAlignedSize = pitch_aligned
        info.PreferredSegment = preferred
        info.SupportedReadSegmentSet = segments
        info.SupportedWriteSegmentSet = segments
        info.EvictionSegmentSet = 0
        info.Flags = out_flags
        return _Allocation(total, flags)

    def destroy_allocation(self, args: DXGKARG_DESTROYALLOCATION) -> int:
        for handle in args.pAllocationList:
            allocation = self.allocations.pop(handle, None)
            if allocation is not None and allocation.resource in self.resources:
                self.resources[allocation.resource].discard(handle)
            for h in [h for h, (_, a) in self.opened.items() if a == handle]:
                device, _ = self.opened.pop(h)
                self.devices.get(device, set()).discard(h)
        if args.Flags & DXGK_DESTROYALLOCATIONFLAGS.DestroyResource:
            self.resources.pop(args.hResource, None)
        return st.STATUS_SUCCESS

    def open_allocation(self, hDevice: int, args: DXGKARG_OPENALLOCATION) -> int:
        device = self.devices.get(hDevice)
        if device is None:
            return st.STATUS_INVALID_HANDLE
        if any(info.hAllocation not in self.allocations for info in args.pOpenAllocation):
            return st.STATUS_INVALID_HANDLE
        for info in args.pOpenAllocation:
            handle = self._handle(0x0B000000)
            self.opened[handle] = (hDevice, info.hAllocation)
            device.add(handle)
            info.hDeviceSpecificAllocation = handle
        return st.STATUS_SUCCESS

    def close_allocation(self, hDevice: int, args: DXGKARG_CLOSEALLOCATION) -> int:
        device = self.devices.get(hDevice)
        for handle in args.pOpenHandleList:
            if self.opened.get(handle, (0, 0))[0] == hDevice:
                del self.opened[handle]
                if device is not None:
                    device.discard(handle)
        return st.STATUS_SUCCESS

    # ------------------------------------------------------------------ render

    def render(self, hContext: int, args: DXGKARG_RENDER) -> int:
        device = self.contexts.get(hContext)
        if device is None:
            return st.STATUS_INVALID_HANDLE
        try:
            raw = args.pCommand.read(args.CommandLength) if args.CommandLength > 0 else b""
        except UserAccessFault:
            return st.STATUS_INVALID_PARAMETER
        try:
            commands = self._translate(raw, args, device)
        except _Reject as reject:
            return reject.status
        return self._emit(commands, args)

    def _translate(
        self, raw: bytes, args: DXGKARG_RENDER, device: int
    ) -> list[tuple[int, list[_Chunk]]]:
        """Validate the whole snapshot; (offset of each command, its GPU instructions)."""
        out: list[tuple[int, list[_Chunk]]] = []
        entries: dict[int, DXGK_ALLOCATIONLIST] = {}

        def entry(index: int) -> DXGK_ALLOCATIONLIST:
            if not 0 <= index < args.AllocationListSize:
                raise _Reject(st.STATUS_INVALID_HANDLE)
            if index not in entries:
                entries[index] = DXGK_ALLOCATIONLIST.read(args.pAllocationList, index)
            return entries[index]

        def allocation(index: int, offset: int, size: int, write: bool) -> _Allocation:
            e = entry(index)
            owner, handle = self.opened.get(e.hDeviceSpecificAllocation, (0, 0))
            target = self.allocations.get(handle)
            if e.hDeviceSpecificAllocation == 0 or owner != device or target is None:
                raise _Reject(st.STATUS_INVALID_HANDLE)
            if offset + size > target.size:
                raise _Reject(st.STATUS_INVALID_PARAMETER)
            if write and not e.WriteOperation:
                raise _Reject(st.STATUS_INVALID_PARAMETER)
            return target

        pos = 0
        while pos < len(raw):
            if len(raw) - pos < 4:
                raise _Reject(st.STATUS_INVALID_USER_BUFFER)
            words, opcode, reserved = struct.unpack_from("<BBH", raw, pos)
            if opcode in umd.PRIVILEGED:
                raise _Reject(st.STATUS_PRIVILEGED_INSTRUCTION)
            if opcode not in umd.WORDS or reserved:
                raise _Reject(st.STATUS_ILLEGAL_INSTRUCTION)
            if words != umd.WORDS[opcode] or pos + 4 * words > len(raw):
                raise _Reject(st.STATUS_INVALID_USER_BUFFER)
            w = struct.unpack_from(f"<{words - 1}I", raw, pos + 4)
            chunks: list[_Chunk] = []
            if opcode == umd.VERSION:
                if w[0] != umd.UMD_VERSION:
                    raise _Reject(st.STATUS_GRAPHICS_DRIVER_MISMATCH)
            elif opcode == umd.STORE32:
                index, offset, value = w
                allocation(index, offset, 4, True)
                chunks.append(
                    _Chunk(isa.STORE, {"value": value}, [_Ref("dst", index, offset)], modifier=4)
                )
            elif opcode == umd.FILL:
                size, pattern, index, offset = w
                allocation(index, offset, size, True)
                for at in range(0, size, RENDER_CHUNK):
                    n = min(RENDER_CHUNK, size - at)
                    chunks.append(
                        _Chunk(
                            isa.SET,
                            {"size": n, "pattern": pattern},
                            [_Ref("dst", index, offset + at)],
                        )
                    )
            elif opcode in (umd.COPY, umd.XOR):
                size, s_index, s_offset, d_index, d_offset = w
                source = allocation(s_index, s_offset, size, False)
                target = allocation(d_index, d_offset, size, True)
                starts = list(range(0, size, RENDER_CHUNK))
                if source is target and d_offset > s_offset:
                    starts.reverse()  # memmove: the overlapping tail first
                gpu_op = isa.MOVE if opcode == umd.COPY else isa.MIX
                for at in starts:
                    n = min(RENDER_CHUNK, size - at)
                    chunks.append(
                        _Chunk(
                            gpu_op,
                            {"size": n},
                            [
                                _Ref("src", s_index, s_offset + at),
                                _Ref("dst", d_index, d_offset + at),
                            ],
                        )
                    )
            elif opcode == umd.BIND:
                slot, index, offset = w
                if entry(index).hDeviceSpecificAllocation != 0:
                    allocation(index, offset, 0, False)
                chunks.append(_Chunk(isa.SLOT, {"slot": slot}, [_Ref("addr", index, offset, slot)]))
            out.append((pos, chunks))
            pos += 4 * words
        self._entries = entries
        return out

    def _address(self, ref: _Ref) -> int:
        """The pre-patched address of a reference: 0 for the NULL element or a paged-out one."""
        e = self._entries[ref.index]
        if e.hDeviceSpecificAllocation == 0 or e.SegmentId == 0:
            return 0
        return (e.PhysicalAddress + ref.offset) & 0xFFFFFFFFFFFFFFFF

    def _emit(self, commands: list[tuple[int, list[_Chunk]]], args: DXGKARG_RENDER) -> int:
        dma = bytearray()
        patches: list[D3DDDI_PATCHLOCATIONLIST] = []
        resume = args.MultipassOffset
        result = st.STATUS_SUCCESS
        stop_at: tuple[int, int] | None = None
        for number, (offset, chunks) in enumerate(commands):
            first = min(resume, len(chunks)) if number == 0 else 0
            for k in range(first, len(chunks)):
                chunk = chunks[k]
                if (
                    len(dma) + chunk.size + FENCE_SIZE > args.DmaSize
                    or len(patches) + len(chunk.refs) > args.PatchLocationListOutSize
                ):
                    if not dma:  # one instruction larger than an empty DMA buffer
                        return st.STATUS_INVALID_PARAMETER
                    stop_at = (offset, k)
                    break
                form = isa.FORMS[chunk.opcode]
                operands = dict(chunk.operands)
                # An instruction's entries last operand first (so PatchOffsets are not
                # sorted); SplitOffset is where the buffer may be cut before the instruction,
                # plus the entry's rank, to stay strictly increasing (DDI_FACTS).
                for rank, ref in enumerate(reversed(chunk.refs)):
                    operands[ref.operand] = self._address(ref)
                    patches.append(
                        D3DDDI_PATCHLOCATIONLIST(
                            AllocationIndex=ref.index,
                            SlotId=ref.slot,
                            AllocationOffset=ref.offset,
                            PatchOffset=len(dma) + form.addresses[ref.operand],
                            SplitOffset=len(dma) + rank,
                        )
                    )
                dma += isa.encode(
                    chunk.opcode, *(operands[n] for n in form.operands), modifier=chunk.modifier
                )
            if stop_at is not None:
                break
        if len(dma) + FENCE_SIZE <= args.DmaSize:
            dma += isa.encode(isa.SIGNAL, 0)
        if stop_at is not None:
            result = st.STATUS_GRAPHICS_INSUFFICIENT_DMA_BUFFER
            args.pCommand += stop_at[0]
            args.MultipassOffset = stop_at[1]
        else:
            args.MultipassOffset = 0
        args.pDmaBuffer.write(bytes(dma))
        args.pDmaBuffer += len(dma)
        out: Ptr = args.pPatchLocationListOut
        for position, patch in enumerate(patches):
            patch.write(out, position)
        args.pPatchLocationListOut += len(patches)
        return result

    # ------------------------------------------------------------------ patch, submit

    def patch(self, args: DXGKARG_PATCH) -> int:
        if args.Flags & DXGK_PATCHFLAGS.Paging:
            return st.STATUS_SUCCESS
        start, end = args.DmaBufferSubmissionStartOffset, args.DmaBufferSubmissionEndOffset
        if args.pPatchLocationList is not None and args.pAllocationList is not None:
            first = args.PatchLocationListSubmissionStart
            for i in range(first, first + args.PatchLocationListSubmissionLength):
                location = D3DDDI_PATCHLOCATIONLIST.read(args.pPatchLocationList, i)
                if location.AllocationIndex >= args.AllocationListSize:
                    continue
                if not start <= location.PatchOffset <= end - 8:
                    continue
                e = DXGK_ALLOCATIONLIST.read(args.pAllocationList, location.AllocationIndex)
                address = 0
                if e.hDeviceSpecificAllocation != 0:
                    address = (e.PhysicalAddress + location.AllocationOffset) & (2**64 - 1)
                args.pDmaBuffer.write(struct.pack("<Q", address), location.PatchOffset)
        self._patch_fences(args, start, end)
        return st.STATUS_SUCCESS

    def _patch_fences(self, args: DXGKARG_PATCH, start: int, end: int) -> None:
        """Write SubmissionFenceId into every SIGNAL of the submission range."""
        pos = start
        while pos + 4 <= end:
            opcode, _, length = isa.decode_header(
                struct.unpack("<I", args.pDmaBuffer.read(4, pos))[0]
            )
            if length < 4 or pos + length > end:
                return
            if opcode == isa.SIGNAL:
                args.pDmaBuffer.write(struct.pack("<Q", args.SubmissionFenceId), pos + 4)
            pos += length

    def submit_command(self, args: DXGKARG_SUBMITCOMMAND) -> int:
        return st.STATUS_SUCCESS

    # ------------------------------------------------------------------ paging

    def build_paging_buffer(self, args: DXGKARG_BUILDPAGINGBUFFER) -> int:
        op = args.Operation
        if op == OP.DXGK_OPERATION_TRANSFER:
            return self._pieces(args, self._transfer(args.Transfer))
        if op == OP.DXGK_OPERATION_FILL:
            fill = args.Fill
            pieces = [
                isa.encode(
                    isa.SET,
                    min(FILL_CHUNK, fill.FillSize - at),
                    fill.FillPattern & 0xFFFFFFFF,
                    fill.Destination.SegmentAddress + at,
                )
                for at in range(0, fill.FillSize, FILL_CHUNK)
            ]
            return self._pieces(args, pieces)
        if op == OP.DXGK_OPERATION_DISCARD_CONTENT:
            if not args.DiscardContent.Flags & DXGK_DISCARDCONTENTFLAGS.AllocationIsIdle:
                return st.STATUS_GRAPHICS_ALLOCATION_BUSY
            return st.STATUS_SUCCESS
        if op in (OP.DXGK_OPERATION_READ_PHYSICAL, OP.DXGK_OPERATION_WRITE_PHYSICAL):
            reading = op == OP.DXGK_OPERATION_READ_PHYSICAL
            phys = args.ReadPhysical if reading else args.WritePhysical
            width = min(max(phys.Size, 1), 8)
            piece = (
                isa.encode(isa.LOAD, phys.PhysicalAddress, modifier=width)
                if reading
                else isa.encode(isa.STORE, 0x5EC0DD21, phys.PhysicalAddress, modifier=width)
            )
            return self._pieces(args, [piece])
        if op == OP.DXGK_OPERATION_MAP_APERTURE_SEGMENT:
            m = args.MapApertureSegment
            flags = isa.PTE_VALID
            if m.Flags & DXGK_MAPAPERTUREFLAGS.CacheCoherent:
                flags |= isa.PTE_COHERENT
            pfns = m.pMdl.pfns if m.pMdl is not None else ()
            pieces = [
                isa.encode(isa.PTE, m.OffsetInPages + i, flags, pfns[m.MdlOffset + i])
                for i in range(m.NumberOfPages)
            ]
            return self._pieces(args, pieces)
        if op == OP.DXGK_OPERATION_UNMAP_APERTURE_SEGMENT:
            u = args.UnmapApertureSegment
            pieces = [
                isa.encode(isa.PTE, u.OffsetInPages + i, isa.PTE_VALID, u.DummyPage // PAGE_SIZE)
                for i in range(u.NumberOfPages)
            ]
            return self._pieces(args, pieces)
        return st.STATUS_SUCCESS  # SPECIAL_LOCK_TRANSFER is never asked (no AlternateVA support)

    @staticmethod
    def _pieces(args: DXGKARG_BUILDPAGINGBUFFER, pieces: list[bytes]) -> int:
        """Emit pieces from ``MultipassOffset`` on while they fit; count progress in it."""
        out = bytearray()
        done = args.MultipassOffset
        while done < len(pieces) and len(out) + len(pieces[done]) <= args.DmaSize:
            out += pieces[done]
            done += 1
        args.pDmaBuffer.write(bytes(out))
        args.pDmaBuffer += len(out)
        if done < len(pieces):
            args.MultipassOffset = done
            return st.STATUS_GRAPHICS_INSUFFICIENT_DMA_BUFFER
        args.MultipassOffset = 0
        return st.STATUS_SUCCESS

    @staticmethod
    def _transfer(t: DXGK_BUILDPAGINGBUFFER_TRANSFER) -> list[bytes]:
        mdl_side = t.Source.SegmentId == 0 or t.Destination.SegmentId == 0
        step = MDL_CHUNK if mdl_side else SEGMENT_CHUNK
        tile = bool(t.hAllocation and t.Flags & DXGK_TRANSFERFLAGS.Swizzle)
        untile = bool(t.hAllocation and t.Flags & DXGK_TRANSFERFLAGS.Unswizzle)
        pieces: list[bytes] = []
        at = t.TransferOffset
        end = t.TransferOffset + t.TransferSize
        while at < end:
            n = min(end, (at // step + 1) * step) - at
            src = _location(t.Source, at)
            dst = _location(t.Destination, at)
            if tile and t.Destination.SegmentId:
                pieces.append(isa.encode(isa.TILE, n, at, src, t.Destination.SegmentAddress))
            elif untile and t.Source.SegmentId:
                pieces.append(isa.encode(isa.UNTILE, n, at, t.Source.SegmentAddress, dst))
            else:
                pieces.append(isa.encode(isa.MOVE, n, src, dst))
            at += n
        same = t.Source.SegmentId and t.Source.SegmentId == t.Destination.SegmentId
        if same and t.Source.SegmentAddress < t.Destination.SegmentAddress:
            pieces.reverse()  # an overlapping move up a segment: the tail first
        return pieces


def _location(where: DXGK_TRANSFER_LOCATION, offset: int) -> int:
    """GPU address of allocation byte ``offset`` at a transfer's source or destination."""
    if where.SegmentId:
        return where.SegmentAddress + offset
    if where.pMdl is None:
        return 0
    return where.pMdl.physical_address(offset)


Miniport = SecondMiniport
