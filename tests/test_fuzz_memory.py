"""A long fuzz campaign's memory stays flat: nothing the rig, the kernel or the driver keeps
grows with the number of inputs.

Growth is measured with tracemalloc as the bytes allocated after a warm-up and still
alive at the end, over a fixed number of calls: a count of inputs, never seconds, so
the verdict does not depend on the machine's speed or load.
"""

from __future__ import annotations

import gc
import random
import tracemalloc
import weakref
from collections.abc import Callable

import pytest

from wddm_conformance.driver import AllocationRequest, load_driver
from wddm_conformance.errors import DriverFailure, HarnessError
from wddm_conformance.fuzz import CORPORA, target_class
from wddm_conformance.fuzz.base import FUZZ_CONFIG, RigTarget
from wddm_conformance.fuzz.runner import ENV_DRIVER, load
from wddm_conformance.fuzz.statemachine import StateMachineTarget
from wddm_conformance.kernel import Kernel, KernelConfig
from wddm_conformance.program import AllocRef, Copy
from wddm_conformance.reference.miniport import ReferenceMiniport
from wddm_conformance.sysmem import FIRST_PFN, SystemMemory


def retained(step: Callable[[], object], warmup: int, count: int) -> int:
    """Bytes allocated by ``count`` calls of ``step`` (after ``warmup`` calls) still alive after them."""
    for _ in range(warmup):
        step()
    gc.collect()
    tracemalloc.start()
    try:
        for _ in range(count):
            step()
        gc.collect()
        return tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()


# ---------------------------------------------------------------------- system memory


def test_system_memory_keeps_no_record_of_freed_frames() -> None:
    sysmem = SystemMemory()

    def cycle() -> None:
        sysmem.free(sysmem.allocate_mdl(8192).pfns)

    # 20,000 frees of 2 frames each: a record per freed frame would be about 1.5 MiB.
    assert retained(cycle, warmup=100, count=10_000) < 16 << 10


def test_a_freed_frame_comes_back_only_after_every_other_free_frame() -> None:
    sysmem = SystemMemory(max_pages=FIRST_PFN + 4)
    a, b = sysmem.allocate(2)
    sysmem.free([a])
    assert sysmem.allocate(2) == (FIRST_PFN + 2, FIRST_PFN + 3)  # never-used frames first
    assert sysmem.allocate(1) == (a,)  # then round again, skipping b, still allocated
    with pytest.raises(HarnessError, match="exhausted"):
        sysmem.allocate(1)
    sysmem.free([b])
    assert sysmem.allocate(1) == (b,)


# ---------------------------------------------------------------------- kernel and reference driver


def test_the_last_allocation_of_a_resource_takes_the_resource_with_it() -> None:
    k = Kernel("reference", config=FUZZ_CONFIG)
    device = k.create_device()
    a, b = k.create_allocations(device, [AllocationRequest(4096)] * 2, resource=0)
    driver: ReferenceMiniport = k.driver
    assert a.resource and a.resource in driver.resources
    k.destroy_allocation(a)
    assert a.resource in driver.resources  # b still belongs to it
    k.destroy_allocation(b)
    assert a.resource not in driver.resources


def test_the_kernel_forgets_a_destroyed_device() -> None:
    k = Kernel("reference", config=FUZZ_CONFIG)
    first = k.create_device()
    for _ in range(3):
        device = k.create_device()
        k.create_context(device)
        k.destroy_device(device)
        assert device.state == "destroyed"
    assert k.devices == [first]


def test_submissions_leave_nothing_behind_in_the_reference_driver() -> None:
    k = Kernel("reference", config=FUZZ_CONFIG)
    device = k.create_device()
    context = k.create_context(device)
    a, b = k.create_allocations(device, [AllocationRequest(4096)] * 2)
    program = [Copy(AllocRef(1), AllocRef(2), 16)]

    def submit() -> None:
        k.run_program(context, [None, a, b], program)

    assert retained(submit, warmup=50, count=2000) < 16 << 10


# ---------------------------------------------------------------------- fuzz targets


def mutants_of_seeds(target: str, seed: int) -> Callable[[], bytes]:
    """Deterministic inputs like libFuzzer's: a seed of ``target`` with a few bytes changed,
    inserted or erased."""
    seeds = [p.read_bytes() for p in sorted((CORPORA / target).iterdir()) if p.is_file()]
    rng = random.Random(seed)

    def one() -> bytes:
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(data) + 1)
            how = rng.randrange(3)
            if how == 0 and at < len(data):
                data[at] = rng.randrange(256)
            elif how == 1:
                data[at:at] = rng.randbytes(rng.randint(1, 4))
            else:
                del data[at : at + rng.randint(1, 4)]
        return bytes(data)

    return one


#: Inputs per target: enough that what the rig used to keep per input (fences, freed
#: frames, destroyed devices, resources: 80 to 1,700 bytes) passes the bound three times.
INPUTS = {
    "render": 1600,
    "patch": 150,
    "build_paging_buffer": 400,
    "create_allocation": 2400,
    "lifecycle": 300,
}
#: What a rig may legitimately hold on to after an input: its pool's content in system
#: pages while paged out (40 KiB at most), the last DDI calls, the driver's tables.
BOUND = 64 << 10


@pytest.mark.parametrize("name", sorted(INPUTS))
def test_a_rig_target_keeps_nothing_per_input(name: str) -> None:
    target = target_class(name)(load_driver("reference"))  # type: ignore[call-arg]
    make = mutants_of_seeds(name, seed=len(name))

    def one() -> None:
        target.run(make())  # the reference driver breaks no rule: any failure is a bug here

    grown = retained(one, warmup=200, count=INPUTS[name])
    assert grown < BOUND, f"{INPUTS[name]} {name} inputs left {grown >> 10} KiB behind"


def test_the_statemachine_target_frees_each_inputs_kernel_before_the_next() -> None:
    target = StateMachineTarget(load_driver("reference"))
    rng = random.Random(11)
    inputs = [rng.randbytes(rng.choice((64, 256, 1024))) for _ in range(60)]
    for data in inputs[:5]:
        target.run(data)
    gc.collect()
    tracemalloc.start()
    try:
        for data in inputs[5:]:
            target.run(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # One input's kernel holds its video memory, a KernelConfig().memory_segment_size
    # bytearray; at most one may be alive at any time.
    one_kernel = KernelConfig().memory_segment_size
    assert peak < 2 * one_kernel, (
        f"peak {peak >> 20} MiB: kernels of earlier inputs were still alive"
    )


@pytest.mark.parametrize(
    ("target_name", "driver", "seed"),
    [
        # Every input fails once the rig is up: each discards it.
        ("render", "tests.mutants:DoubleFetch", "op-copy"),
        # The rig's own set-up fails (its pool is filled): every input builds one anew.
        ("build_paging_buffer", "tests.mutants:FillsTooLittle", "fill-memory-4096"),
    ],
)
def test_a_rig_given_up_on_is_freed_before_the_next_is_built(
    target_name: str, driver: str, seed: str
) -> None:
    target = target_class(target_name)(load_driver(driver))  # type: ignore[call-arg]
    data = (CORPORA / target_name / seed).read_bytes()

    def fail() -> None:
        with pytest.raises(DriverFailure):
            target.run(data)

    for _ in range(5):
        fail()
    gc.collect()
    tracemalloc.start()
    try:
        for _ in range(80):
            fail()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # A rig's video memory alone is FUZZ_CONFIG.memory_segment_size; the one given up on
    # and the next may overlap, dozens may not.
    assert peak < 4 * FUZZ_CONFIG.memory_segment_size, f"peak {peak >> 20} MiB"


def test_a_fuzzing_process_freezes_what_it_starts_with_but_not_the_rig(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(ENV_DRIVER, "reference")
    before = gc.get_freeze_count()
    try:
        _, target = load("render")
        assert gc.get_freeze_count() > before
        assert isinstance(target, RigTarget)
        kernel = weakref.ref(target.rig.kernel)
        target._rig = None
        gc.collect()
        assert kernel() is None, "the first rig was frozen: given up on, it would never be freed"
    finally:
        gc.unfreeze()


def test_the_statemachine_target_keeps_one_kernel_across_inputs_that_pass() -> None:
    target = StateMachineTarget(load_driver("reference"))
    rng = random.Random(12)
    kernels = set()
    for _ in range(30):
        target.run(rng.randbytes(rng.choice((64, 256, 1024))))
        kernel = target.machine_run.kept
        assert kernel is not None
        assert not kernel.devices and not kernel.allocations  # each input cleans up after itself
        kernels.add(id(kernel))
    assert len(kernels) == 1


def test_a_failing_statemachine_input_drops_its_kernel() -> None:
    """MapsWrongPage breaks PGB-MAP as soon as an aperture allocation is placed."""
    target = StateMachineTarget(load_driver("tests.mutants:MapsWrongPage"))
    rng = random.Random(13)
    failed = 0
    for _ in range(40):
        try:
            target.run(rng.randbytes(256))
        except DriverFailure:
            failed += 1
            assert target.machine_run.kept is None
    assert failed
