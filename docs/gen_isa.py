"""Regenerate docs/isa.md from docs/isa.md.in and the instruction table: python docs/gen_isa.py."""

from __future__ import annotations

from pathlib import Path

from wddm_conformance.reference.isa import markdown_table

HERE = Path(__file__).parent


def render() -> str:
    """The text docs/isa.md must hold."""
    return (HERE / "isa.md.in").read_text().replace("@TABLE@", markdown_table())


if __name__ == "__main__":
    (HERE / "isa.md").write_text(render())
