"""Hypothesis strategies: abstract programs and malformed command buffers.

Shared by the suite's property tests and state machine: a program is a list of
:mod:`wddm_conformance.program` operations whose references all stay inside the
allocations they name, so its meaning is well defined and the harness's model can say
what GPU memory must hold afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import strategies as st

from .program import AllocRef, Bind, Copy, Fill, Op, Write, Xor


@st.composite
def _ref(draw: st.DrawFn, sizes: Sequence[int], length: int) -> AllocRef:
    candidates = [i for i, s in enumerate(sizes) if s >= length and i > 0]
    index = draw(st.sampled_from(candidates))
    offset = draw(st.integers(0, sizes[index] - length))
    return AllocRef(index, offset)


@st.composite
def operations(draw: st.DrawFn, sizes: Sequence[int]) -> Op:
    """One operation over allocation-list entries with the given sizes (entry 0 is NULL)."""
    smallest = max(s for s in sizes[1:])
    kind = draw(st.sampled_from(["copy", "fill", "write", "xor", "bind", "unbind"]))
    if kind in ("copy", "xor"):
        length = draw(st.integers(1, min(smallest, 4096)))
        dst, src = draw(_ref(sizes, length)), draw(_ref(sizes, length))
        return Copy(dst, src, length) if kind == "copy" else Xor(dst, src, length)
    if kind == "fill":
        length = draw(st.integers(1, min(smallest, 8192)))
        return Fill(draw(_ref(sizes, length)), length, draw(st.integers(0, 0xFFFFFFFF)))
    if kind == "write":
        return Write(draw(_ref(sizes, 4)), draw(st.integers(0, 0xFFFFFFFF)))
    slot = draw(st.integers(0, 7))
    return Bind(slot, None if kind == "unbind" else draw(_ref(sizes, 0)))


def programs(sizes: Sequence[int], max_ops: int = 12) -> st.SearchStrategy[list[Op]]:
    """A valid program over allocation-list entries of ``sizes`` (``sizes[0]`` is the NULL entry)."""
    if not any(s >= 4 for s in sizes[1:]):
        raise ValueError("programs need an allocation of at least 4 bytes")
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
