"""The driver's life as a state machine (:class:`~wddm_conformance.driver_life.DriverLife`):
create and destroy devices and allocations, render and submit, evict, relocate, map and
unmap, destroy a device while its allocations live on. After every step every live
allocation must hold what the harness's model says."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import HealthCheck
from hypothesis.stateful import run_state_machine_as_test

from ..driver_life import DriverLife
from ..profiles import suite_settings
from ..run import Run

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
