"""The driver's life as a state machine (:class:`~wddm_conformance.driver_life.DriverLife`):
create and destroy devices and allocations, render and submit, evict, relocate, map and
unmap, destroy a device while its allocations live on. After every step every live
allocation must hold what the harness's model says. And what is destroyed is gone: the
driver keeps no state for it (INTERPRETING.md, "Leaks")."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import HealthCheck
from hypothesis.stateful import run_state_machine_as_test

from ..driver import DDI_METHODS, AllocationRequest
from ..driver_life import DriverLife
from ..kernel import Kernel
from ..profiles import suite_settings
from ..run import Run
from .support import require_no_leak

requirement = pytest.mark.requirement


@requirement("REN-TRANSLATE", "ALC-ADAPTER", "PGB-TRANSFER", "PGB-MAP", "PGB-UNMAP")
def test_the_driver_keeps_memory_consistent_through_its_whole_life(wddm_run: Run) -> None:
    machine = type("DriverLifeOf", (DriverLife,), {"run": wddm_run})
    run: Callable[..., None] = run_state_machine_as_test  # untyped in older hypothesis
    run(
        machine,
        settings=suite_settings(
            derandomize=True,
            database=None,
            stateful_step_count=25,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )


@requirement("ALC-ADAPTER")
def test_a_destroyed_allocation_leaves_no_driver_state(kernel: Kernel) -> None:
    """Allocations (a resource of two and a plain one) created by one device, opened by
    another, closed and destroyed, again and again."""
    creator, other = kernel.create_device(), kernel.create_device()
    encode = kernel.encoder.allocation_private_data  # once: the encoder is not the driver
    plain = encode(AllocationRequest(4096))
    pair = [plain, encode(AllocationRequest(8192, cpu_visible=True))]

    def create_and_destroy() -> None:
        made = kernel.create_allocations(creator, pair, resource=0)
        made += kernel.create_allocations(creator, [plain])
        for a in made:
            kernel.open_for(other, a)
        for a in made:
            kernel.destroy_allocation(a)

    require_no_leak(
        kernel,
        "ALC-ADAPTER",
        DDI_METHODS["destroy_allocation"],
        "CreateAllocation, OpenAllocation, CloseAllocation and DestroyAllocation cycles",
        create_and_destroy,
    )


@requirement("ALC-ADAPTER")
def test_a_destroyed_device_leaves_no_driver_state(kernel: Kernel) -> None:
    """A device with a context that opens a long-lived allocation, then is destroyed (its
    context and handle first, as dxgkrnl does), again and again; the allocation lives on."""
    owner = kernel.create_device()
    (shared,) = kernel.create_allocations(owner, [AllocationRequest(4096)])

    def create_and_destroy() -> None:
        device = kernel.create_device()
        kernel.create_context(device)
        kernel.open_for(device, shared)
        kernel.destroy_device(device)

    require_no_leak(
        kernel,
        "ALC-ADAPTER",
        DDI_METHODS["destroy_device"],
        "CreateDevice, CreateContext, OpenAllocation and DestroyDevice cycles",
        create_and_destroy,
    )
