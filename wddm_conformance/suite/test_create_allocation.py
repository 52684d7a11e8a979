"""DxgkDdiCreateAllocation: statuses, private data, handles, placement info, resources."""

from __future__ import annotations

import pytest

from ..attribution import run_program_checked
from ..driver import AllocationRequest
from ..errors import DriverViolation
from ..kernel import Kernel
from ..kernel.kernel import CREATE
from ..program import AllocRef, Copy, Write
from ..status import (
    STATUS_GRAPHICS_DRIVER_MISMATCH,
    STATUS_INVALID_PARAMETER,
)
from .support import require_no_leak, run_checked

requirement = pytest.mark.requirement

KINDS = {
    "plain": AllocationRequest(4096),
    "large": AllocationRequest(1 << 20),
    "odd-size": AllocationRequest(100),
    "cpu-visible": AllocationRequest(8192, cpu_visible=True),
    "swizzled": AllocationRequest(16384, cpu_visible=True, swizzled=True),
    "memory-only": AllocationRequest(8192, aperture=False),
    "aperture-only": AllocationRequest(8192, aperture_only=True),
    "history": AllocationRequest(4096, history_buffer=True),
    "alternate-va": AllocationRequest(4096, alternate_va=True),
}


@requirement("ALC-STATUS", "ALC-INFO")
@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_of_allocation_is_created_with_placeable_info(kernel: Kernel, kind: str) -> None:
    device = kernel.create_device()
    (a,) = kernel.create_allocations(device, [KINDS[kind]])
    if a.size < KINDS[kind].min_size:
        raise DriverViolation("ALC-INFO", CREATE, f"{kind}: Size {a.size} < {KINDS[kind].size}")
    kernel.make_resident(a)


@requirement("ALC-STATUS", "ALC-PRIVDATA")
@pytest.mark.parametrize("damage", ["empty", "short", "oversized"])
def test_malformed_private_data_is_invalid_parameter(kernel: Kernel, damage: str) -> None:
    device = kernel.create_device()
    valid = kernel.encoder.allocation_private_data(AllocationRequest(4096))
    data = {"empty": b"", "short": valid[:-1], "oversized": valid + bytes(4096)}[damage]
    made = kernel.create_allocations(device, [data], allow_failure=True)
    status = kernel.last_create_status
    if made or status not in (STATUS_INVALID_PARAMETER, STATUS_GRAPHICS_DRIVER_MISMATCH):
        raise DriverViolation(
            "ALC-PRIVDATA",
            CREATE,
            f"{damage} private data ({len(data)} bytes) was answered with status 0x{status:08X}, "
            f"not INVALID_PARAMETER",
        )


@requirement("ALC-PRIVDATA")
def test_valid_private_data_is_accepted(kernel: Kernel) -> None:
    device = kernel.create_device()
    kernel.create_allocations(device, list(KINDS.values()))


@requirement("ALC-HANDLE")
def test_each_allocation_of_a_batch_gets_a_distinct_non_null_handle(kernel: Kernel) -> None:
    device = kernel.create_device()
    batch = kernel.create_allocations(device, [AllocationRequest(4096) for _ in range(5)])
    again = kernel.create_allocations(device, [AllocationRequest(4096) for _ in range(2)])
    handles = [a.hAllocation for a in batch + again]
    if len(set(handles)) != len(handles):  # pragma: no cover - the kernel judges each batch
        raise DriverViolation("ALC-HANDLE", CREATE, f"handles repeat: {handles}")


#: Creations the handle check makes: past a 16-bit handle counter's wrap.
CREATIONS = (1 << 16) + 4096
#: Allocations per CreateAllocation call in the handle check.
BATCH = 4096


@requirement("ALC-HANDLE")
def test_handles_stay_distinct_from_a_live_allocation_through_many_creations(
    kernel: Kernel,
) -> None:
    """One allocation lives while more than 65,536 others are created and destroyed in
    large batches: a handle counter that wraps (16 bits, say) hands its handle out again,
    and the kernel finds the duplicate among the live allocations."""
    device = kernel.create_device()
    (kept,) = kernel.create_allocations(device, [AllocationRequest(4096)])
    made = 0
    while made < CREATIONS:
        batch = kernel.create_allocations(device, [AllocationRequest(4096)] * BATCH)
        made += len(batch)
        kernel.destroy_allocations(batch)
    ctx = kernel.create_context(device)
    run_checked(kernel, ctx, [None, kept], [Write(AllocRef(1, 8), 0x600DF00D)], "the kept one")


@requirement("ALC-STATUS")
def test_a_batch_of_no_allocations_is_answered_with_a_documented_status(kernel: Kernel) -> None:
    """NumAllocations 0: any CreateAllocation status (the kernel judges it), nothing made."""
    device = kernel.create_device()
    kernel.create_allocations(device, [], allow_failure=True)


@requirement("ALC-RESOURCE")
def test_a_resource_handle_is_kept_for_later_allocations(kernel: Kernel) -> None:
    device = kernel.create_device()
    (first,) = kernel.create_allocations(device, [AllocationRequest(4096)], resource=0)
    if not first.resource:
        return  # a driver may decline to return a resource handle
    kernel.create_allocations(device, [AllocationRequest(4096)], resource=first.resource)


@requirement("ALC-ADAPTER")
def test_an_allocation_outlives_the_device_that_created_it(kernel: Kernel) -> None:
    creator = kernel.create_device()
    a, b = kernel.create_allocations(creator, [AllocationRequest(8192), AllocationRequest(8192)])
    kernel.cpu_write(b, 0, b"shared surface" * 100)
    kernel.destroy_device(creator)
    other = kernel.create_device()
    ctx = kernel.create_context(other)
    run_checked(kernel, ctx, [None, a, b], [Copy(AllocRef(1), AllocRef(2), 1400)], "shared copy")


@requirement("ALC-ADAPTER")
@pytest.mark.parametrize("first", ["creator", "sharer"])
def test_an_allocation_outlives_every_device_that_had_it_open(kernel: Kernel, first: str) -> None:
    """Two devices have the allocation open; each is destroyed in turn (``first`` goes
    first) and the allocation keeps working for the one that remains, then for a device
    that opens it after both are gone (it is freed by DestroyAllocation only). Each device
    runs the same copy before (a failure there is the copy's) and after a destruction (a
    failure there is ALC-ADAPTER's)."""
    creator = kernel.create_device()
    (a, b) = kernel.create_allocations(creator, [AllocationRequest(8192), AllocationRequest(8192)])
    kernel.cpu_write(b, 0, b"shared surface" * 100)
    sharer = kernel.create_device()
    devices = {"creator": creator, "sharer": sharer}
    ops = [Copy(AllocRef(1, 64), AllocRef(2, 8), 1400)]
    contexts = {name: kernel.create_context(device) for name, device in devices.items()}
    for name, ctx in contexts.items():
        run_checked(kernel, ctx, [None, a, b], ops, f"a copy by the {name}")
    last = "sharer" if first == "creator" else "creator"
    kernel.destroy_device(devices[first])
    what = f"the same copy by the {last} after the {first} was destroyed"
    run_program_checked(kernel, contexts[last], [None, a, b], ops, what, "ALC-ADAPTER")
    kernel.destroy_device(devices[last])
    ctx = kernel.create_context(kernel.create_device())
    what = "the same copy by a device that opened it after both were destroyed"
    run_program_checked(kernel, ctx, [None, a, b], ops, what, "ALC-ADAPTER")


@requirement("ALC-ATOMIC")
@pytest.mark.parametrize("bad", [0, 1, 2])
def test_a_failed_batch_leaves_no_allocation_behind(kernel: Kernel, bad: int) -> None:
    device = kernel.create_device()
    valid = kernel.encoder.allocation_private_data(AllocationRequest(4096))
    batch: list[AllocationRequest | bytes] = [AllocationRequest(4096)] * 3
    batch[bad] = valid[:-1]
    if kernel.create_allocations(device, batch, allow_failure=True):
        raise DriverViolation(
            "ALC-PRIVDATA", CREATE, f"accepted a batch whose allocation {bad} is malformed"
        )


@requirement("ALC-ATOMIC")
def test_a_failed_batch_keeps_no_driver_state(kernel: Kernel) -> None:
    """What the driver built for the entries before the bad one is gone: not only their
    handles (above), but any state it keeps for them (INTERPRETING.md, "Leaks")."""
    device = kernel.create_device()
    encode = kernel.encoder.allocation_private_data  # once: the encoder is not the driver
    valid = encode(AllocationRequest(4096))
    batch = [valid, encode(AllocationRequest(8192, cpu_visible=True)), valid[:-1]]

    def failed_batch() -> None:
        if kernel.create_allocations(device, batch, allow_failure=True):
            raise DriverViolation(
                "ALC-PRIVDATA", CREATE, "accepted a batch whose allocation 2 is malformed"
            )

    require_no_leak(kernel, "ALC-ATOMIC", CREATE, "failed CreateAllocation batches", failed_batch)


@requirement("ALC-GDISIZE")
@pytest.mark.parametrize("cpu_visible", [False, True], ids=["gpu-only", "cpu-visible"])
def test_a_gdi_surface_is_sized_for_all_its_rows(kernel: Kernel, cpu_visible: bool) -> None:
    device = kernel.create_device()
    kernel.create_allocations(
        device, [AllocationRequest(1366 * 4, cpu_visible=cpu_visible, gdi_rows=768)]
    )


@requirement("ALC-HISTORY")
def test_the_history_buffer_flag_is_accepted_and_reported(kernel: Kernel) -> None:
    device = kernel.create_device()
    kernel.create_allocations(device, [AllocationRequest(4096, history_buffer=True)])
