"""Unit tests for wddm_conformance.reference.isa (encoding, disassembly, swizzle) and wddm_conformance.reference.gpu."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wddm_conformance.ddi import DXGK_START_INFO, PAGE_SIZE
from wddm_conformance.driver import GpuExecution
from wddm_conformance.reference import isa
from wddm_conformance.reference.gpu import APERTURE_SEGMENT_BASE, MEMORY_SEGMENT_BASE, EmulatedGpu
from wddm_conformance.sysmem import SystemMemory

MB = MEMORY_SEGMENT_BASE
AP = APERTURE_SEGMENT_BASE
MEM_SIZE = 1 << 20
AP_SIZE = 64 << 10

_BITS = {"B": 8, "H": 16, "I": 32, "Q": 64}


def _operand_codes(ins: isa.Instruction) -> list[str]:
    """The struct codes of the operands (after the opcode byte), padding skipped."""
    codes = [c for _, c in re.findall(r"(\d*)([a-zA-Z])", ins.layout) if c != "x"]
    assert codes[0] == "B"  # the opcode
    return codes[1:]


def _operands(ins: isa.Instruction) -> st.SearchStrategy[tuple[int, ...]]:
    return st.tuples(*(st.integers(0, (1 << _BITS[c]) - 1) for c in _operand_codes(ins)))


def enc(mnemonic: str, *ops: int) -> bytes:
    return isa.encode(mnemonic, *ops)


@pytest.fixture
def sysmem() -> SystemMemory:
    return SystemMemory()


@pytest.fixture
def gpu(sysmem: SystemMemory) -> EmulatedGpu:
    return EmulatedGpu(
        sysmem, DXGK_START_INFO(MemorySegmentSize=MEM_SIZE, ApertureSegmentSize=AP_SIZE)
    )


def run(gpu: EmulatedGpu, *instructions: bytes, privileged: bool = False) -> GpuExecution:
    return gpu.execute(b"".join(instructions), privileged=privileged)


def map_page(gpu: EmulatedGpu, page: int, pfn: int, flags: int = isa.PTE_VALID) -> None:
    ex = run(gpu, enc("PTE", page, flags, pfn), privileged=True)
    assert ex.fault is None


# --------------------------------------------------------------------------- table, encode, decode


def test_table_operand_layouts_match_operand_names() -> None:
    for ins in isa.TABLE:
        assert len(_operand_codes(ins)) == len(ins.operands), ins.mnemonic
        assert isa.BY_OPCODE[ins.opcode] is ins
        assert isa.BY_MNEMONIC[ins.mnemonic] is ins
        assert ins.privileged == bool(ins.opcode & isa.PRIVILEGED_BIT)


def test_only_pte_and_reg_are_privileged() -> None:
    assert {ins.mnemonic for ins in isa.TABLE if ins.privileged} == {"PTE", "REG"}


def test_address_offsets_point_at_8_byte_operands() -> None:
    for ins in isa.TABLE:
        for name, at in ins.address_offsets.items():
            ops = [0] * len(ins.operands)
            ops[ins.operands.index(name)] = 0x1122334455667788
            raw = isa.encode(ins.mnemonic, *ops)
            assert int.from_bytes(raw[at : at + 8], "little") == 0x1122334455667788, (
                ins.mnemonic,
                name,
            )


@pytest.mark.parametrize("ins", isa.TABLE, ids=lambda i: i.mnemonic)
@given(data=st.data())
def test_encode_decode_round_trip_every_instruction(
    ins: isa.Instruction, data: st.DataObject
) -> None:
    ops = data.draw(_operands(ins))
    prefix = data.draw(st.integers(0, 8))
    raw = isa.encode(ins.mnemonic, *ops)
    assert len(raw) == ins.size
    assert raw[0] == ins.opcode
    assert isa.decode(raw, 0) == (ins, ops)
    assert isa.decode(enc("NOP") * prefix + raw, 4 * prefix) == (ins, ops)


def test_encode_wrong_operand_count_raises() -> None:
    with pytest.raises(ValueError, match="COPY takes 3"):
        isa.encode("COPY", 1, 2)


def test_decode_unknown_opcode_truncated_or_past_end_is_none() -> None:
    assert isa.decode(b"\x42\x00\x00\x00", 0) is None
    assert isa.decode(enc("COPY", 1, 2, 3)[:-1], 0) is None
    assert isa.decode(enc("NOP"), 4) is None


def test_instruction_boundaries_stop_at_first_undecodable_byte() -> None:
    buf = enc("NOP") + enc("COPY", 1, 2, 3) + enc("FENCE", 9) + b"\x42" + enc("NOP")
    copy = isa.BY_MNEMONIC["COPY"].size
    assert copy == 24
    assert isa.instruction_boundaries(buf) == [0, 4, 4 + copy]
    assert isa.instruction_boundaries(b"") == []
    assert isa.instruction_boundaries(enc("FENCE", 1)[:-1]) == []


# --------------------------------------------------------------------------- disassemble


def test_disassemble_shows_mnemonics_operands_and_privileged_marker() -> None:
    buf = enc("NOP") + enc("COPY", MB, MB + 0x1000, 64) + enc("PTE", 1, 1, 0x100) + enc("FENCE", 7)
    text = isa.disassemble(buf)
    lines = text.splitlines()
    assert len(lines) == 4
    assert "+0x0000  NOP" in lines[0]
    assert "COPY" in lines[1] and "dst=0x100000000" in lines[1] and "src=0x100001000" in lines[1]
    assert "size=64" in lines[1]
    assert "PTE" in lines[2] and "pfn=0x100" in lines[2] and "; privileged" in lines[2]
    assert "FENCE" in lines[3] and "fence=7" in lines[3]
    assert "=>" not in text


def test_disassemble_marks_instruction_containing_mark() -> None:
    buf = enc("NOP") + enc("COPY", MB, MB, 4) + enc("FENCE", 1)
    for mark in (4, 10, 27):
        lines = isa.disassemble(buf, mark=mark).splitlines()
        marked = [line for line in lines if line.startswith("=>")]
        assert len(marked) == 1, mark
        assert "COPY" in marked[0]
        assert all(line.startswith("  ") for line in lines if line not in marked)


def test_disassemble_mark_shows_context_window() -> None:
    buf = enc("NOP") * 20
    lines = isa.disassemble(buf, mark=40).splitlines()
    assert len(lines) == 13
    assert lines[6].startswith("=> +0x0028")
    assert lines[0].startswith("   +0x0010")


def test_disassemble_undecodable_bytes_shown_as_bytes() -> None:
    buf = enc("FENCE", 1) + b"\xff\xee"
    lines = isa.disassemble(buf).splitlines()
    assert "FENCE" in lines[0]
    assert lines[1] == "   +0x000C  .bytes    ff ee  ; not an instruction"


def test_disassemble_truncated_instruction_shown_as_bytes_and_marked_at_its_start() -> None:
    buf = enc("COPY", 1, 2, 3)[:6]
    text = isa.disassemble(buf, mark=0)
    assert text == "=> +0x0000  .bytes    01 00 00 00 01 00  ; not an instruction"


def test_disassemble_respects_start_and_end() -> None:
    buf = enc("NOP") + enc("FENCE", 1) + enc("FENCE", 2)
    lines = isa.disassemble(buf, start=4, end=16).splitlines()
    assert len(lines) == 1
    assert "fence=1" in lines[0]


@pytest.mark.parametrize(
    ("buf", "mark"),
    [
        (b"\xff" * 8, 3),  # inside a run of unknown bytes
        (isa.encode("COPY", 1, 2, 3)[:10], 9),  # inside the second .bytes line of a cut-off COPY
    ],
    ids=["inside-unknown-bytes", "inside-truncated-copy"],
)
def test_disassemble_marks_exactly_one_line_for_mark_inside_bytes(buf: bytes, mark: int) -> None:
    # Regression: marks used the opcode size at a line's start, not the width of a ".bytes" line.
    lines = isa.disassemble(buf, mark=mark).splitlines()
    marked = [line for line in lines if line.startswith("=>")]
    assert len(marked) == 1
    assert ".bytes" in marked[0]


_INSTRUCTION_OR_JUNK = st.one_of(
    st.sampled_from(isa.TABLE).flatmap(
        lambda ins: _operands(ins).map(lambda ops: isa.encode(ins.mnemonic, *ops))
    ),
    st.binary(min_size=1, max_size=5),
)


@given(st.lists(_INSTRUCTION_OR_JUNK, min_size=1, max_size=10), st.data())
def test_disassemble_marks_exactly_the_line_covering_any_mark(
    parts: list[bytes], data: st.DataObject
) -> None:
    buf = b"".join(parts)
    mark = data.draw(st.integers(0, len(buf) - 1))
    lines = isa.disassemble(buf, mark=mark).splitlines()
    marked = [line for line in lines if line.startswith("=>")]
    assert len(marked) == 1
    offsets = [int(line[3:].split()[0], 16) for line in lines]
    start = offsets[lines.index(marked[0])]
    assert start <= mark
    later = [off for off in offsets if off > start]
    assert not later or mark < min(later)


# --------------------------------------------------------------------------- swizzle


@given(st.binary(max_size=300))
def test_swizzle_and_unswizzle_are_inverses(data: bytes) -> None:
    assert isa.unswizzle(isa.swizzle(data)) == data
    assert isa.swizzle(isa.unswizzle(data)) == data
    assert len(isa.swizzle(data)) == len(data)


def test_swizzle_moves_linear_quad_q_to_swizzle_order_q() -> None:
    block = bytes(range(64))
    tiled = isa.swizzle(block)
    for q, target in enumerate(isa.SWIZZLE_ORDER):
        assert tiled[target * 16 : target * 16 + 16] == block[q * 16 : q * 16 + 16]


def test_swizzle_is_not_identity_on_a_block() -> None:
    block = bytes(range(64))
    assert isa.swizzle(block) != block


def test_swizzle_is_not_an_involution() -> None:
    block = bytes(range(64))
    assert isa.swizzle(isa.swizzle(block)) != block


def test_swizzle_leaves_partial_trailing_block_alone() -> None:
    data = bytes(range(100))
    tiled = isa.swizzle(data)
    assert tiled[64:] == data[64:]
    assert tiled[:64] == isa.swizzle(data[:64])


def test_gpu_read_write_linear_round_trip(gpu: EmulatedGpu) -> None:
    data = bytes(range(256)) * 2
    gpu.write_linear(MB + 0x1000, data)
    assert gpu.read(MB + 0x1000, len(data)) == isa.swizzle(data)
    assert gpu.read(MB + 0x1000, len(data)) != data
    assert gpu.read_linear(MB + 0x1000, len(data)) == data


# --------------------------------------------------------------------------- GPU: memory segment


def test_gpu_copy_moves_bytes_and_logs_physical_accesses(gpu: EmulatedGpu) -> None:
    gpu.write(MB + 0x100, b"hello, gpu!!")
    ex = run(gpu, enc("COPY", MB + 0x2000, MB + 0x100, 12))
    assert ex.fault is None
    assert ex.instructions == 1
    assert gpu.read(MB + 0x2000, 12) == b"hello, gpu!!"
    assert ex.reads == [(MB + 0x100, 12)]
    assert ex.writes == [(MB + 0x2000, 12)]


def test_gpu_overlapping_copy_forward_has_memmove_semantics(gpu: EmulatedGpu) -> None:
    gpu.write(MB, bytes(range(16)))
    run(gpu, enc("COPY", MB + 4, MB, 12))
    assert gpu.read(MB, 16) == bytes(range(4)) + bytes(range(12))


def test_gpu_overlapping_copy_backward_has_memmove_semantics(gpu: EmulatedGpu) -> None:
    gpu.write(MB, bytes(range(16)))
    run(gpu, enc("COPY", MB, MB + 4, 12))
    assert gpu.read(MB, 16) == bytes(range(4, 16)) + bytes(range(12, 16))


def test_gpu_zero_size_copy_touches_nothing(gpu: EmulatedGpu) -> None:
    ex = run(gpu, enc("COPY", 0x3_0000_0000, 0x3_0000_0000, 0))
    assert ex.fault is None
    assert ex.reads == ex.writes == []


def test_gpu_fill_repeats_pattern_little_endian_and_truncates(gpu: EmulatedGpu) -> None:
    gpu.write(MB, b"\xee" * 12)
    ex = run(gpu, enc("FILL", MB + 1, 10, 0x44332211))
    assert gpu.read(MB, 12) == b"\xee" + b"\x11\x22\x33\x44" * 2 + b"\x11\x22" + b"\xee"
    assert ex.writes == [(MB + 1, 10)]
    assert ex.reads == []


@pytest.mark.parametrize("width", [1, 4, 8])
def test_gpu_write_stores_low_width_bytes(gpu: EmulatedGpu, width: int) -> None:
    gpu.write(MB, b"\xee" * 9)
    ex = run(gpu, enc("WRITE", width, MB, 0x0807060504030201))
    assert gpu.read(MB, 9) == bytes(range(1, width + 1)) + b"\xee" * (9 - width)
    assert ex.writes == [(MB, width)]


@pytest.mark.parametrize("mnemonic", ["WRITE", "READ"])
@pytest.mark.parametrize("width", [0, 9])
def test_gpu_write_and_read_reject_bad_width(gpu: EmulatedGpu, mnemonic: str, width: int) -> None:
    ops = (width, MB, 0) if mnemonic == "WRITE" else (width, MB)
    ex = run(gpu, enc(mnemonic, *ops))
    assert ex.fault is not None
    assert ex.fault.kind == "illegal-instruction"
    assert ex.instructions == 0


def test_gpu_read_logs_access_without_writing(gpu: EmulatedGpu) -> None:
    gpu.write(MB + 8, b"\x01" * 4)
    ex = run(gpu, enc("READ", 4, MB + 8))
    assert ex.fault is None
    assert ex.reads == [(MB + 8, 4)]
    assert ex.writes == []
    assert gpu.read(MB + 8, 4) == b"\x01" * 4


def test_gpu_xor_reads_both_and_writes_dst(gpu: EmulatedGpu) -> None:
    gpu.write(MB, b"\x0f\xf0\xaa\x55")
    gpu.write(MB + 0x100, b"\xff\xff\x0f\x00")
    ex = run(gpu, enc("XOR", MB, MB + 0x100, 4))
    assert gpu.read(MB, 4) == b"\xf0\x0f\xa5\x55"
    assert gpu.read(MB + 0x100, 4) == b"\xff\xff\x0f\x00"
    assert sorted(ex.reads) == [(MB, 4), (MB + 0x100, 4)]
    assert ex.writes == [(MB, 4)]


def test_gpu_bind_records_binding_without_touching_memory(gpu: EmulatedGpu) -> None:
    ex = run(gpu, enc("BIND", 3, 0x3_0000_0000), enc("BIND", 5, 0), enc("BIND", 3, MB + 64))
    assert ex.fault is None
    assert ex.bindings == {3: MB + 64, 5: 0}
    assert ex.reads == ex.writes == []


def test_gpu_fence_signals_in_order(gpu: EmulatedGpu) -> None:
    ex = run(gpu, enc("FENCE", 5), enc("NOP"), enc("FENCE", 6))
    assert ex.fences == [5, 6]
    assert ex.instructions == 3


def test_gpu_swzcopy_and_unswzcopy(gpu: EmulatedGpu) -> None:
    data = bytes(range(128))
    gpu.write(MB, data)
    run(gpu, enc("SWZCOPY", MB + 0x1000, MB, 128), enc("UNSWZCOPY", MB + 0x2000, MB + 0x1000, 128))
    assert gpu.read(MB + 0x1000, 128) == isa.swizzle(data)
    assert gpu.read(MB + 0x2000, 128) == data


def test_gpu_privileged_instructions_allowed_in_privileged_buffer(gpu: EmulatedGpu) -> None:
    ex = run(gpu, enc("REG", 3, 0xABCD), privileged=True)
    assert ex.fault is None
    assert gpu.registers[3] == 0xABCD


@pytest.mark.parametrize(
    "privileged_ins", [enc("PTE", 0, isa.PTE_VALID, 0x100), enc("REG", 1, 42)], ids=["PTE", "REG"]
)
def test_gpu_privileged_instruction_in_user_buffer_faults_and_stops(
    gpu: EmulatedGpu, privileged_ins: bytes
) -> None:
    ex = run(gpu, enc("FENCE", 1), privileged_ins, enc("FENCE", 2), enc("WRITE", 4, MB, 0x11111111))
    assert ex.fault is not None
    assert ex.fault.kind == "privileged-instruction"
    assert ex.fault.dma_offset == 12
    assert ex.fences == [1]
    assert ex.instructions == 1
    assert ex.writes == []
    assert gpu.read(MB, 4) == b"\x00" * 4
    assert gpu.registers[1] == 0
    assert gpu.translate(AP) is None


def test_gpu_unknown_opcode_is_illegal_instruction(gpu: EmulatedGpu) -> None:
    ex = run(gpu, enc("NOP"), b"\x42\x00\x00\x00", enc("FENCE", 1))
    assert ex.fault is not None
    assert ex.fault.kind == "illegal-instruction"
    assert ex.fault.dma_offset == 4
    assert ex.fences == []


def test_gpu_truncated_instruction_is_illegal_instruction(gpu: EmulatedGpu) -> None:
    ex = run(gpu, enc("FENCE", 1), enc("COPY", MB, MB, 4)[:20])
    assert ex.fault is not None
    assert ex.fault.kind == "illegal-instruction"
    assert ex.fault.dma_offset == 12
    assert ex.fences == [1]


def test_gpu_reg_past_register_file_is_illegal_instruction(gpu: EmulatedGpu) -> None:
    ex = run(gpu, enc("REG", 16, 1), privileged=True)
    assert ex.fault is not None
    assert ex.fault.kind == "illegal-instruction"


@pytest.mark.parametrize(
    ("address", "length", "fault_at"),
    [
        (0x3_0000_0000, 4, 0x3_0000_0000),  # nowhere
        (MB + MEM_SIZE, 4, MB + MEM_SIZE),  # just past the memory segment
        (MB + MEM_SIZE - 2, 4, MB + MEM_SIZE),  # straddling its end
        (AP + AP_SIZE, 4, AP + AP_SIZE),  # just past the aperture
        (0, 4, 0),  # NULL: no system page there
    ],
)
def test_gpu_access_outside_every_segment_is_page_fault_with_address(
    gpu: EmulatedGpu, address: int, length: int, fault_at: int
) -> None:
    ex = run(gpu, enc("FENCE", 1), enc("FILL", address, length, 0xFFFFFFFF), enc("FENCE", 2))
    assert ex.fault is not None
    assert ex.fault.kind == "page-fault"
    assert ex.fault.address == fault_at
    assert ex.fault.dma_offset == 12
    assert ex.fences == [1]
    assert "FILL" in str(ex.fault)


def test_gpu_copy_from_faulting_source_writes_nothing(gpu: EmulatedGpu) -> None:
    ex = run(gpu, enc("COPY", MB, 0x3_0000_0000, 16))
    assert ex.fault is not None and ex.fault.kind == "page-fault"
    assert ex.writes == []


def test_gpu_debug_read_write_fault_raises_value_error(gpu: EmulatedGpu) -> None:
    with pytest.raises(ValueError):
        gpu.read(0x3_0000_0000, 1)
    with pytest.raises(ValueError):
        gpu.write(AP, b"x")


# --------------------------------------------------------------------------- GPU: aperture


def test_gpu_unmapped_aperture_page_faults(gpu: EmulatedGpu) -> None:
    ex = run(gpu, enc("WRITE", 4, AP + PAGE_SIZE + 8, 1))
    assert ex.fault is not None
    assert ex.fault.kind == "page-fault"
    assert ex.fault.address == AP + PAGE_SIZE + 8
    assert gpu.translate(AP + PAGE_SIZE + 8) is None


def test_gpu_pte_without_valid_bit_faults(gpu: EmulatedGpu, sysmem: SystemMemory) -> None:
    (pfn,) = sysmem.allocate(1)
    map_page(gpu, 0, pfn, flags=isa.PTE_CACHE_COHERENT)
    assert gpu.translate(AP) is None
    ex = run(gpu, enc("READ", 1, AP))
    assert ex.fault is not None and ex.fault.kind == "page-fault"


def test_gpu_pte_past_aperture_is_page_fault(gpu: EmulatedGpu) -> None:
    ex = run(gpu, enc("PTE", AP_SIZE // PAGE_SIZE, isa.PTE_VALID, 0x100), privileged=True)
    assert ex.fault is not None and ex.fault.kind == "page-fault"


def test_gpu_pte_maps_aperture_page_to_system_page(gpu: EmulatedGpu, sysmem: SystemMemory) -> None:
    (pfn,) = sysmem.allocate(1)
    map_page(gpu, 2, pfn)
    assert gpu.translate(AP + 2 * PAGE_SIZE + 0x10) == pfn * PAGE_SIZE + 0x10
    assert gpu.translate(MB + 5) == MB + 5  # identity outside the aperture

    gpu.write(MB, b"through the aperture")
    ex = run(gpu, enc("COPY", AP + 2 * PAGE_SIZE + 0x10, MB, 20))
    assert ex.fault is None
    assert sysmem.read(pfn * PAGE_SIZE + 0x10, 20) == b"through the aperture"
    # The access log names the system page, not the aperture address.
    assert ex.writes == [(pfn * PAGE_SIZE + 0x10, 20)]
    assert ex.reads == [(MB, 20)]

    ex = run(gpu, enc("COPY", MB + 0x100, AP + 2 * PAGE_SIZE + 0x10, 20))
    assert gpu.read(MB + 0x100, 20) == b"through the aperture"
    assert ex.reads == [(pfn * PAGE_SIZE + 0x10, 20)]


def test_gpu_pte_to_freed_page_faults_not_present(gpu: EmulatedGpu, sysmem: SystemMemory) -> None:
    (pfn,) = sysmem.allocate(1)
    map_page(gpu, 0, pfn)
    sysmem.free([pfn])
    ex = run(gpu, enc("READ", 4, AP + 4))
    assert ex.fault is not None
    assert ex.fault.kind == "page-fault"
    assert ex.fault.address == AP + 4
    assert "not present" in ex.fault.message


def test_gpu_copy_across_two_aperture_pages_on_non_adjacent_frames(
    gpu: EmulatedGpu, sysmem: SystemMemory
) -> None:
    a, _gap, b = sysmem.allocate(3)
    # Aperture page 0 -> frame b, page 1 -> frame a: neither adjacent nor in order.
    map_page(gpu, 0, b)
    map_page(gpu, 1, a)
    data = bytes(range(200))
    gpu.write(MB, data)
    ex = run(gpu, enc("COPY", AP + PAGE_SIZE - 100, MB, 200))
    assert ex.fault is None
    assert sysmem.read(b * PAGE_SIZE + PAGE_SIZE - 100, 100) == data[:100]
    assert sysmem.read(a * PAGE_SIZE, 100) == data[100:]
    assert sysmem.read(_gap * PAGE_SIZE, PAGE_SIZE) == bytes(PAGE_SIZE)
    assert ex.writes == [(b * PAGE_SIZE + PAGE_SIZE - 100, 100), (a * PAGE_SIZE, 100)]
    # And back: reading across the same boundary reassembles the bytes.
    ex = run(gpu, enc("COPY", MB + 0x1000, AP + PAGE_SIZE - 100, 200))
    assert gpu.read(MB + 0x1000, 200) == data
    assert ex.reads == [(b * PAGE_SIZE + PAGE_SIZE - 100, 100), (a * PAGE_SIZE, 100)]


def test_gpu_copy_into_partially_mapped_aperture_range_faults_at_unmapped_page(
    gpu: EmulatedGpu, sysmem: SystemMemory
) -> None:
    (pfn,) = sysmem.allocate(1)
    map_page(gpu, 0, pfn)
    ex = run(gpu, enc("FILL", AP + PAGE_SIZE - 4, 8, 0x01010101))
    assert ex.fault is not None
    assert ex.fault.kind == "page-fault"
    assert ex.fault.address == AP + PAGE_SIZE


def test_gpu_reaches_allocated_system_page_by_physical_address(
    gpu: EmulatedGpu, sysmem: SystemMemory
) -> None:
    (pfn,) = sysmem.allocate(1)
    ex = run(gpu, enc("WRITE", 4, pfn * PAGE_SIZE + 8, 0xDEADBEEF))
    assert ex.fault is None
    assert sysmem.read(pfn * PAGE_SIZE + 8, 4) == (0xDEADBEEF).to_bytes(4, "little")
    assert ex.writes == [(pfn * PAGE_SIZE + 8, 4)]


def test_aperture_of_partial_page_size_faults_past_the_last_whole_page() -> None:
    gpu = EmulatedGpu(SystemMemory(), DXGK_START_INFO(1 << 20, 4096 + 100))
    result = gpu.execute(isa.encode("READ", 1, APERTURE_SEGMENT_BASE + 4096 + 10), privileged=False)
    assert result.fault is not None and result.fault.kind == "page-fault"


def test_huge_fill_to_a_bad_address_faults_without_building_the_pattern() -> None:
    gpu = EmulatedGpu(SystemMemory(), DXGK_START_INFO(1 << 20, 64 << 10))
    result = gpu.execute(isa.encode("FILL", 0x7_0000_0000, 0xFFFFFFF0, 0x1234), privileged=False)
    assert result.fault is not None and result.fault.kind == "page-fault"
