"""The simulated dxgkrnl: video memory manager, GPU scheduler and their DDI calls."""

from .kernel import DUMMY_PATTERN, Kernel
from .modes import ALL_MODES, KernelConfig, KernelMode
from .objects import TRANSITIONS, Allocation, Change, Context, Device, State
from .scheduler import AllocationUse, RenderResult, Submission
from .vidmm import OutOfVideoMemory, PagingRun

__all__ = [
    "ALL_MODES",
    "DUMMY_PATTERN",
    "TRANSITIONS",
    "Allocation",
    "AllocationUse",
    "Change",
    "Context",
    "Device",
    "Kernel",
    "KernelConfig",
    "KernelMode",
    "OutOfVideoMemory",
    "PagingRun",
    "RenderResult",
    "State",
    "Submission",
]
