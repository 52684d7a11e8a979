"""The byte format fuzz inputs are decoded from, and its inverse for writing seeds.

A fuzz input is read front to back as little-endian integers and length-prefixed
blobs; reading past the end gives zeros, so every byte string decodes to some
scenario (libFuzzer's mutations never produce an "invalid input"). :class:`Writer`
writes the same fields in the same order, so a seed built from a scenario decodes
back to that scenario. Decoders clamp values with ``value % modulus``, which leaves a
value already in range unchanged: a seed keeps its meaning, a mutation stays in range.
"""

from __future__ import annotations


class Reader:
    """Consumes a fuzz input field by field."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def u8(self) -> int:
        pos = self.pos
        self.pos = pos + 1
        return self.data[pos] if pos < len(self.data) else 0

    def u16(self) -> int:
        pos = self.pos
        self.pos = pos + 2
        return int.from_bytes(self.data[pos : pos + 2], "little")

    def u32(self) -> int:
        pos = self.pos
        self.pos = pos + 4
        return int.from_bytes(self.data[pos : pos + 4], "little")

    def below(self, n: int) -> int:
        """A value in ``[0, n)`` from two bytes (0 when ``n`` is 0)."""
        return self.u16() % n if n > 0 else self.u16() * 0

    def flag(self) -> bool:
        return bool(self.u8() & 1)

    def take(self, n: int) -> bytes:
        pos = self.pos
        self.pos = pos + n
        return self.data[pos : pos + n]

    def blob(self, limit: int) -> bytes:
        """A u16 length (modulo ``limit + 1``), then that many bytes (fewer at the end of the input)."""
        return self.take(self.u16() % (limit + 1))

    @property
    def exhausted(self) -> bool:
        return self.pos >= len(self.data)


class Writer:
    """Writes fields in the order a :class:`Reader` consumes them."""

    __slots__ = ("out",)

    def __init__(self) -> None:
        self.out = bytearray()

    def u8(self, value: int) -> Writer:
        self.out.append(value & 0xFF)
        return self

    def u16(self, value: int) -> Writer:
        self.out += (value & 0xFFFF).to_bytes(2, "little")
        return self

    def u32(self, value: int) -> Writer:
        self.out += (value & 0xFFFFFFFF).to_bytes(4, "little")
        return self

    def below(self, value: int) -> Writer:
        return self.u16(value)

    def flag(self, value: bool) -> Writer:
        return self.u8(int(value))

    def take(self, data: bytes) -> Writer:
        self.out += data
        return self

    def blob(self, data: bytes) -> Writer:
        return self.u16(len(data)).take(data)

    def bytes(self) -> bytes:
        return bytes(self.out)
