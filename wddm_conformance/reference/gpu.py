"""The emulated reference GPU: memory map, aperture page table, command processor.

GPU physical address map (documented in docs/isa.md):

=========================  ==========================================================
range                      what it reaches
=========================  ==========================================================
0 .. 4 GiB                 system memory by page frame (``pfn * 4096``); frames not
                           allocated by the OS fault
0x1_0000_0000 + n          memory segment (segment 1, video memory), ``n < size``
0x2_0000_0000 + n          aperture segment (segment 2): page ``n // 4096`` goes
                           through the page table to a system page frame; an
                           entry without the valid bit faults
anything else              faults
=========================  ==========================================================

The command processor is a pure state machine: ``execute`` takes a DMA range and
returns what happened (:class:`~wddm_conformance.driver.GpuExecution`): fences,
the first fault (execution stops there) and the physical access log. The GPU
never silently reaches the wrong memory: every access is resolved to segment bytes
or a present system page, or it faults. A copy within video memory is one memoryview
move; copies through the aperture or system memory go page by page
only where the aperture or system memory makes the range discontiguous.
"""

from __future__ import annotations

from collections.abc import Callable
from mmap import mmap
from typing import Final

from wddm_conformance.ddi import DXGK_START_INFO, PAGE_SIZE
from wddm_conformance.driver import FaultKind, GpuExecution, GpuFault, SurfaceLayout
from wddm_conformance.sysmem import SystemMemory

from . import isa

MEMORY_SEGMENT_BASE: Final = 0x1_0000_0000
APERTURE_SEGMENT_BASE: Final = 0x2_0000_0000
NUM_REGISTERS: Final = 16

Chunk = tuple[
    bytearray | mmap, int, int, int
]  # (backing bytes, offset in them, length, physical address)
_Dispatch = tuple[
    isa.Instruction,
    Callable[[tuple[int, ...], GpuExecution], None],
    int,
    bool,
    Callable[[bytes, int], tuple[int, ...]],
]


class _Fault(Exception):
    def __init__(self, kind: FaultKind, address: int | None, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.address = address
        self.message = message


class EmulatedGpu:
    """The reference adapter's hardware. One instance per simulated adapter."""

    def __init__(self, sysmem: SystemMemory, info: DXGK_START_INFO) -> None:
        self.sysmem = sysmem
        # Anonymous memory is zero until touched: a fresh adapter costs no 16 MiB memset.
        size = info.MemorySegmentSize
        self.vram: bytearray | mmap = mmap(-1, size) if size > 0 else bytearray()
        self.vram_view = memoryview(self.vram)
        self.mem_base = MEMORY_SEGMENT_BASE
        self.mem_size = info.MemorySegmentSize
        self.ap_base = APERTURE_SEGMENT_BASE
        self.ap_pages = info.ApertureSegmentSize // PAGE_SIZE
        self.ap_size = self.ap_pages * PAGE_SIZE  # whole pages only: a partial page does not exist
        #: Aperture page table: page frame per aperture page, and its flags (0 = not valid).
        self.pte_pfn = [0] * self.ap_pages
        self.pte_flags = [0] * self.ap_pages
        self.registers = [0] * NUM_REGISTERS
        # Per opcode: the instruction, its handler, size, privilege and operand decoder
        # (looked up once here, not per executed instruction).
        self._dispatch: list[_Dispatch | None] = [None] * 256
        for ins in isa.TABLE:
            self._dispatch[ins.opcode] = (
                ins,
                getattr(self, ins.handler),
                ins.size,
                ins.privileged,
                ins.struct.unpack_from,
            )

    # ----------------------------------------------------------------- address resolution

    def _chunks(self, address: int, length: int) -> list[Chunk]:
        """Resolve ``[address, address+length)`` to backing memory, or raise a page fault."""
        mb = self.mem_base
        if mb <= address and address + length <= mb + self.mem_size:
            return [(self.vram, address - mb, length, address)]
        out: list[Chunk] = []
        pos = address
        end = address + length
        while pos < end:
            if self.ap_base <= pos < self.ap_base + self.ap_size:
                page, off = divmod(pos - self.ap_base, PAGE_SIZE)
                if not self.pte_flags[page] & isa.PTE_VALID:
                    raise _Fault(
                        FaultKind.PAGE_FAULT, pos, f"aperture page {page} (0x{pos:X}) is not mapped"
                    )
                pfn = self.pte_pfn[page]
            elif pos < self.sysmem.limit:
                pfn, off = divmod(pos, PAGE_SIZE)
            elif mb <= pos < mb + self.mem_size:
                n = min(end, mb + self.mem_size) - pos
                out.append((self.vram, pos - mb, n, pos))
                pos += n
                continue
            else:
                raise _Fault(
                    FaultKind.PAGE_FAULT,
                    pos,
                    f"0x{pos:X} is outside every segment and system memory",
                )
            backing = self.sysmem.page(pfn)
            if backing is None:
                raise _Fault(
                    FaultKind.PAGE_FAULT,
                    pos,
                    f"0x{pos:X} reaches page frame 0x{pfn:X}, which is not present",
                )
            n = min(end - pos, PAGE_SIZE - off)
            out.append((backing, off, n, pfn * PAGE_SIZE + off))
            pos += n
        return out

    def _load(self, address: int, length: int, log: list[tuple[int, int]]) -> bytes | bytearray:
        chunks = self._chunks(address, length)
        for _, _, n, phys in chunks:
            log.append((phys, n))
        if len(chunks) == 1:
            backing, off, n, _ = chunks[0]
            return backing[off : off + n]
        return b"".join(bytes(memoryview(b)[o : o + n]) for b, o, n, _ in chunks)

    def _store(
        self, address: int, data: bytes | bytearray | memoryview, log: list[tuple[int, int]]
    ) -> None:
        chunks = self._chunks(address, len(data))
        view = memoryview(data)
        pos = 0
        for backing, off, n, phys in chunks:
            log.append((phys, n))
            memoryview(backing)[off : off + n] = view[pos : pos + n]
            pos += n

    # ----------------------------------------------------------------- command processor

    def execute(self, dma: bytes | bytearray | memoryview, *, privileged: bool) -> GpuExecution:
        """Run a DMA range to its end or its first fault."""
        result = GpuExecution()
        buf = bytes(dma)
        end = len(buf)
        pc = 0
        dispatch = self._dispatch
        while pc < end:
            entry = dispatch[buf[pc]]
            if entry is None:
                result.fault = GpuFault(
                    FaultKind.ILLEGAL_INSTRUCTION, pc, None, f"unknown opcode 0x{buf[pc]:02X}"
                )
                break
            ins, handler, size, needs_privilege, operands = entry
            if pc + size > end:
                result.fault = GpuFault(
                    FaultKind.ILLEGAL_INSTRUCTION,
                    pc,
                    None,
                    f"{ins.mnemonic} cut off: {end - pc} of {size} bytes",
                )
                break
            if needs_privilege and not privileged:
                result.fault = GpuFault(
                    FaultKind.PRIVILEGED_INSTRUCTION,
                    pc,
                    None,
                    f"{ins.mnemonic} in a non-privileged DMA buffer",
                )
                break
            try:
                handler(operands(buf, pc), result)
            except _Fault as fault:
                result.fault = GpuFault(
                    fault.kind, pc, fault.address, f"{ins.mnemonic}: {fault.message}"
                )
                break
            pc += size
            result.instructions += 1
        return result

    def _op_nop(self, ops: tuple[int, ...], r: GpuExecution) -> None:
        pass

    def _op_copy(self, ops: tuple[int, ...], r: GpuExecution) -> None:
        _, dst, src, size = ops
        if not size:
            return
        mb, top = self.mem_base, self.mem_base + self.mem_size
        if mb <= src and src + size <= top and mb <= dst and dst + size <= top:
            # Both ends in video memory: one memmove, no temporary (overlap-safe).
            r.reads.append((src, size))
            r.writes.append((dst, size))
            self.vram_view[dst - mb : dst - mb + size] = self.vram_view[src - mb : src - mb + size]
            return
        self._store(dst, self._load(src, size, r.reads), r.writes)

    def _op_fill(self, ops: tuple[int, ...], r: GpuExecution) -> None:
        _, dst, size, pattern = ops
        if size:
            self._chunks(dst, size)  # fault on a bad range before building a huge pattern
            unit = pattern.to_bytes(4, "little")
            self._store(dst, (unit * (size // 4 + 1))[:size], r.writes)

    def _op_write(self, ops: tuple[int, ...], r: GpuExecution) -> None:
        _, width, dst, value = ops
        if not 1 <= width <= 8:
            raise _Fault(FaultKind.ILLEGAL_INSTRUCTION, None, f"width {width} is not 1-8")
        self._store(dst, value.to_bytes(8, "little")[:width], r.writes)

    def _op_read(self, ops: tuple[int, ...], r: GpuExecution) -> None:
        _, width, src = ops
        if not 1 <= width <= 8:
            raise _Fault(FaultKind.ILLEGAL_INSTRUCTION, None, f"width {width} is not 1-8")
        self._load(src, width, r.reads)

    def _op_xor(self, ops: tuple[int, ...], r: GpuExecution) -> None:
        _, dst, src, size = ops
        if size:
            a = self._load(src, size, r.reads)
            b = self._load(dst, size, r.reads)
            mixed = int.from_bytes(a, "little") ^ int.from_bytes(b, "little")
            self._store(dst, mixed.to_bytes(size, "little"), r.writes)

    def _op_bind(self, ops: tuple[int, ...], r: GpuExecution) -> None:
        _, slot, addr = ops
        r.bindings[slot] = addr

    def _op_fence(self, ops: tuple[int, ...], r: GpuExecution) -> None:
        r.fences.append(ops[1])

    def _op_swzcopy(self, ops: tuple[int, ...], r: GpuExecution) -> None:
        _, dst, src, size = ops
        if size:
            self._store(dst, isa.swizzle(self._load(src, size, r.reads)), r.writes)

    def _op_unswzcopy(self, ops: tuple[int, ...], r: GpuExecution) -> None:
        _, dst, src, size = ops
        if size:
            self._store(dst, isa.unswizzle(self._load(src, size, r.reads)), r.writes)

    def _op_pte(self, ops: tuple[int, ...], r: GpuExecution) -> None:
        _, page, flags, pfn = ops
        if page >= self.ap_pages:
            raise _Fault(
                FaultKind.PAGE_FAULT,
                None,
                f"page-table entry {page} past the {self.ap_pages}-page aperture",
            )
        self.pte_pfn[page] = pfn
        self.pte_flags[page] = flags

    def _op_reg(self, ops: tuple[int, ...], r: GpuExecution) -> None:
        _, reg, value = ops
        if reg >= NUM_REGISTERS:
            raise _Fault(FaultKind.ILLEGAL_INSTRUCTION, None, f"register {reg} does not exist")
        self.registers[reg] = value

    # ----------------------------------------------------------------- harness access

    def read(self, address: int, length: int) -> bytes:
        """Debug read by GPU physical address (no access log); faults raise ValueError."""
        try:
            return bytes(self._load(address, length, []))
        except _Fault as fault:
            raise ValueError(fault.message) from None

    def write(self, address: int, data: bytes | bytearray | memoryview) -> None:
        """Debug write by GPU physical address (no access log); faults raise ValueError."""
        try:
            self._store(address, bytes(data), [])
        except _Fault as fault:
            raise ValueError(fault.message) from None

    def read_linear(self, address: int, length: int, layout: SurfaceLayout | None = None) -> bytes:
        """Read a swizzled range as the CPU sees it through the linearizing aperture (the
        reference's tiling is the same for every ``layout``)."""
        return isa.unswizzle(self.read(address, length))

    def write_linear(
        self,
        address: int,
        data: bytes | bytearray | memoryview,
        layout: SurfaceLayout | None = None,
    ) -> None:
        """Write a swizzled range as the CPU does through the linearizing aperture."""
        self.write(address, isa.swizzle(data))

    def translate(self, address: int) -> int | None:
        """The physical address an aperture address reaches now (identity elsewhere); None if unmapped."""
        if self.ap_base <= address < self.ap_base + self.ap_size:
            page, off = divmod(address - self.ap_base, PAGE_SIZE)
            if not self.pte_flags[page] & isa.PTE_VALID:
                return None
            return self.pte_pfn[page] * PAGE_SIZE + off
        return address

    def swizzle(
        self, linear: bytes | bytearray | memoryview, layout: SurfaceLayout | None = None
    ) -> bytes:
        """The layout a swizzled allocation has in video memory."""
        return isa.swizzle(linear)

    def unswizzle(
        self, tiled: bytes | bytearray | memoryview, layout: SurfaceLayout | None = None
    ) -> bytes:
        """The linear order the CPU sees a swizzled allocation in."""
        return isa.unswizzle(tiled)

    def disassemble(
        self,
        dma: bytes | bytearray | memoryview,
        start: int = 0,
        end: int | None = None,
        mark: int | None = None,
    ) -> str:
        return isa.disassemble(dma, start, end, mark)

    def instruction_boundaries(self, dma: bytes | bytearray | memoryview) -> list[int]:
        return isa.instruction_boundaries(dma)
