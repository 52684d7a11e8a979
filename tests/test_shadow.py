"""The one shadow-memory model (:class:`wddm_conformance.oracles.Shadow`) and its three users:
the end-to-end workload, the suite's life-cycle machine and the lifecycle fuzz target. Each
user keeps the verdict and the message it had with a model of its own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from wddm_conformance.driver import AllocationRequest, load_driver
from wddm_conformance.driver_life import DriverLife
from wddm_conformance.errors import DriverViolation
from wddm_conformance.fuzz.base import Rig
from wddm_conformance.fuzz.lifecycle import ACTIONS, KINDS, Action, _Life
from wddm_conformance.kernel import Allocation, Kernel, KernelConfig, KernelMode
from wddm_conformance.oracles import Shadow
from wddm_conformance.program import AllocRef, Copy, Write
from wddm_conformance.run import Run
from wddm_conformance.workload import Workload

SWIZZLED = AllocationRequest(4096, cpu_visible=True, swizzled=True)
PLAIN = AllocationRequest(4096, aperture=False)


@pytest.fixture
def kernel() -> Iterator[Kernel]:
    yield Kernel("reference", "default", KernelConfig(ddi_timeout=5.0))


def _allocation(k: Kernel, request: AllocationRequest) -> Allocation:
    (a,) = k.create_allocations(k.create_device(), [request])
    return a


def _corrupt(k: Kernel, a: Allocation, linear_at: int) -> tuple[int, int, int]:
    """Flip CPU (linear) byte ``linear_at`` of ``a`` behind the model's back; return where the
    GPU view differs, and the byte's value after and before."""
    before = k.gpu_view(a)
    old = k.cpu_read(a, linear_at, 1)[0]
    k.cpu_write(a, linear_at, bytes([old ^ 0xFF]))
    after = k.gpu_view(a)
    at = next(i for i, (x, y) in enumerate(zip(after, before, strict=True)) if x != y)
    return at, after[at], before[at]


def test_entries_naming_one_allocation_share_its_model(kernel: Kernel) -> None:
    a = _allocation(kernel, PLAIN)
    shadow = Shadow(kernel)
    shadow.cpu_write(a, bytes(range(256)) * 16)
    alist: list[Allocation | None] = [None, a, a]
    program = [Write(AllocRef(1, 8), 0x04030201), Copy(AllocRef(2, 100), AllocRef(1, 8), 4)]
    ctx = kernel.create_context(a.creator)
    assert kernel.run_program(ctx, alist, program).ok
    shadow.apply(alist, program)
    shadow.expect_held("REN-TRANSLATE", "test")
    assert list(shadow) == [a] and a in shadow


def test_a_swizzled_allocation_is_modelled_in_the_gpu_view(kernel: Kernel) -> None:
    a = _allocation(kernel, SWIZZLED)
    shadow = Shadow(kernel)
    shadow.cpu_write(a, bytes(a.size))
    program = [Write(AllocRef(1, 4), 0x11223344)]
    assert kernel.run_program(kernel.create_context(a.creator), [None, a], program).ok
    shadow.apply([None, a], program)
    shadow.expect_held("REN-TRANSLATE", "test")
    shadow.expect_held("REN-TRANSLATE", "test", linear=True)


def test_a_difference_is_counted_in_the_view_asked_for(kernel: Kernel) -> None:
    a = _allocation(kernel, SWIZZLED)
    shadow = Shadow(kernel)
    shadow.cpu_write(a, bytes(a.size))
    at, _, _ = _corrupt(kernel, a, 20)
    assert at != 20  # the tiled layout moves the byte
    with pytest.raises(DriverViolation, match=rf"differs from the model at byte {at} \("):
        shadow.expect_held("REN-TRANSLATE", "test")
    with pytest.raises(DriverViolation, match=r"differs from the model at byte 20 \("):
        shadow.expect_held("REN-TRANSLATE", "test", linear=True)


def test_a_forgotten_allocation_is_no_longer_checked(kernel: Kernel) -> None:
    a, b = _allocation(kernel, PLAIN), _allocation(kernel, PLAIN)
    shadow = Shadow(kernel)
    shadow.cpu_write(a, bytes(a.size))
    shadow.cpu_write(b, bytes(b.size))
    _corrupt(kernel, a, 0)
    shadow.forget(a)
    shadow.expect_held("REN-TRANSLATE", "test")
    assert list(shadow) == [b] and a not in shadow


# ------------------------------------------------------------------ its users' verdicts


def test_the_workload_names_the_step_the_mode_and_the_gpu_view_byte(kernel: Kernel) -> None:
    w = Workload(kernel)
    a = w._new(kernel.create_device(), SWIZZLED)
    w.check("created", [a])
    at, got, want = _corrupt(kernel, a, 20)
    with pytest.raises(DriverViolation) as caught:
        w.check("a step", [a])
    assert (caught.value.requirement, caught.value.ddi) == ("REN-TRANSLATE", "end-to-end workload")
    assert str(caught.value) == (
        f"[REN-TRANSLATE] end-to-end workload: after step 'a step' in mode default: {a} differs "
        f"from what the commands meant at byte {at} (got 0x{got:02X}, want 0x{want:02X})"
    )


def test_the_suite_machine_names_the_allocation_and_the_gpu_view_byte() -> None:
    run = Run(load_driver("reference"), KernelMode(), 0, 5.0, "test")
    machine = type("DriverLifeOf", (DriverLife,), {"run": run})()
    try:
        a = machine.create_allocation("swizzled", 0)
        machine.memory_matches_the_model()
        at, got, want = _corrupt(machine.k, a, 20)
        with pytest.raises(DriverViolation) as caught:
            machine.memory_matches_the_model()
    finally:
        machine.teardown()
    assert str(caught.value) == (
        f"[REN-TRANSLATE] driver life cycle: {a} differs from the model at byte {at} "
        f"(got 0x{got:02X}, want 0x{want:02X})"
    )


@pytest.mark.parametrize(
    ("after", "rule"), [("render", "REN-TRANSLATE"), ("evict", "PGB-TRANSFER")]
)
def test_the_lifecycle_target_names_the_action_and_the_linear_byte(after: str, rule: str) -> None:
    life = _Life(Rig(load_driver("reference")))
    swizzled = [name for name, _ in KINDS].index("swizzled")
    life.act(Action(ACTIONS.index("create-allocation"), swizzled))
    (a,) = life.live
    at, _, _ = _corrupt(life.k, a, 20)
    got = life.k.cpu_read(a, 20, 1)[0]
    with pytest.raises(DriverViolation) as caught:
        life.check(after)
    assert at != 20
    assert str(caught.value) == (
        f"[{rule}] driver life cycle: after {after}, {a} differs from the model at byte 20 "
        f"(got 0x{got:02X}, want 0x{got ^ 0xFF:02X})"
    )
