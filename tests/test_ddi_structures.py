"""Unit tests for wddm_conformance.ddi: packed arrays, flag values and MDLs."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wddm_conformance.ddi import (
    D3DDDI_PATCHLOCATIONLIST,
    DXGK_ALLOCATIONINFOFLAGS,
    DXGK_ALLOCATIONLIST,
    DXGK_BUILDPAGINGBUFFER_OPERATION,
    DXGK_PATCHFLAGS,
    DXGK_SEGMENTDESCRIPTOR,
    DXGK_SEGMENTFLAGS,
    DXGK_TRANSFERFLAGS,
    MDL,
    PAGE_SIZE,
    pack_patch_list,
    unpack_patch_list,
)
from wddm_conformance.memory import KernelBuffer

U32 = st.integers(0, 0xFFFFFFFF)
U64 = st.integers(0, 0xFFFFFFFFFFFFFFFF)

# --------------------------------------------------------------------------- DXGK_ALLOCATIONLIST


def test_allocation_list_element_is_24_bytes() -> None:
    assert DXGK_ALLOCATIONLIST.SIZE == 24
    assert DXGK_ALLOCATIONLIST.STRUCT.size == 24
    assert len(DXGK_ALLOCATIONLIST().pack()) == 24


@given(handle=U64, write=st.booleans(), segment=st.integers(0, 31), address=U64)
def test_allocation_list_pack_unpack_round_trip(
    handle: int, write: bool, segment: int, address: int
) -> None:
    entry = DXGK_ALLOCATIONLIST(handle, write, segment, address)
    raw = entry.pack()
    assert DXGK_ALLOCATIONLIST.unpack(raw) == entry
    assert DXGK_ALLOCATIONLIST.unpack(b"\x00" * 7 + raw, 7) == entry


def test_allocation_list_field_offsets_match_x64_layout() -> None:
    raw = DXGK_ALLOCATIONLIST(0x1122334455667788, True, 3, 0x0102030405060708).pack()
    assert struct.unpack_from("<Q", raw, 0)[0] == 0x1122334455667788
    assert struct.unpack_from("<I", raw, 8)[0] == 0x7  # WriteOperation | SegmentId 3 << 1
    assert raw[12:16] == b"\x00" * 4  # padding before the 8-aligned PHYSICAL_ADDRESS
    assert struct.unpack_from("<Q", raw, 16)[0] == 0x0102030405060708


def test_allocation_list_write_operation_is_bit_0() -> None:
    bits = struct.unpack_from("<I", DXGK_ALLOCATIONLIST(WriteOperation=True).pack(), 8)[0]
    assert bits == DXGK_ALLOCATIONLIST.WRITE_OPERATION_MASK == 0x1


@pytest.mark.parametrize("segment", [1, 2, 5, 16, 31])
def test_allocation_list_segment_id_is_bits_1_to_5(segment: int) -> None:
    bits = struct.unpack_from("<I", DXGK_ALLOCATIONLIST(SegmentId=segment).pack(), 8)[0]
    assert bits == segment << 1
    assert bits & ~DXGK_ALLOCATIONLIST.SEGMENT_ID_MASK == 0


def test_allocation_list_segment_id_mask_is_0x3e() -> None:
    assert DXGK_ALLOCATIONLIST.SEGMENT_ID_MASK == 0x3E
    bits = struct.unpack_from("<I", DXGK_ALLOCATIONLIST(SegmentId=31).pack(), 8)[0]
    assert bits == 0x3E


def test_allocation_list_segment_id_truncated_to_5_bits() -> None:
    entry = DXGK_ALLOCATIONLIST(SegmentId=0x21)
    assert DXGK_ALLOCATIONLIST.unpack(entry.pack()).SegmentId == 1
    assert DXGK_ALLOCATIONLIST.unpack(entry.pack()).WriteOperation is False


def test_allocation_list_unpack_ignores_reserved_bits() -> None:
    raw = struct.pack("<QI4xQ", 7, 0xFFFFFFC0 | (9 << 1) | 1, 0x1000)
    entry = DXGK_ALLOCATIONLIST.unpack(raw)
    assert entry == DXGK_ALLOCATIONLIST(7, True, 9, 0x1000)


def test_allocation_list_read_indexes_24_byte_elements_through_ptr() -> None:
    entries = [DXGK_ALLOCATIONLIST(i + 1, i % 2 == 0, i, 0x1000 * i) for i in range(3)]
    buf = KernelBuffer("alist", 72, writable=False, initial=b"".join(e.pack() for e in entries))
    for i, e in enumerate(entries):
        assert DXGK_ALLOCATIONLIST.read(buf.ptr(), i) == e


# --------------------------------------------------------------------------- D3DDDI_PATCHLOCATIONLIST


def test_patch_location_is_24_bytes() -> None:
    assert D3DDDI_PATCHLOCATIONLIST.SIZE == 24
    assert D3DDDI_PATCHLOCATIONLIST.STRUCT.size == 24
    assert len(D3DDDI_PATCHLOCATIONLIST().pack()) == 24


@given(
    index=U32,
    slot=st.integers(0, 0xFFFFFF),
    driver_id=U32,
    alloc_off=U32,
    patch_off=U32,
    split_off=U32,
)
def test_patch_location_pack_unpack_round_trip(
    index: int, slot: int, driver_id: int, alloc_off: int, patch_off: int, split_off: int
) -> None:
    entry = D3DDDI_PATCHLOCATIONLIST(index, slot, driver_id, alloc_off, patch_off, split_off)
    assert D3DDDI_PATCHLOCATIONLIST.unpack(entry.pack()) == entry


def test_patch_location_field_order() -> None:
    raw = D3DDDI_PATCHLOCATIONLIST(1, 2, 3, 4, 5, 6).pack()
    assert struct.unpack("<6I", raw) == (1, 2, 3, 4, 5, 6)


def test_patch_location_slot_id_truncated_to_24_bits_on_pack() -> None:
    raw = D3DDDI_PATCHLOCATIONLIST(SlotId=0x12345678).pack()
    assert struct.unpack_from("<I", raw, 4)[0] == 0x345678
    assert D3DDDI_PATCHLOCATIONLIST.unpack(raw).SlotId == 0x345678


def test_patch_location_slot_id_reserved_byte_ignored_on_unpack() -> None:
    raw = struct.pack("<6I", 0, 0xAB000001, 0, 0, 0, 0)
    assert D3DDDI_PATCHLOCATIONLIST.unpack(raw).SlotId == 1


def test_patch_location_write_and_read_element_through_ptr() -> None:
    buf = KernelBuffer("patch-out", 72)
    entry = D3DDDI_PATCHLOCATIONLIST(2, 0, 0, 64, 100, 100)
    entry.write(buf.ptr(), 2)
    assert buf.content(48, 72) == entry.pack()
    assert buf.content(0, 48) == b"\x00" * 48
    assert D3DDDI_PATCHLOCATIONLIST.read(buf.ptr(), 2) == entry
    assert buf.violations == []


def test_patch_location_write_past_list_end_is_recorded() -> None:
    buf = KernelBuffer("patch-out", 48)
    D3DDDI_PATCHLOCATIONLIST(1).write(buf.ptr(), 2)
    assert [(v.kind, v.offset, v.length) for v in buf.violations] == [
        ("write-outside-window", 48, 24)
    ]


@given(
    st.lists(
        st.builds(
            D3DDDI_PATCHLOCATIONLIST,
            U32,
            st.integers(0, 0xFFFFFF),
            U32,
            U32,
            U32,
            U32,
        ),
        max_size=8,
    )
)
def test_pack_unpack_patch_list_round_trip(entries: list[D3DDDI_PATCHLOCATIONLIST]) -> None:
    raw = pack_patch_list(entries)
    assert len(raw) == 24 * len(entries)
    assert unpack_patch_list(raw, len(entries)) == entries


# --------------------------------------------------------------------------- flags and enums


def test_transfer_flag_values() -> None:
    assert DXGK_TRANSFERFLAGS.Swizzle == 0x1
    assert DXGK_TRANSFERFLAGS.Unswizzle == 0x2
    assert DXGK_TRANSFERFLAGS.AllocationIsIdle == 0x4
    assert DXGK_TRANSFERFLAGS.TransferStart == 0x8
    assert DXGK_TRANSFERFLAGS.TransferEnd == 0x10


def test_allocation_info_flag_values() -> None:
    expected = {
        "CpuVisible": 0x1,
        "PermanentSysMem": 0x2,
        "Cached": 0x4,
        "Protected": 0x8,
        "ExistingSysMem": 0x10,
        "ExistingKernelSysMem": 0x20,
        "FromEndOfSegment": 0x40,
        "Swizzled": 0x80,
        "Overlay": 0x100,
        "Capture": 0x200,
        "UseAlternateVA": 0x400,
        "SynchronousPaging": 0x800,
        "LinkMirrored": 0x1000,
        "LinkInstanced": 0x2000,
        "HistoryBuffer": 0x4000,
    }
    assert {f.name: f.value for f in DXGK_ALLOCATIONINFOFLAGS} == expected


def test_build_paging_buffer_operation_numbers() -> None:
    op = DXGK_BUILDPAGINGBUFFER_OPERATION
    assert list(range(8)) == [
        op.DXGK_OPERATION_TRANSFER,
        op.DXGK_OPERATION_FILL,
        op.DXGK_OPERATION_DISCARD_CONTENT,
        op.DXGK_OPERATION_READ_PHYSICAL,
        op.DXGK_OPERATION_WRITE_PHYSICAL,
        op.DXGK_OPERATION_MAP_APERTURE_SEGMENT,
        op.DXGK_OPERATION_UNMAP_APERTURE_SEGMENT,
        op.DXGK_OPERATION_SPECIAL_LOCK_TRANSFER,
    ]
    assert len(op) == 8


def test_patch_flag_values() -> None:
    assert DXGK_PATCHFLAGS.Paging == 0x1
    assert DXGK_PATCHFLAGS.Present == 0x2
    assert DXGK_PATCHFLAGS.RedirectedPresent == 0x4
    assert DXGK_PATCHFLAGS.NullRendering == 0x8


def test_segment_descriptor_is_aperture_follows_flag() -> None:
    assert DXGK_SEGMENTDESCRIPTOR(0, 4096, DXGK_SEGMENTFLAGS.Aperture).is_aperture
    assert not DXGK_SEGMENTDESCRIPTOR(0, 4096, DXGK_SEGMENTFLAGS.CpuVisible).is_aperture


# --------------------------------------------------------------------------- MDL


def test_mdl_physical_address_uses_page_frame_of_each_page() -> None:
    mdl = MDL((0x200, 0x150, 0x999), 3 * PAGE_SIZE)
    assert mdl.physical_address(0) == 0x200 * PAGE_SIZE
    assert mdl.physical_address(PAGE_SIZE - 1) == 0x200 * PAGE_SIZE + PAGE_SIZE - 1
    assert mdl.physical_address(PAGE_SIZE) == 0x150 * PAGE_SIZE
    assert mdl.physical_address(PAGE_SIZE + 904) == 0x150 * PAGE_SIZE + 904
    assert mdl.physical_address(2 * PAGE_SIZE + 7) == 0x999 * PAGE_SIZE + 7


def test_mdl_physical_address_past_last_page_raises() -> None:
    with pytest.raises(IndexError):
        MDL((0x200,), PAGE_SIZE).physical_address(PAGE_SIZE)
