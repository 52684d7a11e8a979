"""NTSTATUS values the DDIs return, with their true values (DDI_FACTS.md).

STATUS_GRAPHICS_DRIVER_MISMATCH is an informational-severity code, so ``NT_SUCCESS``
is true for it; the harness therefore never judges a DDI result with
:func:`NT_SUCCESS` but compares against explicit sets of allowed codes.
"""

from __future__ import annotations

from enum import IntEnum


class NTSTATUS(IntEnum):
    """The NTSTATUS codes named by the seed DDI pages."""

    STATUS_SUCCESS = 0x00000000
    STATUS_INVALID_HANDLE = 0xC0000008
    STATUS_INVALID_PARAMETER = 0xC000000D
    STATUS_NO_MEMORY = 0xC0000017
    STATUS_ILLEGAL_INSTRUCTION = 0xC000001D
    STATUS_PRIVILEGED_INSTRUCTION = 0xC0000096
    STATUS_NOT_SUPPORTED = 0xC00000BB
    STATUS_INVALID_USER_BUFFER = 0xC00000E8
    STATUS_GRAPHICS_INSUFFICIENT_DMA_BUFFER = 0xC01E0001
    STATUS_GRAPHICS_ALLOCATION_BUSY = 0xC01E0102
    STATUS_GRAPHICS_GPU_EXCEPTION_ON_DEVICE = 0xC01E0200
    STATUS_GRAPHICS_DRIVER_MISMATCH = 0x401E0117


STATUS_SUCCESS = NTSTATUS.STATUS_SUCCESS
STATUS_INVALID_HANDLE = NTSTATUS.STATUS_INVALID_HANDLE
STATUS_INVALID_PARAMETER = NTSTATUS.STATUS_INVALID_PARAMETER
STATUS_NO_MEMORY = NTSTATUS.STATUS_NO_MEMORY
STATUS_ILLEGAL_INSTRUCTION = NTSTATUS.STATUS_ILLEGAL_INSTRUCTION
STATUS_PRIVILEGED_INSTRUCTION = NTSTATUS.STATUS_PRIVILEGED_INSTRUCTION
STATUS_NOT_SUPPORTED = NTSTATUS.STATUS_NOT_SUPPORTED
STATUS_INVALID_USER_BUFFER = NTSTATUS.STATUS_INVALID_USER_BUFFER
STATUS_GRAPHICS_INSUFFICIENT_DMA_BUFFER = NTSTATUS.STATUS_GRAPHICS_INSUFFICIENT_DMA_BUFFER
STATUS_GRAPHICS_ALLOCATION_BUSY = NTSTATUS.STATUS_GRAPHICS_ALLOCATION_BUSY
STATUS_GRAPHICS_GPU_EXCEPTION_ON_DEVICE = NTSTATUS.STATUS_GRAPHICS_GPU_EXCEPTION_ON_DEVICE
STATUS_GRAPHICS_DRIVER_MISMATCH = NTSTATUS.STATUS_GRAPHICS_DRIVER_MISMATCH


def NT_SUCCESS(status: int) -> bool:
    """The WDK macro: true for success and informational severities (sign bit clear).

    Provided for driver code that mirrors C; the harness itself never uses it to
    judge a DDI, because DRIVER_MISMATCH is a failure with success severity.
    """
    return (status & 0x80000000) == 0


def status_name(status: object) -> str:
    """Render a DDI return value for messages: the WDK name, or the value as returned.

    A negative value that fits a 32-bit LONG is shown as its bit pattern, as C sees it; a
    value outside 32 bits is shown whole, never masked (2**32 is not STATUS_SUCCESS).
    """
    if isinstance(status, int) and not isinstance(status, bool):
        try:
            return NTSTATUS(status).name
        except ValueError:
            if -(1 << 31) <= status <= 0xFFFFFFFF:
                return f"0x{status & 0xFFFFFFFF:08X} (not a status the DDI may return)"
            return f"{status:#x} (not a 32-bit NTSTATUS)"
    return f"{status!r} (not an NTSTATUS integer)"


#: Statuses each DDI may return, from the seed pages (REN-STATUS, ALC-STATUS, PGB-STATUS, PAT-BUGCHECK).
RENDER_STATUSES: frozenset[int] = frozenset(
    {
        STATUS_SUCCESS,
        STATUS_NO_MEMORY,
        STATUS_GRAPHICS_INSUFFICIENT_DMA_BUFFER,
        STATUS_PRIVILEGED_INSTRUCTION,
        STATUS_ILLEGAL_INSTRUCTION,
        STATUS_INVALID_PARAMETER,
        STATUS_INVALID_USER_BUFFER,
        STATUS_INVALID_HANDLE,
        STATUS_GRAPHICS_DRIVER_MISMATCH,
        STATUS_GRAPHICS_GPU_EXCEPTION_ON_DEVICE,
    }
)
CREATE_ALLOCATION_STATUSES: frozenset[int] = frozenset(
    {STATUS_SUCCESS, STATUS_INVALID_PARAMETER, STATUS_NO_MEMORY, STATUS_GRAPHICS_DRIVER_MISMATCH}
)
BUILD_PAGING_BUFFER_STATUSES: frozenset[int] = frozenset(
    {STATUS_SUCCESS, STATUS_GRAPHICS_ALLOCATION_BUSY, STATUS_GRAPHICS_INSUFFICIENT_DMA_BUFFER}
)
PATCH_STATUSES: frozenset[int] = frozenset({STATUS_SUCCESS})
