"""The second driver's GPU instruction set ("S2 ISA"): one table the driver, the GPU and the
disassembler read.

Every instruction starts with a 32-bit little-endian header word:
``opcode << 24 | modifier << 16 | length in bytes``. The length is the whole instruction,
header included, and must equal the opcode's fixed length. Operands follow, little-endian.
Addresses are 64-bit GPU physical addresses. Opcodes 0xF0 and up are privileged (paging
buffers only).

Written from docs/INTERPRETING.md alone, independently of the reference GPU.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

PAD: Final = 0xA0  # no operands; any length >= 4 that is a multiple of 4
MOVE: Final = 0xA1  # size u32, src u64, dst u64 (memmove)
SET: Final = 0xA2  # size u32, pattern u32, dst u64
STORE: Final = 0xA3  # modifier = width 1..8; value u64, dst u64
LOAD: Final = 0xA4  # modifier = width 1..8; src u64
MIX: Final = 0xA5  # size u32, src u64, dst u64: dst ^= src
SLOT: Final = 0xA6  # slot u32, addr u64 (0 unbinds); never dereferenced
SIGNAL: Final = 0xA7  # fence u64
TILE: Final = 0xA8  # size u32, phase u32, src u64 (linear), dst_base u64 (tiled allocation base)
UNTILE: Final = 0xA9  # size u32, phase u32, src_base u64 (tiled allocation base), dst u64 (linear)
PTE: Final = 0xF0  # privileged: page u32, flags u32, pfn u64
REG: Final = 0xF1  # privileged: reg u32, value u32

PTE_VALID: Final = 0x1
PTE_COHERENT: Final = 0x2


@dataclass(frozen=True)
class Form:
    """One opcode: mnemonic, operand layout after the header, operand names, address operands."""

    name: str
    body: struct.Struct
    operands: tuple[str, ...]
    #: byte offsets (from the instruction start) of patchable 64-bit addresses, by operand name
    addresses: dict[str, int]

    @property
    def size(self) -> int:
        return 4 + self.body.size


def _form(name: str, fmt: str, operands: tuple[str, ...]) -> Form:
    body = struct.Struct(fmt)
    addresses: dict[str, int] = {}
    pos = 4
    for op, code in zip(operands, fmt[1:], strict=True):
        if op in ("src", "dst", "addr", "dst_base", "src_base"):
            addresses[op] = pos
        pos += struct.calcsize("<" + code)
    return Form(name, body, operands, addresses)


FORMS: Final[dict[int, Form]] = {
    PAD: _form("PAD", "<", ()),
    MOVE: _form("MOVE", "<IQQ", ("size", "src", "dst")),
    SET: _form("SET", "<IIQ", ("size", "pattern", "dst")),
    STORE: _form("STORE", "<QQ", ("value", "dst")),
    LOAD: _form("LOAD", "<Q", ("src",)),
    MIX: _form("MIX", "<IQQ", ("size", "src", "dst")),
    SLOT: _form("SLOT", "<IQ", ("slot", "addr")),
    SIGNAL: _form("SIGNAL", "<Q", ("fence",)),
    TILE: _form("TILE", "<IIQQ", ("size", "phase", "src", "dst_base")),
    UNTILE: _form("UNTILE", "<IIQQ", ("size", "phase", "src_base", "dst")),
    PTE: _form("PTE", "<IIQ", ("page", "flags", "pfn")),
    REG: _form("REG", "<II", ("reg", "value")),
}


def privileged(opcode: int) -> bool:
    return opcode >= 0xF0


def header(opcode: int, length: int, modifier: int = 0) -> bytes:
    return struct.pack("<I", (opcode << 24) | ((modifier & 0xFF) << 16) | (length & 0xFFFF))


def encode(opcode: int, *operands: int, modifier: int = 0) -> bytes:
    """One instruction as bytes."""
    form = FORMS[opcode]
    return header(opcode, form.size, modifier) + form.body.pack(*operands)


def decode_header(word: int) -> tuple[int, int, int]:
    """(opcode, modifier, length) of a header word."""
    return word >> 24, (word >> 16) & 0xFF, word & 0xFFFF


# The tiled layout of swizzled allocations: 512-byte blocks of 32 16-byte units; linear
# unit u of a block is stored at unit (u * 7) % 32. A block only partly inside the tiled
# range of one operation is stored linearly.
TILE_BLOCK: Final = 512
TILE_UNIT: Final = 16
_UNITS: Final = TILE_BLOCK // TILE_UNIT
TILE_PERM: Final = tuple((u * 7) % _UNITS for u in range(_UNITS))
TILE_INV: Final = tuple(TILE_PERM.index(u) for u in range(_UNITS))


def _permute(data: bytes | bytearray | memoryview, source_unit: tuple[int, ...]) -> bytes:
    """Unit ``t`` of every block of the result is unit ``source_unit[t]`` of that block of ``data``."""
    view = bytes(data)
    out = bytearray(len(view))
    for t, s in enumerate(source_unit):
        for k in range(TILE_UNIT):
            out[t * TILE_UNIT + k :: TILE_BLOCK] = view[s * TILE_UNIT + k :: TILE_BLOCK]
    return bytes(out)


def tile_blocks(linear: bytes | bytearray | memoryview) -> bytes:
    """Whole blocks of linear bytes in tiled order (``len`` a multiple of TILE_BLOCK)."""
    return _permute(linear, TILE_INV)


def untile_blocks(tiled: bytes | bytearray | memoryview) -> bytes:
    """Whole tiled blocks back in linear order (``len`` a multiple of TILE_BLOCK)."""
    return _permute(tiled, TILE_PERM)
