"""One conformance check in a process of its own (the plugin's ``--isolate=check``).

The child runs pytest's own test protocol for the item (set-up, call, tear-down; the
plugin's outcome record is made there as in a run without isolation) and hands its
reports back (plain data, ``marshal``), with the warnings it raised. When the child dies instead
(:class:`~wddm_conformance.isolation.Death`), the parent writes the check's report: CRASH
or TIMEOUT, the bug check Windows would raise, the DDI, the driver's last output.
"""

from __future__ import annotations

import functools
import importlib
import marshal
import time
import warnings
from typing import TYPE_CHECKING, Any

import pytest
from _pytest.runner import runtestprotocol

from . import isolation
from .results import Status

if TYPE_CHECKING:
    from .run import Run

#: Lines of the driver's output kept in a dead check's message.
OUTPUT_TAIL = 12


def run_check(
    item: pytest.Item, nextitem: pytest.Item | None, run: Run, limits: isolation.Limits
) -> list[pytest.TestReport]:
    """The reports of ``item``'s set-up, call and tear-down, run in a child process."""
    config = item.config
    _warm_up()
    start = time.monotonic()

    def job() -> bytes:
        with warnings.catch_warnings(record=True) as caught:
            # What the next item (or, at the end, the session) shares stays set up in the
            # child: fixtures the parent set up are finalized by the parent alone.
            keep = nextitem if nextitem is not None else item.session
            reports = runtestprotocol(item, log=False, nextitem=keep)  # type: ignore[arg-type]
        return marshal.dumps(
            {
                "reports": [
                    config.hook.pytest_report_to_serializable(config=config, report=r)
                    for r in reports
                ],
                "warnings": [
                    [str(w.message), _qualname(w.category), w.filename, w.lineno] for w in caught
                ],
            }
        )

    outcome = isolation.run(job, limits)
    item.session._setupstate.teardown_exact(nextitem)
    if isinstance(outcome, isolation.Death):
        dead = _dead(item, run, outcome, time.monotonic() - start)
        return [dead, _teardown(dead)]
    data = marshal.loads(outcome)
    for message, category, filename, lineno in data["warnings"]:
        warnings.warn_explicit(message, _category(category), filename, lineno)
    return [
        config.hook.pytest_report_from_serializable(config=config, data=r) for r in data["reports"]
    ]


def _teardown(report: pytest.TestReport) -> pytest.TestReport:
    """The passed tear-down report that closes a dead check as pytest closes every check;
    it carries the check's properties, which JUnit reads from the tear-down."""
    return pytest.TestReport(
        report.nodeid,
        report.location,
        report.keywords,
        "passed",
        None,
        "teardown",
        user_properties=report.user_properties,
    )


@functools.cache
def _warm_up() -> None:
    """Import in the parent what checks import on first use, so that no check's process
    imports (and compiles) it again."""
    import hypothesis.internal.conjecture.optimiser  # noqa: F401

    from . import report  # noqa: F401
    from .fuzz import TARGETS, target_class

    for name in TARGETS:
        target_class(name)


def _qualname(category: type[Warning]) -> str:
    return f"{category.__module__}:{category.__qualname__}"


def _category(name: str) -> type[Warning]:
    module, _, qualname = name.partition(":")
    try:
        found: Any = importlib.import_module(module)
        for part in qualname.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError):
        return UserWarning
    return found if isinstance(found, type) and issubclass(found, Warning) else UserWarning


def _captured(item: pytest.Item) -> tuple[str, str]:
    """What the dead child wrote to the run's captured stdout and stderr."""
    capman: Any = item.config.pluginmanager.getplugin("capturemanager")
    if capman is None or not capman.is_globally_capturing():
        return "", ""
    out, err = capman.read_global_capture()
    return str(out), str(err)


def _dead(item: pytest.Item, run: Run, death: isolation.Death, seconds: float) -> pytest.TestReport:
    from .plugin import conclude, requirement_ids

    out, err = _captured(item)
    if death.kind == isolation.DeathKind.RAISED:
        status = Status.INTERNAL_ERROR
    else:
        status = Status.TIMEOUT if death.timed_out else Status.CRASH
    rule = death.rule
    bugcheck = death.bugcheck
    message = death.describe()
    tail = [line for line in (out + err).splitlines() if line.strip()][-OUTPUT_TAIL:]
    details = []
    if tail:
        details.append("last output of the check's process:\n" + "\n".join(tail))
    if death.sanitizer.strip():
        details.append(f"sanitizer report:\n{death.sanitizer.strip()}")
    if death.output.strip():
        what = (
            "harness traceback"
            if death.kind == isolation.DeathKind.RAISED
            else "Python stack at the crash"
        )
        details.append(f"{what}:\n{death.output.strip()}")
    details.append(
        "the check ran in a process of its own (--isolate=check); to debug it in the "
        "run's process add --isolate=none"
    )
    report = pytest.TestReport(
        item.nodeid,
        item.location,
        {name: 1 for name in item.keywords},
        "failed",
        None,
        "call",
        sections=[("Captured stdout call", out), ("Captured stderr call", err)],
        duration=seconds,
    )
    return conclude(
        run,
        report,
        requirement_ids(item),
        status,
        rule,
        " ".join(
            part for part in (str(bugcheck or ""), f"[{rule}]" if rule else "", message) if part
        ),
        ddi=death.ddi if death.in_ddi else "",
        bugcheck=bugcheck,
        details="\n\n".join(details),
    )
