"""The second correct driver (tests/second_driver) passes the conformance suite (issue 13).

It was written from docs/INTERPRETING.md alone, with its own command format, GPU model and
legal choices the reference does not make (aperture as segment 1, 64 KiB Sizes, a refused
swizzled aperture-only request, a patch list not sorted by PatchOffset, split Render calls
that re-read user bytes), to prove that the suite judges "any implementation". Each check
it failed was a false positive of the harness (the issue-13 findings, FP-1..FP-6), fixed
since: these tests keep them fixed.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests import killmatrix as km
from wddm_conformance.driver import load_driver
from wddm_conformance.fuzz import triage
from wddm_conformance.results import Status

DRIVER = "tests.second_driver:Miniport"
OPTIONS = ("--hypothesis-profile=quick",)
MODES = (
    "always-repatch",
    "no-prepatching",
    "forced-eviction",
    "forced-relocation",
    "tiny-buffers",
    "split-submissions",
    "all-stress",
)
#: Optional features the driver declares absent: SKIP is the right answer in every mode.
SKIPPED = {
    "test_paging.py::test_special_lock_transfers_go_to_the_alternate_virtual_address",
    "test_render.py::test_guaranteed_contract_rejects_a_buffer_needing_more_than_the_dma_buffer",
}


def _not_passed(report: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """check -> (status, message) of every check that did not PASS."""
    return {t["id"]: (t["status"], t["message"]) for t in report["tests"] if t["status"] != "PASS"}


def test_the_second_driver_passes_every_check_in_the_default_mode() -> None:
    report = km.run_suite(DRIVER, *OPTIONS)
    assert len(report["tests"]) > 100, "the suite ran too few checks"
    failed = _not_passed(report)
    assert {c: s for c, s in failed.items() if c not in SKIPPED or s[0] != "SKIP"} == {}
    assert set(failed) == SKIPPED


@pytest.mark.killmatrix
@pytest.mark.parametrize("mode", MODES)
def test_the_second_driver_passes_every_check_in_every_mode(mode: str) -> None:
    """A whole-suite run per mode: with the kill matrix (``-m killmatrix``)."""
    report = km.run_suite(DRIVER, *OPTIONS, f"--kernel-mode={mode}")
    assert len(report["tests"]) > 100, "the suite ran too few checks"
    assert {c: s for c, s in _not_passed(report).items() if s[0] != "SKIP"} == {}


def test_toctou_under_tiny_buffers_lets_a_later_call_reread() -> None:
    """Render stops inside the raced program and the next call reads the user bytes again:
    legal (INTERPRETING §5), so the race check must not FAIL it (FP-3)."""
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


def test_create_allocation_fuzzer_lets_the_driver_refuse_a_combination() -> None:
    """The driver refuses a swizzled aperture-only surface (INTERPRETING §3 allows it): FP-4."""
    replay = triage.replay(load_driver(DRIVER), "create_allocation", SWIZZLED_APERTURE_ONLY)
    assert "swizzled=True" in replay.scenario and "aperture_only=True" in replay.scenario
    assert replay.outcome.status is Status.PASS, replay.outcome
