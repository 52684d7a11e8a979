"""Misattribution kinds of issue 12, each named with the right ID in the suite and the fuzzer."""

from __future__ import annotations

import pytest

from tests import mutants as m
from wddm_conformance.driver import load_driver
from wddm_conformance.errors import DriverFailure
from wddm_conformance.fuzz.render import Entry, RenderInput, RenderTarget
from wddm_conformance.program import AllocRef, Copy, Op, Write, out_of_bounds

WRAPPED = Copy(AllocRef(1, 0xFFFF_FF00), AllocRef(2), 0x200)  # the end wraps at 2^32
HIGH_BIT = Write(AllocRef(0x8000_0001), 1)  # negative when compared signed

KINDS = [(m.AddsOffsetsIn32Bits, WRAPPED), (m.ComparesIndicesSigned, HIGH_BIT)]


def test_out_of_bounds_uses_exact_arithmetic() -> None:
    sizes = {1: 8192, 2: 8192}
    assert out_of_bounds([WRAPPED], sizes, 3)
    assert out_of_bounds([HIGH_BIT], sizes, 3)
    assert not out_of_bounds([Copy(AllocRef(1, 8000), AllocRef(2), 192)], sizes, 3)


def _input(target: RenderTarget, op: Op) -> bytes:
    sizes = tuple(a.size for a in target.rig.pool)
    entries = (Entry(1, True), Entry(2, True))
    scenario = RenderInput(0, entries, (op,), sizes=(0, sizes[0], sizes[1]))
    data = scenario.encode()
    assert target.decode(data).program == (op,)  # 32-bit fields survive the input format
    return data


@pytest.mark.parametrize(("mutant", "op"), KINDS, ids=lambda v: getattr(v, "__name__", ""))
def test_the_render_fuzz_target_names_an_accepted_out_of_bounds_reference_ren_validate(
    mutant: type, op: Op
) -> None:
    reference = RenderTarget(load_driver("reference"))
    reference.run(_input(reference, op))  # rejected: nothing to report
    target = RenderTarget(load_driver(f"tests.mutants:{mutant.__name__}"))
    with pytest.raises(DriverFailure) as caught:
        target.run(_input(target, op))
    assert caught.value.requirement == "REN-VALIDATE", caught.value
