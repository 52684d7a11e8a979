"""The second driver's GPU model: the S2 ISA (:mod:`.isa`) over its own address map.

GPU physical address map (the driver reports the same bases in its segment descriptors):

* ``[0, sysmem.limit)``: system memory by page frame (``pfn * 4096 + offset``); a frame
  the OS has not allocated faults.
* ``APERTURE_BASE + n``: the aperture segment; page ``n // 4096`` goes through the GPU
  page table (set only by the privileged PTE instruction) to a system frame. An invalid
  entry, or one whose frame is no longer allocated, faults.
* ``MEMORY_BASE + n``: the memory segment (video memory, zero at power-on).
* anything else faults.

An instruction resolves every byte it will touch before it changes anything, so a
faulting instruction has no effect. The access log holds the memory finally reached.
Deterministic: no threads, no clock.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from wddm_conformance.ddi import DXGK_START_INFO, PAGE_SIZE
from wddm_conformance.driver import GpuExecution, GpuFault
from wddm_conformance.sysmem import SystemMemory

from . import isa

APERTURE_BASE = 0x40_0000_0000
MEMORY_BASE = 0x80_0000_0000


class _Fault(Exception):
    def __init__(self, address: int, message: str, kind: str = "page-fault") -> None:
        super().__init__(message)
        self.address = address
        self.kind = kind


# One piece of an access: (backing page, offset in it, length, physical address logged).
_Piece = tuple[bytearray, int, int, int]


class SecondGpu:
    """Deterministic S2 GPU: ``execute`` runs a DMA range to its end or first fault."""

    def __init__(self, sysmem: SystemMemory, info: DXGK_START_INFO) -> None:
        self.sysmem = sysmem
        self.memory_size = info.MemorySegmentSize
        self.aperture_size = info.ApertureSegmentSize
        self._vram: dict[int, bytearray] = {}
        #: aperture page -> (pfn, flags)
        self.page_table: dict[int, tuple[int, int]] = {}
        self.registers = [0] * 16

    # ------------------------------------------------------------------ addressing

    def _pieces(self, address: int, length: int) -> Iterator[_Piece]:
        pos = address
        end = address + length
        while pos < end:
            off = pos % PAGE_SIZE
            n = min(end - pos, PAGE_SIZE - off)
            yield self._page(pos), off, n, self._physical(pos)
            pos += n

    def _page(self, address: int) -> bytearray:
        if 0 <= address < self.sysmem.limit:
            page = self.sysmem.page(address // PAGE_SIZE)
            if page is None:
                raise _Fault(address, f"system page 0x{address // PAGE_SIZE:X} is not allocated")
            return page
        if MEMORY_BASE <= address < MEMORY_BASE + self.memory_size:
            key = (address - MEMORY_BASE) // PAGE_SIZE
            page = self._vram.get(key)
            if page is None:
                page = self._vram[key] = bytearray(PAGE_SIZE)
            return page
        if APERTURE_BASE <= address < APERTURE_BASE + self.aperture_size:
            pfn = self._pte(address)
            page = self.sysmem.page(pfn)
            if page is None:
                raise _Fault(address, f"aperture page maps freed frame 0x{pfn:X}")
            return page
        raise _Fault(address, f"address 0x{address:X} is in no segment")

    def _pte(self, address: int) -> int:
        entry = self.page_table.get((address - APERTURE_BASE) // PAGE_SIZE)
        if entry is None or not entry[1] & isa.PTE_VALID:
            raise _Fault(
                address, f"aperture page {(address - APERTURE_BASE) // PAGE_SIZE} is not mapped"
            )
        return entry[0]

    def _physical(self, address: int) -> int:
        if APERTURE_BASE <= address < APERTURE_BASE + self.aperture_size:
            return self._pte(address) * PAGE_SIZE + address % PAGE_SIZE
        return address

    def _resolve(self, address: int, length: int) -> list[_Piece]:
        if length < 0:
            raise _Fault(address, "negative length")
        return list(self._pieces(address, length))

    @staticmethod
    def _log(log: list[tuple[int, int]], pieces: list[_Piece]) -> None:
        for _, _, n, phys in pieces:
            if log and log[-1][0] + log[-1][1] == phys:
                log[-1] = (log[-1][0], log[-1][1] + n)
            else:
                log.append((phys, n))

    @staticmethod
    def _get(pieces: list[_Piece]) -> bytes:
        return b"".join(bytes(page[off : off + n]) for page, off, n, _ in pieces)

    @staticmethod
    def _put(pieces: list[_Piece], data: bytes) -> None:
        pos = 0
        for page, off, n, _ in pieces:
            page[off : off + n] = data[pos : pos + n]
            pos += n

    # ------------------------------------------------------------------ execution

    def execute(self, dma: bytes | bytearray | memoryview, *, privileged: bool) -> GpuExecution:
        """Run ``dma`` from its first byte; stop at its end or the first fault."""
        ex = GpuExecution()
        view = bytes(dma)
        pos = 0
        while pos < len(view):
            try:
                opcode, modifier, length, form = self._decode(view, pos)
                if isa.privileged(opcode) and not privileged:
                    raise _Fault(0, f"{form.name} is privileged", "privileged-instruction")
                operands = form.body.unpack_from(view, pos + 4)
                self._run(opcode, modifier, operands, ex)
            except _Fault as fault:
                address = None if fault.kind != "page-fault" else fault.address
                ex.fault = GpuFault(fault.kind, pos, address, str(fault))
                break
            ex.instructions += 1
            pos += length
        return ex

    def _decode(self, view: bytes, pos: int) -> tuple[int, int, int, isa.Form]:
        if pos + 4 > len(view):
            raise _Fault(0, "instruction header cut off", "illegal-instruction")
        opcode, modifier, length = isa.decode_header(struct.unpack_from("<I", view, pos)[0])
        form = isa.FORMS.get(opcode)
        if form is None:
            raise _Fault(0, f"unknown opcode 0x{opcode:02X}", "illegal-instruction")
        if opcode == isa.PAD:
            if length < 4 or length % 4:
                raise _Fault(0, f"PAD of bad length {length}", "illegal-instruction")
        elif length != form.size:
            raise _Fault(0, f"{form.name} with length {length}", "illegal-instruction")
        if pos + length > len(view):
            raise _Fault(0, f"{form.name} cut off by the end of the range", "illegal-instruction")
        return opcode, modifier, length, form

    def _run(self, opcode: int, modifier: int, o: tuple[int, ...], ex: GpuExecution) -> None:
        if opcode == isa.PAD:
            return
        if opcode in (isa.MOVE, isa.MIX):
            size, src, dst = o
            rp = self._resolve(src, size)
            wp = self._resolve(dst, size)
            data = self._get(rp)
            self._log(ex.reads, rp)
            if opcode == isa.MIX:
                self._log(ex.reads, wp)
                cur = self._get(wp)
                data = bytes(a ^ b for a, b in zip(cur, data, strict=True))
            self._put(wp, data)
            self._log(ex.writes, wp)
        elif opcode == isa.SET:
            size, pattern, dst = o
            wp = self._resolve(dst, size)
            self._put(wp, (pattern.to_bytes(4, "little") * (size // 4 + 1))[:size])
            self._log(ex.writes, wp)
        elif opcode in (isa.STORE, isa.LOAD):
            if not 1 <= modifier <= 8:
                raise _Fault(0, f"access width {modifier}", "illegal-instruction")
            if opcode == isa.STORE:
                value, dst = o
                wp = self._resolve(dst, modifier)
                self._put(wp, value.to_bytes(8, "little")[:modifier])
                self._log(ex.writes, wp)
            else:
                rp = self._resolve(o[0], modifier)
                self._log(ex.reads, rp)
        elif opcode == isa.SLOT:
            slot, addr = o
            ex.bindings[slot] = addr  # 0 records an unbind (INTERPRETING §1)
        elif opcode == isa.SIGNAL:
            ex.fences.append(o[0])
        elif opcode in (isa.TILE, isa.UNTILE):
            self._tiled(opcode, o, ex)
        elif opcode == isa.PTE:
            page, flags, pfn = o
            if page >= self.aperture_size // PAGE_SIZE:
                raise _Fault(0, f"PTE for page {page} past the aperture", "illegal-instruction")
            self.page_table[page] = (pfn, flags)
        elif opcode == isa.REG:
            reg, value = o
            if reg >= len(self.registers):
                raise _Fault(0, f"register {reg}", "illegal-instruction")
            self.registers[reg] = value

    def _tiled(self, opcode: int, o: tuple[int, ...], ex: GpuExecution) -> None:
        size, phase = o[0], o[1]
        if opcode == isa.TILE:
            src, base = o[2], o[3]
            rp = self._resolve(src, size)
            wp = self._resolve(base + phase, size)
            linear = self._get(rp)
            self._log(ex.reads, rp)
            self._put(wp, _tile_range(linear, phase, to_tiled=True))
            self._log(ex.writes, wp)
        else:
            base, dst = o[2], o[3]
            rp = self._resolve(base + phase, size)
            wp = self._resolve(dst, size)
            tiled = self._get(rp)
            self._log(ex.reads, rp)
            self._put(wp, _tile_range(tiled, phase, to_tiled=False))
            self._log(ex.writes, wp)

    # ------------------------------------------------------------------ debug access

    def read(self, address: int, length: int) -> bytes:
        try:
            return self._get(self._resolve(address, length))
        except _Fault as fault:
            raise ValueError(f"GPU debug read: {fault}") from None

    def write(self, address: int, data: bytes | bytearray | memoryview) -> None:
        try:
            self._put(self._resolve(address, len(data)), bytes(data))
        except _Fault as fault:
            raise ValueError(f"GPU debug write: {fault}") from None

    def read_linear(self, address: int, length: int) -> bytes:
        """The CPU's linear view of ``length`` bytes of a swizzled allocation starting at ``address``."""
        return self.unswizzle(self.read(address, length))

    def write_linear(self, address: int, data: bytes | bytearray | memoryview) -> None:
        self.write(address, self.swizzle(data))

    def translate(self, address: int) -> int | None:
        """The system address behind an aperture address (None if unmapped); other addresses as they are."""
        if APERTURE_BASE <= address < APERTURE_BASE + self.aperture_size:
            try:
                return self._physical(address)
            except _Fault:
                return None
        return address

    def swizzle(self, linear: bytes | bytearray | memoryview) -> bytes:
        return _tile_range(bytes(linear), 0, to_tiled=True)

    def unswizzle(self, tiled: bytes | bytearray | memoryview) -> bytes:
        return _tile_range(bytes(tiled), 0, to_tiled=False)

    # ------------------------------------------------------------------ decoding

    def disassemble(
        self,
        dma: bytes | bytearray | memoryview,
        start: int = 0,
        end: int | None = None,
        mark: int | None = None,
    ) -> str:
        view = bytes(dma)
        stop = len(view) if end is None else min(end, len(view))
        lines: list[str] = []
        pos = start
        while pos < stop:
            prefix = "=> " if pos == mark else "   "
            try:
                opcode, modifier, length, form = self._decode(view[:stop], pos)
            except _Fault as fault:
                lines.append(f"{prefix}+{pos:04X}: ?? ({fault}) {view[pos : pos + 8].hex()}")
                break
            values = form.body.unpack_from(view, pos + 4)
            text = ", ".join(f"{n}=0x{v:X}" for n, v in zip(form.operands, values, strict=True))
            width = f".{modifier}" if opcode in (isa.STORE, isa.LOAD) else ""
            lines.append(f"{prefix}+{pos:04X}: {form.name}{width} {text}".rstrip())
            pos += length
        return "\n".join(lines)

    def instruction_boundaries(self, dma: bytes | bytearray | memoryview) -> list[int]:
        """Offsets where an instruction starts, then the end of the last whole instruction."""
        view = bytes(dma)
        out: list[int] = []
        pos = 0
        while pos < len(view):
            try:
                length = self._decode(view, pos)[2]
            except _Fault:
                break
            out.append(pos)
            pos += length
        out.append(pos)
        return out


def _tile_range(data: bytes, phase: int, *, to_tiled: bool) -> bytes:
    """Tile (or untile) ``data``, the allocation bytes ``[phase, phase + len)``.

    Blocks of ``isa.TILE_BLOCK`` bytes (counted from allocation offset 0) that lie wholly
    inside the range are permuted; the bytes of blocks only partly inside stay linear.
    """
    block = isa.TILE_BLOCK
    lo = -(-phase // block) * block - phase  # first whole block, relative to data
    hi = lo + max(0, (len(data) - lo) // block) * block
    if hi <= lo:
        return data
    convert = isa.tile_blocks if to_tiled else isa.untile_blocks
    return data[:lo] + convert(data[lo:hi]) + data[hi:]
