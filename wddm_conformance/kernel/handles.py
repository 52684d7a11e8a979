"""dxgkrnl's handle tables: the D3DKMT_HANDLEs the kernel gives out for allocations and
resources, and what DxgkCbGetHandleData, DxgkCbGetHandleParent and
DxgkCbEnumHandleChildren answer for them (seed 003: the driver need not keep a handle
table of its own, it gets its private data back from the kernel's).

A handle names an allocation (or its resource) as opened on one device: dxgkrnl gives
it to DxgkDdiOpenAllocation in ``DXGK_OPENALLOCATIONINFO.hAllocation`` for drivers that
take kernel handles there (WDK-style native drivers; Python drivers and the
exported-name ABI get their own ``hAllocation``, see docs/INTERPRETING.md §1). It lives
until the allocation is closed on that device or destroyed; numbers are never reused,
so a stale handle stays invalid. Every query about a handle the table does not hold, or
of the wrong type, answers 0 (NULL), as the documentation says: the driver must then
fail its DDI with STATUS_INVALID_HANDLE.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from .objects import Allocation, Device

#: DXGK_HANDLE_TYPE (d3dkmddi.h).
DXGK_HANDLE_ALLOCATION: Final = 1
DXGK_HANDLE_RESOURCE: Final = 2
#: The first handle given out and the step between two (the kernel's handles look
#: like 0x40000040; nothing depends on the values).
FIRST_HANDLE: Final = 0x4000_0040
STEP: Final = 0x40
#: Handles are 32-bit (D3DKMT_HANDLE is a UINT).
LAST_HANDLE: Final = 0xFFFF_FFC0


@dataclass(eq=False)
class _AllocationEntry:
    allocation: Allocation
    device: Device
    resource: int = 0  # the kernel handle of its resource on the same device, or 0


@dataclass(eq=False)
class _ResourceEntry:
    resource: int  # the driver's hResource
    device: Device
    children: list[int] = field(default_factory=list)  # kernel handles of its allocations


class HandleTable:
    """The kernel's handles of one adapter (:attr:`Kernel.handles`)."""

    def __init__(self) -> None:
        self._next = FIRST_HANDLE
        self._entries: dict[int, _AllocationEntry | _ResourceEntry] = {}
        self._by_open: dict[tuple[int, int], int] = {}  # (id(device), allocation id) -> handle
        self._resources: dict[tuple[int, int], int] = {}  # (id(device), hResource) -> handle
        self._by_driver: dict[tuple[int, int], int] = {}  # (hDevice, hAllocation) -> handle

    def _new(self) -> int:
        if self._next > LAST_HANDLE:  # four billion opens: a harness fault, not the driver's
            raise OverflowError("the kernel ran out of 32-bit handles")
        handle = self._next
        self._next += STEP
        return handle

    def unused(self) -> int:
        """A handle that names nothing and never will (given for an allocation the kernel
        does not know, such as a handle a failed batch left behind)."""
        return self._new()

    def open(self, device: Device, allocation: Allocation) -> int:
        """The handle of ``allocation`` opened on ``device`` (made on first use; its
        resource gets a handle on that device too)."""
        key = (id(device), allocation.id)
        handle = self._by_open.get(key)
        if handle is not None:
            return handle
        handle = self._new()
        entry = _AllocationEntry(allocation, device)
        if allocation.resource:
            rkey = (id(device), allocation.resource)
            rhandle = self._resources.get(rkey)
            if rhandle is None:
                rhandle = self._new()
                self._resources[rkey] = rhandle
                self._entries[rhandle] = _ResourceEntry(allocation.resource, device)
            resource = self._entries[rhandle]
            assert isinstance(resource, _ResourceEntry)
            resource.children.append(handle)
            entry.resource = rhandle
        self._entries[handle] = entry
        self._by_open[key] = handle
        self._by_driver[(device.hDevice, allocation.hAllocation)] = handle
        return handle

    def close(self, device: Device, allocation: Allocation) -> None:
        """``allocation`` is closed on ``device`` (or destroyed): its handle there, and its
        resource's once no allocation of it is open there, name nothing any more."""
        handle = self._by_open.pop((id(device), allocation.id), None)
        if handle is None:
            return
        entry = self._entries.pop(handle)
        self._by_driver.pop((device.hDevice, allocation.hAllocation), None)
        assert isinstance(entry, _AllocationEntry)
        if entry.resource:
            resource = self._entries[entry.resource]
            assert isinstance(resource, _ResourceEntry)
            resource.children.remove(handle)
            if not resource.children:
                del self._entries[entry.resource]
                del self._resources[(id(device), resource.resource)]

    def close_all(self, allocation: Allocation, devices: list[Device]) -> None:
        """``allocation`` is destroyed: its handles on every device go."""
        for device in devices:
            self.close(device, allocation)

    def for_driver_handle(self, hDevice: int, hAllocation: int) -> int:
        """The kernel handle the kernel passes to DxgkDdiOpenAllocation on ``hDevice`` for
        the driver's ``hAllocation``, or 0 when it has none."""
        return self._by_driver.get((hDevice, hAllocation), 0)

    # ------------------------------------------------------------------ the callbacks

    def handle_data(self, handle: int, kind: int, device_specific: bool) -> int:
        """DxgkCbGetHandleData: the driver's hAllocation (``device_specific``: its
        hDeviceSpecificAllocation on the handle's device, 0 until OpenAllocation returned
        it) or hResource; 0 for a handle the table does not hold or of another type."""
        entry = self._entries.get(handle)
        if kind == DXGK_HANDLE_ALLOCATION and isinstance(entry, _AllocationEntry):
            a = entry.allocation
            return a.opened.get(id(entry.device), 0) if device_specific else a.hAllocation
        if kind == DXGK_HANDLE_RESOURCE and isinstance(entry, _ResourceEntry):
            return 0 if device_specific else entry.resource
        return 0

    def parent(self, handle: int) -> int:
        """DxgkCbGetHandleParent: the handle of the allocation's resource (on the same
        device), 0 when it has none or the handle is not an allocation's."""
        entry = self._entries.get(handle)
        return entry.resource if isinstance(entry, _AllocationEntry) else 0

    def child(self, handle: int, index: int) -> int:
        """DxgkCbEnumHandleChildren: the handle of the resource's ``index``-th allocation
        (from 0, in the order they were opened), 0 past the last or for a handle that is
        not a resource's."""
        entry = self._entries.get(handle)
        if isinstance(entry, _ResourceEntry) and 0 <= index < len(entry.children):
            return entry.children[index]
        return 0
