"""The conformance report: one JSON document per run, and the HTML page made from it.

The JSON holds the run (driver, mode, seed: enough to repeat it), a summary by status,
one record per check (with the command that repeats that check alone), and the
requirement matrix (:func:`requirement_matrix`): every catalogue ID with the verdict of
the checks that judged it. An ID fails only when a check failed naming it; an ID whose
check stopped first on another rule (or on none) is NOT-JUDGED, neither PASS nor FAIL.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import CONTRACT_VERSION, __version__
from .baseline import VerdictKind
from .requirements import catalogue
from .results import Status

if TYPE_CHECKING:
    from .run import Run

#: Statuses of a check that broke a rule; a requirement shows the worst of those naming it.
FAILING = (Status.CRASH, Status.TIMEOUT, Status.FAIL)
#: A requirement none of whose failing checks named it, while one of its checks failed on
#: something else (another rule, no rule, a harness fault) before judging it.
NOT_JUDGED = "NOT-JUDGED"
NOT_RUN = "NOT-RUN"
DOCUMENTED_ONLY = "DOCUMENTED-ONLY"
#: Every status a requirement row can show, worst first.
REQUIREMENT_STATUSES = (
    *(str(s) for s in FAILING),
    NOT_JUDGED,
    str(Status.PASS),
    str(Status.SKIP),
    NOT_RUN,
    DOCUMENTED_ONLY,
)


def failed_naming(test: dict[str, Any]) -> str:
    """The requirement ``test`` (a record) failed naming, or "" (passed, skipped, no rule)."""
    if test["status"] in FAILING:
        return str(test.get("violated") or "")
    return ""


def not_judged(test: dict[str, Any]) -> list[str]:
    """The tagged IDs ``test`` (a record) did not judge: all of them but the one it failed
    naming, when it did not pass or skip; none otherwise."""
    if test["status"] in (Status.PASS, Status.SKIP):
        return []
    named = failed_naming(test)
    return [i for i in test["requirements"] if i != named]


def blocker(status: str, violated: str) -> str:
    """What stopped a check from judging the IDs it is tagged with, for people: the rule
    it failed on, else its status without a rule."""
    if violated and status in FAILING:
        return violated
    if status == Status.INTERNAL_ERROR:
        return "an INTERNAL-ERROR (a harness fault)"
    return f"a {status} that names no rule"


def requirement_matrix(tests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every catalogue requirement and its verdict, from the run's check records.

    A row's ``status`` is the worst of the FAIL/CRASH/TIMEOUT checks that failed naming it
    (``failures``); else NOT-JUDGED when a check tagged with it failed on another rule or
    on none (``blocked_by``: one entry per blocker, ``by`` the rule or "", its ``status``
    and ``checks``; ``note`` says it in a sentence); else PASS when a check tagged with it
    passed, SKIP when all skipped, NOT-RUN when none ran; DOCUMENTED-ONLY for rules that
    cannot be observed outside a real kernel, unless a check failed naming one (a native
    driver's runtime judges REN-IRQL). ``tests`` counts the checks tagged with it
    or failing on it.
    """
    rows: list[dict[str, Any]] = []
    for req in catalogue().values():
        named = [t for t in tests if failed_naming(t) == req.id]
        tagged = [t for t in tests if req.id in t["requirements"]]
        blocked_by = _blockers([t for t in tagged if req.id in not_judged(t)])
        if req.documented_only and not named:
            status = DOCUMENTED_ONLY
        elif named:
            status = next(str(s) for s in FAILING if s in {t["status"] for t in named})
        elif blocked_by:
            status = NOT_JUDGED
        else:
            ran = {t["status"] for t in tagged}
            status = next((str(s) for s in (Status.PASS, Status.SKIP) if s in ran), NOT_RUN)
        rows.append(
            {
                "id": req.id,
                "ddi": req.ddi,
                "text": req.text,
                "oracle": req.oracle,
                "documented_only": req.documented_only,
                "status": status,
                "tests": len({t["id"] for t in named + tagged}),
                "failures": sorted(t["id"] for t in named),
                "blocked_by": blocked_by,
                "note": _note(blocked_by) if status == NOT_JUDGED else "",
            }
        )
    return rows


def _blockers(blocked: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The checks in ``blocked`` grouped by the rule (or "") and the status they failed on."""
    groups: dict[tuple[str, str], list[str]] = {}
    for t in blocked:
        groups.setdefault((failed_naming(t), str(t["status"])), []).append(t["id"])
    return [
        {"by": by, "status": status, "checks": sorted(checks)}
        for (by, status), checks in sorted(groups.items())
    ]


def _note(blocked_by: list[dict[str, Any]]) -> str:
    """``not judged: blocked by REN-PREPATCH (check a.py::x and 2 more); ...``"""
    parts = []
    for entry in blocked_by:
        first, *rest = entry["checks"]
        more = f" and {len(rest)} more" if rest else ""
        parts.append(f"{blocker(entry['status'], entry['by'])} (check {first}{more})")
    return "not judged: blocked by " + "; ".join(parts)


def build_report(run: Run, hypothesis_profile: str, python: str) -> dict[str, Any]:
    """The JSON report of a finished run."""
    tests = sorted(run.results.values(), key=lambda r: r["id"])
    summary: dict[str, int] = {str(s): 0 for s in Status}
    for t in tests:
        summary[t["status"]] += 1
    summary["expected"] = sum(1 for t in tests if t["verdict"] == VerdictKind.EXPECTED)
    summary["unexpected"] = sum(1 for t in tests if t["verdict"] == VerdictKind.UNEXPECTED)
    return {
        "harness": {
            "name": "wddm-conformance",
            "version": __version__,
            "contract": CONTRACT_VERSION,
        },
        "run": {
            "driver": run.spec.spec,
            "driver_class": f"{run.spec.cls.__module__}:{run.spec.cls.__qualname__}",
            "kernel_mode": str(run.mode),
            "seed": run.seed,
            "ddi_timeout": run.ddi_timeout,
            "hypothesis_profile": hypothesis_profile,
            "python": python,
            "baseline": str(run.baseline_path) if run.baseline_path else None,
            "command": run.command,
        },
        "summary": summary,
        "tests": tests,
        "requirements": requirement_matrix(tests),
    }


def write_reports(report: dict[str, Any], json_path: Path | None, html_path: Path | None) -> None:
    """Write the JSON and/or HTML report (parent directories are created)."""
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if html_path is not None:
        from .report_html import render_html

        html_path.parent.mkdir(parents=True, exist_ok=True)
        html_path.write_text(render_html(report), encoding="utf-8")
