"""Kernel objects and their life cycles. All transitions live in one table.

A transition the table does not list is a harness error (the harness asked the
kernel for something impossible), reported as INTERNAL-ERROR, never as a driver
failure. Driver failures are raised where the driver's answer is judged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar

from ..ddi import DXGK_ALLOCATIONINFO, DXGK_ALLOCATIONINFOFLAGS, MDL
from ..errors import HarnessError

_SWIZZLED = int(DXGK_ALLOCATIONINFOFLAGS.Swizzled)


class Kind(StrEnum):
    """The kinds of kernel object with a life cycle."""

    DEVICE = "device"
    CONTEXT = "context"
    ALLOCATION = "allocation"


class State(StrEnum):
    """Where a kernel object is in its life cycle (a device or context: active, lost,
    destroyed; an allocation: unplaced, resident, evicted, destroyed)."""

    ACTIVE = "active"
    LOST = "lost"
    UNPLACED = "unplaced"
    RESIDENT = "resident"
    EVICTED = "evicted"
    DESTROYED = "destroyed"


class Change(StrEnum):
    """What the kernel does to an object: the events of :data:`TRANSITIONS`."""

    LOSE = "lose"
    DESTROY = "destroy"
    PAGE_IN = "page_in"
    RELOCATE = "relocate"
    EVICT = "evict"
    DISCARD = "discard"


# (object kind, state, change) -> next state
TRANSITIONS: dict[tuple[Kind, State, Change], State] = {
    (Kind.DEVICE, State.ACTIVE, Change.LOSE): State.LOST,
    (Kind.DEVICE, State.LOST, Change.LOSE): State.LOST,
    (Kind.DEVICE, State.ACTIVE, Change.DESTROY): State.DESTROYED,
    (Kind.DEVICE, State.LOST, Change.DESTROY): State.DESTROYED,
    (Kind.CONTEXT, State.ACTIVE, Change.DESTROY): State.DESTROYED,
    (Kind.ALLOCATION, State.UNPLACED, Change.PAGE_IN): State.RESIDENT,
    (Kind.ALLOCATION, State.EVICTED, Change.PAGE_IN): State.RESIDENT,
    (Kind.ALLOCATION, State.RESIDENT, Change.RELOCATE): State.RESIDENT,
    (Kind.ALLOCATION, State.RESIDENT, Change.EVICT): State.EVICTED,
    (Kind.ALLOCATION, State.RESIDENT, Change.DISCARD): State.EVICTED,
    (Kind.ALLOCATION, State.UNPLACED, Change.DESTROY): State.DESTROYED,
    (Kind.ALLOCATION, State.RESIDENT, Change.DESTROY): State.DESTROYED,
    (Kind.ALLOCATION, State.EVICTED, Change.DESTROY): State.DESTROYED,
}


class KernelObject:
    """Something with a state that changes only through :data:`TRANSITIONS`."""

    KIND: ClassVar[Kind]
    state: State

    def transition(self, change: Change) -> None:
        nxt = TRANSITIONS.get((self.KIND, self.state, change))
        if nxt is None:
            raise HarnessError(f"{self} cannot {change} in state {str(self.state)!r}")
        self.state = nxt

    def require(self, *states: State) -> None:
        if self.state not in states:
            raise HarnessError(f"{self} is {str(self.state)!r}; this needs {' or '.join(states)}")


@dataclass(eq=False)
class Device(KernelObject):
    """A DXGDEVICE: the driver's hDevice and what it owns."""

    KIND: ClassVar[Kind] = Kind.DEVICE
    hDevice: int
    state: State = State.ACTIVE
    contexts: list[Context] = field(default_factory=list)
    lost_reason: str = ""

    def __str__(self) -> str:
        return f"device 0x{self.hDevice:X}"


@dataclass(eq=False)
class Context(KernelObject):
    """A DXGCONTEXT: hContext (the device handle when the driver has no contexts)."""

    KIND: ClassVar[Kind] = Kind.CONTEXT
    hContext: int
    device: Device
    state: State = State.ACTIVE

    def __str__(self) -> str:
        return f"context 0x{self.hContext:X} of {self.device}"


@dataclass(eq=False)
class Allocation(KernelObject):
    """The memory manager's record of one allocation.

    Where it lives: ``segment_id``/``offset``/``address`` while resident; ``backing``
    holds its bytes in system memory while evicted, and the pages mapped through the
    aperture while it is resident in an aperture segment.
    """

    KIND: ClassVar[Kind] = Kind.ALLOCATION
    id: int
    hAllocation: int
    info: DXGK_ALLOCATIONINFO
    creator: Device
    state: State = State.UNPLACED
    segment_id: int = 0
    offset: int = 0
    address: int = 0
    #: The last segment address it had: what Render sees in PhysicalAddress while it is paged out.
    last_address: int = 0
    backing: MDL | None = None
    #: Alternate CPU virtual address set up by a UseAlternateVA lock (SPECIAL_LOCK_TRANSFER target).
    alternate_va: MDL | None = None
    opened: dict[int, int] = field(default_factory=dict)  # id(device) -> hDeviceSpecificAllocation
    resource: int = 0

    @property
    def size(self) -> int:
        return self.info.Size

    @property
    def swizzled(self) -> bool:
        flags = self.info.Flags  # int & int: an IntFlag operation builds a flag object
        return bool((int(flags) if isinstance(flags, int) else flags) & _SWIZZLED)

    def segment_set(self) -> int:
        return self.info.SupportedReadSegmentSet & self.info.SupportedWriteSegmentSet

    def __str__(self) -> str:
        where = (
            f"segment {self.segment_id} +0x{self.offset:X}"
            if self.state == State.RESIDENT
            else self.state
        )
        return f"allocation #{self.id} (0x{self.hAllocation:X}, {self.size} bytes, {where})"
