"""Unit tests for wddm_conformance.status: NTSTATUS values, NT_SUCCESS and allowed sets."""

from __future__ import annotations

import pytest

from wddm_conformance import status as s
from wddm_conformance.status import (
    BUILD_PAGING_BUFFER_STATUSES,
    CREATE_ALLOCATION_STATUSES,
    NT_SUCCESS,
    NTSTATUS,
    PATCH_STATUSES,
    RENDER_STATUSES,
    status_name,
)

EXPECTED = {
    "STATUS_SUCCESS": 0x00000000,
    "STATUS_GRAPHICS_INSUFFICIENT_DMA_BUFFER": 0xC01E0001,
    "STATUS_GRAPHICS_ALLOCATION_BUSY": 0xC01E0102,
    "STATUS_GRAPHICS_DRIVER_MISMATCH": 0x401E0117,
    "STATUS_GRAPHICS_GPU_EXCEPTION_ON_DEVICE": 0xC01E0200,
    "STATUS_INVALID_USER_BUFFER": 0xC00000E8,
    "STATUS_PRIVILEGED_INSTRUCTION": 0xC0000096,
    "STATUS_ILLEGAL_INSTRUCTION": 0xC000001D,
    "STATUS_INVALID_HANDLE": 0xC0000008,
    "STATUS_INVALID_PARAMETER": 0xC000000D,
    "STATUS_NO_MEMORY": 0xC0000017,
    "STATUS_NOT_SUPPORTED": 0xC00000BB,
}


@pytest.mark.parametrize(("name", "value"), sorted(EXPECTED.items()))
def test_ntstatus_has_exact_wdk_value(name: str, value: int) -> None:
    assert NTSTATUS[name] == value
    assert getattr(s, name) == value
    assert getattr(s, name) is NTSTATUS[name]


def test_ntstatus_values_are_distinct() -> None:
    assert len({int(v) for v in NTSTATUS}) == len(NTSTATUS)


def test_nt_success_true_for_success_false_for_error_severity() -> None:
    assert NT_SUCCESS(s.STATUS_SUCCESS)
    for name, value in EXPECTED.items():
        if value & 0xC0000000 == 0xC0000000:
            assert not NT_SUCCESS(value), name


def test_nt_success_is_true_for_driver_mismatch_informational_severity() -> None:
    assert NT_SUCCESS(s.STATUS_GRAPHICS_DRIVER_MISMATCH)


def test_driver_mismatch_is_separated_from_success_by_set_membership_not_nt_success() -> None:
    mismatch = s.STATUS_GRAPHICS_DRIVER_MISMATCH
    # NT_SUCCESS cannot tell DRIVER_MISMATCH from SUCCESS ...
    assert NT_SUCCESS(mismatch) == NT_SUCCESS(s.STATUS_SUCCESS)
    # ... so the harness uses explicit allowed sets: allowed for Render and CreateAllocation,
    assert mismatch in RENDER_STATUSES
    assert mismatch in CREATE_ALLOCATION_STATUSES
    # but not an allowed answer of BuildPagingBuffer or Patch.
    assert mismatch not in BUILD_PAGING_BUFFER_STATUSES
    assert mismatch not in PATCH_STATUSES
    assert s.STATUS_SUCCESS in PATCH_STATUSES


def test_allowed_status_sets_contents() -> None:
    assert {s.STATUS_SUCCESS} == PATCH_STATUSES
    assert {
        s.STATUS_SUCCESS,
        s.STATUS_GRAPHICS_ALLOCATION_BUSY,
        s.STATUS_GRAPHICS_INSUFFICIENT_DMA_BUFFER,
    } == BUILD_PAGING_BUFFER_STATUSES
    assert {
        s.STATUS_SUCCESS,
        s.STATUS_INVALID_PARAMETER,
        s.STATUS_NO_MEMORY,
        s.STATUS_GRAPHICS_DRIVER_MISMATCH,
    } == CREATE_ALLOCATION_STATUSES
    assert s.STATUS_GRAPHICS_INSUFFICIENT_DMA_BUFFER in RENDER_STATUSES
    assert s.STATUS_GRAPHICS_ALLOCATION_BUSY not in RENDER_STATUSES
    assert s.STATUS_NOT_SUPPORTED not in RENDER_STATUSES


def test_allowed_sets_match_plain_ints() -> None:
    assert 0xC01E0001 in RENDER_STATUSES
    assert 0x401E0117 in RENDER_STATUSES
    assert 0 in PATCH_STATUSES


def test_status_name_known_value_is_wdk_name() -> None:
    assert status_name(0xC0000008) == "STATUS_INVALID_HANDLE"
    assert status_name(s.STATUS_GRAPHICS_DRIVER_MISMATCH) == "STATUS_GRAPHICS_DRIVER_MISMATCH"
    assert status_name(0) == "STATUS_SUCCESS"


def test_status_name_unknown_int_is_hex_and_flagged() -> None:
    assert status_name(0x12345678) == "0x12345678 (not a status the DDI may return)"
    assert status_name(-1) == "0xFFFFFFFF (not a status the DDI may return)"


@pytest.mark.parametrize("value", [2**70, 2**32, -(2**31) - 1])
def test_status_name_shows_a_value_outside_32_bits_as_returned(value: int) -> None:
    assert status_name(value) == f"{value:#x} (not a 32-bit NTSTATUS)"


@pytest.mark.parametrize("value", [None, "0", 1.0, True, False, [0]])
def test_status_name_non_int_is_flagged(value: object) -> None:
    assert status_name(value) == f"{value!r} (not an NTSTATUS integer)"
