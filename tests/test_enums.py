"""The string sets the harness compares are enums that keep their strings.

Object states, GPU fault kinds, memory violation kinds, isolated deaths and baseline
verdicts are ``StrEnum``s: a misspelt member is an AttributeError (and a mypy error),
while messages and JSON show the same strings as before, and a driver's own GPU model
may still answer a plain string.
"""

from __future__ import annotations

import json

import pytest

from wddm_conformance import isolation
from wddm_conformance.baseline import VerdictKind, judge
from wddm_conformance.ddi import DXGK_START_INFO
from wddm_conformance.driver import AllocationRequest, FaultKind, GpuFault
from wddm_conformance.errors import HarnessError
from wddm_conformance.kernel import Change, Kernel, State
from wddm_conformance.kernel.blame import Event, Facts, decide
from wddm_conformance.memory import KernelBuffer, MemoryViolation, ViolationKind
from wddm_conformance.reference import isa
from wddm_conformance.reference.gpu import MEMORY_SEGMENT_BASE, EmulatedGpu
from wddm_conformance.results import Status
from wddm_conformance.sysmem import SystemMemory


def test_object_states_are_enum_members_that_read_as_before() -> None:
    k = Kernel("reference")
    device = k.create_device()
    (a,) = k.create_allocations(device, [AllocationRequest(4096)])
    assert type(device.state) is State and device.state is State.ACTIVE
    assert a.state is State.UNPLACED and "unplaced" in str(a)
    k.make_resident(a)
    assert a.state is State.RESIDENT and a.state == "resident"
    with pytest.raises(HarnessError, match=r"is 'resident'; this needs unplaced or evicted"):
        a.require(State.UNPLACED, State.EVICTED)
    with pytest.raises(HarnessError, match=r"cannot lose in state 'resident'"):
        a.transition(Change.LOSE)
    with pytest.raises(AttributeError):
        State.RESIDNET  # type: ignore[attr-defined]  # noqa: B018


def test_the_reference_gpu_reports_fault_kinds_as_members() -> None:
    gpu = EmulatedGpu(
        SystemMemory(), DXGK_START_INFO(MemorySegmentSize=1 << 20, ApertureSegmentSize=1 << 20)
    )
    privileged = gpu.execute(isa.encode("REG", 0, 0), privileged=False).fault
    illegal = gpu.execute(b"\x7f", privileged=False).fault
    page = gpu.execute(isa.encode("FILL", MEMORY_SEGMENT_BASE - 8, 4, 0), privileged=False).fault
    assert privileged is not None and illegal is not None and page is not None
    assert privileged.kind is FaultKind.PRIVILEGED_INSTRUCTION
    assert illegal.kind is FaultKind.ILLEGAL_INSTRUCTION
    assert page.kind is FaultKind.PAGE_FAULT
    assert str(privileged).startswith("GPU privileged-instruction at DMA +0: ")


@pytest.mark.parametrize("kind", ["illegal-instruction", FaultKind.ILLEGAL_INSTRUCTION])
def test_a_foreign_gpu_may_answer_fault_kinds_as_plain_strings(kind: str) -> None:
    fault = GpuFault(kind, 4, None, "opcode 0x7F")
    assert str(fault) == "GPU illegal-instruction at DMA +4: opcode 0x7F"
    assert decide(Facts(Event.FAULT, 0x1000, fault_kind=fault.kind)).requirement == "REN-VALIDATE"


def test_a_fault_kind_the_harness_does_not_know_is_kept_and_judged_by_the_other_rules() -> None:
    fault = GpuFault("ecc-error", 0, 0x10, "bit flip")
    assert str(fault) == "GPU ecc-error at DMA +0: bit flip"
    verdict = decide(Facts(Event.FAULT, 0x10, reaches_memory=False, fault_kind=fault.kind))
    assert verdict.requirement == "REN-PREPATCH"  # the same row as a page fault there


def test_memory_violation_kinds_are_members_with_the_same_text() -> None:
    buf = KernelBuffer("alloc-list", 48, writable=False)
    buf.write(0, b"\xff" * 8)
    (violation,) = buf.violations
    assert violation.kind is ViolationKind.WRITE_READONLY
    assert str(violation) == "write-readonly in alloc-list at +0 (8 byte(s))"
    assert violation == MemoryViolation(ViolationKind.WRITE_READONLY, "alloc-list", 0, 8)


def test_deaths_and_verdicts_are_members_and_serialise_as_their_strings() -> None:
    death = isolation.Death(isolation.DeathKind.HUNG_DDI, "DxgkDdiRender", True, seconds=1.0)
    assert death.timed_out and death.rule == "ALL-BOUNDED"
    assert judge(Status.FAIL, None).kind is VerdictKind.UNEXPECTED
    assert judge(Status.PASS, None).kind is VerdictKind.OK
    assert judge(Status.FAIL, "FAIL").kind is VerdictKind.EXPECTED
    record = {"verdict": VerdictKind.EXPECTED, "state": State.EVICTED, "kind": FaultKind.PAGE_FAULT}
    assert json.loads(json.dumps(record)) == {
        "verdict": "expected",
        "state": "evicted",
        "kind": "page-fault",
    }


def test_the_isa_page_lists_every_fault_kind() -> None:
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "docs" / "isa.md").read_text()
    for kind in FaultKind:
        assert f"* `{kind}`:" in text, kind
