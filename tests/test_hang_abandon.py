"""A TDR ends a suite check at once: hypothesis does not re-run the hanging example while
it shrinks (errors.CheckAbandoned; INTERPRETING.md §5)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wddm_conformance.errors import CheckAbandoned, Tdr
from wddm_conformance.kernel import Kernel, KernelConfig
from wddm_conformance.results import Status, classify
from wddm_conformance.suite.support import pair, program
from wddm_conformance.watchdog import note_example


def _hang(abandon: bool, runs: list[int]) -> None:
    @settings(max_examples=5, database=None, deadline=None, derandomize=True)
    @given(st.integers(0, 3))
    def check(n: int) -> None:
        runs.append(n)
        config = KernelConfig(ddi_timeout=0.05, abandon_on_tdr=abandon)
        k = Kernel("tests.mutants:HangsInRender", config=config)
        ctx, a, b = pair(k)
        k.run_program(ctx, [None, a, b], program())

    check()


def test_without_abandoning_hypothesis_re_runs_the_hanging_example() -> None:
    runs: list[int] = []
    with pytest.raises(Tdr):
        _hang(False, runs)
    assert len(runs) > 1


def test_a_tdr_abandons_a_property_check_after_its_first_hanging_example() -> None:
    runs: list[int] = []
    with pytest.raises(CheckAbandoned) as caught:
        _hang(True, runs)
    assert len(runs) == 1
    assert caught.value.tdr.requirement == "ALL-BOUNDED"


def test_an_abandoned_check_is_reported_as_its_tdr_with_the_example() -> None:
    note_example("test_x(n=3)")
    try:
        config = KernelConfig(ddi_timeout=0.05, abandon_on_tdr=True)
        k = Kernel("tests.mutants:HangsInRender", config=config)
        ctx, a, b = pair(k)
        with pytest.raises(CheckAbandoned) as caught:
            k.run_program(ctx, [None, a, b], program())
    finally:
        note_example("")
    outcome = classify(caught.value)
    assert (outcome.status, outcome.requirement) == (Status.TIMEOUT, "ALL-BOUNDED")
    assert "DxgkDdiRender: did not return" in outcome.message
    assert outcome.message.endswith("the check was running test_x(n=3)")
