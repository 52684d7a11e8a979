"""Kernel objects and their life cycles. All transitions live in one table.

A transition the table does not list is a harness error (the harness asked the
kernel for something impossible), reported as INTERNAL-ERROR, never as a driver
failure. Driver failures are raised where the driver's answer is judged.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar

from ..ddi import DXGK_ALLOCATIONINFO, DXGK_ALLOCATIONINFOFLAGS, MDL
from ..driver import GpuModel, SurfaceLayout
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


class Tiling:
    """The GPU model's CPU views of swizzled allocations, each given the allocation's
    :class:`SurfaceLayout` (INTERPRETING.md §1, "GPU models"). A model written against
    contract 2.0, whose methods take no ``layout``, is called without it."""

    _METHODS = ("swizzle", "unswizzle", "read_linear", "write_linear")

    def __init__(self, gpu: GpuModel) -> None:
        self.gpu = gpu
        self._takes = {name: _takes_layout(getattr(gpu, name)) for name in self._METHODS}

    def _kw(self, name: str, a: Allocation) -> dict[str, SurfaceLayout]:
        return {"layout": a.layout} if self._takes[name] else {}

    def swizzle(self, a: Allocation, linear: bytes | bytearray) -> bytes:
        """``a``'s bytes as they lie in video memory, from the CPU's linear view."""
        return self.gpu.swizzle(linear, **self._kw("swizzle", a))

    def unswizzle(self, a: Allocation, tiled: bytes | bytearray) -> bytes:
        """``a``'s bytes as the CPU sees them, from the tiled layout in video memory."""
        return self.gpu.unswizzle(tiled, **self._kw("unswizzle", a))

    def read_linear(self, a: Allocation) -> bytes:
        """All of resident ``a`` as the CPU sees it through the linearizing aperture."""
        return self.gpu.read_linear(a.address, a.size, **self._kw("read_linear", a))

    def write_linear(self, a: Allocation, linear: bytes | bytearray) -> None:
        """Write all of resident ``a`` as the CPU does through the linearizing aperture."""
        self.gpu.write_linear(a.address, linear, **self._kw("write_linear", a))


def _takes_layout(method: Callable[..., object]) -> bool:
    try:
        parameters = inspect.signature(method).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "layout" or p.kind == p.VAR_KEYWORD for p in parameters)


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
    #: The private driver data it was created with (the GPU model's :class:`SurfaceLayout`).
    private_data: bytes = b""

    @property
    def size(self) -> int:
        return self.info.Size

    @property
    def swizzled(self) -> bool:
        flags = self.info.Flags  # int & int: an IntFlag operation builds a flag object
        return bool((int(flags) if isinstance(flags, int) else flags) & _SWIZZLED)

    @property
    def layout(self) -> SurfaceLayout:
        return SurfaceLayout(self.info.Size, self.info.PitchAlignedSize, self.private_data)

    def segment_set(self) -> int:
        return self.info.SupportedReadSegmentSet & self.info.SupportedWriteSegmentSet

    def __str__(self) -> str:
        where = (
            f"segment {self.segment_id} +0x{self.offset:X}"
            if self.state == State.RESIDENT
            else self.state
        )
        return f"allocation #{self.id} (0x{self.hAllocation:X}, {self.size} bytes, {where})"
