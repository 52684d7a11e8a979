"""Unit tests for the abstract program model (wddm_conformance.program) and the reference encoder/formats."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wddm_conformance.ddi import D3DDDI_PATCHLOCATIONLIST
from wddm_conformance.driver import AllocationRequest
from wddm_conformance.program import (
    Access,
    AllocRef,
    Bind,
    Copy,
    Fill,
    Op,
    Write,
    Xor,
    apply,
    check_bounds,
    fill_bytes,
    out_of_bounds,
    referenced_indices,
    touches,
    written_indices,
)
from wddm_conformance.reference import formats as f
from wddm_conformance.reference.encoder import CommandEncoder


def mem(**contents: bytes) -> dict[int, bytearray]:
    return {int(k[1:]): bytearray(v) for k, v in contents.items()}


# --------------------------------------------------------------------------- apply


def test_apply_copy_between_allocations() -> None:
    m = mem(a0=bytes(8), a1=b"ABCDEFGH")
    apply([Copy(AllocRef(0, 2), AllocRef(1, 4), 3)], m)
    assert m[0] == b"\x00\x00EFG\x00\x00\x00"
    assert m[1] == b"ABCDEFGH"


def test_apply_overlapping_copy_forward_is_memmove() -> None:
    m = mem(a0=bytes(range(16)))
    apply([Copy(AllocRef(0, 4), AllocRef(0, 0), 12)], m)
    assert m[0] == bytes(range(4)) + bytes(range(12))


def test_apply_overlapping_copy_backward_is_memmove() -> None:
    m = mem(a0=bytes(range(16)))
    apply([Copy(AllocRef(0, 0), AllocRef(0, 4), 12)], m)
    assert m[0] == bytes(range(4, 16)) + bytes(range(12, 16))


def test_apply_fill_repeats_pattern_little_endian_and_truncates() -> None:
    m = mem(a0=b"\xee" * 12)
    apply([Fill(AllocRef(0, 1), 6, 0x44332211)], m)
    assert m[0] == b"\xee" + b"\x11\x22\x33\x44\x11\x22" + b"\xee" * 5


@pytest.mark.parametrize("size", [0, 1, 3, 4, 5, 8, 11])
def test_fill_bytes_length_and_pattern(size: int) -> None:
    out = fill_bytes(size, 0xDDCCBBAA)
    assert len(out) == size
    assert out == (b"\xaa\xbb\xcc\xdd" * 3)[:size]


def test_fill_bytes_masks_pattern_to_32_bits() -> None:
    assert fill_bytes(4, 0x1_0000_0001) == b"\x01\x00\x00\x00"


def test_apply_write_stores_32_bit_little_endian_value() -> None:
    m = mem(a0=b"\xee" * 8)
    apply([Write(AllocRef(0, 2), 0x04030201)], m)
    assert m[0] == b"\xee\xee\x01\x02\x03\x04\xee\xee"


def test_apply_write_masks_value_to_32_bits() -> None:
    m = mem(a0=bytes(4))
    apply([Write(AllocRef(0), -1)], m)
    assert m[0] == b"\xff" * 4


def test_apply_xor_mixes_src_into_dst_only() -> None:
    m = mem(a0=b"\x0f\xf0\xaa\x55", a1=b"\xff\xff\x0f\x00")
    apply([Xor(AllocRef(0), AllocRef(1), 4)], m)
    assert m[0] == b"\xf0\x0f\xa5\x55"
    assert m[1] == b"\xff\xff\x0f\x00"


def test_apply_xor_with_itself_zeroes() -> None:
    m = mem(a0=b"\x12\x34\x56\x78")
    apply([Xor(AllocRef(0), AllocRef(0), 4)], m)
    assert m[0] == bytes(4)


@given(st.binary(min_size=1, max_size=32), st.binary(min_size=1, max_size=32))
def test_apply_xor_matches_bytewise_xor(a: bytes, b: bytes) -> None:
    n = min(len(a), len(b))
    m = mem(a0=a, a1=b)
    apply([Xor(AllocRef(0), AllocRef(1), n)], m)
    assert m[0] == bytes(x ^ y for x, y in zip(a[:n], b[:n], strict=True)) + a[n:]
    assert len(m[0]) == len(a)


def test_apply_bind_returns_final_bindings_and_minus_one_for_null() -> None:
    m = mem(a0=bytes(4), a1=bytes(4))
    before = {i: bytes(v) for i, v in m.items()}
    bindings = apply(
        [Bind(0, AllocRef(1, 2)), Bind(1, None), Bind(2, AllocRef(0)), Bind(2, None)], m
    )
    assert bindings == {0: 1, 1: -1, 2: -1}
    assert {i: bytes(v) for i, v in m.items()} == before


def test_apply_without_bind_returns_empty_bindings() -> None:
    assert apply([Fill(AllocRef(0), 4, 0)], mem(a0=bytes(4))) == {}


def test_apply_ops_run_in_order() -> None:
    m = mem(a0=bytes(4), a1=bytes(4))
    apply(
        [Write(AllocRef(0), 0x11111111), Copy(AllocRef(1), AllocRef(0), 4), Write(AllocRef(0), 0)],
        m,
    )
    assert m[0] == bytes(4)
    assert m[1] == b"\x11" * 4


# --------------------------------------------------------------------------- indices and bounds

PROGRAM: list[Op] = [
    Copy(AllocRef(1), AllocRef(2), 4),
    Fill(AllocRef(3), 4, 0),
    Write(AllocRef(4), 0),
    Xor(AllocRef(5), AllocRef(6), 4),
    Bind(0, AllocRef(7)),
    Bind(1, None),
]


@pytest.mark.parametrize(
    ("op", "accesses"),
    [
        (
            Copy(AllocRef(1, 8), AllocRef(2, 16), 32),
            [Access(AllocRef(1, 8), 32, False, True), Access(AllocRef(2, 16), 32, True, False)],
        ),
        (
            Xor(AllocRef(1, 8), AllocRef(2, 16), 32),
            [Access(AllocRef(1, 8), 32, True, True), Access(AllocRef(2, 16), 32, True, False)],
        ),
        (Fill(AllocRef(3, 4), 10, 0xAA), [Access(AllocRef(3, 4), 10, False, True)]),
        (Write(AllocRef(4, 12), 7), [Access(AllocRef(4, 12), 4, False, True)]),
        (Bind(2, AllocRef(5, 64)), [Access(AllocRef(5, 64), 0, False, False)]),
        (Bind(2, None), []),
    ],
    ids=["copy", "xor", "fill", "write", "bind", "unbind"],
)
def test_touches_names_the_bytes_each_operation_reads_and_writes(
    op: Op, accesses: list[Access]
) -> None:
    assert list(touches(op)) == accesses


def test_an_access_ends_exactly_where_a_32_bit_sum_would_wrap() -> None:
    (dst, src) = touches(Copy(AllocRef(1, 0xFFFF_FF00), AllocRef(2), 0x200))
    assert dst.end == 0x1_0000_0100 and src.end == 0x200
    assert out_of_bounds([Write(AllocRef(1, 0xFFFF_FFFE), 0)], {1: 8192}) == [
        "Write(dst=AllocRef(index=1, offset=4294967294), value=0) (bytes [4294967294, "
        "4294967298) are outside allocation-list entry 1's 8192 bytes)"
    ]
    assert out_of_bounds([Write(AllocRef(0x8000_0001), 0)], {1: 8192}, 2) == [
        "Write(dst=AllocRef(index=2147483649, offset=0), value=0) (outside allocation-list "
        "entry 2147483649: no allocation)"
    ]


@st.composite
def _op_on_two_entries(draw: st.DrawFn) -> Op:
    def ref(length: int) -> AllocRef:
        return AllocRef(draw(st.integers(1, 2)), draw(st.integers(0, 64 - length)))

    kind = draw(st.sampled_from(["copy", "xor", "fill", "write", "bind"]))
    if kind == "write":
        return Write(ref(4), draw(st.integers(0, 0xFFFFFFFF)))
    if kind == "bind":
        return Bind(0, ref(0))
    size = draw(st.integers(0, 64))
    if kind == "fill":
        return Fill(ref(size), size, draw(st.integers(0, 0xFFFFFFFF)))
    return (Copy if kind == "copy" else Xor)(ref(size), ref(size), size)


@given(
    _op_on_two_entries(), st.binary(min_size=64, max_size=64), st.binary(min_size=64, max_size=64)
)
def test_apply_changes_only_bytes_touches_says_are_written(op: Op, one: bytes, two: bytes) -> None:
    m = mem(a1=one, a2=two)
    apply([op], m)
    writable = {
        (a.ref.index, i) for a in touches(op) if a.writes for i in range(a.ref.offset, a.end)
    }
    for index, before in ((1, one), (2, two)):
        assert len(m[index]) == len(before)
        changed = {
            (index, i) for i, (x, y) in enumerate(zip(m[index], before, strict=True)) if x != y
        }
        assert changed <= writable


def test_written_indices_are_destinations_only() -> None:
    assert written_indices(PROGRAM) == {1, 3, 4, 5}


def test_referenced_indices_include_sources_and_binds_but_not_null() -> None:
    assert referenced_indices(PROGRAM) == {1, 2, 3, 4, 5, 6, 7}


def test_check_bounds_accepts_program_within_allocations() -> None:
    check_bounds(
        [
            Copy(AllocRef(0, 4), AllocRef(1, 0), 12),
            Write(AllocRef(1, 12), 0),
            Fill(AllocRef(0), 16, 1),
        ],
        {0: 16, 1: 16},
    )


@pytest.mark.parametrize(
    "op",
    [
        Copy(AllocRef(0, 8), AllocRef(1), 9),  # dst past end
        Copy(AllocRef(0), AllocRef(1, 10), 8),  # src past end
        Xor(AllocRef(0), AllocRef(1, 1), 16),
        Fill(AllocRef(0, 1), 16, 0),
        Write(AllocRef(1, 13), 0),
        Write(AllocRef(2), 0),  # not in the allocation list
    ],
    ids=["copy-dst", "copy-src", "xor-src", "fill", "write", "unknown-index"],
)
def test_check_bounds_rejects_out_of_range(op: Op) -> None:
    with pytest.raises(ValueError, match="outside allocation-list entry"):
        check_bounds([op], {0: 16, 1: 16})


@pytest.mark.parametrize(
    "op",
    [
        Write(AllocRef(0, -4), 1),
        Copy(AllocRef(0), AllocRef(0, -8), 4),
        Fill(AllocRef(0, 4), -1, 0),
    ],
    ids=["negative-write-offset", "negative-src-offset", "negative-size"],
)
def test_check_bounds_rejects_negative_offset_or_size(op: Op) -> None:
    # Regression: only offset + size > allocation size was checked, and apply() then grows the bytearray.
    with pytest.raises(ValueError, match="outside allocation-list entry"):
        check_bounds([op], {0: 16})


# --------------------------------------------------------------------------- reference formats and encoder


@pytest.mark.parametrize("cmd", f.COMMANDS, ids=lambda c: c.name)
def test_pack_command_length_matches_table_size(cmd: f.UserCommand) -> None:
    raw = f.pack_command(cmd.opcode, *([0] * len(cmd.fields)))
    assert len(raw) == cmd.size
    opcode, reserved, length = f.HEADER.unpack_from(raw)
    assert (opcode, reserved, length) == (cmd.opcode, 0, cmd.size)


def _split_commands(buf: bytes) -> list[tuple[int, bytes]]:
    out = []
    pos = 0
    while pos < len(buf):
        opcode, _, length = f.HEADER.unpack_from(buf, pos)
        assert length == f.BY_OPCODE[opcode].size
        out.append((opcode, buf[pos : pos + length]))
        pos += length
    assert pos == len(buf)
    return out


SAMPLE: list[Op] = [
    Copy(AllocRef(1, 16), AllocRef(2, 32), 64),
    Fill(AllocRef(2, 8), 24, 0xA5A5A5A5),
    Write(AllocRef(3, 4), -2),
    Xor(AllocRef(1, 0), AllocRef(3, 100), 8),
    Bind(5, AllocRef(2, 12)),
    Bind(6, None),
]


def test_encoder_emits_version_then_one_command_per_op() -> None:
    encoded = CommandEncoder().encode(SAMPLE)
    cmds = _split_commands(encoded.command)
    assert [op for op, _ in cmds] == [
        f.U_VERSION,
        f.U_COPY,
        f.U_FILL,
        f.U_WRITE,
        f.U_XOR,
        f.U_BIND,
        f.U_BIND,
    ]
    assert f.BY_OPCODE[f.U_VERSION].struct.unpack(cmds[0][1])[3] == f.INTERFACE_VERSION


def test_encoder_command_fields() -> None:
    cmds = dict(_split_commands(CommandEncoder().encode(SAMPLE[:4]).command))
    assert f.BY_OPCODE[f.U_COPY].struct.unpack(cmds[f.U_COPY])[3:] == (1, 16, 2, 32, 64)
    assert f.BY_OPCODE[f.U_FILL].struct.unpack(cmds[f.U_FILL])[3:] == (2, 8, 24, 0xA5A5A5A5)
    assert f.BY_OPCODE[f.U_WRITE].struct.unpack(cmds[f.U_WRITE])[3:] == (3, 4, 0xFFFFFFFE)
    assert f.BY_OPCODE[f.U_XOR].struct.unpack(cmds[f.U_XOR])[3:] == (1, 0, 3, 100, 8)


def test_encoder_patch_offsets_point_at_allocation_operands() -> None:
    encoded = CommandEncoder().encode(SAMPLE)
    cmd = encoded.command
    # One reference per dst/src/bound allocation: 2 + 1 + 1 + 2 + 1 + 1.
    assert len(encoded.patch_locations) == 8
    for p in encoded.patch_locations:
        index, offset = struct.unpack_from("<II", cmd, p.PatchOffset)
        assert (index, offset) == (p.AllocationIndex, p.AllocationOffset)
        assert p.SplitOffset == p.PatchOffset
        assert p.SlotId == 0 and p.DriverId == 0
    expected_refs = [(1, 16), (2, 32), (2, 8), (3, 4), (1, 0), (3, 100), (2, 12), (0, 0)]
    assert [
        (p.AllocationIndex, p.AllocationOffset) for p in encoded.patch_locations
    ] == expected_refs
    offsets = [p.PatchOffset for p in encoded.patch_locations]
    assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)


def test_encoder_first_patch_offset_is_after_version_header() -> None:
    encoded = CommandEncoder().encode([Write(AllocRef(1, 0), 0)])
    version = f.BY_OPCODE[f.U_VERSION].size
    assert encoded.patch_locations == [
        D3DDDI_PATCHLOCATIONLIST(1, 0, 0, 0, version + 4, version + 4)
    ]


def test_encoder_empty_program_is_just_version() -> None:
    encoded = CommandEncoder().encode([])
    assert encoded.command == f.pack_command(f.U_VERSION, f.INTERFACE_VERSION)
    assert encoded.patch_locations == []


def test_allocation_private_data_packs_magic_version_flags_size() -> None:
    raw = CommandEncoder().allocation_private_data(AllocationRequest(0x12345, cpu_visible=True))
    assert len(raw) == f.ALLOCATION_DATA.size == 24
    assert raw[:4] == b"RALC"
    magic, version, flags, size, r0, r1 = f.ALLOCATION_DATA.unpack(raw)
    assert magic == f.ALLOCATION_MAGIC == 0x434C4152
    assert version == f.ALLOCATION_VERSION == 1
    assert flags == f.AllocationDataFlags.CpuVisible | f.AllocationDataFlags.Aperture
    assert size == 0x12345
    assert (r0, r1) == (0, 0)


@pytest.mark.parametrize(
    ("request_", "flags"),
    [
        (AllocationRequest(4096, aperture=False), 0),
        (AllocationRequest(4096), f.AllocationDataFlags.Aperture),
        (AllocationRequest(4096, swizzled=True), f.AllocationDataFlags.Swizzled),
        (
            AllocationRequest(4096, aperture=False, aperture_only=True),
            f.AllocationDataFlags.ApertureOnly | f.AllocationDataFlags.Aperture,
        ),
        (
            AllocationRequest(4096, aperture=False, history_buffer=True, alternate_va=True),
            f.AllocationDataFlags.HistoryBuffer | f.AllocationDataFlags.AlternateVA,
        ),
    ],
    ids=[
        "vram-only",
        "aperture-default",
        "swizzled-not-aperture",
        "aperture-only",
        "history-altva",
    ],
)
def test_allocation_private_data_flags(request_: AllocationRequest, flags: int) -> None:
    raw = CommandEncoder().allocation_private_data(request_)
    assert f.ALLOCATION_DATA.unpack(raw)[2] == flags


def test_pack_allocation_data_explicit_version() -> None:
    raw = f.pack_allocation_data(64, f.AllocationDataFlags(0), version=2)
    assert f.ALLOCATION_DATA.unpack(raw) == (f.ALLOCATION_MAGIC, 2, 0, 64, 0, 0)


def test_encoder_privileged_and_illegal_commands() -> None:
    enc = CommandEncoder()
    priv = enc.privileged_command()
    opcode, _, length = f.HEADER.unpack_from(priv)
    assert f.BY_OPCODE[opcode].privileged
    assert length == len(priv) == f.BY_OPCODE[opcode].size
    illegal = enc.illegal_command()
    assert illegal[0] not in f.BY_OPCODE
    assert f.HEADER.unpack(illegal)[2] == len(illegal)


def test_check_bounds_rejects_a_bind_to_a_missing_entry() -> None:
    check_bounds([Bind(0, None), Bind(1, AllocRef(1, 0))], {1: 16})
    with pytest.raises(ValueError):
        check_bounds([Bind(0, AllocRef(5, 0))], {1: 16})


# --------------------------------------------------------------------------- the fuzz targets' view

#: Allocation-list entries of a render input: 0 is NULL, 1 and 2 hold 8 KiB each.
FUZZ_SIZES = (0, 8192, 8192)
FUZZ_OPS: list[tuple[Op, bool]] = [  # an operation, and whether every driver must accept it
    (Copy(AllocRef(1, 8000), AllocRef(2), 192), True),
    (Xor(AllocRef(2, 4), AllocRef(1, 4), 4096), True),
    (Write(AllocRef(2, 8188), 1), True),
    (Bind(3, AllocRef(1, 8192)), True),
    (Copy(AllocRef(1, 0xFFFF_FF00), AllocRef(2), 0x200), False),  # the end wraps at 2^32
    (Write(AllocRef(0x8000_0001), 1), False),  # bit 31 set: negative when compared signed
    (Fill(AllocRef(1), 0x1_0040, 0), False),  # 64 bytes when the size is taken in 16 bits
    (Copy(AllocRef(1, 16), AllocRef(2), 0x8000_0000), False),  # negative when signed
    (Fill(AllocRef(1, 8190), 4, 0), False),
    (Write(AllocRef(0, 0), 1), False),  # the NULL element
    (Copy(AllocRef(1), AllocRef(2), 0), False),  # nothing to copy
]


@pytest.mark.parametrize(("op", "valid"), FUZZ_OPS, ids=lambda v: str(v)[:40])
def test_the_fuzz_targets_judge_a_reference_as_the_program_model_does(op: Op, valid: bool) -> None:
    from wddm_conformance.fuzz.base import read_op, valid_op, write_op
    from wddm_conformance.fuzz.data import Reader, Writer
    from wddm_conformance.fuzz.render import Entry, Kind, RenderInput, bounds, classify

    assert valid_op(op, FUZZ_SIZES) is valid
    scenario = RenderInput(0, (Entry(1, True), Entry(2, True)), (op,), sizes=FUZZ_SIZES)
    sizes = {1: 8192, 2: 8192}
    outside = bool(out_of_bounds([op], sizes, len(FUZZ_SIZES)))
    assert bool(bounds(scenario)) is outside
    assert (classify(scenario) == Kind.INVALID) is outside
    w = Writer()  # the input format keeps every field, 32-bit ones included
    write_op(w, op, FUZZ_SIZES)
    assert read_op(Reader(w.bytes()), FUZZ_SIZES) == op
