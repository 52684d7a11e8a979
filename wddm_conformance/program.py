"""Abstract GPU programs: what a user-mode command buffer means, independent of any driver.

A program is a list of operations over allocation-list entries. A driver's command
encoder turns it into that driver's command-buffer format; :func:`apply` is the
reference model of its effect. An oracle runs the program through the driver, the
kernel and the GPU model, and compares memory with :func:`apply` (REN-TRANSLATE).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import NamedTuple


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


class Access(NamedTuple):
    """One allocation reference of an operation: the bytes it reads or writes there.

    ``ref``: the allocation-list entry and byte offset exactly as the operation states
    them (not clamped: an index or offset may lie outside the list or the allocation,
    be negative or have bit 31 set). ``length``: bytes from ``ref.offset``, 0 for a
    Bind (an address, no bytes). ``reads``/``writes``: whether the GPU reads or writes
    those bytes (a Bind does neither; an Xor destination does both).
    """

    ref: AllocRef
    length: int
    reads: bool
    writes: bool

    @property
    def end(self) -> int:
        """One past the last byte, exact (an offset near 2^32 plus a length does not wrap)."""
        return self.ref.offset + self.length


def touches(op: Op) -> tuple[Access, ...]:
    """Every allocation reference of ``op`` and the bytes it covers, destination first.

    The one statement of which bytes an operation touches: a Copy reads ``size`` bytes
    at ``src`` and writes them at ``dst``; an Xor reads both and writes ``dst``; a Fill
    writes ``size`` bytes and a Write 4 at ``dst``; a Bind refers to ``ref`` without
    touching a byte (length 0) and an unbind (``ref`` None) refers to nothing.
    """
    if isinstance(op, Copy | Xor):
        xor = isinstance(op, Xor)
        return (Access(op.dst, op.size, xor, True), Access(op.src, op.size, True, False))
    if isinstance(op, Fill):
        return (Access(op.dst, op.size, False, True),)
    if isinstance(op, Write):
        return (Access(op.dst, 4, False, True),)
    return () if op.ref is None else (Access(op.ref, 0, False, False),)


def written_indices(program: Iterable[Op]) -> set[int]:
    """Allocation-list indices a program writes (those need WriteOperation set)."""
    return {a.ref.index for op in program for a in touches(op) if a.writes}


def referenced_indices(program: Iterable[Op]) -> set[int]:
    """Allocation-list indices a program reads, writes or binds."""
    return {a.ref.index for op in program for a in touches(op)}


def apply(program: Iterable[Op], memory: MutableMapping[int, bytearray]) -> dict[int, int]:
    """Apply ``program`` to ``memory`` (allocation index -> content); return the final bindings."""
    bindings: dict[int, int] = {}
    for op in program:
        if isinstance(op, Bind):
            bindings[op.slot] = -1 if op.ref is None else op.ref.index
            continue
        dst, *src = touches(op)
        where = slice(dst.ref.offset, dst.end)
        if isinstance(op, Copy):
            data = _read(memory, src[0])
        elif isinstance(op, Fill):
            data = fill_bytes(op.size, op.pattern)
        elif isinstance(op, Write):
            data = (op.value & 0xFFFFFFFF).to_bytes(4, "little")
        else:
            mixed = int.from_bytes(_read(memory, dst), "little") ^ int.from_bytes(
                _read(memory, src[0]), "little"
            )
            data = mixed.to_bytes(op.size, "little")
        memory[dst.ref.index][where] = data
    return bindings


def _read(memory: Mapping[int, bytearray], a: Access) -> bytes:
    return bytes(memory[a.ref.index][a.ref.offset : a.end])


def describe_difference(got: bytes, want: bytes) -> str:
    """Where two byte strings first differ, for failure messages (``at byte 12 (got 0x00, want 0xFF)``)."""
    for i, (g, w) in enumerate(zip(got, want, strict=False)):
        if g != w:
            return f"at byte {i} (got 0x{g:02X}, want 0x{w:02X})"
    return f"in length ({len(got)} bytes, want {len(want)})"


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
        for a in touches(op):
            index, offset = a.ref.index, a.ref.offset
            if index not in sizes:
                null = list_length is not None and 0 <= index < list_length
                if not (null and isinstance(op, Bind)):
                    out.append(f"{op} (outside allocation-list entry {index}: no allocation)")
            elif offset < 0 or a.length < 0 or a.end > sizes[index]:
                out.append(
                    f"{op} (bytes [{offset}, {a.end}) are outside allocation-list "
                    f"entry {index}'s {sizes[index]} bytes)"
                )
    return out


def check_bounds(program: Iterable[Op], sizes: Mapping[int, int]) -> None:
    """Raise ValueError if an operation reaches outside an allocation (programs for valid tests)."""
    bad = out_of_bounds(program, sizes)
    if bad:
        raise ValueError(bad[0])
