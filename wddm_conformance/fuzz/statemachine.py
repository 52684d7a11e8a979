"""Fuzz target bridging the suite's hypothesis state machine (DriverLife) to libFuzzer.

The bytes libFuzzer mutates become the choices hypothesis makes (``fuzz_one_input``):
which rule runs next, with which allocations and programs. The machine's own
invariant -- every live allocation holds what its model says -- and the kernel's checks
are the oracles, exactly as in ``test_the_driver_keeps_memory_consistent_through_its_whole_life``.
Slower per input than :mod:`.lifecycle` (a fresh kernel per input), but every rule the
suite's machine has is reachable, with hypothesis's own strategies for programs.
"""

from __future__ import annotations

import gc
import random
from collections.abc import Callable
from typing import Any, ClassVar

from hypothesis import HealthCheck, settings

from ..driver import DriverSpec
from ..driver_life import DriverLife
from ..errors import HarnessError
from ..kernel import KernelMode
from ..run import Run
from ..watchdog import Invoker, WatchdogInvoker, direct_invoker

SETTINGS = settings(
    database=None,
    deadline=None,
    stateful_step_count=25,
    suppress_health_check=list(HealthCheck),
)


def machine_test(spec: DriverSpec, ddi_timeout: float = 0.0) -> Callable[[bytes], Any]:
    """``fuzz_one_input`` of DriverLife for ``spec``'s driver; its kernels time DDI calls
    with a watchdog of ``ddi_timeout`` seconds (0: none, libFuzzer's -timeout guards)."""
    try:
        from hypothesis.stateful import get_state_machine_test
    except ImportError as exc:  # pragma: no cover - depends on the hypothesis version
        raise HarnessError(
            "this hypothesis has no get_state_machine_test; upgrade hypothesis to fuzz the state machine"
        ) from exc
    run = Run(spec, KernelMode(), 0, ddi_timeout, "fuzz statemachine")
    machine = type("DriverLifeOf", (DriverLife,), {"run": run})
    factory: Any = get_state_machine_test  # typed differently across hypothesis versions
    test: Any = factory(machine, settings=SETTINGS)
    fuzz: Callable[[bytes], Any] = test.hypothesis.fuzz_one_input
    return fuzz


class StateMachineTarget:
    """DriverLife under libFuzzer: one machine run per input."""

    name: ClassVar[str] = "statemachine"
    summary: ClassVar[str] = "the suite's hypothesis state machine, driven by libFuzzer"

    def __init__(self, spec: DriverSpec, invoker: Invoker = direct_invoker) -> None:
        self.spec = spec
        seconds = invoker.seconds if isinstance(invoker, WatchdogInvoker) else 0.0
        self.fuzz_one_input = machine_test(spec, seconds)

    def run(self, data: bytes) -> None:
        try:
            self.fuzz_one_input(data)
        finally:
            # Each input's kernel (16 MiB of VRAM and more) is held in reference cycles of its
            # own and of hypothesis's; left to the collector's schedule, dozens pile up.
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
