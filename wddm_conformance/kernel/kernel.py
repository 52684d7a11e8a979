"""The simulated dxgkrnl: one adapter, its driver, its GPU, and the objects user mode creates.

>>> k = Kernel("reference")
>>> dev = k.create_device(); ctx = k.create_context(dev)
>>> a, b = k.create_allocations(dev, [AllocationRequest(4096), AllocationRequest(4096)])
>>> k.cpu_write(b, 0, b"hello")
>>> r = k.run_program(ctx, [None, a, b], [Copy(AllocRef(1), AllocRef(2), 5)])
>>> k.cpu_read(a, 0, 5)
b'hello'

Deterministic: the same driver, mode, config (seed) and calls give the same events.
"""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from collections.abc import Sequence
from operator import attrgetter

from ..ddi import (
    D3DDDI_PATCHLOCATIONLIST,
    DXGK_ALLOCATIONINFO,
    DXGK_ALLOCATIONINFOFLAGS,
    DXGK_CREATEALLOCATIONFLAGS,
    DXGK_DESTROYALLOCATIONFLAGS,
    DXGK_DRIVERCAPS,
    DXGK_OPENALLOCATIONINFO,
    DXGK_SEGMENTDESCRIPTOR,
    DXGK_START_INFO,
    DXGKARG_CLOSEALLOCATION,
    DXGKARG_CREATEALLOCATION,
    DXGKARG_CREATECONTEXT,
    DXGKARG_CREATEDEVICE,
    DXGKARG_DESTROYALLOCATION,
    DXGKARG_OPENALLOCATION,
    PAGE_SIZE,
)
from ..driver import DDI_METHODS, AllocationRequest, DriverSpec, load_driver
from ..errors import DriverLoadError, DriverViolation, HarnessError
from ..memory import KernelBuffer
from ..program import Op, apply, out_of_bounds, referenced_indices, written_indices
from ..status import CREATE_ALLOCATION_STATUSES, STATUS_SUCCESS, status_name
from ..sysmem import SystemMemory
from ..watchdog import Invoker, WatchdogInvoker
from .ddicall import DdiCaller, memory_violations, require_status
from .handles import HandleTable
from .modes import KernelConfig, KernelMode
from .objects import Allocation, Change, Context, Device, State, Tiling
from .scheduler import AllocationUse, RenderResult, Scheduler
from .vidmm import VidMm


@dataclasses.dataclass(frozen=True)
class ProgramSubmission:
    """A program encoded for Render (:meth:`Kernel.encode_program`)."""

    command: bytes
    uses: tuple[AllocationUse, ...]
    #: The encoder's pPatchLocationListIn: the honest input list.
    patch_locations: tuple[D3DDDI_PATCHLOCATIONLIST, ...]
    out_of_bounds: tuple[str, ...]


#: Bytes the dummy page holds, so reads through an unmapped aperture range are recognisable.
DUMMY_PATTERN = b"DUMMYPG!"
CREATE = DDI_METHODS["create_allocation"]
CREATE_CONTEXT = DDI_METHODS["create_context"]
OPEN = DDI_METHODS["open_allocation"]
_INFO_FIELDS = attrgetter(*(f.name for f in dataclasses.fields(DXGK_ALLOCATIONINFO)))


def _own_copy(info: DXGK_ALLOCATIONINFO) -> DXGK_ALLOCATIONINFO:
    """The kernel's copy of what the driver filled in: the driver may keep the original and write it later."""
    copy = DXGK_ALLOCATIONINFO(*_INFO_FIELDS(info))
    copy.PreferredSegment = list(copy.PreferredSegment)
    return copy


class Kernel:
    """A deterministic model of dxgkrnl's memory manager and scheduler driving one miniport."""

    def __init__(
        self,
        driver: DriverSpec | str = "reference",
        mode: KernelMode | str = KernelMode(),
        config: KernelConfig = KernelConfig(),
        invoker: Invoker | None = None,
    ) -> None:
        self.spec = load_driver(driver) if isinstance(driver, str) else driver
        self.mode = KernelMode.parse(mode) if isinstance(mode, str) else mode
        self.config = config.for_mode(self.mode)
        self.rng = random.Random(self.config.seed)
        self.driver = self.spec.instantiate()
        #: The D3DKMT_HANDLEs given out for allocations and resources (DxgkCbGetHandleData).
        self.handles = HandleTable()
        attach = getattr(self.driver, "attach_kernel_handles", None)
        if getattr(type(self.driver), "KERNEL_FINDINGS", False) and callable(attach):
            attach(self.handles)  # a native adapter: its runtime answers the callbacks from it
        self.encoder = self.spec.encoder()
        self.caller = DdiCaller(
            self.driver,
            invoker or WatchdogInvoker(self.config.ddi_timeout),
            abandon_on_tdr=self.config.abandon_on_tdr,
        )
        self.sysmem = SystemMemory()
        info = DXGK_START_INFO(self.config.memory_segment_size, self.config.aperture_segment_size)
        self.gpu = self.spec.gpu(self.sysmem, info)
        self.tiling = Tiling(self.gpu)
        status = self.caller.call("start_device", info)
        if status != STATUS_SUCCESS:
            raise DriverLoadError(
                f"driver {self.spec.spec!r}: DxgkDdiStartDevice returned {status_name(status)}"
            )
        self.segments = self._query_segments()
        caps = self.caller.call("query_driver_caps")
        if not isinstance(caps, DXGK_DRIVERCAPS) or not (
            isinstance(caps.DmaBufferPrivateDataSize, int)
            and 0 <= caps.DmaBufferPrivateDataSize <= 1 << 20
        ):
            raise DriverLoadError(
                f"driver {self.spec.spec!r}: query_driver_caps returned {caps!r}, not a DXGK_DRIVERCAPS "
                f"with a DmaBufferPrivateDataSize of 0 to 1 MiB"
            )
        self.caps = caps
        dummy = self.sysmem.allocate(1)[0]
        self.dummy_page_address = dummy * PAGE_SIZE
        self.sysmem.write(
            self.dummy_page_address, DUMMY_PATTERN * (PAGE_SIZE // len(DUMMY_PATTERN))
        )
        #: Aperture page addresses the kernel has unmapped to the dummy page.
        self.dummy_mapped: set[int] = set()
        self.vidmm = VidMm(self)
        self.scheduler = Scheduler(self)
        self.devices: list[Device] = []
        self.allocations: dict[int, Allocation] = {}
        self._next_allocation = 1
        #: The status of the last DxgkDdiCreateAllocation call (for checks of failing batches).
        self.last_create_status: int = STATUS_SUCCESS

    def _query_segments(self) -> dict[int, DXGK_SEGMENTDESCRIPTOR]:
        segments = self.caller.call("query_segments")
        if (
            not isinstance(segments, list)
            or not segments
            or not all(isinstance(s, DXGK_SEGMENTDESCRIPTOR) and s.Size > 0 for s in segments)
        ):
            raise DriverLoadError(
                f"driver {self.spec.spec!r}: query_segments returned {segments!r}, not a non-empty list of "
                f"DXGK_SEGMENTDESCRIPTOR"
            )
        return {i + 1: s for i, s in enumerate(segments)}

    # ------------------------------------------------------------------ devices and contexts

    def create_device(self) -> Device:
        args = DXGKARG_CREATEDEVICE()
        require_status(
            DDI_METHODS["create_device"],
            self.caller.call("create_device", args),
            frozenset({STATUS_SUCCESS}),
            "ALL-NORAISE",
        )
        device = Device(args.hDevice)
        self.devices.append(device)
        return device

    def create_context(self, device: Device) -> Context:
        if not self.caps.SupportsContexts:
            context = Context(device.hDevice, device)  # REN-CONTEXT: the device handle stands in
        else:
            args = DXGKARG_CREATECONTEXT(hDevice=device.hDevice)
            status = self.caller.call("create_context", args)
            require_status(CREATE_CONTEXT, status, frozenset({STATUS_SUCCESS}), "REN-CONTEXT")
            handle = args.hContext
            live = {c.hContext for d in self.devices for c in d.contexts if c.state == State.ACTIVE}
            if not isinstance(handle, int) or isinstance(handle, bool) or not 0 < handle < 1 << 64:
                raise DriverViolation(
                    "REN-CONTEXT",
                    CREATE_CONTEXT,
                    f"returned hContext {handle!r}: not a non-NULL 64-bit handle Render can be called with",
                )
            if handle in live:
                raise DriverViolation(
                    "REN-CONTEXT",
                    CREATE_CONTEXT,
                    f"returned hContext 0x{handle:X}, which names another live context",
                )
            context = Context(handle, device)
        device.contexts.append(context)
        return context

    def destroy_device(self, device: Device) -> None:
        """Destroy a device: its contexts, its opened allocation handles, then the device itself.

        The kernel forgets it: :attr:`devices` lists the devices that exist.
        """
        if self.caps.SupportsContexts:
            for context in device.contexts:
                if context.state == State.ACTIVE:
                    self.caller.call("destroy_context", context.hContext)
                    context.transition(Change.DESTROY)
        handles = [
            a.opened.pop(id(device)) for a in self.allocations.values() if id(device) in a.opened
        ]
        for a in self.allocations.values():
            self.handles.close(device, a)
        if handles:
            self.caller.call(
                "close_allocation", device.hDevice, DXGKARG_CLOSEALLOCATION(len(handles), handles)
            )
        self.caller.call("destroy_device", device.hDevice)
        device.transition(Change.DESTROY)
        self.devices.remove(device)

    def lose_device(self, device: Device, reason: str) -> None:
        """Put ``device`` in the lost state: the kernel refuses its further submissions (REN-DEVICELOST)."""
        device.transition(Change.LOSE)
        device.lost_reason = reason

    # ------------------------------------------------------------------ allocations

    def create_allocations(
        self,
        device: Device,
        requests: Sequence[AllocationRequest | bytes],
        *,
        resource: int | None = None,
        allow_failure: bool = False,
    ) -> list[Allocation]:
        """DxgkDdiCreateAllocation for a batch; requests are encoded by the driver's command encoder.

        ``resource`` None creates plain allocations; 0 starts a new resource; a handle adds to it.
        Raw ``bytes`` are passed as private data untouched (for malformed-data tests). With
        ``allow_failure`` a failing status returns an empty list instead of raising.
        """
        args, infos, status = self._call_create_allocation(requests, resource)
        self.last_create_status = status
        if status != STATUS_SUCCESS:
            self._probe_half_made(device, infos, status)
            if allow_failure:
                return []
            raise DriverViolation(
                "ALC-PRIVDATA", CREATE, f"rejected valid private data with {status_name(status)}"
            )
        self._judge_allocation_info(infos)
        self._judge_resource(resource, args.hResource)
        self._judge_requests(requests, infos)
        made = [
            self._add_allocation(device, info, args.hResource if resource is not None else 0)
            for info in infos
        ]
        self._open_all(device, made)
        return made

    def _call_create_allocation(
        self, requests: Sequence[AllocationRequest | bytes], resource: int | None
    ) -> tuple[DXGKARG_CREATEALLOCATION, tuple[DXGK_ALLOCATIONINFO, ...], int]:
        """Encode ``requests``, call DxgkDdiCreateAllocation and judge its status and buffers.

        Returns the argument block, the kernel's own DXGK_ALLOCATIONINFO of each request
        (what the driver does to the list it gets cannot reach it) and the status.
        """
        datas = [
            r if isinstance(r, bytes) else self.encoder.allocation_private_data(r) for r in requests
        ]
        buffers = [
            KernelBuffer("pPrivateDriverData", len(d), writable=False, initial=d) for d in datas
        ]
        infos = tuple(
            DXGK_ALLOCATIONINFO(pPrivateDriverData=b.ptr(), PrivateDriverDataSize=b.size)
            for b in buffers
        )
        args = DXGKARG_CREATEALLOCATION(
            NumAllocations=len(infos),
            pAllocationInfo=list(infos),
            hResource=resource or 0,
            Flags=DXGK_CREATEALLOCATIONFLAGS.Resource
            if resource is not None
            else DXGK_CREATEALLOCATIONFLAGS(0),
        )
        status = require_status(
            CREATE,
            self.caller.call("create_allocation", args),
            CREATE_ALLOCATION_STATUSES,
            "ALC-STATUS",
        )
        memory_violations(CREATE, [(b, "ALL-READONLY") for b in buffers])
        return args, infos, status

    def _judge_requests(
        self, requests: Sequence[AllocationRequest | bytes], infos: Sequence[DXGK_ALLOCATIONINFO]
    ) -> None:
        """ALC-GDISIZE and ALC-HISTORY: each allocation is what its request asked for."""
        for i, (request, info) in enumerate(zip(requests, infos, strict=True)):
            where = f"allocation {i} of {len(infos)}"
            if not isinstance(request, AllocationRequest):
                continue
            if request.gdi_rows:
                self._judge_gdi_size(request, info, where)
            if request.history_buffer and not info.Flags & DXGK_ALLOCATIONINFOFLAGS.HistoryBuffer:
                raise DriverViolation(
                    "ALC-HISTORY",
                    CREATE,
                    f"{where}: asked for a history buffer, but DXGK_ALLOCATIONINFO.Flags does not "
                    f"report HistoryBuffer",
                )

    def _add_allocation(
        self, device: Device, info: DXGK_ALLOCATIONINFO, resource: int
    ) -> Allocation:
        """Record an allocation the driver created and open it for ``device``."""
        private = info.pPrivateDriverData
        a = Allocation(
            self._next_allocation,
            info.hAllocation,
            _own_copy(info),
            device,
            resource=resource,
            private_data=b""
            if private is None
            else bytes(
                private.region.data[private.offset : private.offset + info.PrivateDriverDataSize]
            ),
        )
        self._next_allocation += 1
        self.allocations[a.id] = a
        return a

    def _judge_allocation_info(self, infos: Sequence[DXGK_ALLOCATIONINFO]) -> None:
        handles = Counter(i.hAllocation for i in infos if isinstance(i.hAllocation, int))
        live = {a.hAllocation for a in self.allocations.values()}
        for i, info in enumerate(infos):
            where = f"allocation {i} of {len(infos)}"
            if not isinstance(info.hAllocation, int) or info.hAllocation == 0:
                raise DriverViolation(
                    "ALC-HANDLE",
                    CREATE,
                    f"{where}: hAllocation is {info.hAllocation!r}, not a non-NULL handle",
                )
            if handles[info.hAllocation] > 1 or info.hAllocation in live:
                raise DriverViolation(
                    "ALC-HANDLE",
                    CREATE,
                    f"{where}: hAllocation 0x{info.hAllocation:X} is not distinct",
                )
            self._judge_placement(info, where)

    def _judge_resource(self, asked: int | None, returned: object) -> None:
        """ALC-RESOURCE: a call for an existing resource keeps its hResource; a new one gets a handle."""
        if asked is None:
            return
        if asked and returned != asked:
            raise DriverViolation(
                "ALC-RESOURCE",
                CREATE,
                f"was called for resource 0x{asked:X} but changed hResource to {returned!r}",
            )
        if (
            not isinstance(returned, int)
            or isinstance(returned, bool)
            or not 0 <= returned < 1 << 64
        ):
            raise DriverViolation(
                "ALC-RESOURCE", CREATE, f"returned hResource {returned!r}, not a 64-bit handle"
            )

    def _probe_half_made(
        self, device: Device, infos: Sequence[DXGK_ALLOCATIONINFO], status: int
    ) -> None:
        """ALC-ATOMIC: a handle a failed batch left behind must not name a live allocation."""
        for i, info in enumerate(infos):
            handle = info.hAllocation
            if not isinstance(handle, int) or isinstance(handle, bool) or not 0 < handle < 1 << 64:
                continue
            probe = DXGK_OPENALLOCATIONINFO(hAllocation=handle)
            opened = self.caller.call(
                "open_allocation", device.hDevice, DXGKARG_OPENALLOCATION(1, [probe])
            )
            if opened == STATUS_SUCCESS:
                self.caller.call(
                    "close_allocation",
                    device.hDevice,
                    DXGKARG_CLOSEALLOCATION(1, [probe.hDeviceSpecificAllocation]),
                )
                raise DriverViolation(
                    "ALC-ATOMIC",
                    CREATE,
                    f"failed the batch with {status_name(status)} but allocation {i} of {len(infos)} "
                    f"(hAllocation 0x{handle:X}) is still live: DxgkDdiOpenAllocation accepted it",
                )

    def _judge_gdi_size(
        self, request: AllocationRequest, info: DXGK_ALLOCATIONINFO, where: str
    ) -> None:
        """ALC-GDISIZE: a GDI surface's Size covers its rows, and the pitch for CPU-visible ones."""
        need = request.min_size
        if info.Size < need:
            raise DriverViolation(
                "ALC-GDISIZE",
                CREATE,
                f"{where}: GDI surface of {request.gdi_rows} rows of {request.size} bytes got Size "
                f"{info.Size}, less than the {need} bytes of its pixels",
            )
        pitched = info.PitchAlignedSize
        if request.cpu_visible and not (isinstance(pitched, int) and need <= pitched <= info.Size):
            raise DriverViolation(
                "ALC-GDISIZE",
                CREATE,
                f"{where}: CPU-visible GDI surface has PitchAlignedSize {pitched!r}: it must hold "
                f"the pitch-aligned rows ({need} bytes or more) within Size {info.Size}",
            )

    def _judge_placement(self, info: DXGK_ALLOCATIONINFO, where: str) -> None:
        """ALC-INFO: what the memory manager needs to place the allocation is usable."""

        def bad(message: str) -> DriverViolation:
            return DriverViolation("ALC-INFO", CREATE, f"{where}: {message}")

        numbers = (
            "Size",
            "Alignment",
            "SupportedReadSegmentSet",
            "SupportedWriteSegmentSet",
            "EvictionSegmentSet",
        )
        for name in numbers:
            value = getattr(info, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise bad(f"{name} is {value!r}, not a non-negative integer")
        if info.Size <= 0:
            raise bad(f"Size is {info.Size}")
        if info.Alignment & (info.Alignment - 1):
            raise bad(f"Alignment {info.Alignment} is not a power of two or 0")
        known = sum(1 << s for s in self.segments)
        for name in numbers[2:]:
            value = getattr(info, name)
            if value & ~known:
                raise bad(
                    f"{name} 0x{value:X} names segments the adapter does not have (0x{known:X})"
                )
        usable = info.SupportedReadSegmentSet & info.SupportedWriteSegmentSet
        if not usable:
            raise bad("no segment is in both SupportedReadSegmentSet and SupportedWriteSegmentSet")
        preferred = info.PreferredSegment
        if not isinstance(preferred, list) or len(preferred) > 5:
            raise bad(f"PreferredSegment is {preferred!r}, not up to five segment IDs")
        for sid in preferred:
            if not isinstance(sid, int) or not 0 <= sid < 32:
                raise bad(f"preferred segment {sid!r} is not a 5-bit SegmentId")
            if sid and not usable >> sid & 1:  # 0 means "no preference", as in the C structure
                raise bad(f"preferred segment {sid} is not in the supported sets")
        fits = [self.segments[s] for s in self.segments if usable >> s & 1]
        if not any(info.Size <= d.Size and info.Alignment <= d.Size for d in fits):
            raise bad(f"Size {info.Size} with Alignment {info.Alignment} fits no supported segment")

    def open_for(self, device: Device, a: Allocation) -> int:
        """The device-specific handle of ``a`` on ``device`` (DxgkDdiOpenAllocation on first use)."""
        handle = a.opened.get(id(device))
        if handle is None:
            self._open_all(device, [a])
            handle = a.opened[id(device)]
        return handle

    def _open_all(self, device: Device, allocations: Sequence[Allocation]) -> None:
        """Open ``allocations`` for ``device`` in one DxgkDdiOpenAllocation call (a batch
        CreateAllocation made is opened as one, as dxgkrnl opens a resource's allocations)."""
        if not allocations:
            return
        infos = [DXGK_OPENALLOCATIONINFO(hAllocation=a.hAllocation) for a in allocations]
        for a in allocations:
            self.handles.open(device, a)
        try:
            status = self.caller.call(
                "open_allocation", device.hDevice, DXGKARG_OPENALLOCATION(len(infos), infos)
            )
            require_status(OPEN, status, frozenset({STATUS_SUCCESS}), "ALC-ADAPTER")
        except BaseException:
            for a in allocations:
                self.handles.close(device, a)
            raise
        for a, info in zip(allocations, infos, strict=True):
            handle = info.hDeviceSpecificAllocation
            if not isinstance(handle, int) or isinstance(handle, bool) or not 0 < handle < 1 << 64:
                raise DriverViolation(
                    "ALC-ADAPTER",
                    OPEN,
                    f"returned {handle!r} as the device-specific handle for {a}: not a non-NULL 64-bit handle",
                )
            a.opened[id(device)] = handle

    def destroy_allocation(self, a: Allocation) -> None:
        """Release memory (unmapping aperture pages first), close handles, then DxgkDdiDestroyAllocation.

        The last live allocation of a resource takes the resource with it (DestroyResource).
        """
        self.vidmm.release(a)
        self.handles.close_all(a, self.devices)
        for device in self.devices:
            handle = a.opened.pop(id(device), None)
            if handle is not None and device.state != State.DESTROYED:
                self.caller.call(
                    "close_allocation", device.hDevice, DXGKARG_CLOSEALLOCATION(1, [handle])
                )
        args = DXGKARG_DESTROYALLOCATION(1, [a.hAllocation])
        if a.resource and not any(
            o.resource == a.resource for o in self.allocations.values() if o is not a
        ):
            args.hResource = a.resource
            args.Flags = DXGK_DESTROYALLOCATIONFLAGS.DestroyResource
        self.caller.call("destroy_allocation", args)
        a.transition(Change.DESTROY)
        del self.allocations[a.id]

    def destroy_allocations(self, allocations: Sequence[Allocation]) -> None:
        """Destroy many allocations with one close per device and one DxgkDdiDestroyAllocation
        (those of a resource one by one, as :meth:`destroy_allocation`)."""
        plain = [a for a in allocations if not a.resource]
        for a in allocations:
            if a.resource:
                self.destroy_allocation(a)
        if not plain:
            return
        for a in plain:
            self.vidmm.release(a)
            self.handles.close_all(a, self.devices)
        for device in self.devices:
            handles = [h for a in plain if (h := a.opened.pop(id(device), None)) is not None]
            if handles and device.state != State.DESTROYED:
                self.caller.call(
                    "close_allocation",
                    device.hDevice,
                    DXGKARG_CLOSEALLOCATION(len(handles), handles),
                )
        args = DXGKARG_DESTROYALLOCATION(len(plain), [a.hAllocation for a in plain])
        self.caller.call("destroy_allocation", args)
        for a in plain:
            a.transition(Change.DESTROY)
            del self.allocations[a.id]

    # ------------------------------------------------------------------ memory operations

    def make_resident(self, a: Allocation, segment_id: int | None = None) -> None:
        self.vidmm.make_resident(a, segment_id=segment_id)

    def evict(self, a: Allocation) -> None:
        self.vidmm.evict(a)

    def relocate(self, a: Allocation) -> None:
        self.vidmm.relocate(a)

    def discard(self, a: Allocation) -> None:
        self.vidmm.discard(a)

    def lock_alternate_va(self, a: Allocation) -> None:
        """A pfnLockCb with UseAlternateVA: evictions of ``a`` now go through SPECIAL_LOCK_TRANSFER."""
        if not self.caps.SupportsAlternateVA:
            raise HarnessError(
                "the driver does not support UseAlternateVA; it is never asked for SPECIAL_LOCK_TRANSFER"
            )
        if a.alternate_va is None:
            a.alternate_va = self.sysmem.allocate_mdl(a.size)

    def unlock_alternate_va(self, a: Allocation) -> None:
        """pfnUnlockCb: give back the alternate VA of a resident ``a`` (its content is in the segment)."""
        if a.alternate_va is None:
            return
        a.require(State.RESIDENT)
        if a.backing is a.alternate_va:
            raise HarnessError(f"{a} still lives in its alternate VA")
        self.sysmem.free(a.alternate_va.pfns)
        a.alternate_va = None

    def cpu_read(self, a: Allocation, offset: int = 0, length: int | None = None) -> bytes:
        return self.vidmm.cpu_read(a, offset, a.size - offset if length is None else length)

    def cpu_write(self, a: Allocation, offset: int, data: bytes) -> None:
        self.vidmm.cpu_write(a, offset, data)

    def gpu_view(self, a: Allocation) -> bytes:
        """Allocation bytes as GPU commands address them (the tiled layout for a swizzled allocation)."""
        linear = self.cpu_read(a)
        return self.tiling.swizzle(a, linear) if a.swizzled else linear

    @property
    def rejects_oversized(self) -> str:
        """Why valid work larger than the DMA buffer is rejected here, not split ("": it is
        split): a guaranteed-contract driver under tiny buffers (seed 000, REN-CONTRACT)."""
        if self.mode.tiny_buffers and self.caps.GuaranteedContractDma:
            return "guaranteed-contract DMA: the driver rejects, never splits, an oversized buffer"
        return ""

    def is_dummy_mapped(self, address: int) -> bool:
        return address - address % PAGE_SIZE in self.dummy_mapped

    # ------------------------------------------------------------------ submissions

    def render(
        self,
        context: Context,
        command: bytes,
        allocation_list: Sequence[Allocation | AllocationUse | None],
        **kwargs: object,
    ) -> RenderResult:
        """Submit a raw command buffer. Plain allocations in the list are read-only uses."""
        uses = [u if isinstance(u, AllocationUse) else AllocationUse(u) for u in allocation_list]
        return self.scheduler.render(context, command, uses, **kwargs)  # type: ignore[arg-type]

    def encode_program(
        self, allocation_list: Sequence[Allocation | None], program: Sequence[Op]
    ) -> ProgramSubmission:
        """``program`` as Render gets it: the driver's encoding, WriteOperation set where it
        writes, and its references the harness knows reach outside their allocation
        (:func:`~wddm_conformance.program.out_of_bounds`)."""
        writes = written_indices(program)
        encoded = self.encoder.encode(program)
        sizes = {i: a.size for i, a in enumerate(allocation_list) if a is not None}
        return ProgramSubmission(
            encoded.command,
            tuple(AllocationUse(a, i in writes) for i, a in enumerate(allocation_list)),
            tuple(encoded.patch_locations),
            tuple(out_of_bounds(program, sizes, len(allocation_list))),
        )

    def run_program(
        self,
        context: Context,
        allocation_list: Sequence[Allocation | None],
        program: Sequence[Op],
        **kwargs: object,
    ) -> RenderResult:
        """Encode ``program`` with the driver's encoder and submit it (:meth:`encode_program`).

        The program's out-of-bounds references go to the scheduler, which blames what the
        GPU does with them on REN-VALIDATE.
        """
        p = self.encode_program(allocation_list, program)
        kwargs.setdefault("patch_list_in", p.patch_locations)
        kwargs.setdefault("out_of_bounds", p.out_of_bounds)
        return self.scheduler.render(context, p.command, p.uses, **kwargs)  # type: ignore[arg-type]

    def expected_after(
        self, allocation_list: Sequence[Allocation | None], program: Sequence[Op]
    ) -> dict[int, bytes]:
        """The reference model: what the program should leave in each referenced allocation (GPU view)."""
        used = referenced_indices(program)
        shared: dict[int, bytearray] = {}  # entries naming the same allocation share its bytes
        memory = {
            i: shared.setdefault(a.id, bytearray(self.gpu_view(a)))
            for i, a in enumerate(allocation_list)
            if a is not None and i in used
        }
        apply(program, memory)
        return {i: bytes(m) for i, m in memory.items()}
