"""The reference GPU's instruction set: one table for executor, decoder, encoder and disassembler.

Every instruction starts with a one-byte opcode and has a fixed little-endian layout
(a ``struct`` format whose first item is the opcode). Opcodes with bit 7 set are
privileged: legal only in paging buffers the kernel asks the driver to build, never
in a DMA buffer built from a user command buffer. docs/isa.md is generated from this
table (``python -m wddm_conformance.reference.isa``).
"""

from __future__ import annotations

import struct
import sys
from array import array
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class Instruction:
    """One row of the instruction table."""

    opcode: int
    mnemonic: str
    layout: str
    operands: tuple[str, ...]
    #: Operand name -> byte offset of an 8-byte physical address a patch may rewrite.
    address_offsets: dict[str, int]
    handler: str
    doc: str

    @property
    def struct(self) -> struct.Struct:
        return _STRUCTS[self.opcode]

    @property
    def size(self) -> int:
        return _STRUCTS[self.opcode].size

    @property
    def privileged(self) -> bool:
        return bool(self.opcode & 0x80)


PRIVILEGED_BIT: Final = 0x80

#: PTE flags of the aperture page table.
PTE_VALID: Final = 0x1
PTE_CACHE_COHERENT: Final = 0x2

#: Swizzled layout: within each 64-byte block, linear 16-byte quad q is stored at quad SWIZZLE_ORDER[q].
SWIZZLE_BLOCK: Final = 64
SWIZZLE_ORDER: Final = (1, 2, 3, 0)

TABLE: Final[tuple[Instruction, ...]] = (
    Instruction(0x00, "NOP", "<B3x", (), {}, "_op_nop", "Do nothing (padding)."),
    Instruction(
        0x01,
        "COPY",
        "<B3xQQI",
        ("dst", "src", "size"),
        {"dst": 4, "src": 12},
        "_op_copy",
        "Copy `size` bytes from `src` to `dst` (memmove semantics).",
    ),
    Instruction(
        0x02,
        "FILL",
        "<B3xQII",
        ("dst", "size", "pattern"),
        {"dst": 4},
        "_op_fill",
        "Fill `size` bytes at `dst` with the 32-bit little-endian `pattern`, repeated and truncated.",
    ),
    Instruction(
        0x03,
        "WRITE",
        "<BB2xQQ",
        ("width", "dst", "value"),
        {"dst": 4},
        "_op_write",
        "Write the low `width` (1-8) bytes of `value` at `dst`.",
    ),
    Instruction(
        0x04,
        "READ",
        "<BB2xQ",
        ("width", "src"),
        {"src": 4},
        "_op_read",
        "Read `width` (1-8) bytes at `src` and discard them (a coherency read).",
    ),
    Instruction(
        0x05,
        "XOR",
        "<B3xQQI",
        ("dst", "src", "size"),
        {"dst": 4, "src": 12},
        "_op_xor",
        "Compute `dst[i] ^= src[i]` for `size` bytes: reads both ranges, writes `dst`.",
    ),
    Instruction(
        0x06,
        "BIND",
        "<B3xIQ",
        ("slot", "addr"),
        {"addr": 8},
        "_op_bind",
        "Set binding-table `slot` to `addr`; never dereferences it (0 unbinds).",
    ),
    Instruction(
        0x07,
        "FENCE",
        "<B3xQ",
        ("fence",),
        {},
        "_op_fence",
        "Signal fence `fence` to the scheduler.",
    ),
    Instruction(
        0x08,
        "SWZCOPY",
        "<B3xQQI",
        ("dst", "src", "size"),
        {"dst": 4, "src": 12},
        "_op_swzcopy",
        "Copy `size` bytes from linear `src` to swizzled `dst` (see the swizzled layout).",
    ),
    Instruction(
        0x09,
        "UNSWZCOPY",
        "<B3xQQI",
        ("dst", "src", "size"),
        {"dst": 4, "src": 12},
        "_op_unswzcopy",
        "Copy `size` bytes from swizzled `src` to linear `dst`.",
    ),
    Instruction(
        0x80,
        "PTE",
        "<B3xIIQ",
        ("page", "flags", "pfn"),
        {},
        "_op_pte",
        "Privileged. Set aperture page-table entry `page` to page frame `pfn` with `flags` "
        "(bit 0 valid, bit 1 cache coherent); an entry without the valid bit faults on access.",
    ),
    Instruction(
        0x81,
        "REG",
        "<B3xII",
        ("reg", "value"),
        {},
        "_op_reg",
        "Privileged. Write `value` to GPU register `reg` (0-15).",
    ),
)

_STRUCTS: Final = {ins.opcode: struct.Struct(ins.layout) for ins in TABLE}
BY_OPCODE: Final[dict[int, Instruction]] = {ins.opcode: ins for ins in TABLE}
BY_MNEMONIC: Final[dict[str, Instruction]] = {ins.mnemonic: ins for ins in TABLE}


def encode(mnemonic: str, *operands: int) -> bytes:
    """Encode one instruction, operands in table order."""
    ins = BY_MNEMONIC[mnemonic]
    if len(operands) != len(ins.operands):
        raise ValueError(
            f"{mnemonic} takes {len(ins.operands)} operand(s) {ins.operands}, got {len(operands)}"
        )
    return ins.struct.pack(ins.opcode, *operands)


def decode(
    buf: bytes | bytearray | memoryview, offset: int
) -> tuple[Instruction, tuple[int, ...]] | None:
    """Decode the instruction at ``offset``; None if the opcode is unknown or the instruction is cut off."""
    if offset >= len(buf):
        return None
    ins = BY_OPCODE.get(buf[offset])
    if ins is None or offset + ins.size > len(buf):
        return None
    return ins, ins.struct.unpack_from(buf, offset)[1:]


def format_instruction(ins: Instruction, operands: tuple[int, ...]) -> str:
    """``COPY dst=0x100000000 src=0x100001000 size=4096``."""
    parts = []
    for name, value in zip(ins.operands, operands, strict=True):
        shown = (
            f"0x{value:X}"
            if name in ins.address_offsets or name in ("pfn", "pattern", "value")
            else str(value)
        )
        parts.append(f"{name}={shown}")
    return f"{ins.mnemonic:<9} {' '.join(parts)}".rstrip()


def instruction_boundaries(buf: bytes | bytearray | memoryview) -> list[int]:
    """Offsets where decodable instructions start, in order, up to the first undecodable byte."""
    out: list[int] = []
    pc = 0
    while pc < len(buf):
        decoded = decode(buf, pc)
        if decoded is None:
            break
        out.append(pc)
        pc += decoded[0].size
    return out


def disassemble(
    buf: bytes | bytearray | memoryview,
    start: int = 0,
    end: int | None = None,
    mark: int | None = None,
    context: int = 6,
) -> str:
    """Disassemble ``buf[start:end]``; with ``mark``, show ``context`` instructions around it, marked ``=>``."""
    stop = len(buf) if end is None else min(end, len(buf))
    lines: list[tuple[int, int, str]] = []  # (offset, width, text)
    pc = start
    while pc < stop:
        decoded = decode(buf[:stop], pc)
        if decoded is None:
            raw = bytes(buf[pc : min(stop, pc + 8)])
            lines.append((pc, len(raw), f".bytes    {raw.hex(' ')}  ; not an instruction"))
            pc += len(raw)
            continue
        ins, operands = decoded
        priv = "  ; privileged" if ins.privileged else ""
        lines.append((pc, ins.size, format_instruction(ins, operands) + priv))
        pc += ins.size
    shown = lines
    if mark is not None and lines:
        at = next((i for i, (off, width, _) in enumerate(lines) if off <= mark < off + width), None)
        if at is None:
            at = len(lines) - 1 if mark >= lines[-1][0] else 0
        shown = lines[max(0, at - context) : at + context + 1]
    return "\n".join(
        f"{'=>' if mark is not None and off <= mark < off + width else '  '} +0x{off:04X}  {text}"
        for off, width, text in shown
    )


def _permute_quads(data: bytes | bytearray | memoryview, to_tiled: bool) -> bytes:
    """Move the 16-byte quads of every full 64-byte block per SWIZZLE_ORDER (or back)."""
    src = bytes(data)
    full = len(src) - len(src) % SWIZZLE_BLOCK
    # A quad is two 8-byte words: strided slices of word arrays move every block's quad q
    # at once, in C (the byte order of the words never matters, they are only moved).
    words = array("Q", src[:full])
    out = array("Q", words)
    per_block = SWIZZLE_BLOCK // 8
    for q, target in enumerate(SWIZZLE_ORDER):
        frm, to = (q, target) if to_tiled else (target, q)
        out[2 * to :: per_block] = words[2 * frm :: per_block]
        out[2 * to + 1 :: per_block] = words[2 * frm + 1 :: per_block]
    return out.tobytes() + src[full:]


def swizzle(linear: bytes | bytearray | memoryview) -> bytes:
    """The swizzled (tiled) form of ``linear``: quads of each full 64-byte block moved per SWIZZLE_ORDER."""
    return _permute_quads(linear, to_tiled=True)


def unswizzle(tiled: bytes | bytearray | memoryview) -> bytes:
    """Inverse of :func:`swizzle`: the bytes in the order the CPU sees them through the linear aperture."""
    return _permute_quads(tiled, to_tiled=False)


def markdown_table() -> str:
    """The instruction table as Markdown, for docs/isa.md."""
    rows = [
        "| opcode | mnemonic | bytes | operands (layout) | privileged | patchable address at | meaning |",
        "|---|---|---|---|---|---|---|",
    ]
    for ins in TABLE:
        addrs = ", ".join(f"`{k}` +{v}" for k, v in ins.address_offsets.items()) or "-"
        rows.append(
            f"| 0x{ins.opcode:02X} | {ins.mnemonic} | {ins.size} | {', '.join(ins.operands) or '-'} "
            f"(`{ins.layout}`) | {'yes' if ins.privileged else 'no'} | {addrs} | {ins.doc} |"
        )
    return "\n".join(rows)


if __name__ == "__main__":  # pragma: no cover - doc generator
    sys.stdout.write(markdown_table() + "\n")
