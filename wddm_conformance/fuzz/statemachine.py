"""Fuzz target bridging the suite's hypothesis state machine (DriverLife) to libFuzzer.

The bytes libFuzzer mutates become the choices hypothesis makes (``fuzz_one_input``):
which rule runs next, with which allocations and programs. The machine's own
invariant -- every live allocation holds what its model says -- and the kernel's checks
are the oracles, exactly as in ``test_the_driver_keeps_memory_consistent_through_its_whole_life``.
Slower per input than :mod:`.lifecycle` (hypothesis draws every step), but every rule
the suite's machine has is reachable, with hypothesis's own strategies for programs.

Unlike the suite's check, the inputs share one kernel (:class:`KeptLife`): each starts
with a device of its own on it and ends by destroying the devices and allocations it
made. An input that fails leaves its kernel behind and the next one gets a fresh one.
"""

from __future__ import annotations

import gc
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from hypothesis import HealthCheck, settings
from hypothesis.errors import StopTest

from ..driver import DriverSpec
from ..driver_life import DriverLife
from ..errors import HarnessError
from ..kernel import Kernel, KernelMode
from ..run import Run
from ..watchdog import Invoker, WatchdogInvoker, direct_invoker

SETTINGS = settings(
    database=None,
    deadline=None,
    stateful_step_count=25,
    suppress_health_check=list(HealthCheck),
)


@dataclass(repr=False)
class KeptRun(Run):
    """A :class:`~wddm_conformance.run.Run` whose :meth:`kernel` is one kernel, kept
    until :meth:`drop` (then a fresh one)."""

    kept: Kernel | None = None
    lean: bool = False

    def kernel(self, mode: KernelMode | str | None = None, **config: Any) -> Kernel:
        if mode is not None or config:
            return super().kernel(mode, **config)
        if self.kept is None:
            self.kept = super().kernel()
        return self.kept

    def drop(self) -> None:
        self.kept = None


class KeptLife(DriverLife):
    """DriverLife on the kept kernel of its :class:`KeptRun`: an example that ends well
    destroys the allocations and devices it made; one that fails drops the kernel."""

    run: KeptRun

    @property
    def lean(self) -> bool:
        return self.run.lean

    def teardown(self) -> None:
        ending = sys.exc_info()[1]
        # StopTest: the example's choices ran out, between two kernel calls (draws happen
        # before a rule's DDI calls): the kernel is as consistent as after a whole step.
        if ending is not None and not isinstance(ending, StopTest):
            self.run.drop()
        else:
            try:
                for a in list(self.shadow):
                    self.k.destroy_allocation(a)
                for device in self.devices:
                    self.k.destroy_device(device)
            except BaseException:
                self.run.drop()
                super().teardown()
                raise
            if self.k.devices or self.k.allocations:  # made behind the machine's back
                self.run.drop()
        super().teardown()


def machine_test(
    spec: DriverSpec, ddi_timeout: float = 0.0
) -> tuple[Callable[[bytes], Any], KeptRun]:
    """``fuzz_one_input`` of DriverLife for ``spec``'s driver on one kept kernel, and the
    run that keeps it; the kernel times DDI calls with a watchdog of ``ddi_timeout``
    seconds (0: none, libFuzzer's -timeout guards)."""
    try:
        from hypothesis.stateful import get_state_machine_test
    except ImportError as exc:  # pragma: no cover - depends on the hypothesis version
        raise HarnessError(
            "this hypothesis has no get_state_machine_test; upgrade hypothesis to fuzz the state machine"
        ) from exc
    run = KeptRun(spec, KernelMode(), 0, ddi_timeout, "fuzz statemachine")
    machine = type("DriverLifeOf", (KeptLife,), {"run": run})
    factory: Any = get_state_machine_test  # typed differently across hypothesis versions
    test: Any = factory(machine, settings=SETTINGS)
    fuzz: Callable[[bytes], Any] = test.hypothesis.fuzz_one_input
    return fuzz, run


class StateMachineTarget:
    """DriverLife under libFuzzer: one machine run per input."""

    name: ClassVar[str] = "statemachine"
    summary: ClassVar[str] = "the suite's hypothesis state machine, driven by libFuzzer"

    def __init__(self, spec: DriverSpec, invoker: Invoker = direct_invoker) -> None:
        self.spec = spec
        seconds = invoker.seconds if isinstance(invoker, WatchdogInvoker) else 0.0
        self.fuzz_one_input, self.machine_run = machine_test(spec, seconds)

    @property
    def lean(self) -> bool:
        """A campaign's lean path (:mod:`.runner`): no attribution snapshot per render."""
        return self.machine_run.lean

    @lean.setter
    def lean(self, value: bool) -> None:
        self.machine_run.lean = value

    def run(self, data: bytes) -> None:
        try:
            self.fuzz_one_input(data)
        finally:
            if self.machine_run.kept is None:
                # A dropped kernel (16 MiB of VRAM and more) is held in reference cycles of
                # its own and of hypothesis's: free it now, not when the collector's
                # schedule says, or failing inputs pile them up.
                gc.collect()

    def describe(self, data: bytes) -> str:
        return (
            f"statemachine input: {len(data)} bytes of hypothesis choices for DriverLife "
            f"(rules: create_device, create_allocation, render, evict, make_resident, relocate, "
            f"destroy_allocation, destroy_device); the failing steps follow in the traceback"
        )

    def seeds(self) -> list[tuple[str, bytes]]:
        rng = random.Random(6)
        return [(f"choices-{n}", rng.randbytes(n)) for n in (16, 64, 256, 1024)]

    def dictionary(self) -> list[bytes]:
        return []
