"""Hypothesis strategies: abstract programs and malformed command buffers.

Shared by the suite's property tests and state machine: a program is a list of
:mod:`wddm_conformance.program` operations whose references all stay inside the
allocations they name, so its meaning is well defined and the harness's model can say
what GPU memory must hold afterwards.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import replace

from hypothesis import strategies as st

from .program import AllocRef, Bind, Copy, Fill, Op, Write, Xor, touches

#: Strategies are made once: hypothesis validates a new strategy object on its first draw,
#: which cost the state machine a tenth of its time when made per operation.
_KIND = st.sampled_from(("copy", "fill", "write", "xor", "bind", "unbind"))
_WORD = st.integers(0, 0xFFFFFFFF)
_SLOT = st.integers(0, 7)


@functools.lru_cache(maxsize=4096)
def _entries_of(sizes: tuple[int, ...], length: int) -> st.SearchStrategy[int]:
    return st.sampled_from(tuple(i for i, s in enumerate(sizes) if s >= length and i > 0))


def _ref(draw: st.DrawFn, sizes: tuple[int, ...], length: int) -> AllocRef:
    index = draw(_entries_of(sizes, length))
    offset = draw(st.integers(0, sizes[index] - length))
    return AllocRef(index, offset)


@st.composite
def operations(draw: st.DrawFn, sizes: Sequence[int]) -> Op:
    """One operation over allocation-list entries with the given sizes (entry 0 is NULL)."""
    sizes = tuple(sizes)
    smallest = max(s for s in sizes[1:])
    kind = draw(_KIND)
    if kind in ("copy", "xor"):
        length = draw(st.integers(1, min(smallest, 4096)))
        dst, src = _ref(draw, sizes, length), _ref(draw, sizes, length)
        return Copy(dst, src, length) if kind == "copy" else Xor(dst, src, length)
    if kind == "fill":
        length = draw(st.integers(1, min(smallest, 8192)))
        return Fill(_ref(draw, sizes, length), length, draw(_WORD))
    if kind == "write":
        return Write(_ref(draw, sizes, 4), draw(_WORD))
    slot = draw(_SLOT)
    return Bind(slot, None if kind == "unbind" else _ref(draw, sizes, 0))


@st.composite
def _wide(draw: st.DrawFn, low: int, wrap: int = 0) -> int:
    """A 32-bit word of at least ``low`` where a narrow or signed check goes wrong: just
    past ``low``, a little past 2^16 or 2^31 (16-bit or signed comparisons), all ones, or
    ``2^32 - k`` for ``k`` up to ``wrap`` (a 32-bit sum with ``wrap`` more wraps to < k)."""
    small = draw(st.integers(0, 255))
    kind = draw(st.sampled_from(["past", "16-bit", "signed", "ones", "wraps"]))
    word = {
        "past": low + small,
        "16-bit": (1 << 16) + small,
        "signed": (1 << 31) + small,
        "ones": 0xFFFF_FFFF,
        "wraps": (1 << 32) - 1 - small % max(wrap, 1),
    }[kind]
    return min(max(word, low), 0xFFFF_FFFF)


@st.composite
def outside_operations(draw: st.DrawFn, sizes: Sequence[int]) -> Op:
    """One operation with a reference outside its allocation, built from full-width fields.

    ``sizes``: the allocations' sizes as the driver reported them (``sizes[0]`` is the NULL
    entry). One field of an in-bounds operation is replaced by a 32-bit value: an index
    past the list's end, past 2^16 or with bit 31 set; an offset near 2^32 whose end wraps
    a 32-bit sum; a size past 2^16 or 2^31. Every field stays below 2^32 (what an encoder
    can carry), and :func:`~wddm_conformance.program.out_of_bounds` lists the result.
    """
    op = draw(operations(sizes).filter(lambda o: not (isinstance(o, Bind) and o.ref is None)))
    first = touches(op)[0]
    kinds = (
        ["index", "offset", "size"] if isinstance(op, Copy | Xor | Fill) else ["index", "offset"]
    )
    field = draw(st.sampled_from(kinds))
    if field == "size" and isinstance(op, Copy | Xor | Fill):
        room = min(sizes[a.ref.index] - a.ref.offset for a in touches(op))
        return replace(op, size=draw(_wide(room + 1, wrap=first.ref.offset)))
    if field == "offset":
        bad = replace(
            first.ref, offset=draw(_wide(sizes[first.ref.index] - first.length + 1, first.length))
        )
    else:
        bad = replace(first.ref, index=draw(_wide(len(sizes))))
    return replace(op, ref=bad) if isinstance(op, Bind) else replace(op, dst=bad)


def programs(sizes: Sequence[int], max_ops: int = 12) -> st.SearchStrategy[list[Op]]:
    """A valid program over allocation-list entries of ``sizes`` (``sizes[0]`` is the NULL entry)."""
    if not any(s >= 4 for s in sizes[1:]):
        raise ValueError("programs need an allocation of at least 4 bytes")
    return _programs(tuple(sizes), max_ops)


@functools.lru_cache(maxsize=256)
def _programs(sizes: tuple[int, ...], max_ops: int) -> st.SearchStrategy[list[Op]]:
    # One strategy object per shape: hypothesis validates a new one on its first draw.
    return st.lists(operations(sizes), min_size=1, max_size=max_ops)


@st.composite
def malformed(draw: st.DrawFn, valid: bytes) -> bytes:
    """A command buffer damaged the ways a hostile or buggy user-mode driver damages them."""
    how = draw(st.sampled_from(["truncate", "flip", "splice", "random", "repeat", "zero-length"]))
    if how == "truncate" and len(valid) > 1:
        return valid[: draw(st.integers(0, len(valid) - 1))]
    if how == "flip" and valid:
        data = bytearray(valid)
        for _ in range(draw(st.integers(1, 4))):
            at = draw(st.integers(0, len(data) - 1))
            data[at] ^= 1 << draw(st.integers(0, 7))
        return bytes(data)
    if how == "splice" and valid:
        at = draw(st.integers(0, len(valid)))
        return valid[:at] + draw(st.binary(min_size=1, max_size=32)) + valid[at:]
    if how == "repeat":
        return valid * draw(st.integers(2, 4))
    if how == "zero-length":
        return b""
    return draw(st.binary(min_size=1, max_size=256))
