"""The reference driver's user-mode formats: command buffer and allocation private data.

Both the user-mode side (:mod:`wddm_conformance.reference.encoder`) and the kernel-mode side
(:mod:`wddm_conformance.reference.miniport`) use these tables, so the format is defined once.

Command buffer: a sequence of commands, each starting with a 4-byte header
``<u8 opcode, u8 reserved, u16 length>`` where ``length`` is the whole command's
size in bytes and must equal the opcode's fixed size. Allocations are referenced by
allocation-list index and byte offset.

Allocation private data (versioned): ``REFDRV_ALLOCATION_DATA``, 24 bytes,
``<u32 Magic 'RALC', u16 Version, u16 Flags, u64 Size, u32 Reserved0, u32 Reserved1>``.
Malformed data (wrong size or magic, unknown flags, non-zero reserved fields, zero
size) is STATUS_INVALID_PARAMETER; another Version is STATUS_GRAPHICS_DRIVER_MISMATCH.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntFlag
from typing import Final


@dataclass(frozen=True)
class UserCommand:
    """One row of the user-mode command table."""

    opcode: int
    name: str
    layout: str
    fields: tuple[str, ...]
    privileged: bool = False

    @property
    def struct(self) -> struct.Struct:
        return _STRUCTS[self.opcode]

    @property
    def size(self) -> int:
        return _STRUCTS[self.opcode].size


HEADER: Final = struct.Struct("<BBH")
INTERFACE_VERSION: Final = 1

U_NOP: Final = 0x00
U_COPY: Final = 0x01
U_FILL: Final = 0x02
U_WRITE: Final = 0x03
U_XOR: Final = 0x05
U_BIND: Final = 0x06
U_SETREG: Final = 0x40
U_SETPTE: Final = 0x41
U_VERSION: Final = 0x7F

COMMANDS: Final[tuple[UserCommand, ...]] = (
    UserCommand(U_NOP, "NOP", "<BBH", ()),
    UserCommand(
        U_COPY, "COPY", "<BBHIIIII", ("dst_index", "dst_offset", "src_index", "src_offset", "size")
    ),
    UserCommand(U_FILL, "FILL", "<BBHIIII", ("dst_index", "dst_offset", "size", "pattern")),
    UserCommand(U_WRITE, "WRITE", "<BBHIII", ("dst_index", "dst_offset", "value")),
    UserCommand(
        U_XOR, "XOR", "<BBHIIIII", ("dst_index", "dst_offset", "src_index", "src_offset", "size")
    ),
    UserCommand(U_BIND, "BIND", "<BBHIII", ("slot", "index", "offset")),
    UserCommand(U_SETREG, "SETREG", "<BBHII", ("reg", "value"), privileged=True),
    UserCommand(U_SETPTE, "SETPTE", "<BBHIIQ", ("page", "flags", "pfn"), privileged=True),
    UserCommand(U_VERSION, "VERSION", "<BBHI", ("version",)),
)
_STRUCTS: Final = {c.opcode: struct.Struct(c.layout) for c in COMMANDS}
BY_OPCODE: Final[dict[int, UserCommand]] = {c.opcode: c for c in COMMANDS}


def pack_command(opcode: int, *fields: int) -> bytes:
    """Pack one command with a correct header."""
    cmd = BY_OPCODE[opcode]
    return cmd.struct.pack(opcode, 0, cmd.size, *fields)


class AllocationDataFlags(IntFlag):
    """REFDRV_ALLOCATION_DATA.Flags."""

    CpuVisible = 0x1
    Swizzled = 0x2
    Aperture = 0x4
    ApertureOnly = 0x8
    HistoryBuffer = 0x10
    AlternateVA = 0x20
    #: GDI hardware-accelerated surface: Size is one row in bytes, Reserved0 the number of rows.
    Gdi = 0x40


ALLOCATION_DATA: Final = struct.Struct("<IHHQII")
ALLOCATION_MAGIC: Final = 0x434C4152  # 'RALC'
ALLOCATION_VERSION: Final = 1

#: Private data the reference Render leaves for Patch per DMA buffer: <u32 magic 'RDMA', u32 fence offset>.
DMA_PRIVATE_DATA: Final = struct.Struct("<II")
DMA_PRIVATE_MAGIC: Final = 0x414D4452  # 'RDMA'


def pack_allocation_data(
    size: int, flags: AllocationDataFlags | int, version: int = ALLOCATION_VERSION, rows: int = 0
) -> bytes:
    """Private data asking the reference driver for an allocation (``rows`` for a GDI surface)."""
    return ALLOCATION_DATA.pack(ALLOCATION_MAGIC, version, int(flags), size, rows, 0)


#: Row pitch alignment of the reference driver's GDI surfaces.
GDI_PITCH_ALIGNMENT: Final = 256
