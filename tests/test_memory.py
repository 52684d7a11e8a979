"""Unit tests for wddm_conformance.memory: kernel/user regions and typed pointers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wddm_conformance.errors import HarnessError
from wddm_conformance.memory import (
    GUARD_BYTES,
    GUARD_FILL,
    UNLEASED,
    KernelAccessViolation,
    KernelBuffer,
    LateAccess,
    Lease,
    LeaseBook,
    MemoryViolation,
    Ptr,
    RetiredBufferAccess,
    UserAccessFault,
    UserBuffer,
)

# --------------------------------------------------------------------------- KernelBuffer


def test_kernel_buffer_backing_is_size_plus_guard_filled_with_guard_pattern() -> None:
    buf = KernelBuffer("dma", 64, initial=b"\x11" * 10)
    assert len(buf.data) == 64 + GUARD_BYTES
    assert buf.content() == b"\x11" * 10 + b"\x00" * 54
    assert bytes(buf.data[64:]) == bytes([GUARD_FILL]) * GUARD_BYTES
    assert buf.guard_intact()


def test_kernel_buffer_write_inside_window_is_not_recorded() -> None:
    buf = KernelBuffer("dma", 64)
    buf.write(60, b"abcd")
    assert buf.violations == []
    assert buf.content(60) == b"abcd"
    assert buf.guard_intact()


def test_kernel_buffer_write_past_size_lands_in_guard_and_is_recorded() -> None:
    buf = KernelBuffer("dma", 64)
    buf.write(60, b"12345678")
    assert buf.violations == [MemoryViolation("write-outside-window", "dma", 60, 8)]
    assert not buf.guard_intact()
    assert bytes(buf.data[64:68]) == b"5678"


def test_kernel_buffer_write_past_guard_raises_access_violation_and_is_recorded() -> None:
    buf = KernelBuffer("dma", 64)
    with pytest.raises(KernelAccessViolation, match="dma"):
        buf.write(64 + GUARD_BYTES - 4, b"12345678")
    assert buf.violations == [
        MemoryViolation("write-outside-window", "dma", 64 + GUARD_BYTES - 4, 8)
    ]
    # Nothing was written: the guard is still intact.
    assert buf.guard_intact()


def test_kernel_buffer_write_at_negative_offset_raises() -> None:
    buf = KernelBuffer("dma", 64)
    with pytest.raises(KernelAccessViolation):
        buf.write(-1, b"x")
    assert [v.kind for v in buf.violations] == ["write-outside-window"]


def test_kernel_buffer_write_filling_guard_exactly_does_not_raise() -> None:
    buf = KernelBuffer("dma", 16)
    buf.write(16, b"\x00" * GUARD_BYTES)
    assert [v.kind for v in buf.violations] == ["write-outside-window"]
    assert not buf.guard_intact()


def test_kernel_buffer_restricted_write_window_records_writes_before_it() -> None:
    buf = KernelBuffer("dma", 64)
    buf.set_write_window(16, 32)
    buf.write(16, b"\x01" * 16)
    assert buf.violations == []
    buf.write(8, b"\x02" * 8)
    buf.write(28, b"\x03" * 8)
    assert buf.violations == [
        MemoryViolation("write-outside-window", "dma", 8, 8),
        MemoryViolation("write-outside-window", "dma", 28, 8),
    ]


def test_read_only_kernel_buffer_records_write_readonly() -> None:
    buf = KernelBuffer("alloc-list", 48, writable=False)
    buf.write(0, b"\xff" * 8)
    assert buf.violations == [MemoryViolation("write-readonly", "alloc-list", 0, 8)]


def test_read_only_kernel_buffer_write_past_guard_still_raises() -> None:
    buf = KernelBuffer("patch-list", 24, writable=False)
    with pytest.raises(KernelAccessViolation):
        buf.write(24 + GUARD_BYTES, b"x")
    assert [v.kind for v in buf.violations] == ["write-readonly"]


def test_kernel_buffer_read_outside_read_window_is_recorded_but_returns_bytes() -> None:
    buf = KernelBuffer("patch-list", 96, initial=bytes(range(96)))
    buf.set_read_window(24, 48)
    assert buf.read(24, 24) == bytes(range(24, 48))
    assert buf.violations == []
    assert buf.read(40, 16) == bytes(range(40, 56))
    assert buf.read(0, 4) == bytes(range(4))
    assert buf.violations == [
        MemoryViolation("read-outside-window", "patch-list", 40, 16),
        MemoryViolation("read-outside-window", "patch-list", 0, 4),
    ]


def test_kernel_buffer_read_of_the_guard_zone_is_recorded() -> None:
    buf = KernelBuffer("dma", 8)
    assert buf.read(8, 4) == bytes([GUARD_FILL]) * 4  # it does not fault (as in C) ...
    assert buf.violations == [
        MemoryViolation("read-outside-window", "dma", 8, 4)
    ]  # ... but is seen


def test_kernel_buffer_read_past_backing_is_recorded_and_raises() -> None:
    buf = KernelBuffer("dma", 8)
    with pytest.raises(KernelAccessViolation):
        buf.read(8 + GUARD_BYTES - 2, 4)
    assert buf.violations == [MemoryViolation("read-past-end", "dma", 8 + GUARD_BYTES - 2, 4)]


def test_kernel_buffer_rejects_negative_size_and_oversized_initial_content() -> None:
    with pytest.raises(HarnessError):
        KernelBuffer("x", -1)
    with pytest.raises(HarnessError):
        KernelBuffer("x", 4, initial=b"12345")


def test_memory_violation_str_names_kind_region_and_offset() -> None:
    text = str(MemoryViolation("write-readonly", "alloc-list", 24, 8))
    assert text == "write-readonly in alloc-list at +24 (8 byte(s))"


# --------------------------------------------------------------------------- UserBuffer


def test_user_buffer_read_returns_bytes_and_is_logged() -> None:
    buf = UserBuffer("cmd", bytes(range(32)))
    assert buf.read(4, 8) == bytes(range(4, 12))
    assert buf.read(0, 0) == b""
    assert buf.reads == [(4, 8), (0, 0)]
    assert buf.violations == []


def test_user_buffer_fault_at_raises_user_access_fault_for_reads_touching_it() -> None:
    buf = UserBuffer("cmd", bytes(32), fault_at=16)
    assert buf.read(0, 16) == bytes(16)
    with pytest.raises(UserAccessFault) as info:
        buf.read(12, 8)
    assert (info.value.region, info.value.offset, info.value.length) == ("cmd", 12, 8)
    with pytest.raises(UserAccessFault):
        buf.read(16, 1)
    # Faulting reads never returned data: they are not in the read log.
    assert buf.reads == [(0, 16)]
    # A fault injection is not the driver's violation.
    assert buf.violations == []


def test_user_buffer_read_past_end_faults_and_is_recorded() -> None:
    buf = UserBuffer("cmd", bytes(32))
    with pytest.raises(UserAccessFault, match="cmd"):
        buf.read(30, 4)
    assert buf.violations == [MemoryViolation("read-past-end", "cmd", 30, 4)]
    assert buf.reads == []


def test_user_buffer_read_at_negative_offset_faults_and_is_recorded() -> None:
    buf = UserBuffer("cmd", bytes(32))
    with pytest.raises(UserAccessFault):
        buf.read(-4, 4)
    assert [v.kind for v in buf.violations] == ["read-past-end"]


def test_user_buffer_write_is_recorded_as_write_readonly() -> None:
    buf = UserBuffer("cmd", bytes(8))
    buf.write(0, b"ab")
    assert buf.violations == [MemoryViolation("write-readonly", "cmd", 0, 2)]


def test_double_fetched_single_reads_are_empty() -> None:
    buf = UserBuffer("cmd", bytes(64))
    buf.read(0, 16)
    buf.read(16, 16)
    buf.read(40, 8)
    assert buf.double_fetched() == []


def test_double_fetched_adjacent_ranges_do_not_overlap() -> None:
    buf = UserBuffer("cmd", bytes(64))
    buf.read(0, 4)
    buf.read(4, 4)
    assert buf.double_fetched() == []


def test_double_fetched_reports_only_the_overlap() -> None:
    buf = UserBuffer("cmd", bytes(64))
    buf.read(0, 8)
    buf.read(4, 8)
    assert buf.double_fetched() == [(4, 8)]


def test_double_fetched_merges_adjacent_double_reads() -> None:
    buf = UserBuffer("cmd", bytes(64))
    for off in (0, 0, 4, 4):
        buf.read(off, 4)
    assert buf.double_fetched() == [(0, 8)]


def test_double_fetched_merges_nested_and_triple_overlaps() -> None:
    buf = UserBuffer("cmd", bytes(64))
    buf.read(0, 10)
    buf.read(2, 4)
    buf.read(3, 1)
    buf.read(20, 4)
    buf.read(22, 4)
    assert buf.double_fetched() == [(2, 6), (22, 24)]


def test_double_fetched_ignores_zero_length_reads() -> None:
    buf = UserBuffer("cmd", bytes(16))
    buf.read(4, 0)
    buf.read(4, 0)
    buf.read(0, 8)
    assert buf.double_fetched() == []


@given(st.lists(st.tuples(st.integers(0, 40), st.integers(0, 24)), max_size=12))
def test_double_fetched_matches_per_byte_count(reads: list[tuple[int, int]]) -> None:
    buf = UserBuffer("cmd", bytes(64))
    for off, n in reads:
        buf.read(off, n)
    counts = [0] * 64
    for off, n in reads:
        for b in range(off, off + n):
            counts[b] += 1
    expected: list[tuple[int, int]] = []
    for b, c in enumerate(counts):
        if c >= 2:
            if expected and expected[-1][1] == b:
                expected[-1] = (expected[-1][0], b + 1)
            else:
                expected.append((b, b + 1))
    assert buf.double_fetched() == expected


def test_double_fetched_does_not_pair_reads_of_different_ddi_calls() -> None:
    buf = UserBuffer("cmd", bytes(64))
    buf.read(0, 16)
    buf.new_epoch()  # another DDI call (e.g. Render resumed after INSUFFICIENT_DMA_BUFFER)
    buf.read(0, 16)
    assert buf.double_fetched() == []


def test_double_fetched_reports_overlaps_within_each_epoch_sorted() -> None:
    buf = UserBuffer("cmd", bytes(64))
    buf.read(32, 8)
    buf.read(36, 8)  # call 1: [36, 40) twice
    buf.new_epoch()
    buf.read(32, 8)  # call 2: only one read of [32, 40) ...
    buf.read(0, 4)
    buf.read(2, 4)  # ... and [2, 4) twice
    assert buf.double_fetched() == [(2, 4), (36, 40)]


def test_double_fetched_with_empty_epochs() -> None:
    buf = UserBuffer("cmd", bytes(16))
    buf.new_epoch()
    buf.new_epoch()
    buf.read(0, 4)
    buf.read(0, 4)
    buf.new_epoch()
    assert buf.double_fetched() == [(0, 4)]


def test_toctou_fires_once_right_after_first_read_covering_offset() -> None:
    buf = UserBuffer("cmd", bytes(16), toctou=(8, b"\xaa\xbb"))
    # A read that does not cover offset 8 does not fire.
    assert buf.read(0, 8) == bytes(8)
    assert not buf.toctou_fired
    # The first covering read sees the old bytes ...
    assert buf.read(6, 4) == bytes(4)
    assert buf.toctou_fired
    # ... and every later read sees the new ones.
    assert buf.read(8, 2) == b"\xaa\xbb"
    assert buf.read(6, 6) == b"\x00\x00\xaa\xbb\x00\x00"


def test_toctou_does_not_fire_a_second_time() -> None:
    buf = UserBuffer("cmd", bytes(16), toctou=(0, b"\x01"))
    buf.read(0, 1)
    buf.data[0] = 0x55  # the harness restores something else
    assert buf.read(0, 1) == b"\x55"
    assert buf.read(0, 1) == b"\x55"


def test_toctou_not_fired_by_read_ending_at_offset() -> None:
    buf = UserBuffer("cmd", bytes(16), toctou=(8, b"\x01"))
    buf.read(4, 4)  # covers [4, 8): ends right before the offset
    assert not buf.toctou_fired
    assert buf.read(8, 1) == b"\x00"
    assert buf.toctou_fired


def test_toctou_not_fired_by_faulting_read() -> None:
    buf = UserBuffer("cmd", bytes(16), fault_at=12, toctou=(8, b"\x01"))
    with pytest.raises(UserAccessFault):
        buf.read(8, 8)
    assert not buf.toctou_fired
    assert buf.data[8] == 0


# --------------------------------------------------------------------------- Ptr


def test_ptr_add_advances_n_elements_of_stride_bytes() -> None:
    region = KernelBuffer("patch-out", 240)
    p = region.ptr(0, stride=24)
    q = p + 3
    assert q.offset == 72
    assert q.stride == 24
    assert q.region is region
    assert p.offset == 0  # p + n does not move p


def test_ptr_byte_pointer_has_stride_one() -> None:
    p = KernelBuffer("dma", 64).ptr(8)
    assert (p + 5).offset == 13


def test_ptr_difference_counts_elements() -> None:
    region = KernelBuffer("patch-out", 240)
    p = region.ptr(24, stride=24)
    assert (p + 4) - p == 4
    assert p - (p + 2) == -2


def test_ptr_subtracting_pointers_of_different_regions_is_the_drivers_error() -> None:
    a = KernelBuffer("a", 8).ptr()
    b = KernelBuffer("b", 8).ptr()
    with pytest.raises(ValueError, match="different buffers") as caught:
        _ = a - b
    assert not isinstance(caught.value, HarnessError)  # a driver bug must not be an INTERNAL-ERROR


def test_ptr_equality_is_region_identity_and_offset() -> None:
    region = KernelBuffer("dma", 64)
    other = KernelBuffer("dma", 64)
    assert region.ptr(4) == region.ptr(0) + 4
    assert region.ptr(4) != other.ptr(4)
    assert region.ptr(4) != region.ptr(5)
    assert hash(region.ptr(4)) == hash(region.ptr(4))


def test_ptr_read_and_write_go_through_the_region_at_byte_offsets() -> None:
    region = KernelBuffer("dma", 16)
    p = region.ptr(4, stride=4) + 1  # byte 8
    p.write(b"xy", at=2)
    assert region.content(10, 12) == b"xy"
    assert p.read(4) == b"\x00\x00xy"
    (p + 1).write(b"12345678")  # bytes 12..20: past the 16-byte window
    assert region.violations == [MemoryViolation("write-outside-window", "dma", 12, 8)]


# --------------------------------------------------------------------------- leases


def _lent(region: KernelBuffer | UserBuffer, book: LeaseBook, call: int = 1) -> tuple[Lease, Ptr]:
    lease = Lease("DxgkDdiRender", call, book)
    return lease, region.ptr(0, stride=4).lend(lease)


def test_memory_no_call_was_given_is_never_retired() -> None:
    region = KernelBuffer("driver's own", 8)
    assert region.lease is UNLEASED and region.ptr().lease is UNLEASED
    region.ptr().write(b"ok")
    assert region.read(0, 2) == b"ok"


def test_pointers_computed_from_a_lent_pointer_are_retired_with_it() -> None:
    book = LeaseBook()
    region = KernelBuffer("dma", 64)
    lease, p = _lent(region, book, call=7)
    q = p + 2  # byte 8
    q.write(b"live")
    lease.retired = True
    book.current = Lease("DxgkDdiPatch", 9, book)
    with pytest.raises(RetiredBufferAccess) as caught:
        q.write(b"late")
    assert region.content(8, 12) == b"live"  # the late write reached nothing
    assert book.late == [LateAccess("dma", 8, 4, True, "DxgkDdiRender", 7, "DxgkDdiPatch", 9)]
    assert caught.value.access is book.late[0]
    assert (caught.value.offset, caught.value.write) == (8, True)
    assert "wrote 4 byte(s) at +8 of dma during DxgkDdiPatch (DDI call 9)" in str(caught.value)


@pytest.mark.parametrize("kind", ["kernel", "user"])
def test_a_retired_region_refuses_reads_and_writes_even_without_a_pointer(kind: str) -> None:
    book = LeaseBook()
    region: KernelBuffer | UserBuffer = (
        KernelBuffer("plo", 16) if kind == "kernel" else UserBuffer("pCommand", b"\0" * 16)
    )
    lease, _ = _lent(region, book)
    lease.retired = True
    with pytest.raises(RetiredBufferAccess):
        region.read(4, 4)
    with pytest.raises(RetiredBufferAccess):
        region.write(0, b"x")
    assert [(a.write, a.during) for a in book.late] == [(False, ""), (True, "")]
    assert region.violations == []  # not a window violation: the buffer is gone


def test_a_region_lent_again_gets_a_fresh_pointer_and_the_old_one_stays_retired() -> None:
    book = LeaseBook()
    region = KernelBuffer("dma", 16)
    first, old = _lent(region, book, call=1)
    first.retired = True
    second, new = _lent(region, book, call=2)
    new.write(b"ok")
    region.write(2, b"ok")  # the region is lent to the running call again
    region.ptr(4).write(b"ok")  # so is a pointer the driver makes from it
    assert region.lease is second and new is not old
    with pytest.raises(RetiredBufferAccess):
        old.read(2)
    assert book.late[0].call == 1


def test_lending_a_pointer_lent_before_copies_it() -> None:
    book = LeaseBook()
    region = KernelBuffer("dma", 16)
    first, old = _lent(region, book, call=1)
    first.retired = True
    again = old.lend(Lease("DxgkDdiPatch", 2, book))
    assert again is not old and again == old
    again.write(b"ok")
    with pytest.raises(RetiredBufferAccess):
        old.write(b"no")
