"""The driver's life as a state machine: create and destroy devices and allocations, render
and submit, evict, relocate, map and unmap, destroy a device while its allocations live on.
After every step every live allocation must hold what the harness's model says."""

from __future__ import annotations

import random
import sys
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from ..attribution import run_program_checked
from ..driver import AllocationRequest
from ..errors import DriverViolation
from ..kernel import Allocation, Device, Kernel
from ..plugin import Run
from ..profiles import suite_settings
from ..program import apply, describe_difference
from ..release import defer, release_deferred
from ..strategies import programs

requirement = pytest.mark.requirement

KINDS = {
    "memory": AllocationRequest(24 << 10, aperture=False),
    "any": AllocationRequest(16 << 10),
    "aperture": AllocationRequest(12 << 10, aperture_only=True),
    "swizzled": AllocationRequest(16 << 10, cpu_visible=True, swizzled=True),
}


class DriverLife(RuleBasedStateMachine):
    """Kernel-level actions in any order; the shadow model is the oracle."""

    run: Run

    allocations = Bundle("allocations")

    def __init__(self) -> None:
        release_deferred()  # the failures of the examples before this one
        super().__init__()
        self.k: Kernel = self.run.kernel()
        self.devices: list[Device] = [self.k.create_device()]
        self.shadow: dict[int, bytearray] = {}
        self.live: dict[int, Allocation] = {}
        self.rng = random.Random(0)

    def _device(self, pick: int) -> Device:
        return self.devices[pick % len(self.devices)]

    @precondition(lambda self: len(self.devices) < 3)
    @rule()
    def create_device(self) -> None:
        self.devices.append(self.k.create_device())

    @rule(target=allocations, kind=st.sampled_from(sorted(KINDS)), pick=st.integers(0, 2))
    def create_allocation(self, kind: str, pick: int) -> Allocation:
        (a,) = self.k.create_allocations(self._device(pick), [KINDS[kind]])
        self.k.cpu_write(a, 0, self.rng.randbytes(a.size))
        self.shadow[a.id] = bytearray(self.k.gpu_view(a))
        self.live[a.id] = a
        return a

    @rule(a=allocations, b=allocations, pick=st.integers(0, 2), data=st.data())
    def render(self, a: Allocation, b: Allocation, pick: int, data: st.DataObject) -> None:
        if a.id not in self.live or b.id not in self.live:
            return
        alist = [None, a, b]
        ops = data.draw(programs([0, a.size, b.size], max_ops=5), label="program")
        memory = {1: self.shadow[a.id], 2: self.shadow[b.id]}  # aliases share one bytearray
        device = self._device(pick)
        ctx = self.k.create_context(device)
        orphaned = any(x.creator.state == "destroyed" for x in (a, b))
        run_program_checked(
            self.k,
            ctx,
            alist,
            ops,
            f"program of {len(ops)} operations",
            "ALC-ADAPTER" if orphaned else "REN-TRANSLATE",  # its creating device is gone
        )
        apply(ops, memory)

    @rule(a=allocations)
    def evict(self, a: Allocation) -> None:
        if a.id in self.live and a.state == "resident":
            self.k.evict(a)  # an aperture allocation is unmapped (PGB-UNMAP)

    @rule(a=allocations)
    def make_resident(self, a: Allocation) -> None:
        if a.id in self.live and a.state != "resident":
            self.k.make_resident(a)  # an aperture allocation is mapped (PGB-MAP)

    @rule(a=allocations)
    def relocate(self, a: Allocation) -> None:
        if a.id in self.live and a.state == "resident":
            self.k.relocate(a)

    @rule(a=consumes(allocations))
    def destroy_allocation(self, a: Allocation) -> None:
        if a.id in self.live:
            self.k.destroy_allocation(a)
            del self.live[a.id], self.shadow[a.id]

    @precondition(lambda self: len(self.devices) > 1)
    @rule(pick=st.integers(0, 2))
    def destroy_device(self, pick: int) -> None:
        """The device goes; allocations it created live on (they belong to the adapter)."""
        device = self._device(pick)
        self.devices.remove(device)
        self.k.destroy_device(device)

    def teardown(self) -> None:
        """Hypothesis calls this at the end of every example, in a ``finally`` block. The
        failure in flight, if any, is released when the next example starts; the machine
        lets go of its kernel and its model now, as hypothesis keeps the machine (in the
        example's data, which closures of its own reach) after the failure is released."""
        defer(sys.exc_info()[1])
        del self.k, self.devices, self.shadow, self.live

    @invariant()
    def memory_matches_the_model(self) -> None:
        for a in self.live.values():
            got = self.k.gpu_view(a)
            want = bytes(self.shadow[a.id])
            if got != want:
                raise DriverViolation(
                    "REN-TRANSLATE",
                    "driver life cycle",
                    f"{a} differs from the model {describe_difference(got, want)}",
                )


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
