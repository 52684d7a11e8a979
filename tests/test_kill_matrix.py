"""Proving the suite: every mutant fails exactly the IDs it breaks; conforming drivers pass.

Each row runs the whole conformance suite in-process on one driver (see
``tests/killmatrix.py``) and compares the requirement IDs its failures name with
``tests/mutants.BREAKS`` and with the published ``docs/kill-matrix.md``.
"""

from __future__ import annotations

import pytest

from tests import killmatrix as km
from tests import mutants as m
from wddm_conformance.kernel import ALL_MODES
from wddm_conformance.report import FAILING
from wddm_conformance.requirements import checkable


@pytest.mark.killmatrix
@pytest.mark.parametrize("driver", km.drivers(), ids=lambda c: c.__name__)
def test_the_suite_fails_exactly_the_rules_the_driver_breaks(driver: type) -> None:
    report = km.run_suite(km.spec(driver), *km.options(driver))
    found = km.caught(report)
    assert "INTERNAL-ERROR" not in found, found["INTERNAL-ERROR"]
    want = km.expected(driver)
    if driver is m.SubmitFails:
        want = {km.NO_ID}  # DxgkDdiSubmitCommand has no seed page: 0x119 (0x2) without an ID
    assert set(found) == want, {k: v[:3] for k, v in found.items()}
    # the report's matrix fails those IDs only: the others its failing checks are tagged
    # with are not judged
    failing = {r["id"] for r in report["requirements"] if r["status"] in FAILING}
    assert failing == want - {km.NO_ID}, failing
    assert km.published().get(driver.__name__) == set(found), (
        "docs/kill-matrix.md is stale: python -m tests.killmatrix --write docs/kill-matrix.md"
    )


def test_every_testable_requirement_has_a_mutant() -> None:
    broken = set().union(*(km.expected(c) for c in m.BREAKS))
    assert sorted(set(checkable()) - broken) == []


@pytest.mark.killmatrix
@pytest.mark.parametrize("mode", [str(mode) for mode in ALL_MODES[1:]])
@pytest.mark.parametrize("driver", m.CONFORMING, ids=lambda c: c.__name__)
def test_conforming_drivers_pass_the_suite_in_every_kernel_mode(driver: type, mode: str) -> None:
    """A mode either makes a check meaningful or the check is SKIP with its reason: no
    FAIL, CRASH or INTERNAL-ERROR for a correct driver in any --kernel-mode."""
    report = km.run_suite(km.spec(driver), *km.OPTIONS, f"--kernel-mode={mode}")
    assert km.caught(report) == {}, {k: v[:3] for k, v in km.caught(report).items()}
