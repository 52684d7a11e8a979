"""The leak detector (wddm_conformance/leaks.py): growth with the number of cycles is a leak,
a fixed cost, a bounded pool, a table that stops growing and a counter are not; and the
suite's leak checks on the drivers that leak and those that do not (issue 13, "Leaks")."""

from __future__ import annotations

import re
from collections import deque
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest

from tests import killmatrix as km
from tests import mutants as m
from wddm_conformance import leaks
from wddm_conformance.errors import DriverViolation, NotJudged
from wddm_conformance.kernel import Kernel
from wddm_conformance.native.adapter import NativeMiniport
from wddm_conformance.reference.miniport import ReferenceMiniport
from wddm_conformance.suite.support import require_no_leak
from wddm_conformance.sysmem import SystemMemory

CYCLES = leaks.WARMUP + 2 * leaks.WINDOW
#: A module-level registry, as a driver might keep one.
REGISTRY: dict[int, object] = {}


class Driver:
    """A stand-in driver: ``cycle`` is one create-destroy cycle, with a chosen bug."""

    def __init__(self) -> None:
        self.cycles = 0
        self.live: dict[int, object] = {}

    def cycle(self) -> None:
        self.cycles += 1
        self.live[self.cycles] = object()
        del self.live[self.cycles]


class KeepsOnePerCycle(Driver):
    def __init__(self) -> None:
        super().__init__()
        self.kept: list[object] = []

    def cycle(self) -> None:
        super().cycle()
        self.kept.append(self._record())  # the record it forgot to drop

    @staticmethod
    def _record() -> bytearray:
        return bytearray(16)  # the innermost frame: where the message says it was allocated


class PaysOnceAfterWarmup(Driver):
    """A cost paid once, in the first window: 64 KiB and 1000 objects."""

    def cycle(self) -> None:
        super().cycle()
        if self.cycles == leaks.WARMUP + 5:
            self.cache = [bytearray(64) for _ in range(1000)] + [bytearray(64 << 10)]


class BoundedPool(Driver):
    """Keeps the last 32 freed records for reuse."""

    def __init__(self) -> None:
        super().__init__()
        self.pool: deque[bytearray] = deque(maxlen=32)

    def cycle(self) -> None:
        super().cycle()
        self.pool.append(bytearray(16))


class TableThatStopsGrowing(Driver):
    """A table indexed by something bounded (50 values), filled lazily."""

    def __init__(self) -> None:
        super().__init__()
        self.table: dict[int, bytearray] = {}

    def cycle(self) -> None:
        super().cycle()
        self.table.setdefault(self.cycles % 50, bytearray(16))


class Counters(Driver):
    """Counters, like the reference's last_submitted_fence: bounded state."""

    def __init__(self) -> None:
        super().__init__()
        self.last_fence = 1 << 40

    def cycle(self) -> None:
        super().cycle()
        self.last_fence += 1


class KeepsSharedValues(Driver):
    """Appends the same small int every cycle: no new object, only a growing list."""

    def __init__(self) -> None:
        super().__init__()
        self.log: list[int] = []

    def cycle(self) -> None:
        super().cycle()
        self.log.append(0)


class KeepsInARegistry(Driver):
    def cycle(self) -> None:
        super().cycle()
        REGISTRY[self.cycles] = Record()


class KeepsInAClassAttribute(Driver):
    kept: ClassVar[list[object]] = []

    def cycle(self) -> None:
        super().cycle()
        self.kept.append([self.cycles])


class Record:
    """An object of the driver's module."""


class HandsRecordsOut(Driver):
    """Its records are kept by someone outside its roots (given to ``sink``)."""

    def __init__(self, sink: list[object]) -> None:
        super().__init__()
        self.give = sink.append  # a callback: built-in code, which the walk does not enter

    def cycle(self) -> None:
        super().cycle()
        self.give(Record())


class KeepsHarnessObject(Driver):
    """Holds a harness object that grows by itself: the harness's, not the driver's, state."""

    def __init__(self) -> None:
        super().__init__()
        self.memory = SystemMemory()

    def cycle(self) -> None:
        super().cycle()
        self.memory.allocate(1)


def _find(driver: Driver) -> leaks.Leak | None:
    return leaks.find_leak(driver, driver.cycle)


def test_one_leak_class_says_state_and_pool_in_their_words() -> None:
    """A Python driver's state and a native driver's pool are one :class:`leaks.Leak`
    (it was two classes of one shape, ``Leak`` and ``PoolLeak``), its ``kept`` saying which;
    the messages are word for word the two classes' ones."""
    state = leaks.Leak(64, leaks.Census(70, 1000, 64), leaks.Census(66, 900, 64), "W")
    assert state.kept == "state"
    assert state.describe("cycles") == (
        "keeps state that grows with the number of cycles: after 16 to warm up, each 64 more "
        "grew it by +70/+66 objects (1.1 per cycle), +1000/+900 bytes and +64/+64 instances "
        "of the driver's classes; W"
    )
    pool = leaks.Leak(64, leaks.Census(64, 1536, 0), leaks.Census(65, 1560, 0), "W", kept="pool")
    assert pool.describe("device cycles") == (
        "keeps pool that grows with the number of device cycles: after 16 to warm up, each 64 "
        "more grew it by +64/+65 blocks (1.0 per cycle) and +1536/+1560 bytes; W"
    )
    assert not hasattr(leaks, "PoolLeak")


def test_state_kept_once_per_cycle_is_a_leak_said_with_its_numbers_and_place() -> None:
    driver = KeepsOnePerCycle()
    leak = _find(driver)
    assert leak is not None
    assert min(leak.first.objects, leak.second.objects) >= leaks.WINDOW - 1  # ints are shared
    text = leak.describe("test cycles")
    assert f"each {leaks.WINDOW} more grew it by +{leak.first.objects}/" in text
    assert "kept in KeepsOnePerCycle().kept (list)" in text
    line = next(
        n
        for n, code in enumerate(Path(__file__).read_text().splitlines(), 1)
        if "return bytearray(16)  # the innermost frame" in code
    )
    assert f"one bytearray of them was allocated at tests/test_leaks.py:{line}" in text
    assert driver.cycles == CYCLES + leaks.ATTRIBUTION_CYCLES


@pytest.mark.parametrize(
    "legal", [PaysOnceAfterWarmup, BoundedPool, TableThatStopsGrowing, Counters, Driver]
)
def test_a_fixed_cost_a_bounded_pool_a_table_that_stops_and_counters_are_not_leaks(
    legal: type[Driver],
) -> None:
    driver = legal()
    assert _find(driver) is None
    assert driver.cycles == CYCLES  # no attribution run when nothing leaks


def test_a_list_growing_without_new_objects_is_a_leak_by_its_bytes() -> None:
    leak = _find(KeepsSharedValues())
    assert leak is not None and leak.first.objects < leaks.MIN_OBJECTS
    assert "grew the list at KeepsSharedValues().log by" in leak.describe("cycles")


def test_a_module_global_and_a_class_attribute_are_the_drivers_too() -> None:
    try:
        leak = _find(KeepsInARegistry())
        assert leak is not None and "kept in tests.test_leaks.REGISTRY (dict)" in leak.where
    finally:
        REGISTRY.clear()
    leak = _find(KeepsInAClassAttribute())
    KeepsInAClassAttribute.kept.clear()
    assert leak is not None and "kept in KeepsInAClassAttribute.kept (list)" in leak.where


def test_instances_of_the_drivers_classes_count_wherever_they_are_kept() -> None:
    sink: list[object] = []
    leak = _find(HandsRecordsOut(sink))
    assert leak is not None and leak.first.instances >= leaks.WINDOW
    assert "not reachable from the driver's roots" in leak.where


def test_a_harness_object_the_driver_holds_is_counted_not_entered() -> None:
    assert _find(KeepsHarnessObject()) is None


def test_the_verdict_and_the_numbers_are_the_same_every_time() -> None:
    first, second = _find(KeepsOnePerCycle()), _find(KeepsOnePerCycle())
    assert first is not None and second is not None
    assert (first.first, first.second) == (second.first, second.second)


def test_the_drivers_modules_are_its_own_less_harness_stdlib_and_companions() -> None:
    k = Kernel("tests.mutants:LeaksOnDestroy")
    names = {
        mod.__name__
        for mod in leaks.driver_modules(k.spec.cls, (k.spec.encoder_cls, k.spec.gpu_cls))
    }
    assert {"tests.mutants", "wddm_conformance.reference.miniport"} <= names
    assert not names & {"wddm_conformance.reference.encoder", "wddm_conformance.reference.gpu"}
    assert not {n for n in names if n.startswith("wddm_conformance.")} - {
        n for n in names if n.startswith("wddm_conformance.reference")
    }
    second = Kernel("tests.second_driver:Miniport")
    names = {mod.__name__ for mod in leaks.driver_modules(second.spec.cls)}
    assert "tests.second_driver.miniport" in names
    assert not {n for n in names if n.startswith("wddm_conformance")}


def test_a_native_driver_is_skipped_with_the_reason() -> None:
    native = type("Native", (NativeMiniport,), {})
    assert "native driver" in leaks.unsupported(native)
    assert leaks.unsupported(ReferenceMiniport) == ""
    fake: Any = SimpleNamespace(spec=SimpleNamespace(cls=native))
    with pytest.raises(NotJudged, match="C memory"):
        require_no_leak(fake, "ALC-ATOMIC", "DxgkDdiCreateAllocation", "cycles", lambda: None)


def test_require_no_leak_names_the_rule_the_ddi_and_the_cycles() -> None:
    k = Kernel("tests.mutants:LeaksOnDestroyDevice")
    with pytest.raises(DriverViolation) as info:
        require_no_leak(
            k,
            "ALC-ADAPTER",
            "DxgkDdiDestroyDevice",
            "device cycles",
            lambda: k.destroy_device(k.create_device()),
        )
    assert info.value.requirement == "ALC-ADAPTER" and info.value.ddi == "DxgkDdiDestroyDevice"
    assert "grows with the number of device cycles" in str(info.value)
    assert "kept in LeaksOnDestroyDevice().devices (dict)" in str(info.value)


LEAK_CHECKS = {
    "test_create_allocation.py::test_a_failed_batch_keeps_no_driver_state",
    "test_lifecycle.py::test_a_destroyed_allocation_leaves_no_driver_state",
    "test_lifecycle.py::test_a_destroyed_device_leaves_no_driver_state",
}
CAUGHT_BY = {
    m.LeaksOnFailedBatch: ("ALC-ATOMIC", "test_a_failed_batch_keeps_no_driver_state"),
    m.LeaksOnDestroy: ("ALC-ADAPTER", "test_a_destroyed_allocation_leaves_no_driver_state"),
    m.LeaksOnDestroyDevice: ("ALC-ADAPTER", "test_a_destroyed_device_leaves_no_driver_state"),
}


def _leak_checks(driver: str, *options: str) -> dict[str, dict[str, Any]]:
    report = km.run_suite(driver, "-k", "driver_state", *options)
    return {t["id"].split("/")[-1]: t for t in report["tests"]}


@pytest.mark.parametrize("mutant", list(CAUGHT_BY), ids=lambda c: c.__name__)
def test_each_leaking_mutant_fails_one_leak_check_naming_its_id(mutant: type) -> None:
    requirement, check = CAUGHT_BY[mutant]
    results = _leak_checks(km.spec(mutant))
    assert set(results) == LEAK_CHECKS
    failed = {name for name, t in results.items() if t["status"] != "PASS"}
    assert [name.split("::")[1] for name in failed] == [check]
    (record,) = (results[name] for name in failed)
    assert (record["status"], record["violated"]) == ("FAIL", requirement)
    assert re.search(r"each 64 more grew it by \+\d+/\+\d+ objects", record["message"])


@pytest.mark.parametrize(
    "driver", ["reference", "tests.second_driver:Miniport", *map(km.spec, m.CONFORMING)]
)
def test_correct_drivers_pass_the_leak_checks(driver: str) -> None:
    results = _leak_checks(driver)
    # A WDK-style native driver is judged by the pool its runtime tracks.
    assert {name: t["status"] for name, t in results.items()} == dict.fromkeys(LEAK_CHECKS, "PASS")


def test_a_wdk_driver_whose_pool_grows_fails_the_leak_checks_naming_tag_size_and_ddi() -> None:
    results = _leak_checks(km.spec(m.WdkSampleLeaksOnOpen))
    failed = {name.split("::")[1]: t for name, t in results.items() if t["status"] != "PASS"}
    assert set(failed) == {
        "test_a_destroyed_allocation_leaves_no_driver_state",
        "test_a_destroyed_device_leaves_no_driver_state",
    }
    for record in failed.values():
        assert (record["status"], record["violated"]) == ("FAIL", "ALC-ADAPTER")
        assert re.search(r"each 64 more grew it by \+\d+/\+\d+ blocks", record["message"])
        assert "tag 'WdsO' 16 bytes allocated in DxgkDdiOpenAllocation" in record["message"]
