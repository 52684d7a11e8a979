"""DDI structures with WDK field names (d3dkmddi.h / d3dukmdt.h, x64 layout).

Two kinds of structure live here:

* Array elements the driver reads and writes as raw memory -- DXGK_ALLOCATIONLIST
  and D3DDDI_PATCHLOCATIONLIST -- are packed exactly as on x64 (24 bytes each) and
  accessed through :class:`~wddm_conformance.memory.Ptr`, so a lying input list,
  an overflow or a TOCTOU race behaves as it would in C.
* Argument blocks (DXGKARG_RENDER, DXGKARG_PATCH, DXGKARG_BUILDPAGINGBUFFER,
  DXGKARG_CREATEALLOCATION, ...) are dataclasses whose pointer fields are ``Ptr``.
  The driver advances the [in/out] cursors by assigning to the fields.
* Arrays of structures or handles the kernel owns (``pAllocationInfo``, ``pOpenAllocation``,
  ``pOpenHandleList``, the destroy list) are Python lists of a fixed length, named with
  their count field in the block's ``KERNEL_ARRAYS``. The driver fills in fields of
  the elements; changing a list itself (its length, an element object, the pointer
  field) is ALL-READONLY, as C gives the driver no way to do it.

Only the fields the seeds and DDI_FACTS.md name are modelled; fields the harness
adds for its own model are marked "harness:" in their comments.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum, IntFlag
from typing import ClassVar, Final

from .memory import Ptr

PAGE_SIZE: Final = 4096


# --------------------------------------------------------------------------- arrays


@dataclass(slots=True)
class DXGK_ALLOCATIONLIST:
    """One element of the kernel-mode allocation list given to Render and Patch.

    x64 layout: HANDLE hDeviceSpecificAllocation (8); UINT WriteOperation:1,
    SegmentId:5, Reserved:26 (4, then 4 padding); PHYSICAL_ADDRESS PhysicalAddress (8).
    SegmentId 0 means "no pre-patch information" (paged out). The header comments the
    SegmentId mask as 0x2E; by bit position it is 0x3E.
    """

    hDeviceSpecificAllocation: int = 0
    WriteOperation: bool = False
    SegmentId: int = 0
    PhysicalAddress: int = 0

    STRUCT: ClassVar[struct.Struct] = struct.Struct("<QI4xQ")
    #: Bytes of one entry (24: the x64 layout).
    SIZE: ClassVar[int] = STRUCT.size
    WRITE_OPERATION_MASK: ClassVar[int] = 0x1
    SEGMENT_ID_MASK: ClassVar[int] = 0x3E

    def pack(self) -> bytes:
        bits = (1 if self.WriteOperation else 0) | ((self.SegmentId & 0x1F) << 1)
        return self.STRUCT.pack(self.hDeviceSpecificAllocation, bits, self.PhysicalAddress)

    @classmethod
    def unpack(cls, raw: bytes | bytearray | memoryview, offset: int = 0) -> DXGK_ALLOCATIONLIST:
        handle, bits, address = cls.STRUCT.unpack_from(raw, offset)
        return cls(handle, bool(bits & 1), (bits >> 1) & 0x1F, address)

    @classmethod
    def read(cls, base: Ptr, index: int) -> DXGK_ALLOCATIONLIST:
        """Read element ``index`` of the array at ``base``."""
        return cls.unpack(base.read(cls.SIZE, index * cls.SIZE))


@dataclass(slots=True)
class D3DDDI_PATCHLOCATIONLIST:
    """One patch location (24 bytes): where an allocation's address goes in a DMA buffer.

    AllocationIndex indexes the allocation list; SlotId is 24 bits of the ``Value``
    union; AllocationOffset is added to the allocation's address; PatchOffset is the
    byte offset in the DMA buffer to write; SplitOffset values must be strictly
    increasing within a list.
    """

    AllocationIndex: int = 0
    SlotId: int = 0
    DriverId: int = 0
    AllocationOffset: int = 0
    PatchOffset: int = 0
    SplitOffset: int = 0

    STRUCT: ClassVar[struct.Struct] = struct.Struct("<6I")
    #: Bytes of one entry (24).
    SIZE: ClassVar[int] = STRUCT.size

    def pack(self) -> bytes:
        return self.STRUCT.pack(
            self.AllocationIndex,
            self.SlotId & 0xFFFFFF,
            self.DriverId,
            self.AllocationOffset,
            self.PatchOffset,
            self.SplitOffset,
        )

    @classmethod
    def unpack(
        cls, raw: bytes | bytearray | memoryview, offset: int = 0
    ) -> D3DDDI_PATCHLOCATIONLIST:
        index, value, driver_id, alloc_off, patch_off, split_off = cls.STRUCT.unpack_from(
            raw, offset
        )
        return cls(index, value & 0xFFFFFF, driver_id, alloc_off, patch_off, split_off)

    @classmethod
    def read(cls, base: Ptr, index: int) -> D3DDDI_PATCHLOCATIONLIST:
        """Read element ``index`` of the array at ``base``."""
        return cls.unpack(base.read(cls.SIZE, index * cls.SIZE))

    def write(self, base: Ptr, index: int = 0) -> None:
        """Write this entry as element ``index`` of the array at ``base``."""
        base.write(self.pack(), index * self.SIZE)


def pack_patch_list(entries: list[D3DDDI_PATCHLOCATIONLIST]) -> bytes:
    """Pack a patch-location list as user mode would hand it to Render."""
    return b"".join(e.pack() for e in entries)


def unpack_patch_list(
    raw: bytes | bytearray | memoryview, count: int
) -> list[D3DDDI_PATCHLOCATIONLIST]:
    """Unpack ``count`` patch locations from raw bytes."""
    return [
        D3DDDI_PATCHLOCATIONLIST.unpack(raw, i * D3DDDI_PATCHLOCATIONLIST.SIZE)
        for i in range(count)
    ]


# --------------------------------------------------------------------------- adapter


class DXGK_SEGMENTFLAGS(IntFlag):
    """Segment flags (subset of DXGK_SEGMENTFLAGS)."""

    Aperture = 0x1
    Agp = 0x2
    CpuVisible = 0x4
    UseBanking = 0x8
    CacheCoherent = 0x10


_APERTURE = int(DXGK_SEGMENTFLAGS.Aperture)


@dataclass(frozen=True, slots=True)
class DXGK_SEGMENTDESCRIPTOR:
    """A segment the driver reports through DxgkDdiQueryAdapterInfo(DXGKQAITYPE_QUERYSEGMENT).

    Segment IDs are the 1-based positions in the reported list. BaseAddress is the
    segment's GPU physical base address; the memory manager hands the driver
    addresses ``BaseAddress + offset``.
    """

    BaseAddress: int
    Size: int
    Flags: DXGK_SEGMENTFLAGS

    @property
    def is_aperture(self) -> bool:
        flags = self.Flags
        # int & int: an IntFlag operation builds a flag object, and this runs per GPU access
        return bool((int(flags) if isinstance(flags, int) else flags) & _APERTURE)


@dataclass(frozen=True, slots=True)
class DXGK_DRIVERCAPS:
    """Driver capabilities (DxgkDdiQueryAdapterInfo, DXGKQAITYPE_DRIVERCAPS): the fields the harness uses."""

    #: Size of the driver's private data per DMA buffer (bytes).
    DmaBufferPrivateDataSize: int = 0
    #: harness: the driver supports DxgkDdiCreateContext (else hContext is the device handle).
    SupportsContexts: bool = True
    #: harness: the driver supports UseAlternateVA locks, so it may be asked for SPECIAL_LOCK_TRANSFER.
    SupportsAlternateVA: bool = False
    #: harness: the driver may answer GRAPHICS_ALLOCATION_BUSY (optional feature).
    MayReportAllocationBusy: bool = False
    #: harness: the driver runs in guaranteed-contract DMA mode (REN-CONTRACT).
    GuaranteedContractDma: bool = False


@dataclass(frozen=True, slots=True)
class DXGK_START_INFO:
    """What DxgkDdiStartDevice learns about the hardware (harness: the emulated adapter's resources)."""

    MemorySegmentSize: int
    ApertureSegmentSize: int


# --------------------------------------------------------------------------- devices and contexts


@dataclass(slots=True)
class DXGKARG_CREATEDEVICE:
    """DxgkDdiCreateDevice arguments: the driver returns hDevice."""

    hDevice: int = 0  # [out]
    Flags: int = 0


@dataclass(slots=True)
class DXGKARG_CREATECONTEXT:
    """DxgkDdiCreateContext arguments: the driver returns hContext."""

    hDevice: int = 0  # [in]
    NodeOrdinal: int = 0
    EngineAffinity: int = 0
    Flags: int = 0
    hContext: int = 0  # [out]


# --------------------------------------------------------------------------- allocations


class DXGK_ALLOCATIONINFOFLAGS(IntFlag):
    """DXGK_ALLOCATIONINFOFLAGS bits (DDI_FACTS.md)."""

    CpuVisible = 0x1
    PermanentSysMem = 0x2
    Cached = 0x4
    Protected = 0x8
    ExistingSysMem = 0x10
    ExistingKernelSysMem = 0x20
    FromEndOfSegment = 0x40
    Swizzled = 0x80
    Overlay = 0x100
    Capture = 0x200
    UseAlternateVA = 0x400
    SynchronousPaging = 0x800
    LinkMirrored = 0x1000
    LinkInstanced = 0x2000
    HistoryBuffer = 0x4000


class DXGK_CREATEALLOCATIONFLAGS(IntFlag):
    """DXGKARG_CREATEALLOCATION.Flags bits."""

    Resource = 0x1


@dataclass(slots=True)
class DXGK_ALLOCATIONINFO:
    """Per-allocation in/out block of DxgkDdiCreateAllocation.

    In: pPrivateDriverData / PrivateDriverDataSize (from the UMD). Out: everything the
    memory manager needs to place the allocation. Segment sets are bit masks:
    bit N set = segment N.
    """

    pPrivateDriverData: Ptr | None = None
    PrivateDriverDataSize: int = 0
    Alignment: int = 0
    Size: int = 0
    PitchAlignedSize: int = 0
    HintedBank: int = 0
    #: Up to five preferred segment IDs, best first (the SegmentId:5 of each entry).
    PreferredSegment: list[int] = field(default_factory=list)
    SupportedReadSegmentSet: int = 0
    SupportedWriteSegmentSet: int = 0
    EvictionSegmentSet: int = 0
    MaximumRenamingListLength: int = 0
    hAllocation: int = 0  # [out]
    Flags: DXGK_ALLOCATIONINFOFLAGS = DXGK_ALLOCATIONINFOFLAGS(0)
    AllocationPriority: int = 0


@dataclass(slots=True)
class DXGKARG_CREATEALLOCATION:
    """DxgkDdiCreateAllocation arguments."""

    pPrivateDriverData: Ptr | None = None
    PrivateDriverDataSize: int = 0
    NumAllocations: int = 0
    pAllocationInfo: list[DXGK_ALLOCATIONINFO] = field(default_factory=list)
    hResource: int = 0  # [in/out]
    Flags: DXGK_CREATEALLOCATIONFLAGS = DXGK_CREATEALLOCATIONFLAGS(0)

    #: harness: (array, its count field) the kernel owns: fixed length, elements kept.
    KERNEL_ARRAYS: ClassVar[tuple[tuple[str, str], ...]] = (("pAllocationInfo", "NumAllocations"),)


class DXGK_DESTROYALLOCATIONFLAGS(IntFlag):
    """DXGKARG_DESTROYALLOCATION.Flags bits."""

    DestroyResource = 0x1


@dataclass(slots=True)
class DXGKARG_DESTROYALLOCATION:
    """DxgkDdiDestroyAllocation arguments."""

    NumAllocations: int = 0
    pAllocationList: list[int] = field(default_factory=list)
    hResource: int = 0
    Flags: DXGK_DESTROYALLOCATIONFLAGS = DXGK_DESTROYALLOCATIONFLAGS(0)

    KERNEL_ARRAYS: ClassVar[tuple[tuple[str, str], ...]] = (("pAllocationList", "NumAllocations"),)


@dataclass(slots=True)
class DXGK_OPENALLOCATIONINFO:
    """One allocation opened for a device: the driver returns hDeviceSpecificAllocation."""

    hAllocation: int = 0  # [in] the adapter-wide handle from CreateAllocation
    hDeviceSpecificAllocation: int = 0  # [out]


@dataclass(slots=True)
class DXGKARG_OPENALLOCATION:
    """DxgkDdiOpenAllocation arguments."""

    NumAllocations: int = 0
    pOpenAllocation: list[DXGK_OPENALLOCATIONINFO] = field(default_factory=list)
    Flags: int = 0

    KERNEL_ARRAYS: ClassVar[tuple[tuple[str, str], ...]] = (("pOpenAllocation", "NumAllocations"),)


@dataclass(slots=True)
class DXGKARG_CLOSEALLOCATION:
    """DxgkDdiCloseAllocation arguments."""

    NumAllocations: int = 0
    pOpenHandleList: list[int] = field(default_factory=list)

    KERNEL_ARRAYS: ClassVar[tuple[tuple[str, str], ...]] = (("pOpenHandleList", "NumAllocations"),)


# --------------------------------------------------------------------------- render and patch


@dataclass(slots=True)
class DXGKARG_RENDER:
    """DxgkDdiRender arguments.

    [in/out] cursors: the driver advances ``pDmaBuffer`` and ``pPatchLocationListOut``
    past what it wrote, and ``pCommand`` past what it consumed when it stops early with
    GRAPHICS_INSUFFICIENT_DMA_BUFFER. ``DmaSize``, ``CommandLength`` and
    ``PatchLocationListOutSize`` are [in]: sizes available from the pointers as given.
    """

    pCommand: Ptr
    CommandLength: int
    pDmaBuffer: Ptr
    DmaSize: int
    pDmaBufferPrivateData: Ptr | None
    DmaBufferPrivateDataSize: int
    pAllocationList: Ptr
    AllocationListSize: int
    pPatchLocationListIn: Ptr | None
    PatchLocationListInSize: int
    pPatchLocationListOut: Ptr
    PatchLocationListOutSize: int
    MultipassOffset: int = 0
    DmaBufferSegmentId: int = 0
    DmaBufferPhysicalAddress: int = 0


class DXGK_PATCHFLAGS(IntFlag):
    """DXGKARG_PATCH.Flags bits."""

    Paging = 0x1
    Present = 0x2
    RedirectedPresent = 0x4
    NullRendering = 0x8


@dataclass(slots=True)
class DXGKARG_PATCH:
    """DxgkDdiPatch arguments: patch ``[DmaBufferSubmissionStartOffset, EndOffset)`` in place."""

    hContext: int
    DmaBufferSegmentId: int
    DmaBufferPhysicalAddress: int
    pDmaBuffer: Ptr
    DmaBufferSize: int
    DmaBufferSubmissionStartOffset: int
    DmaBufferSubmissionEndOffset: int
    pDmaBufferPrivateData: Ptr | None
    DmaBufferPrivateDataSize: int
    DmaBufferPrivateDataSubmissionStartOffset: int
    DmaBufferPrivateDataSubmissionEndOffset: int
    pAllocationList: Ptr | None
    AllocationListSize: int
    pPatchLocationList: Ptr | None
    PatchLocationListSize: int
    PatchLocationListSubmissionStart: int
    PatchLocationListSubmissionLength: int
    SubmissionFenceId: int
    Flags: DXGK_PATCHFLAGS = DXGK_PATCHFLAGS(0)
    EngineOrdinal: int = 0


@dataclass(slots=True)
class DXGKARG_SUBMITCOMMAND:
    """DxgkDdiSubmitCommand arguments: the scheduler hands a patched DMA buffer range to the driver."""

    hContext: int
    DmaBufferSegmentId: int
    DmaBufferPhysicalAddress: int
    DmaBufferSize: int
    DmaBufferSubmissionStartOffset: int
    DmaBufferSubmissionEndOffset: int
    pDmaBufferPrivateData: Ptr | None
    DmaBufferPrivateDataSize: int
    SubmissionFenceId: int
    Flags: DXGK_PATCHFLAGS = DXGK_PATCHFLAGS(0)


# --------------------------------------------------------------------------- paging


class DXGK_BUILDPAGINGBUFFER_OPERATION(IntEnum):
    """The classic paging operations (8 and up are WDDM 2.x virtual addressing)."""

    DXGK_OPERATION_TRANSFER = 0
    DXGK_OPERATION_FILL = 1
    DXGK_OPERATION_DISCARD_CONTENT = 2
    DXGK_OPERATION_READ_PHYSICAL = 3
    DXGK_OPERATION_WRITE_PHYSICAL = 4
    DXGK_OPERATION_MAP_APERTURE_SEGMENT = 5
    DXGK_OPERATION_UNMAP_APERTURE_SEGMENT = 6
    DXGK_OPERATION_SPECIAL_LOCK_TRANSFER = 7


class DXGK_TRANSFERFLAGS(IntFlag):
    """Flags of Transfer and SpecialLockTransfer."""

    Swizzle = 0x1
    Unswizzle = 0x2
    AllocationIsIdle = 0x4
    TransferStart = 0x8
    TransferEnd = 0x10


class DXGK_DISCARDCONTENTFLAGS(IntFlag):
    """Flags of DiscardContent."""

    AllocationIsIdle = 0x1


class DXGK_MAPAPERTUREFLAGS(IntFlag):
    """Flags of MapApertureSegment."""

    CacheCoherent = 0x1


@dataclass(frozen=True, slots=True)
class MDL:
    """A memory descriptor list: the system-memory page frames behind an allocation.

    ``pfns[i]`` is the page frame of page ``i``; the physical address of byte ``b`` is
    ``pfns[b // PAGE_SIZE] * PAGE_SIZE + b % PAGE_SIZE``.
    """

    pfns: tuple[int, ...]
    ByteCount: int

    def physical_address(self, byte_offset: int) -> int:
        return self.pfns[byte_offset // PAGE_SIZE] * PAGE_SIZE + byte_offset % PAGE_SIZE


@dataclass(slots=True)
class DXGK_TRANSFER_LOCATION:
    """Source or Destination of a transfer: a segment address, or an MDL when SegmentId is 0."""

    SegmentId: int = 0
    SegmentAddress: int = 0
    pMdl: MDL | None = None


@dataclass(slots=True)
class DXGK_BUILDPAGINGBUFFER_TRANSFER:
    """Transfer members (and SpecialLockTransfer, which adds the swizzling range)."""

    hAllocation: int = 0
    TransferOffset: int = 0
    TransferSize: int = 0
    Source: DXGK_TRANSFER_LOCATION = field(default_factory=DXGK_TRANSFER_LOCATION)
    Destination: DXGK_TRANSFER_LOCATION = field(default_factory=DXGK_TRANSFER_LOCATION)
    Flags: DXGK_TRANSFERFLAGS = DXGK_TRANSFERFLAGS(0)
    MdlOffset: int = 0  # in pages
    SwizzlingRangeId: int = 0  # SpecialLockTransfer only
    SwizzlingRangeData: int = 0  # SpecialLockTransfer only


@dataclass(slots=True)
class DXGK_FILL_DESTINATION:
    """Fill destination: always a memory segment."""

    SegmentId: int = 0
    SegmentAddress: int = 0


@dataclass(slots=True)
class DXGK_BUILDPAGINGBUFFER_FILL:
    """Fill members."""

    hAllocation: int = 0
    FillSize: int = 0
    FillPattern: int = 0
    Destination: DXGK_FILL_DESTINATION = field(default_factory=DXGK_FILL_DESTINATION)


@dataclass(slots=True)
class DXGK_BUILDPAGINGBUFFER_DISCARDCONTENT:
    """DiscardContent members."""

    hAllocation: int = 0
    Flags: DXGK_DISCARDCONTENTFLAGS = DXGK_DISCARDCONTENTFLAGS(0)
    SegmentId: int = 0
    SegmentAddress: int = 0


@dataclass(slots=True)
class DXGK_BUILDPAGINGBUFFER_PHYSICAL:
    """ReadPhysical / WritePhysical members.

    harness: ``Size`` (1 to 8) is the access width the seed describes; the WDK
    structure leaves it to the driver's hardware.
    """

    SegmentId: int = 0
    PhysicalAddress: int = 0
    Size: int = 4


@dataclass(slots=True)
class DXGK_BUILDPAGINGBUFFER_MAPAPERTURESEGMENT:
    """MapApertureSegment members."""

    hDevice: int = 0
    hAllocation: int = 0
    SegmentId: int = 0
    OffsetInPages: int = 0
    NumberOfPages: int = 0
    pMdl: MDL | None = None
    Flags: DXGK_MAPAPERTUREFLAGS = DXGK_MAPAPERTUREFLAGS(0)
    MdlOffset: int = 0


@dataclass(slots=True)
class DXGK_BUILDPAGINGBUFFER_UNMAPAPERTURESEGMENT:
    """UnmapApertureSegment members: map the range to DummyPage."""

    hDevice: int = 0
    hAllocation: int = 0
    SegmentId: int = 0
    OffsetInPages: int = 0
    NumberOfPages: int = 0
    DummyPage: int = 0  # PHYSICAL_ADDRESS


@dataclass(slots=True)
class DXGKARG_BUILDPAGINGBUFFER:
    """DxgkDdiBuildPagingBuffer arguments.

    ``Operation`` selects which one of the per-operation members is meaningful (the
    union of the C structure). The driver advances ``pDmaBuffer`` past what it wrote
    and may keep progress in ``MultipassOffset``; the kernel sets MultipassOffset to 0
    before the first call of an operation and never changes it between calls.
    """

    pDmaBuffer: Ptr
    DmaSize: int
    pDmaBufferPrivateData: Ptr | None
    DmaBufferPrivateDataSize: int
    Operation: DXGK_BUILDPAGINGBUFFER_OPERATION
    Transfer: DXGK_BUILDPAGINGBUFFER_TRANSFER = field(
        default_factory=DXGK_BUILDPAGINGBUFFER_TRANSFER
    )
    Fill: DXGK_BUILDPAGINGBUFFER_FILL = field(default_factory=DXGK_BUILDPAGINGBUFFER_FILL)
    DiscardContent: DXGK_BUILDPAGINGBUFFER_DISCARDCONTENT = field(
        default_factory=DXGK_BUILDPAGINGBUFFER_DISCARDCONTENT
    )
    ReadPhysical: DXGK_BUILDPAGINGBUFFER_PHYSICAL = field(
        default_factory=DXGK_BUILDPAGINGBUFFER_PHYSICAL
    )
    WritePhysical: DXGK_BUILDPAGINGBUFFER_PHYSICAL = field(
        default_factory=DXGK_BUILDPAGINGBUFFER_PHYSICAL
    )
    MapApertureSegment: DXGK_BUILDPAGINGBUFFER_MAPAPERTURESEGMENT = field(
        default_factory=DXGK_BUILDPAGINGBUFFER_MAPAPERTURESEGMENT
    )
    UnmapApertureSegment: DXGK_BUILDPAGINGBUFFER_UNMAPAPERTURESEGMENT = field(
        default_factory=DXGK_BUILDPAGINGBUFFER_UNMAPAPERTURESEGMENT
    )
    SpecialLockTransfer: DXGK_BUILDPAGINGBUFFER_TRANSFER = field(
        default_factory=DXGK_BUILDPAGINGBUFFER_TRANSFER
    )
    hSystemContext: int = 0
    MultipassOffset: int = 0
