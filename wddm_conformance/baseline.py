"""Expected-results baselines: the per-driver failures file a CI gate compares a run with.

The format follows deqp-runner's failures file: one ``test-id,STATUS`` line per test that
is not expected to pass, ``#`` comments and blank lines allowed::

    # mydriver: known problems, tracked in BUG-123
    test_render.py::test_render_pre_patches_resident_allocations[default],FAIL
    test_paging.py::test_busy_allocation_is_retried_once,FLAKY

A test id is the node id without its directory (``test_render.py::name[params]``), so the
same baseline works for the suite run from this repository and from an installed package.
STATUS is FAIL, CRASH, TIMEOUT or INTERNAL-ERROR (the result expected), or FLAKY (any
result is accepted). Tests not listed are expected to PASS (or SKIP).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from .results import Status

#: The statuses a baseline may expect, plus FLAKY.
FLAKY = "FLAKY"
EXPECTABLE = frozenset({Status.FAIL, Status.CRASH, Status.TIMEOUT, Status.INTERNAL_ERROR, FLAKY})


class BaselineError(ValueError):
    """A baseline file that cannot be used; the message is one line naming file and line."""


def test_id(nodeid: str) -> str:
    """The directory-independent id of a test: ``test_render.py::name[params]``."""
    path, sep, rest = nodeid.partition("::")
    return path.rsplit("/", 1)[-1] + sep + rest


class VerdictKind(StrEnum):
    """How one result compares with the baseline (the report's ``verdict``)."""

    #: Passed or skipped, and the baseline expects nothing else.
    OK = "ok"
    #: What the baseline expects (a listed failure, or FLAKY).
    EXPECTED = "expected"
    #: Not what the baseline expects: a new failure, or a pass of a listed failure.
    UNEXPECTED = "unexpected"


@dataclass(frozen=True)
class Verdict:
    """How one result compares with the baseline."""

    kind: VerdictKind
    expected: str | None
    reason: str = ""


def parse(text: str, where: str) -> dict[str, str]:
    """Expectations by test id; BaselineError names the first bad line."""
    out: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, comma, status = line.rpartition(",")
        name, status = name.strip(), status.strip().upper()
        if not comma or not name or "::" not in name:
            raise BaselineError(
                f"invalid baseline line {number} of {where}: {raw.strip()!r} "
                f"(expected 'test_file.py::test_name,STATUS')"
            )
        if status not in EXPECTABLE:
            known = ", ".join(sorted(EXPECTABLE))
            raise BaselineError(
                f"invalid baseline line {number} of {where}: status {status!r} (known: {known})"
            )
        if name in out:
            raise BaselineError(f"invalid baseline line {number} of {where}: {name} listed twice")
        out[name] = status
    return out


def load(path: Path) -> dict[str, str]:
    """Read a baseline file (BaselineError for a missing, unreadable or malformed one)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BaselineError(f"invalid baseline from --baseline: no such file {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BaselineError(
            f"invalid baseline from --baseline: cannot read {path}: {exc}"
        ) from None
    return parse(text, str(path))


def judge(status: Status, expected: str | None) -> Verdict:
    """Compare one result with its expectation (None: not listed, so PASS or SKIP expected)."""
    if expected is None:
        if status in (Status.PASS, Status.SKIP):
            return Verdict(VerdictKind.OK, None)
        return Verdict(
            VerdictKind.UNEXPECTED, None, f"unexpected {status}: the baseline expects a pass"
        )
    if expected in (FLAKY, status):
        return Verdict(VerdictKind.EXPECTED, expected, f"expected {status} (baseline: {expected})")
    if status == Status.PASS:
        return Verdict(
            VerdictKind.UNEXPECTED,
            expected,
            f"unexpected PASS: the baseline expects {expected}; update the baseline "
            f"(--update-baseline) if the driver was fixed",
        )
    return Verdict(
        VerdictKind.UNEXPECTED, expected, f"unexpected {status}: the baseline expects {expected}"
    )


def render(
    results: Mapping[str, Status], previous: Mapping[str, str], header: Iterable[str]
) -> str:
    """A new baseline from a run: every non-passing result, FLAKY entries kept as they were."""
    lines = [f"# {h}" for h in header]
    entries: dict[str, str] = {}
    for name, status in results.items():
        if previous.get(name) == FLAKY:
            entries[name] = FLAKY
        elif status not in (Status.PASS, Status.SKIP):
            entries[name] = str(status)
    for name, expected in previous.items():  # tests not run this time keep their entry
        if name not in results:
            entries[name] = expected
    lines += [f"{name},{entries[name]}" for name in sorted(entries)]
    return "\n".join(lines) + "\n"
