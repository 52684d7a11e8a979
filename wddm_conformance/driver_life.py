"""The driver's life as a hypothesis state machine: create and destroy devices and
allocations, render and submit, evict, relocate, map and unmap, destroy a device while
its allocations live on. After every step every live allocation must hold what the
harness's model (:class:`~wddm_conformance.oracles.Shadow`) says.

The suite's life-cycle check runs it with the run's driver
(``test_the_driver_keeps_memory_consistent_through_its_whole_life``); the
``statemachine`` fuzz target drives the same machine with libFuzzer's bytes.
"""

from __future__ import annotations

import random
import sys

from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    precondition,
    rule,
)

from .attribution import run_program_checked
from .driver import AllocationRequest
from .kernel import Allocation, Device, Kernel, State
from .oracles import Shadow
from .release import defer, release_deferred
from .run import Run
from .strategies import programs

KINDS = {
    "memory": AllocationRequest(24 << 10, aperture=False),
    "any": AllocationRequest(16 << 10),
    "aperture": AllocationRequest(12 << 10, aperture_only=True),
    "swizzled": AllocationRequest(16 << 10, cpu_visible=True, swizzled=True),
}


class DriverLife(RuleBasedStateMachine):
    """Kernel-level actions in any order; the shadow model is the oracle.

    Abstract: a subclass sets ``run`` (the :class:`~wddm_conformance.run.Run` whose
    driver, mode and seed each example's fresh kernel has).
    """

    run: Run

    allocations = Bundle("allocations")

    def __init__(self) -> None:
        release_deferred()  # the failures of the examples before this one
        super().__init__()
        self.k: Kernel = self.run.kernel()
        self.devices: list[Device] = [self.k.create_device()]
        self.shadow = Shadow(self.k)
        self.rng = random.Random(0)

    @property
    def lean(self) -> bool:
        """A fuzz campaign's lean path: renders take no attribution snapshot (a failure is
        named by the campaign's replay with every check on)."""
        return False

    def _device(self, pick: int) -> Device:
        return self.devices[pick % len(self.devices)]

    @precondition(lambda self: len(self.devices) < 3)
    @rule()
    def create_device(self) -> None:
        self.devices.append(self.k.create_device())

    @rule(target=allocations, kind=st.sampled_from(sorted(KINDS)), pick=st.integers(0, 2))
    def create_allocation(self, kind: str, pick: int) -> Allocation:
        (a,) = self.k.create_allocations(self._device(pick), [KINDS[kind]])
        self.shadow.cpu_write(a, self.rng.randbytes(a.size))
        return a

    @rule(a=allocations, b=allocations, pick=st.integers(0, 2), data=st.data())
    def render(self, a: Allocation, b: Allocation, pick: int, data: st.DataObject) -> None:
        if a not in self.shadow or b not in self.shadow:
            return
        alist: list[Allocation | None] = [None, a, b]
        ops = data.draw(programs([0, a.size, b.size], max_ops=5), label="program")
        device = self._device(pick)
        ctx = self.k.create_context(device)
        orphaned = any(x.creator.state == State.DESTROYED for x in (a, b))
        run_program_checked(
            self.k,
            ctx,
            alist,
            ops,
            f"program of {len(ops)} operations",
            "ALC-ADAPTER" if orphaned else "REN-TRANSLATE",  # its creating device is gone
            lean=self.lean,
        )
        self.shadow.apply(alist, ops)

    @rule(a=allocations)
    def evict(self, a: Allocation) -> None:
        if a in self.shadow and a.state == State.RESIDENT:
            self.k.evict(a)  # an aperture allocation is unmapped (PGB-UNMAP)

    @rule(a=allocations)
    def make_resident(self, a: Allocation) -> None:
        if a in self.shadow and a.state != State.RESIDENT:
            self.k.make_resident(a)  # an aperture allocation is mapped (PGB-MAP)

    @rule(a=allocations)
    def relocate(self, a: Allocation) -> None:
        if a in self.shadow and a.state == State.RESIDENT:
            self.k.relocate(a)

    @rule(a=consumes(allocations))
    def destroy_allocation(self, a: Allocation) -> None:
        if a in self.shadow:
            self.k.destroy_allocation(a)
            self.shadow.forget(a)

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
        del self.k, self.devices, self.shadow

    @invariant()
    def memory_matches_the_model(self) -> None:
        self.shadow.expect_held("REN-TRANSLATE", "driver life cycle")
