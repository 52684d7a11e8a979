"""The second correct driver (tests/second_driver) passes the conformance suite (issue 13).

It was written from docs/INTERPRETING.md alone, with its own command format, GPU model and
legal choices the reference does not make, to prove that the suite judges "any
implementation". Every check it fails today is a false positive of the harness, written
up in the issue-13 findings (FP-n below); those are strict xfails, so this file
proves the rest now and fails as soon as the harness is fixed (then drop the mark).

The suite runs once for the module, in a process of its own, with ``--isolate=none``:
per-check isolation once reported a spurious TIMEOUT with a negative duration (FP-6),
which must not make this test's verdict depend on load.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests import killmatrix as km
from wddm_conformance.driver import load_driver
from wddm_conformance.fuzz import triage
from wddm_conformance.results import Status

DRIVER = "tests.second_driver:Miniport"
OPTIONS = ("--hypothesis-profile=quick", "--isolate=none")

FP1 = "FP-1: bounds judged on the requested 8 KiB, not the 64 KiB Size the driver reported"
#: check (default kernel mode) -> (its status today, the rule it names, the finding)
FALSE_POSITIVES: dict[str, tuple[str, str | None, str]] = {
    "test_render.py::test_render_rejects_references_outside_the_submission[dst-overrun]": (
        "FAIL",
        "REN-VALIDATE",
        FP1,
    ),
    "test_render.py::test_render_rejects_references_outside_the_submission[src-overrun]": (
        "FAIL",
        "REN-VALIDATE",
        FP1,
    ),
    "test_render.py::test_render_rejects_references_outside_the_submission[fill-past-end]": (
        "FAIL",
        "REN-VALIDATE",
        FP1,
    ),
}
#: Optional features the driver declares absent (SKIP is the right answer).
SKIPPED = {
    "test_paging.py::test_special_lock_transfers_go_to_the_alternate_virtual_address",
    "test_render.py::test_guaranteed_contract_rejects_a_buffer_needing_more_than_the_dma_buffer",
}


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    return km.run_suite(DRIVER, *OPTIONS)


def _status(report: dict[str, Any]) -> dict[str, str]:
    return {t["id"]: t["status"] for t in report["tests"]}


def _outcome(report: dict[str, Any]) -> dict[str, tuple[str, str | None]]:
    return {t["id"]: (t["status"], t["violated"] or None) for t in report["tests"]}


def test_the_second_driver_passes_every_other_check(report: dict[str, Any]) -> None:
    status = _status(report)
    assert len(status) > 100, "the suite ran too few checks"
    wrong = {
        check: s
        for check, s in status.items()
        if check not in FALSE_POSITIVES and s != ("SKIP" if check in SKIPPED else "PASS")
    }
    assert wrong == {}
    outcome = _outcome(report)
    for check, (now, rule, _) in FALSE_POSITIVES.items():
        # a false positive fails as its finding says, or passes once the harness is fixed
        assert outcome[check] in ((now, rule), ("PASS", None)), check


@pytest.mark.parametrize(
    "check",
    [
        pytest.param(check, marks=pytest.mark.xfail(strict=True, reason=finding))
        for check, (_, _, finding) in FALSE_POSITIVES.items()
    ],
)
def test_false_positive_check_passes(report: dict[str, Any], check: str) -> None:
    assert _status(report)[check] == "PASS"


@pytest.mark.killmatrix
@pytest.mark.parametrize(
    "mode",
    [
        "always-repatch",
        "no-prepatching",
        "forced-eviction",
        "forced-relocation",
        "tiny-buffers",
        "split-submissions",
        "all",
    ],
)
def test_the_second_driver_fails_only_its_false_positives_in_every_mode(mode: str) -> None:
    """The other kernel modes (a whole-suite run each: with the kill matrix, ``-m killmatrix``)."""
    report = km.run_suite(DRIVER, *OPTIONS, f"--kernel-mode={mode}")
    outcome = _outcome(report)
    assert len(outcome) > 100, "the suite ran too few checks"
    wrong = {
        check: got
        for check, got in outcome.items()
        if got[0] not in ("PASS", "SKIP") and got != FALSE_POSITIVES.get(check, (None,))[:2]
    }
    assert wrong == {}


def test_toctou_under_tiny_buffers_lets_a_later_call_reread() -> None:
    """Render stops inside the raced program and the next call reads the user bytes again:
    legal (INTERPRETING §5), so the race check must not FAIL it (it was FP-3)."""
    report = km.run_suite(
        DRIVER,
        *OPTIONS,
        "--kernel-mode=tiny-buffers",
        "-k",
        "test_user_memory_changed_after_reading_does_not_reach_the_dma_buffer",
    )
    assert [t["status"] for t in report["tests"]] in (["PASS"], ["SKIP"])


#: A create_allocation fuzz input: one CPU-visible, swizzled, aperture-only request.
SWIZZLED_APERTURE_ONLY = bytes.fromhex("000900ff8f00")


@pytest.mark.xfail(
    strict=True,
    reason="FP-4: the create_allocation target demands acceptance of a swizzled aperture-only "
    "request, which the driver refuses with INVALID_PARAMETER",
)
def test_create_allocation_fuzzer_accepts_a_refused_combination() -> None:
    replay = triage.replay(load_driver(DRIVER), "create_allocation", SWIZZLED_APERTURE_ONLY)
    assert "swizzled=True" in replay.scenario and "aperture_only=True" in replay.scenario
    assert replay.outcome.status is Status.PASS, replay.outcome
