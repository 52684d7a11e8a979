"""Abstract GPU programs: what a user-mode command buffer means, independent of any driver.

A program is a list of operations over allocation-list entries. A driver's command
encoder turns it into that driver's command-buffer format; :func:`apply` is the
reference model of its effect. An oracle runs the program through the driver, the
kernel and the GPU model, and compares memory with :func:`apply` (REN-TRANSLATE).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AllocRef:
    """Byte ``offset`` inside allocation-list entry ``index``."""

    index: int
    offset: int = 0


@dataclass(frozen=True, slots=True)
class Copy:
    """Copy ``size`` bytes from ``src`` to ``dst`` (memmove semantics)."""

    dst: AllocRef
    src: AllocRef
    size: int


@dataclass(frozen=True, slots=True)
class Fill:
    """Fill ``size`` bytes at ``dst`` with the little-endian 32-bit ``pattern``, repeated and truncated."""

    dst: AllocRef
    size: int
    pattern: int


@dataclass(frozen=True, slots=True)
class Write:
    """Write the 32-bit ``value`` (little endian) at ``dst``."""

    dst: AllocRef
    value: int


@dataclass(frozen=True, slots=True)
class Xor:
    """Compute ``dst[i] ^= src[i]`` over ``size`` bytes: reads both, writes ``dst``."""

    dst: AllocRef
    src: AllocRef
    size: int


@dataclass(frozen=True, slots=True)
class Bind:
    """Bind ``slot`` to an allocation address without touching memory; ``ref`` None unbinds (NULL element)."""

    slot: int
    ref: AllocRef | None


Op = Copy | Fill | Write | Xor | Bind


def fill_bytes(size: int, pattern: int) -> bytes:
    """The bytes a Fill of ``size`` with ``pattern`` produces."""
    unit = (pattern & 0xFFFFFFFF).to_bytes(4, "little")
    return (unit * (size // 4 + 1))[:size]


def written_indices(program: Iterable[Op]) -> set[int]:
    """Allocation-list indices a program writes (those need WriteOperation set)."""
    out: set[int] = set()
    for op in program:
        if isinstance(op, Copy | Fill | Write | Xor):
            out.add(op.dst.index)
    return out


def referenced_indices(program: Iterable[Op]) -> set[int]:
    """Allocation-list indices a program reads, writes or binds."""
    out: set[int] = set()
    for op in program:
        if isinstance(op, Copy | Xor):
            out.update((op.dst.index, op.src.index))
        elif isinstance(op, Fill | Write):
            out.add(op.dst.index)
        elif op.ref is not None:
            out.add(op.ref.index)
    return out


def apply(program: Iterable[Op], memory: MutableMapping[int, bytearray]) -> dict[int, int]:
    """Apply ``program`` to ``memory`` (allocation index -> content); return the final bindings."""
    bindings: dict[int, int] = {}
    for op in program:
        if isinstance(op, Copy):
            data = bytes(memory[op.src.index][op.src.offset : op.src.offset + op.size])
            memory[op.dst.index][op.dst.offset : op.dst.offset + op.size] = data
        elif isinstance(op, Fill):
            memory[op.dst.index][op.dst.offset : op.dst.offset + op.size] = fill_bytes(
                op.size, op.pattern
            )
        elif isinstance(op, Write):
            memory[op.dst.index][op.dst.offset : op.dst.offset + 4] = (
                op.value & 0xFFFFFFFF
            ).to_bytes(4, "little")
        elif isinstance(op, Xor):
            src = bytes(memory[op.src.index][op.src.offset : op.src.offset + op.size])
            dst = memory[op.dst.index]
            cur = bytes(dst[op.dst.offset : op.dst.offset + op.size])
            mixed = int.from_bytes(cur, "little") ^ int.from_bytes(src, "little")
            dst[op.dst.offset : op.dst.offset + op.size] = mixed.to_bytes(op.size, "little")
        else:
            bindings[op.slot] = -1 if op.ref is None else op.ref.index
    return bindings


def describe_difference(got: bytes, want: bytes) -> str:
    """Where two byte strings first differ, for failure messages (``at byte 12 (got 0x00, want 0xFF)``)."""
    for i, (g, w) in enumerate(zip(got, want, strict=False)):
        if g != w:
            return f"at byte {i} (got 0x{g:02X}, want 0x{w:02X})"
    return f"in length ({len(got)} bytes, want {len(want)})"


def touches(op: Op) -> list[tuple[AllocRef, int, bool]]:
    """(reference, length in bytes, writes) of every allocation reference of ``op``."""
    if isinstance(op, Copy | Xor):
        return [(op.dst, op.size, True), (op.src, op.size, False)]
    if isinstance(op, Fill):
        return [(op.dst, op.size, True)]
    if isinstance(op, Write):
        return [(op.dst, 4, True)]
    return [] if op.ref is None else [(op.ref, 0, False)]


def out_of_bounds(
    program: Iterable[Op], sizes: Mapping[int, int], list_length: int | None = None
) -> list[str]:
    """The references of ``program`` that reach outside their allocation-list entry, described.

    ``sizes``: entry index -> allocation size in bytes (the NULL element absent).
    Arithmetic is exact: an offset a 32-bit sum would wrap (0xFFFFFF00 + 0x200 bytes) and
    an index with bit 31 set are outside. With ``list_length``, a Bind of a NULL element
    inside the list is not listed (what it binds is the driver's choice).
    """
    out: list[str] = []
    for op in program:
        for ref, size, _ in touches(op):
            if ref.index not in sizes:
                null = list_length is not None and 0 <= ref.index < list_length
                if not (null and isinstance(op, Bind)):
                    out.append(f"{op} (outside allocation-list entry {ref.index}: no allocation)")
            elif ref.offset < 0 or size < 0 or ref.offset + size > sizes[ref.index]:
                out.append(
                    f"{op} (bytes [{ref.offset}, {ref.offset + size}) are outside allocation-list "
                    f"entry {ref.index}'s {sizes[ref.index]} bytes)"
                )
    return out


def check_bounds(program: Iterable[Op], sizes: Mapping[int, int]) -> None:
    """Raise ValueError if an operation reaches outside an allocation (programs for valid tests)."""
    bad = out_of_bounds(program, sizes)
    if bad:
        raise ValueError(bad[0])
