"""Kernel objects and their life cycles. All transitions live in one table.

A transition the table does not list is a harness error (the harness asked the
kernel for something impossible), reported as INTERNAL-ERROR, never as a driver
failure. Driver failures are raised where the driver's answer is judged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from ..ddi import DXGK_ALLOCATIONINFO, DXGK_ALLOCATIONINFOFLAGS, MDL
from ..errors import HarnessError

# (object kind, state, event) -> next state
TRANSITIONS: dict[tuple[str, str, str], str] = {
    ("device", "active", "lose"): "lost",
    ("device", "lost", "lose"): "lost",
    ("device", "active", "destroy"): "destroyed",
    ("device", "lost", "destroy"): "destroyed",
    ("context", "active", "destroy"): "destroyed",
    ("allocation", "unplaced", "page_in"): "resident",
    ("allocation", "evicted", "page_in"): "resident",
    ("allocation", "resident", "relocate"): "resident",
    ("allocation", "resident", "evict"): "evicted",
    ("allocation", "resident", "discard"): "evicted",
    ("allocation", "unplaced", "destroy"): "destroyed",
    ("allocation", "resident", "destroy"): "destroyed",
    ("allocation", "evicted", "destroy"): "destroyed",
}


class KernelObject:
    """Something with a state that changes only through :data:`TRANSITIONS`."""

    KIND: ClassVar[str] = ""
    state: str

    def transition(self, event: str) -> None:
        nxt = TRANSITIONS.get((self.KIND, self.state, event))
        if nxt is None:
            raise HarnessError(f"{self} cannot {event} in state {self.state!r}")
        self.state = nxt

    def require(self, *states: str) -> None:
        if self.state not in states:
            raise HarnessError(f"{self} is {self.state!r}; this needs {' or '.join(states)}")


@dataclass(eq=False)
class Device(KernelObject):
    """A DXGDEVICE: the driver's hDevice and what it owns."""

    KIND: ClassVar[str] = "device"
    hDevice: int
    state: str = "active"
    contexts: list[Context] = field(default_factory=list)
    lost_reason: str = ""

    def __str__(self) -> str:
        return f"device 0x{self.hDevice:X}"


@dataclass(eq=False)
class Context(KernelObject):
    """A DXGCONTEXT: hContext (the device handle when the driver has no contexts)."""

    KIND: ClassVar[str] = "context"
    hContext: int
    device: Device
    state: str = "active"

    def __str__(self) -> str:
        return f"context 0x{self.hContext:X} of {self.device}"


@dataclass(eq=False)
class Allocation(KernelObject):
    """The memory manager's record of one allocation.

    Where it lives: ``segment_id``/``offset``/``address`` while resident; ``backing``
    holds its bytes in system memory while evicted, and the pages mapped through the
    aperture while it is resident in an aperture segment.
    """

    KIND: ClassVar[str] = "allocation"
    id: int
    hAllocation: int
    info: DXGK_ALLOCATIONINFO
    creator: Device
    state: str = "unplaced"
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
        return bool(self.info.Flags & DXGK_ALLOCATIONINFOFLAGS.Swizzled)

    def segment_set(self) -> int:
        return self.info.SupportedReadSegmentSet & self.info.SupportedWriteSegmentSet

    def __str__(self) -> str:
        where = (
            f"segment {self.segment_id} +0x{self.offset:X}"
            if self.state == "resident"
            else self.state
        )
        return f"allocation #{self.id} (0x{self.hAllocation:X}, {self.size} bytes, {where})"
