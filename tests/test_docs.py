"""The documents say what the code does."""

from __future__ import annotations

from pathlib import Path

from docs.gen_isa import render
from wddm_conformance import CONTRACT_VERSION
from wddm_conformance.driver import DDI_METHODS
from wddm_conformance.kernel import KernelMode

DOCS = Path(__file__).parent.parent / "docs"


def test_isa_page_is_generated_from_the_instruction_table() -> None:
    assert (DOCS / "isa.md").read_text() == render(), "run: python docs/gen_isa.py"


def test_interpreting_lists_every_ddi_method_and_mode_and_its_version() -> None:
    text = (DOCS / "INTERPRETING.md").read_text()
    assert f"Contract version {CONTRACT_VERSION}" in text
    for method in DDI_METHODS:
        assert f"`{method}(" in text, method
    for mode in KernelMode.NAMES:
        assert f"`{mode}`" in text, mode


def test_fuzzing_page_names_every_target_and_command() -> None:
    from wddm_conformance.fuzz import TARGETS

    text = (DOCS / "fuzzing.md").read_text()
    for name in TARGETS:
        assert f"| `{name}` |" in text, name
    for command in ("fuzz run", "fuzz repro", "fuzz minimize", "fuzz promote", "fuzz coverage"):
        assert command in text, command


def test_native_page_names_every_entry_point_and_mutant() -> None:
    from wddm_conformance.native.abi import ENTRY_POINTS, LIFETIME_EXPORTS
    from wddm_conformance.native.build import MUTANTS

    text = (DOCS / "native.md").read_text()
    for export in (*LIFETIME_EXPORTS, *ENTRY_POINTS.values()):
        assert f"`{export}" in text, export
    for mutant, (_, requirement) in MUTANTS.items():
        assert f"| `{mutant}` | {requirement} |" in text, mutant


def test_the_kill_matrix_updates_the_rows_it_was_asked_for_and_keeps_the_others() -> None:
    from tests.killmatrix import splice

    published = "# Kill matrix\n\n| driver | x |\n|---|---|\n| `A` | old a |\n| `C` | old c |\n"
    fresh = "# Kill matrix\n\n| driver | x |\n|---|---|\n| `A` | new a |\n| `B` | new b |\n"
    assert splice(published, fresh, ["A", "B", "C"]).splitlines()[-3:] == [
        "| `A` | new a |",
        "| `B` | new b |",
        "| `C` | old c |",
    ]
