"""The conformance report: one JSON document per run, and the HTML page made from it.

The JSON holds the run (driver, mode, seed: enough to repeat it), a summary by status,
one record per check, and the requirement matrix: every catalogue ID with the worst
status of the checks that name it or that it was violated in, NOT-RUN when no check
ran, and DOCUMENTED-ONLY for rules that cannot be observed outside a real kernel.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import CONTRACT_VERSION, __version__
from .requirements import catalogue
from .results import Status

if TYPE_CHECKING:
    from .plugin import Run

#: Worst first: the status a requirement shows when its checks disagree.
SEVERITY = [
    Status.INTERNAL_ERROR,
    Status.CRASH,
    Status.TIMEOUT,
    Status.FAIL,
    Status.PASS,
    Status.SKIP,
]


def requirement_matrix(tests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every catalogue requirement with the worst status among the checks that concern it."""
    rows: list[dict[str, Any]] = []
    for req in catalogue().values():
        mine = [t for t in tests if req.id in t["requirements"] or t["violated"] == req.id]
        statuses = {Status(t["status"]) for t in mine}
        status = next((str(s) for s in SEVERITY if s in statuses), "NOT-RUN")
        if req.documented_only:
            status = "DOCUMENTED-ONLY"
        rows.append(
            {
                "id": req.id,
                "ddi": req.ddi,
                "text": req.text,
                "oracle": req.oracle,
                "documented_only": req.documented_only,
                "status": status,
                "tests": len(mine),
                "failures": sorted(
                    t["id"] for t in mine if t["status"] not in (Status.PASS, Status.SKIP)
                ),
            }
        )
    return rows


def build_report(run: Run, hypothesis_profile: str, python: str) -> dict[str, Any]:
    """The JSON report of a finished run."""
    tests = sorted(run.results.values(), key=lambda r: r["id"])
    summary: dict[str, int] = {str(s): 0 for s in Status}
    for t in tests:
        summary[t["status"]] += 1
    summary["expected"] = sum(1 for t in tests if t["verdict"] == "expected")
    summary["unexpected"] = sum(1 for t in tests if t["verdict"] == "unexpected")
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
