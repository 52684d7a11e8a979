"""The blame table (wddm_conformance/kernel/blame.py): one hand-made case per row, and §5."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from wddm_conformance.kernel.blame import (
    REFINABLE,
    REPLAYS,
    RULES,
    Event,
    Facts,
    Failure,
    Variation,
    decide,
    markdown,
    match,
    refine,
    replay_markdown,
)

DOC = Path(__file__).resolve().parent.parent / "docs" / "INTERPRETING.md"
SEGMENT = (0x1000_0000, 0x100_0000)
OLD = (0x1000_2000, 0x1000)  # where an allocation was before it moved
PAGED = (0x1000_8000, 0x1000)  # where a paged-out entry last was
DUMMY = (0x7000, 0x1000)
MINE = (0x1001_0000, 0x2000)  # an allocation of the submission

#: (row index, facts, requirement): the facts reach that row first.
CASES = [
    (0, Facts(Event.READ, 0x1, reaches_memory=False, out_of_bounds=("Copy(...)",)), "REN-VALIDATE"),
    (1, Facts(Event.EXCEPTION, raised="ALL-NORAISE", out_of_bounds=("x",)), "ALL-NORAISE"),
    (
        2,
        Facts(
            Event.FAULT,
            None,
            patched=True,
            fault_kind="illegal-instruction",
            patch_broke_command=True,
        ),
        "REN-FULLPATCH",
    ),
    (3, Facts(Event.FAULT, 0x1000_0000, fault_kind="privileged-instruction"), "REN-VALIDATE"),
    (
        4,
        Facts(Event.FAULT, 0x4000_0000, fault_kind="page-fault", unmapped_aperture=True),
        "PGB-UNMAP",
    ),
    (5, Facts(Event.READ, PAGED[0], 8, paged_out=(PAGED,)), "REN-PAGEDOUT"),
    (6, Facts(Event.FAULT, 0x10, reaches_memory=False, patched=False), "REN-PREPATCH"),
    (7, Facts(Event.BIND, 0x10, reaches_memory=False, patched=True), "REN-NULLALLOC"),
    (8, Facts(Event.FAULT, None, reaches_memory=False, patched=True), "REN-FULLPATCH"),
    (9, Facts(Event.WRITE, MINE[0], 4, patched=True, submission=(MINE,)), "REN-ALLOCINDEX"),
    (10, Facts(Event.READ, OLD[0], 4, patched=False, stale=(OLD,)), "ALL-ISOLATION"),
    (11, Facts(Event.WRITE, DUMMY[0], 4, patched=True, dummy=DUMMY), "REN-FULLPATCH"),
    (12, Facts(Event.BIND, 0x1000_4000, patched=False, stale=(OLD,)), "REN-NULLALLOC"),
    (13, Facts(Event.READ, 0x1000_4000, 4, patched=True, stale=(OLD,)), "ALL-ISOLATION"),
]


@pytest.mark.parametrize(("row", "facts", "requirement"), CASES, ids=[str(c[0] + 1) for c in CASES])
def test_each_row_of_the_blame_table_is_reached_by_its_facts(
    row: int, facts: Facts, requirement: str
) -> None:
    assert match(facts) is RULES[row]
    verdict = decide(facts)
    assert verdict.requirement == requirement
    assert verdict.sentence


def test_every_row_has_a_case() -> None:
    assert sorted(c[0] for c in CASES) == list(range(len(RULES)))


def test_the_accepted_out_of_bounds_reference_is_named_in_the_sentence() -> None:
    bad = "Copy(dst=AllocRef(index=1, offset=4294967040), ...)"
    facts = Facts(
        Event.FAULT, 0xFFFF_0000, reaches_memory=False, patched=True, out_of_bounds=(bad,)
    )
    assert decide(facts).requirement == "REN-VALIDATE"
    assert bad in decide(facts).sentence


def test_a_read_past_a_kernel_buffer_on_an_out_of_bounds_program_is_ren_validate() -> None:
    facts = Facts(
        Event.EXCEPTION, raised="ALL-NORAISE", out_of_bounds=("x",), read_past_buffer=True
    )
    assert match(facts) is RULES[0]


def test_an_exception_other_than_all_noraise_keeps_its_rule_even_when_out_of_bounds() -> None:
    facts = Facts(Event.EXCEPTION, raised="REN-USERFAULT", out_of_bounds=("x",))
    assert decide(facts).requirement == "REN-USERFAULT"


def test_a_stale_write_is_not_allocindex_even_inside_the_submission() -> None:
    # The stale range is now (also) an allocation of this submission: the old address survived.
    facts = Facts(Event.WRITE, OLD[0], 4, patched=True, stale=(OLD,), submission=(OLD,))
    assert decide(facts).requirement == "REN-FULLPATCH"


def test_interpreting_section_5_lists_the_blame_table() -> None:
    text = DOC.read_text()
    found = re.search(r"<!-- blame-table[^>]*-->\n(.*?)<!-- /blame-table -->", text, re.S)
    assert found is not None, "docs/INTERPRETING.md lost its blame-table markers"
    assert found.group(1) == markdown(), (
        "INTERPRETING.md §5's blame list differs from kernel/blame.py RULES: paste markdown()"
    )


# ------------------------------------------------------------------ replays

#: (row index, failure, the variation whose replay is right, requirement).
REPLAY_CASES = [
    (0, Failure("ALL-ISOLATION", deviates=True), Variation.HONEST, "REN-PATCHIN"),
    (1, Failure("REN-FULLPATCH", patched=True, split=True), Variation.UNSPLIT, "PAT-RANGE"),
    (
        2,
        Failure("REN-FULLPATCH", patched=True, moved_repatch=True),
        Variation.PATCHED_ONCE,
        "PAT-REPATCH",
    ),
    (3, Failure("REN-TRANSLATE", patched=True), Variation.UNPATCHED, "REN-FULLPATCH"),
    (4, Failure("REN-TRANSLATE", patched=False), Variation.REPATCHED, "REN-PREPATCH"),
]


@pytest.mark.parametrize(
    ("row", "failure", "right", "requirement"),
    REPLAY_CASES,
    ids=[str(c[0] + 1) for c in REPLAY_CASES],
)
def test_each_replay_row_names_its_rule_when_its_replay_is_right(
    row: int, failure: Failure, right: Variation, requirement: str
) -> None:
    tried: list[Variation] = []

    def replay(variation: Variation) -> bool:
        tried.append(variation)
        return variation is right

    verdict = refine(failure, replay)
    assert verdict is not None
    assert (verdict.requirement, verdict.ddi) == (requirement, REPLAYS[row].ddi)
    assert tried[-1] is REPLAYS[row].variation
    assert refine(failure, lambda v: False) is None  # no replay right: the run's verdict stands


def test_every_replay_row_has_a_case() -> None:
    assert sorted(c[0] for c in REPLAY_CASES) == list(range(len(REPLAYS)))


def test_replays_run_in_table_order_and_only_where_they_apply() -> None:
    tried: list[Variation] = []
    failure = Failure("REN-TRANSLATE", patched=True, split=True, deviates=True)
    refine(failure, lambda v: tried.append(v) or False)  # type: ignore[func-returns-value]
    assert tried == [Variation.HONEST, Variation.UNSPLIT, Variation.UNPATCHED]


@pytest.mark.parametrize("rule", ["REN-VALIDATE", "REN-COPYFIRST", "PAT-FENCE", "ALC-ADAPTER"])
def test_rules_outside_the_refinable_set_are_never_replayed(rule: str) -> None:
    def replay(variation: Variation) -> bool:
        raise AssertionError(f"replayed {variation} for {rule}")

    assert rule not in REFINABLE
    assert refine(Failure(rule, patched=True, split=True, deviates=True), replay) is None


def test_interpreting_section_5_lists_the_replay_table() -> None:
    text = DOC.read_text()
    found = re.search(r"<!-- replay-table[^>]*-->\n(.*?)<!-- /replay-table -->", text, re.S)
    assert found is not None, "docs/INTERPRETING.md lost its replay-table markers"
    assert found.group(1) == replay_markdown(), (
        "INTERPRETING.md §5's replay list differs from kernel/blame.py REPLAYS: paste "
        "replay_markdown()"
    )
