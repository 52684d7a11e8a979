"""A driver that returns junk gets a clear verdict naming the DDI, never an internal error."""

from __future__ import annotations

from typing import Any

import pytest

from tests.test_kernel_failures import create_batch, evict_round_trip, render_program
from wddm_conformance.errors import BugCheck, DriverLoadError, DriverViolation
from wddm_conformance.kernel import Kernel
from wddm_conformance.results import Status, classify

JUNK = [None, "STATUS_SUCCESS", True, 3.0, 0x12345678, 2**70, 2**32]


def _kernel_with(method: str, value: Any) -> Kernel:
    k = Kernel("reference")
    setattr(k.driver, method, lambda *args: value)
    return k


@pytest.mark.parametrize("junk", JUNK, ids=repr)
def test_render_returning_junk_is_ren_status(junk: Any) -> None:
    with pytest.raises(DriverViolation) as caught:
        render_program(_kernel_with("render", junk))
    assert caught.value.requirement == "REN-STATUS"
    assert "DxgkDdiRender" in str(caught.value)
    if isinstance(junk, int) and junk >> 32:
        assert f"{junk:#x}" in str(caught.value)  # as returned, not masked to STATUS_SUCCESS


@pytest.mark.parametrize("junk", JUNK, ids=repr)
def test_patch_returning_junk_bug_checks_0x119(junk: Any) -> None:
    with pytest.raises(BugCheck) as caught:
        evict_round_trip(_kernel_with("patch", junk))
    assert (caught.value.code, caught.value.parameters[0]) == (0x119, 0x3)


@pytest.mark.parametrize("junk", JUNK, ids=repr)
def test_build_paging_buffer_returning_junk_bug_checks_0x10e(junk: Any) -> None:
    with pytest.raises(BugCheck) as caught:
        evict_round_trip(_kernel_with("build_paging_buffer", junk))
    assert (caught.value.code, caught.value.parameters[0]) == (0x10E, 0xB)
    assert classify(caught.value).status is Status.CRASH


@pytest.mark.parametrize("junk", JUNK, ids=repr)
def test_create_allocation_returning_junk_is_alc_status(junk: Any) -> None:
    with pytest.raises(DriverViolation) as caught:
        create_batch(_kernel_with("create_allocation", junk))
    assert caught.value.requirement == "ALC-STATUS"


@pytest.mark.parametrize("junk", [None, [], ["segment"], 7])
def test_query_segments_returning_junk_is_a_one_line_load_error(
    junk: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wddm_conformance.reference import ReferenceMiniport

    monkeypatch.setattr(ReferenceMiniport, "query_segments", lambda self: junk)
    with pytest.raises(DriverLoadError) as caught:
        Kernel("reference")
    assert "query_segments returned" in str(caught.value) and "\n" not in str(caught.value)


def test_harness_errors_are_internal_errors_not_driver_failures() -> None:
    from wddm_conformance.errors import HarnessError

    assert classify(HarnessError("bad test")).status is Status.INTERNAL_ERROR
    assert classify(KeyError("x")).status is Status.INTERNAL_ERROR
    assert classify(None).status is Status.PASS
