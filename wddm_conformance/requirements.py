"""The requirement catalogue: every rule of the seed documents under a stable ID.

The catalogue is ``requirements.md`` shipped in this package (a copy of the
project's REQUIREMENTS.md); this module parses its tables once, so the suite's
markers, the self-test, the reports and the kill matrix all read one source.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

#: Rows whose requirement cannot be observed outside a real kernel say so in their oracle column.
_DOCUMENTED_ONLY = re.compile(r"documented only", re.IGNORECASE)
_ROW = re.compile(r"^\|\s*([A-Z]{3}-[A-Z0-9]+)\s*\|(.*)\|(.*)\|\s*$")
_SECTION = re.compile(r"^##\s+(.*?)\s*(\(seeds?[^)]*\))?\s*$")


@dataclass(frozen=True)
class Requirement:
    """One catalogue row."""

    id: str
    #: The section it belongs to: a DDI name (DxgkDdiRender, ...) or "Across the DDIs".
    ddi: str
    text: str
    oracle: str

    @property
    def documented_only(self) -> bool:
        """True when the rule is not observable outside a real kernel (listed, never faked)."""
        return bool(_DOCUMENTED_ONLY.search(self.text)) or self.oracle.strip() in ("—", "-", "")


def parse(markdown: str) -> dict[str, Requirement]:
    """Requirements by ID from the catalogue's markdown tables, in catalogue order."""
    out: dict[str, Requirement] = {}
    section = ""
    for line in markdown.splitlines():
        heading = _SECTION.match(line)
        if heading:
            section = heading.group(1)
            continue
        row = _ROW.match(line)
        if row:
            rid, text, oracle = (part.strip() for part in row.groups())
            if rid in out:
                raise ValueError(f"requirement {rid} appears twice in the catalogue")
            out[rid] = Requirement(rid, section, text, oracle)
    return out


@cache
def catalogue() -> dict[str, Requirement]:
    """The shipped catalogue."""
    text = resources.files(__package__).joinpath("requirements.md").read_text(encoding="utf-8")
    return parse(text)


def checkable() -> list[str]:
    """IDs that must each have a check and a mutant it catches."""
    return [r.id for r in catalogue().values() if not r.documented_only]


def documented_only() -> list[str]:
    """IDs listed in reports as not observable, never faked."""
    return [r.id for r in catalogue().values() if r.documented_only]
