"""What the driver does to the harness's objects is the driver's fault (issue 16).

* The kernel-owned arrays of an argument block (``pAllocationInfo``, ``pOpenAllocation``,
  ``pOpenHandleList``, the destroy list) keep their length and their element objects:
  a driver that changes one is ALL-READONLY naming the DDI and the argument, never an
  INTERNAL-ERROR from the harness's own use of the list.
* Every buffer and pointer given to a DDI call is retired when the call returns: a later
  read or write through it is bug check 0x1E (STATUS_ACCESS_VIOLATION) naming the
  buffer, the call it was given to and the call it happened in; a write is ALL-READONLY,
  a read ALL-NORAISE.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

import pytest

from tests import killmatrix as km
from tests import mutants as m
from tests.test_kernel_failures import create_batch, render_program
from wddm_conformance.ddi import (
    DXGK_PATCHFLAGS,
    DXGKARG_CLOSEALLOCATION,
    DXGKARG_CREATEALLOCATION,
    DXGKARG_PATCH,
    DXGKARG_RENDER,
)
from wddm_conformance.driver import AllocationRequest, load_driver
from wddm_conformance.errors import BugCheck, DriverViolation
from wddm_conformance.kernel import Kernel, KernelMode
from wddm_conformance.memory import Ptr, RetiredBufferAccess
from wddm_conformance.reference.isa import encode
from wddm_conformance.reference.miniport import ReferenceMiniport
from wddm_conformance.status import STATUS_INVALID_PARAMETER

NOP = encode("NOP")


def _kernel(driver: type, mode: str = "default") -> Kernel:
    return Kernel(load_driver(f"{driver.__module__}:{driver.__qualname__}"), mode)


def destroy_one(k: Kernel) -> None:
    dev = k.create_device()
    (a,) = k.create_allocations(dev, [AllocationRequest(4096)])
    k.destroy_allocation(a)


def failed_batch(k: Kernel) -> None:
    k.create_allocations(k.create_device(), [AllocationRequest(4096)] * 3, allow_failure=True)


def render_twice(k: Kernel) -> None:
    render_program(k)
    render_program(k)


# --------------------------------------------------------------------------- kernel arrays


class ReplacesAllocationInfoList(ReferenceMiniport):
    """Points pAllocationInfo at a list of its own (same elements)."""

    def create_allocation(self, args: DXGKARG_CREATEALLOCATION) -> int:
        status = super().create_allocation(args)
        args.pAllocationInfo = list(args.pAllocationInfo)
        return status


class ReplacesAllocationInfoElement(ReferenceMiniport):
    """Puts a copy of its own in place of the kernel's second DXGK_ALLOCATIONINFO."""

    def create_allocation(self, args: DXGKARG_CREATEALLOCATION) -> int:
        status = super().create_allocation(args)
        args.pAllocationInfo[1] = dataclasses.replace(args.pAllocationInfo[1])
        return status


class ChangesNumAllocations(ReferenceMiniport):
    """Zeroes the [in] NumAllocations."""

    def create_allocation(self, args: DXGKARG_CREATEALLOCATION) -> int:
        status = super().create_allocation(args)
        args.NumAllocations = 0
        return status


class ClearsAllocationInfoOnFailure(ReferenceMiniport):
    """Empties pAllocationInfo and fails the batch."""

    def create_allocation(self, args: DXGKARG_CREATEALLOCATION) -> int:
        args.pAllocationInfo.clear()
        return STATUS_INVALID_PARAMETER


class WritesCloseList(ReferenceMiniport):
    """Zeroes the first handle of the const pOpenHandleList it closes."""

    def close_allocation(self, hDevice: int, args: DXGKARG_CLOSEALLOCATION) -> int:
        status = super().close_allocation(hDevice, args)
        args.pOpenHandleList[0] = 0
        return status


ARRAYS: list[tuple[type, Callable[[Kernel], None], str]] = [
    (
        m.ClearsAllocationInfo,
        create_batch,
        "DxgkDdiCreateAllocation: changed the length of pAllocationInfo (NumAllocations 3, now 0)",
    ),
    (
        m.AppendsAllocationInfo,
        create_batch,
        "DxgkDdiCreateAllocation: changed the length of pAllocationInfo (NumAllocations 3, now 4)",
    ),
    (
        ClearsAllocationInfoOnFailure,
        failed_batch,
        "DxgkDdiCreateAllocation: changed the length of pAllocationInfo (NumAllocations 3, now 0)",
    ),
    (
        ReplacesAllocationInfoList,
        create_batch,
        "DxgkDdiCreateAllocation: replaced the [in] pointer pAllocationInfo (the kernel's "
        "3-element array) with",
    ),
    (
        ReplacesAllocationInfoElement,
        create_batch,
        "DxgkDdiCreateAllocation: replaced element 1 of pAllocationInfo (the kernel's "
        "DXGK_ALLOCATIONINFO) with another DXGK_ALLOCATIONINFO object",
    ),
    (
        ChangesNumAllocations,
        create_batch,
        "DxgkDdiCreateAllocation: changed NumAllocations, an [in] field, from 3 to 0",
    ),
    (
        m.ReplacesOpenAllocationInfo,
        create_batch,
        "DxgkDdiOpenAllocation: replaced element 0 of pOpenAllocation (the kernel's "
        "DXGK_OPENALLOCATIONINFO) with another DXGK_OPENALLOCATIONINFO object",
    ),
    (
        m.ClearsDestroyList,
        destroy_one,
        "DxgkDdiDestroyAllocation: changed the length of pAllocationList (NumAllocations 1, now 0)",
    ),
    (
        WritesCloseList,
        destroy_one,
        "DxgkDdiCloseAllocation: wrote element 0 of pOpenHandleList, a const array of handles",
    ),
]


@pytest.mark.parametrize(
    ("driver", "scenario", "message"), ARRAYS, ids=[a[0].__name__ for a in ARRAYS]
)
def test_changing_a_kernel_array_is_all_readonly_naming_the_ddi_and_the_argument(
    driver: type, scenario: Callable[[Kernel], None], message: str
) -> None:
    with pytest.raises(DriverViolation) as caught:
        scenario(_kernel(driver))
    assert caught.value.requirement == "ALL-READONLY"
    assert f"[ALL-READONLY] {message}" in str(caught.value)
    assert caught.value.ddi == message.split(":")[0]


class KeepsAllocationInfo(ReferenceMiniport):
    """Keeps the DXGK_ALLOCATIONINFO objects it filled in and shrinks their Size during Render."""

    def create_allocation(self, args: DXGKARG_CREATEALLOCATION) -> int:
        self.__dict__.setdefault("kept", []).extend(args.pAllocationInfo)
        return super().create_allocation(args)

    def render(self, hContext: int, args: DXGKARG_RENDER) -> int:
        for info in self.__dict__.get("kept", []):
            info.Size = 1
            info.PreferredSegment.clear()
        return super().render(hContext, args)


def test_the_kernel_keeps_its_own_copy_of_the_allocation_info_it_judged() -> None:
    k = _kernel(KeepsAllocationInfo)
    render_program(k)  # memory compared after the late writes: the kernel saw none of them
    assert {a.size for a in k.allocations.values()} == {64 << 10}
    assert all(a.info.PreferredSegment for a in k.allocations.values())


# --------------------------------------------------------------------------- retired buffers


def _late_bug_check(driver: type, scenario: Callable[[Kernel], None], mode: str = "default") -> Any:
    with pytest.raises(BugCheck) as caught:
        scenario(_kernel(driver, mode))
    return caught.value


def test_a_write_through_the_previous_renders_dma_buffer_is_0x1e_all_readonly() -> None:
    bug = _late_bug_check(m.KeepsDmaBuffer, render_twice)
    assert (bug.code, bug.parameters) == (0x1E, (0xC0000005, 0, 1, 0))
    assert (bug.requirement, bug.ddi) == ("ALL-READONLY", "DxgkDdiRender")
    text = str(bug)
    assert "wrote 4 byte(s) at +0 of DMA buffer during DxgkDdiRender (DDI call " in text
    assert "through a pointer given to DxgkDdiRender (DDI call " in text
    assert "after that call had returned" in text


def test_a_read_through_an_earlier_pcommand_is_0x1e_all_noraise() -> None:
    bug = _late_bug_check(m.KeepsCommandBuffer, render_twice)
    assert (bug.code, bug.parameters) == (0x1E, (0xC0000005, 0, 0, 0))
    assert (bug.requirement, bug.ddi) == ("ALL-NORAISE", "DxgkDdiRender")
    assert "read 4 byte(s) at +0 of pCommand during DxgkDdiRender" in str(bug)


def test_an_earlier_split_calls_pcommand_is_retired_too() -> None:
    # tiny buffers: one command buffer takes several Render calls, each with a fresh pCommand
    bug = _late_bug_check(m.KeepsCommandBuffer, render_program, "tiny-buffers")
    assert bug.requirement == "ALL-NORAISE"


class SwallowsLateAccess(ReferenceMiniport):
    """Writes through the previous Render's pDmaBuffer inside try/except Exception."""

    def render(self, hContext: int, args: DXGKARG_RENDER) -> int:
        kept = self.__dict__.get("kept")
        if kept is not None:
            try:
                kept.write(NOP)
            except Exception:
                self.__dict__["swallowed"] = True
        self.__dict__["kept"] = args.pDmaBuffer
        return super().render(hContext, args)


def test_a_late_access_the_driver_catches_is_still_the_bug_check_at_the_calls_end() -> None:
    k = _kernel(SwallowsLateAccess)
    render_program(k)
    with pytest.raises(BugCheck) as caught:
        render_program(k)
    assert k.driver.__dict__["swallowed"]
    assert (caught.value.requirement, caught.value.ddi) == ("ALL-READONLY", "DxgkDdiRender")


class KeepsDmaRegion(ReferenceMiniport):
    """Keeps the Region behind each Render's pDmaBuffer and writes it directly in the next Render."""

    def render(self, hContext: int, args: DXGKARG_RENDER) -> int:
        kept = self.__dict__.get("kept")
        if kept is not None:
            kept.write(8, NOP)
        self.__dict__["kept"] = args.pDmaBuffer.region
        return super().render(hContext, args)


def test_a_kept_region_is_retired_like_a_kept_pointer() -> None:
    bug = _late_bug_check(KeepsDmaRegion, render_twice)
    assert bug.parameters == (0xC0000005, 0, 1, 8)
    assert "of DMA buffer during DxgkDdiRender" in str(bug)


class KeepsRenderPointerForPatch(ReferenceMiniport):
    """Patch reads the DMA buffer through the pointer Render got, not the one Patch got."""

    def render(self, hContext: int, args: DXGKARG_RENDER) -> int:
        self.__dict__["kept"] = args.pDmaBuffer
        return super().render(hContext, args)

    def patch(self, args: DXGKARG_PATCH) -> int:
        kept = self.__dict__.get("kept")
        if kept is not None and not args.Flags & DXGK_PATCHFLAGS.Paging:
            kept.read(4)
        return super().patch(args)


class ReadsRegionAgainInPatch(ReferenceMiniport):
    """Patch reads the DMA buffer through the Region it kept from Render: handed to Patch again, so legal."""

    def render(self, hContext: int, args: DXGKARG_RENDER) -> int:
        self.__dict__["kept"] = args.pDmaBuffer.region
        return super().render(hContext, args)

    def patch(self, args: DXGKARG_PATCH) -> int:
        region = self.__dict__.get("kept")
        if region is args.pDmaBuffer.region:
            region.read(0, 4)
            self.__dict__["reads"] = self.__dict__.get("reads", 0) + 1
        return super().patch(args)


def test_a_buffer_handed_to_a_later_call_again_gets_a_fresh_pointer_the_old_one_stays_retired() -> (
    None
):
    bug = _late_bug_check(KeepsRenderPointerForPatch, render_program, "always-repatch")
    assert (bug.requirement, bug.ddi) == ("ALL-NORAISE", "DxgkDdiPatch")
    assert "of DMA buffer during DxgkDdiPatch" in str(bug)
    assert "given to DxgkDdiRender" in str(bug)
    k = _kernel(ReadsRegionAgainInPatch, "always-repatch")
    render_program(k)
    assert k.driver.__dict__["reads"] >= 2


class KeepsDmaPointer(ReferenceMiniport):
    """Keeps each Render's pDmaBuffer (a driver thread writes through it)."""

    def render(self, hContext: int, args: DXGKARG_RENDER) -> int:
        self.__dict__["kept"] = args.pDmaBuffer
        return super().render(hContext, args)


def test_a_late_access_from_a_driver_thread_is_caught_at_the_next_calls_end() -> None:
    k = _kernel(KeepsDmaPointer)
    render_program(k)
    kept: Ptr = k.driver.__dict__["kept"]
    raised: list[BaseException] = []

    def driver_thread() -> None:
        try:
            kept.write(NOP, 16)
        except RetiredBufferAccess as exc:  # the thread's own fault: it swallows it
            raised.append(exc)

    thread = threading.Thread(target=driver_thread)
    thread.start()
    thread.join()
    assert "outside any DDI call (from a driver thread)" in str(raised[0])
    with pytest.raises(BugCheck) as caught:
        k.create_device()
    assert caught.value.parameters == (0xC0000005, 0, 1, 16)
    assert caught.value.requirement == "ALL-READONLY"
    assert caught.value.ddi == "DxgkDdiRender"  # no DDI ran it: the one the buffer was given to
    assert "outside any DDI call (from a driver thread)" in str(caught.value)
    k.create_device()  # reported once


def test_no_false_positive_on_the_reference_driver_when_buffers_are_handed_out_again() -> None:
    for mode in ("default", "always-repatch", "tiny-buffers", "split-submissions"):
        k = Kernel("reference", KernelMode.parse(mode))
        render_program(k)
        render_program(k)
        assert not k.caller.book.late


# --------------------------------------------------------------------------- suite and check

BROKEN = [
    (m.ClearsAllocationInfo, "FAIL", "ALL-READONLY", "DxgkDdiCreateAllocation", "pAllocationInfo"),
    (m.AppendsAllocationInfo, "FAIL", "ALL-READONLY", "DxgkDdiCreateAllocation", "pAllocationInfo"),
    (
        m.ReplacesOpenAllocationInfo,
        "FAIL",
        "ALL-READONLY",
        "DxgkDdiOpenAllocation",
        "pOpenAllocation",
    ),
    (m.ClearsDestroyList, "FAIL", "ALL-READONLY", "DxgkDdiDestroyAllocation", "pAllocationList"),
    (m.KeepsDmaBuffer, "CRASH", "ALL-READONLY", "DxgkDdiRender", "of DMA buffer"),
    (m.KeepsCommandBuffer, "CRASH", "ALL-NORAISE", "DxgkDdiRender", "of pCommand"),
]


@pytest.mark.parametrize(
    ("driver", "status", "requirement", "ddi", "names"), BROKEN, ids=[b[0].__name__ for b in BROKEN]
)
def test_the_suite_and_check_name_the_status_rule_ddi_and_argument(
    driver: type, status: str, requirement: str, ddi: str, names: str
) -> None:
    report = km.run_suite(km.spec(driver), "--hypothesis-profile=quick", "-k", "whole_life")
    (test,) = report["tests"]
    assert (test["status"], test["violated"], test["ddi"]) == (status, requirement, ddi)
    assert names in test["message"]
    env = {**os.environ, "PYTHONPATH": str(km.ROOT)}
    command = [sys.executable, "-m", "wddm_conformance", "check", "--mode=default"]
    check = subprocess.run(
        [*command, f"--driver={km.spec(driver)}"],
        cwd=km.ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 1, check.stderr
    line = check.stdout.splitlines()[1]
    assert line.startswith(f"{status} ") and f"[{requirement}] {ddi}: " in line, line
    assert names in line
