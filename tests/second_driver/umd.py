"""The second driver's user-mode side: its command-buffer format and allocation private data.

Command buffer: a sequence of commands of 32-bit little-endian words. The first word is
the header ``<u8 words, u8 opcode, u16 reserved (0)>``; ``words`` counts the whole command,
header included, and must be the opcode's count. Allocation references are an
allocation-list index and a byte offset (u32 each).

=======  =========  ===========================================  =====
opcode   command    words after the header                       words
=======  =========  ===========================================  =====
0x21     STORE32    dst_index, dst_offset, value                 4
0x22     FILL       size, pattern, dst_index, dst_offset         5
0x23     COPY       size, src_index, src_offset, dst_index,      6
                    dst_offset
0x24     XOR        as COPY (dst ^= src)                         6
0x25     BIND       slot, index, offset (a NULL element unbinds) 4
0x26     VERSION    version (2)                                  2
0x31     SETPTE     page, pfn (privileged: always rejected)      3
0x32     SETREG     reg, value (privileged: always rejected)     3
=======  =========  ===========================================  =====

Allocation private data (``S2ALLOC``, 28 bytes): ``<4s magic b"S2AL", u8 version (2),
u8 flags, u16 reserved, u64 size, u32 gdi_rows, u32 reserved, u32 crc32 of the first 24
bytes>``. Flags: 0x80 CpuVisible, 0x40 Swizzled, 0x20 may use the aperture, 0x10
aperture only, 0x08 HistoryBuffer, 0x04 AlternateVA.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from typing import Final

from wddm_conformance.ddi import D3DDDI_PATCHLOCATIONLIST
from wddm_conformance.driver import AllocationRequest, EncodedProgram
from wddm_conformance.program import Bind, Copy, Fill, Op, Write, Xor

STORE32: Final = 0x21
FILL: Final = 0x22
COPY: Final = 0x23
XOR: Final = 0x24
BIND: Final = 0x25
VERSION: Final = 0x26
SETPTE: Final = 0x31
SETREG: Final = 0x32
PRIVILEGED: Final = frozenset({SETPTE, SETREG})
ILLEGAL_OPCODE: Final = 0x3E

#: opcode -> number of 32-bit words, header included
WORDS: Final[dict[int, int]] = {
    STORE32: 4,
    FILL: 5,
    COPY: 6,
    XOR: 6,
    BIND: 4,
    VERSION: 2,
    SETPTE: 3,
    SETREG: 3,
}
UMD_VERSION: Final = 2

ALLOC_MAGIC: Final = b"S2AL"
ALLOC_VERSION: Final = 2
ALLOC_STRUCT: Final = struct.Struct("<4sBBHQII")
ALLOC_DATA_SIZE: Final = ALLOC_STRUCT.size + 4
F_CPU_VISIBLE: Final = 0x80
F_SWIZZLED: Final = 0x40
F_APERTURE: Final = 0x20
F_APERTURE_ONLY: Final = 0x10
F_HISTORY: Final = 0x08
F_ALTERNATE_VA: Final = 0x04
F_ALL: Final = (
    F_CPU_VISIBLE | F_SWIZZLED | F_APERTURE | F_APERTURE_ONLY | F_HISTORY | F_ALTERNATE_VA
)


def command(opcode: int, *words: int) -> bytes:
    """One command: the header, then ``words`` as u32 (masked to 32 bits)."""
    return struct.pack("<BBH", 1 + len(words), opcode, 0) + b"".join(
        struct.pack("<I", w & 0xFFFFFFFF) for w in words
    )


def pack_allocation_data(flags: int, size: int, gdi_rows: int = 0) -> bytes:
    head = ALLOC_STRUCT.pack(ALLOC_MAGIC, ALLOC_VERSION, flags, 0, size, gdi_rows, 0)
    return head + struct.pack("<I", zlib.crc32(head))


class SecondEncoder:
    """Encodes abstract programs (:mod:`wddm_conformance.program`) in the format above."""

    def allocation_private_data(self, request: AllocationRequest) -> bytes:
        flags = 0
        if request.cpu_visible:
            flags |= F_CPU_VISIBLE
        if request.swizzled:
            flags |= F_SWIZZLED
        if request.aperture:
            flags |= F_APERTURE
        if request.aperture_only:
            flags |= F_APERTURE_ONLY | F_APERTURE
        if request.history_buffer:
            flags |= F_HISTORY
        if request.alternate_va:
            flags |= F_ALTERNATE_VA
        return pack_allocation_data(flags, request.size, request.gdi_rows)

    def encode(self, program: Sequence[Op]) -> EncodedProgram:
        out = bytearray()
        patches: list[D3DDDI_PATCHLOCATIONLIST] = []

        def ref(index: int, offset: int, word: int, slot: int = 0) -> None:
            patches.append(
                D3DDDI_PATCHLOCATIONLIST(
                    AllocationIndex=index & 0xFFFFFFFF,
                    SlotId=slot,
                    AllocationOffset=offset & 0xFFFFFFFF,
                    PatchOffset=len(out) + 4 * word,
                )
            )

        for op in program:
            if isinstance(op, Write):
                ref(op.dst.index, op.dst.offset, 1)
                out += command(STORE32, op.dst.index, op.dst.offset, op.value)
            elif isinstance(op, Fill):
                ref(op.dst.index, op.dst.offset, 3)
                out += command(FILL, op.size, op.pattern, op.dst.index, op.dst.offset)
            elif isinstance(op, Copy | Xor):
                ref(op.src.index, op.src.offset, 2)
                ref(op.dst.index, op.dst.offset, 4)
                opcode = COPY if isinstance(op, Copy) else XOR
                out += command(
                    opcode, op.size, op.src.index, op.src.offset, op.dst.index, op.dst.offset
                )
            elif isinstance(op, Bind):
                index, offset = (0, 0) if op.ref is None else (op.ref.index, op.ref.offset)
                ref(index, offset, 2, slot=op.slot)
                out += command(BIND, op.slot, index, offset)
            else:  # pragma: no cover - Op is a closed union
                raise TypeError(f"not a program operation: {op!r}")
        for i, entry in enumerate(patches):
            entry.SplitOffset = i
        return EncodedProgram(bytes(out), patches)

    def privileged_command(self) -> bytes:
        return command(SETPTE, 0, 0x100)

    def illegal_command(self) -> bytes:
        return command(ILLEGAL_OPCODE)
