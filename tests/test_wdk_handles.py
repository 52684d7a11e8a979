"""The kernel's handle tables and the DXGKRNL_INTERFACE callbacks that read them
(DxgkCbGetHandleData, DxgkCbGetHandleParent, DxgkCbEnumHandleChildren), for WDK-style
native drivers: DxgkDdiOpenAllocation gets the kernel's D3DKMT_HANDLE and the driver
gets its own data back from the kernel (seed 003)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest

from wddm_conformance.ddi import DXGK_OPENALLOCATIONINFO, DXGKARG_OPENALLOCATION
from wddm_conformance.driver import AllocationRequest
from wddm_conformance.errors import BugCheck
from wddm_conformance.kernel import Kernel
from wddm_conformance.kernel.handles import (
    DXGK_HANDLE_ALLOCATION,
    DXGK_HANDLE_RESOURCE,
    FIRST_HANDLE,
    HandleTable,
)
from wddm_conformance.native.adapter import NativeMiniport
from wddm_conformance.native.build import build

from .test_wdk_kernel_objects import _run
from .test_wdk_native import CC, HERE

pytestmark = pytest.mark.skipif(CC is None, reason="no C compiler (install gcc, or set CC)")

STATUS_INVALID_HANDLE = 0xC0000008


@cache
def _sample() -> Path:
    return build([HERE / "wdk_driver" / "wdkdisp.c"], name="wdkdisp", wdk=True)


def test_the_handle_table_answers_as_dxgkrnl_documents() -> None:
    """Handles per device, data back, the resource as parent, children in order, NULL
    (0) for anything the table does not hold, and stale handles after a close."""
    kernel = Kernel("reference")  # its Allocation and Device objects; the table is pure Python
    creator, other = kernel.create_device(), kernel.create_device()
    first, second = kernel.create_allocations(
        creator, [AllocationRequest(4096), AllocationRequest(8192)], resource=0
    )
    (plain,) = kernel.create_allocations(creator, [AllocationRequest(4096)])
    table = HandleTable()
    h1, h2, hp = (table.open(creator, a) for a in (first, second, plain))
    o1 = table.open(other, first)
    assert len({h1, h2, hp, o1}) == 4 and min(h1, h2, hp, o1) >= FIRST_HANDLE
    assert table.open(creator, first) == h1  # once per device
    assert table.handle_data(h1, DXGK_HANDLE_ALLOCATION, False) == first.hAllocation
    assert (
        table.handle_data(o1, DXGK_HANDLE_ALLOCATION, True) == 0
    )  # OpenAllocation not yet returned
    kernel.open_for(other, first)
    assert table.handle_data(o1, DXGK_HANDLE_ALLOCATION, True) == first.opened[id(other)]
    resource = table.parent(h1)
    assert resource and table.parent(h2) == resource and table.parent(hp) == 0
    assert table.parent(o1) not in (0, resource)  # the resource on the other device
    assert table.handle_data(resource, DXGK_HANDLE_RESOURCE, False) == first.resource
    assert table.handle_data(resource, DXGK_HANDLE_RESOURCE, True) == 0
    assert [table.child(resource, i) for i in range(3)] == [h1, h2, 0]
    assert table.handle_data(resource, DXGK_HANDLE_ALLOCATION, False) == 0  # the wrong type
    assert table.handle_data(h1, DXGK_HANDLE_RESOURCE, False) == 0
    assert table.child(h1, 0) == 0 and table.parent(resource) == 0
    assert table.handle_data(table.unused(), DXGK_HANDLE_ALLOCATION, False) == 0
    assert table.for_driver_handle(creator.hDevice, first.hAllocation) == h1
    table.close(creator, first)
    assert table.handle_data(h1, DXGK_HANDLE_ALLOCATION, False) == 0  # stale: never reused
    assert [table.child(resource, i) for i in range(2)] == [h2, 0]
    table.close(creator, second)
    assert table.handle_data(resource, DXGK_HANDLE_RESOURCE, False) == 0
    assert table.for_driver_handle(creator.hDevice, first.hAllocation) == 0


def test_a_wdk_driver_opens_by_the_kernels_handle_and_resolves_it_through_the_callbacks() -> None:
    """wdkdisp's OpenAllocation resolves each kernel handle with DxgkCbGetHandleData and
    checks a resource's with DxgkCbGetHandleParent and DxgkCbEnumHandleChildren (an
    NT_ASSERT, bug check 0x1E, if the kernel answered wrong)."""
    kernel = Kernel(f"native:{_sample()}")
    creator, other = kernel.create_device(), kernel.create_device()
    made = kernel.create_allocations(
        creator, [AllocationRequest(4096), AllocationRequest(8192)], resource=0
    )
    made += kernel.create_allocations(creator, [AllocationRequest(4096)])
    for a in made:
        kernel.open_for(other, a)
        # the kernel passed its own handle; the driver answered with its data
        handle = kernel.handles.for_driver_handle(other.hDevice, a.hAllocation)
        assert handle >= FIRST_HANDLE and handle != a.hAllocation
        assert a.opened[id(other)] == a.hAllocation
    for a in made:
        kernel.destroy_allocation(a)
    assert kernel.handles.for_driver_handle(other.hDevice, made[0].hAllocation) == 0


def test_a_handle_the_kernel_cannot_resolve_fails_open_allocation_with_invalid_handle() -> None:
    kernel = Kernel(f"native:{_sample()}")
    device = kernel.create_device()
    (a,) = kernel.create_allocations(device, [AllocationRequest(4096)])
    kernel.destroy_allocation(a)
    assert isinstance(kernel.driver, NativeMiniport)
    probe = DXGK_OPENALLOCATIONINFO(hAllocation=a.hAllocation)  # destroyed: the kernel holds none
    status = kernel.caller.call(
        "open_allocation", device.hDevice, DXGKARG_OPENALLOCATION(1, [probe])
    )
    assert status == STATUS_INVALID_HANDLE


def test_the_callbacks_answer_null_outside_a_kernel_and_check_the_irql() -> None:
    assert _run("WdkSyncHandlesOutsideTheKernel") == 0
    with pytest.raises(BugCheck) as caught:
        _run("WdkSyncParentUnderSpinLock")
    assert caught.value.code == 0xA and caught.value.requirement == "REN-IRQL"
    assert "DxgkCbGetHandleParent at IRQL 2 (allowed up to 1)" in str(caught.value)
