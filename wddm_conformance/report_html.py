"""Render a conformance-report dict as one self-contained HTML page.

The JSON report is what tools read; this page is what people read. A driver author opening
it should see at a glance which requirements pass or fail per DDI (a requirement fails only
where a check failed naming it; one whose check stopped first on another rule is "not
judged" and names the rule and the check that blocked it), jump from a failing
requirement to the failures that broke it, read each failure with the requirement's full
text and the faulting DMA instruction highlighted, and find everything needed to repeat
the run (driver, kernel mode, seed, timeout, command) and each failure alone (the
check's command, hypothesis' ``@reproduce_failure`` decorator, the fuzz input's repro).

The page has inline CSS only: no external stylesheets, fonts, images or scripts, so it can
be attached to a bug or archived by CI and still render the same offline. Every piece of
text taken from the report is HTML-escaped, because driver messages are arbitrary text and
may contain ``<``, ``&`` or quotes.

The renderer is lenient: missing optional keys (``bugcheck``, ``violated``, ``run`` ...)
render as empty or "none" rather than raising, so a partial report still gives a page.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from html import escape
from typing import Any

from .baseline import VerdictKind
from .report import DOCUMENTED_ONLY, FAILING, NOT_JUDGED, NOT_RUN, REQUIREMENT_STATUSES
from .results import Status

__all__ = ["render_html"]

STATUS_ORDER = tuple(str(s) for s in Status)
"""Test statuses in the order the summary lists them."""

NOT_FAILURES = frozenset({str(Status.PASS), str(Status.SKIP)})
"""Test statuses that do not get an entry in the failures section."""

FAILING_REQUIREMENT = frozenset(str(s) for s in FAILING)
"""Requirement statuses whose matrix row links to the failures that named it."""

SHORT_TEXT = 160
"""Requirement text longer than this is shortened in the matrix (full text in a tooltip)."""

CONTEXT_BEFORE = 6
CONTEXT_AFTER = 5
"""Disassembly lines kept before/after a ``=>`` line when a listing is elided (12 in all)."""

_LISTING_LINE = re.compile(r"^(?:=>|\s+)\s*\+?0x[0-9A-Fa-f]+")
"""A disassembly line: a marker or indent, then a hex offset (``   +0x0010  mov ...``)."""

_RUN_FIELDS = (
    ("driver", "Driver"),
    ("driver_class", "Driver class"),
    ("kernel_mode", "Kernel mode"),
    ("seed", "Seed"),
    ("ddi_timeout", "DDI timeout (s)"),
    ("hypothesis_profile", "Hypothesis profile"),
    ("python", "Python"),
    ("baseline", "Baseline"),
    ("command", "Command"),
)

_CSS = """
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto;
  max-width: 1200px; padding: 1rem 1.5rem 3rem; color: #1f2328; background: #fff; }
h1 { font-size: 1.5rem; margin: 0.5rem 0; }
h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #d0d7de; padding-bottom: .2rem; }
h3 { font-size: 1.05rem; margin: 1.2rem 0 .4rem; }
table { border-collapse: collapse; margin: .4rem 0 1rem; width: 100%; }
th, td { border: 1px solid #d0d7de; padding: .25rem .5rem; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
td.num, th.num { text-align: right; white-space: nowrap; }
table.kv { width: auto; }
table.kv th { white-space: nowrap; }
code, pre, .mono { font-family: ui-monospace, "Cascadia Mono", Consolas, monospace;
  font-size: 12.5px; }
pre { background: #f6f8fa; border: 1px solid #d0d7de; padding: .5rem; overflow-x: auto;
  white-space: pre; margin: .4rem 0; }
pre mark.fault { background: #ffd8b5; color: #000; font-weight: bold; display: inline-block;
  min-width: 100%; }
pre .elided { color: #6e7781; font-style: italic; }
.badge { display: inline-block; padding: 0 .45em; border-radius: .6em; font-size: 12px;
  font-weight: 600; line-height: 1.6; white-space: nowrap; border: 1px solid transparent;
  color: #fff; background: #6e7781; }
.st-pass { background: #1a7f37; }
.st-fail { background: #cf222e; }
.st-crash { background: #6e1a52; }
.st-timeout { background: #bc4c00; }
.st-skip { background: #6e7781; }
.st-internal-error { background: #0550ae; }
.st-documented-only, .st-not-run, .st-unknown { background: #eaeef2; color: #1f2328;
  border-color: #afb8c1; }
.st-not-judged { background: #fff; color: #9a6700; border-color: #d4a72c; }
.st-flaky { background: #fff8c5; color: #4d2d00; border-color: #d4a72c; }
.v-unexpected { background: #fff; color: #cf222e; border-color: #cf222e; }
.v-expected { background: #fff; color: #57606a; border-color: #8c959f; }
.v-ok { background: #fff; color: #1a7f37; border-color: #1a7f37; }
.banner { padding: .5rem .8rem; border-radius: .4rem; margin: 1rem 0; font-weight: 600; }
.banner.bad { background: #ffebe9; border: 1px solid #ff8182; }
.banner.good { background: #dafbe1; border: 1px solid #4ac26b; }
.failure { border: 1px solid #d0d7de; border-left: 4px solid #cf222e; border-radius: .3rem;
  padding: .3rem .8rem .6rem; margin: 1rem 0; }
.failure.expected { border-left-color: #8c959f; }
.failure h3 { margin-top: .4rem; }
.reqtext { margin: .2rem 0 .2rem 1rem; color: #424a53; }
.muted { color: #6e7781; }
tr.documented-only td { color: #57606a; font-style: italic; }
tr.documented-only td .badge { font-style: normal; }
ul.compact { padding-left: 1.2rem; }
ul.compact li { margin: .15rem 0; }
.skip-reason { color: #57606a; white-space: pre-wrap; }
td.failures, td.failures .mono, code.cmd { overflow-wrap: anywhere; word-break: break-word; }
code.cmd { white-space: pre-wrap; }
.blocked { color: #57606a; }
details > summary { cursor: pointer; font-weight: 600; margin: .5rem 0; }
a { color: #0969da; }
:target { outline: 3px solid #d4a72c; outline-offset: 2px; }
"""


def render_html(report: dict[str, Any]) -> str:
    """The whole report as one HTML document (a ``str`` starting with ``<!DOCTYPE html>``)."""
    harness = _mapping(report.get("harness"))
    run = _mapping(report.get("run"))
    summary = _mapping(report.get("summary"))
    tests = [_mapping(t) for t in _sequence(report.get("tests"))]
    requirements = [_mapping(r) for r in _sequence(report.get("requirements"))]

    anchors = _Anchors()
    failures = [t for t in tests if _text(t.get("status")) not in NOT_FAILURES]
    # Unexpected failures first: they are what needs looking at; otherwise keep report order.
    failures.sort(key=lambda t: _text(t.get("verdict")) != VerdictKind.UNEXPECTED)
    article_ids = [anchors.new("failure-" + _text(t.get("id"))) for t in failures]
    failure_anchor: dict[str, str] = {}  # test id -> its (first) failure article
    for t, anchor in zip(failures, article_ids, strict=True):
        failure_anchor.setdefault(_text(t.get("id")), anchor)
    req_anchor: dict[str, str] = {}  # requirement id -> its matrix row
    for r in requirements:
        req_anchor.setdefault(_text(r.get("id")), anchors.new("req-" + _text(r.get("id"))))
    req_by_id = {_text(r.get("id")): r for r in requirements}

    name = _text(harness.get("name")) or "wddm-conformance"
    driver = _text(run.get("driver"))
    title = f"{name} report" + (f" — {driver}" if driver else "")

    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        _header(name, harness, run),
        _summary(summary, tests, requirements),
        _matrix(requirements, tests, failure_anchor, req_anchor),
        _failures(failures, article_ids, req_by_id, req_anchor),
        _skipped(tests),
        _all_tests(tests, failure_anchor),
        "</body>",
        "</html>",
    ]
    return "\n".join(parts) + "\n"


# --- sections ----------------------------------------------------------------------------


def _header(name: str, harness: Mapping[str, Any], run: Mapping[str, Any]) -> str:
    version = _text(harness.get("version"))
    contract = _text(harness.get("contract"))
    sub = []
    if version:
        sub.append(f"version {_e(version)}")
    if contract:
        sub.append(f"contract {_e(contract)}")
    rows = []
    known = {key for key, _ in _RUN_FIELDS}
    fields = list(_RUN_FIELDS) + [(k, k) for k in run if k not in known]
    for key, label in fields:
        value = run.get(key)
        if key == "baseline" and value in (None, ""):
            cell = '<span class="muted">none</span>'
        elif value is None or value == "":
            cell = '<span class="muted">—</span>'
        elif key in ("command", "driver_class", "baseline"):
            cell = f"<code>{_e(value)}</code>"
        else:
            cell = _e(value)
        rows.append(f"<tr><th>{_e(label)}</th><td>{cell}</td></tr>")
    return (
        "<header>\n"
        f"<h1>{_e(name)} report</h1>\n"
        f'<p class="muted">{" · ".join(sub)}</p>\n'
        "<h2>Run</h2>\n"
        '<table class="kv">\n' + "\n".join(rows) + "\n</table>\n</header>"
    )


def _summary(
    summary: Mapping[str, Any],
    tests: list[Mapping[str, Any]],
    requirements: list[Mapping[str, Any]],
) -> str:
    counts: dict[str, int] = {}
    if summary:
        for status in STATUS_ORDER:
            counts[status] = _int(summary.get(status))
        for key, value in summary.items():
            if key not in counts and key not in ("expected", "unexpected"):
                counts[key] = _int(value)
        unexpected = _int(summary.get("unexpected"))
        expected = _int(summary.get("expected"))
    else:  # derive it from the tests
        for status in STATUS_ORDER:
            counts[status] = 0
        for t in tests:
            status = _text(t.get("status"))
            counts[status] = counts.get(status, 0) + 1
        unexpected = sum(_text(t.get("verdict")) == VerdictKind.UNEXPECTED for t in tests)
        expected = sum(_text(t.get("verdict")) == VerdictKind.EXPECTED for t in tests)
    total = sum(counts.values())

    cells = "".join(
        f"<tr><td>{_badge(status)}</td><td class=num>{n}</td></tr>" for status, n in counts.items()
    )
    if unexpected:
        banner = (
            f'<div class="banner bad">{unexpected} unexpected result'
            f"{'' if unexpected == 1 else 's'} — see Failures below.</div>"
        )
    else:
        banner = '<div class="banner good">No unexpected results.</div>'

    req_counts: dict[str, int] = {}
    for r in requirements:
        status = _text(r.get("status")) or NOT_RUN
        req_counts[status] = req_counts.get(status, 0) + 1
    req_line = ""
    if req_counts:
        req_line = (
            f"<p>Requirements ({len(requirements)}): "
            + " ".join(f"{_badge(s)} {n}" for s, n in req_counts.items())
            + "</p>"
        )
    return (
        '<section id="summary">\n<h2>Summary</h2>\n'
        + banner
        + "\n<table class=kv>\n<tr><th>Status</th><th class=num>Tests</th></tr>\n"
        + cells
        + f"\n<tr><th>Total</th><th class=num>{total}</th></tr>\n</table>\n"
        + f"<p>{_verdict_badge('unexpected')} {unexpected} &nbsp; "
        + f"{_verdict_badge('expected')} {expected} "
        + '<span class="muted">(expected = matches the baseline)</span></p>\n'
        + req_line
        + "\n</section>"
    )


def _matrix(
    requirements: list[Mapping[str, Any]],
    tests: list[Mapping[str, Any]],
    failure_anchor: Mapping[str, str],
    req_anchor: Mapping[str, str],
) -> str:
    out = ['<section id="requirements">', "<h2>Requirement matrix</h2>"]
    if not requirements:
        out.append('<p class="muted">The report lists no requirements.</p>')
        out.append("</section>")
        return "\n".join(out)

    sections: dict[str, list[Mapping[str, Any]]] = {}
    for r in requirements:
        sections.setdefault(_text(r.get("ddi")) or "Other", []).append(r)

    placed: set[str] = set()  # each requirement anchor goes on one row only
    for ddi, rows in sections.items():
        worst = _worst(_text(r.get("status")) for r in rows)
        out.append(f"<h3>{_e(ddi)} {_badge(worst)}</h3>")
        out.append(
            "<table>\n<tr><th>Requirement</th><th>Text</th><th>Oracle</th><th>Status</th>"
            "<th class=num>Tests</th><th>Failures</th></tr>"
        )
        for r in rows:
            rid = _text(r.get("id"))
            status = _text(r.get("status")) or NOT_RUN
            documented_only = bool(r.get("documented_only")) or status == DOCUMENTED_ONLY
            text = _text(r.get("text"))
            short = text if len(text) <= SHORT_TEXT else text[: SHORT_TEXT - 1].rstrip() + "…"
            failed = [_text(f) for f in _sequence(r.get("failures"))]
            if not failed and "failures" not in r and status in FAILING_REQUIREMENT:
                failed = [
                    _text(t.get("id"))
                    for t in tests
                    if _text(t.get("id")) in failure_anchor and _named(t, rid)
                ]
            links = [_check_link(f, failure_anchor) for f in failed]
            blocked = [_mapping(b) for b in _sequence(r.get("blocked_by"))]
            if status == NOT_JUDGED:
                links += [_blocked_html(b, failure_anchor, req_anchor) for b in blocked]
            first = [f for f in failed if f in failure_anchor] + [
                _text(c)
                for b in blocked
                for c in _sequence(b.get("checks"))
                if _text(c) in failure_anchor
            ]
            status_cell = _badge(status)
            if first:
                status_cell = f'<a href="#{failure_anchor[first[0]]}">{status_cell}</a>'
            if documented_only:
                oracle = "documented only"
                n_tests = '<span class="muted">—</span>'
            else:
                oracle = _text(r.get("oracle"))
                n_tests = str(_int(r.get("tests")))
            row_class = ' class="documented-only"' if documented_only else ""
            anchor = req_anchor.get(rid, "")
            row_id = f' id="{anchor}"' if anchor and anchor not in placed else ""
            placed.add(anchor)
            out.append(
                f"<tr{row_class}{row_id}>"
                f"<td class=mono>{_e(rid)}</td>"
                f'<td title="{_e(text)}">{_e(short)}</td>'
                f"<td>{_e(oracle)}</td>"
                f"<td>{status_cell}</td>"
                f"<td class=num>{n_tests}</td>"
                f"<td class=failures>{'<br>'.join(links)}</td></tr>"
            )
        out.append("</table>")
    out.append("</section>")
    return "\n".join(out)


def _failures(
    failures: list[Mapping[str, Any]],
    article_ids: list[str],
    req_by_id: Mapping[str, Mapping[str, Any]],
    req_anchor: Mapping[str, str],
) -> str:
    out = ['<section id="failures">', f"<h2>Failures ({len(failures)})</h2>"]
    if not failures:
        out.append('<p class="muted">No test failed, crashed, timed out or errored.</p>')
    for t, article_id in zip(failures, article_ids, strict=True):
        tid = _text(t.get("id"))
        status = _text(t.get("status"))
        verdict = _text(t.get("verdict"))
        expected = _text(t.get("expected"))
        violated = _text(t.get("violated"))
        ddi = _text(t.get("ddi"))
        bugcheck = _text(t.get("bugcheck"))
        nodeid = _text(t.get("nodeid"))
        cls = "failure expected" if verdict == VerdictKind.EXPECTED else "failure"
        out.append(f'<article class="{cls}" id="{article_id}">')
        head = f"<h3><span class=mono>{_e(tid)}</span> {_badge(status)}"
        if verdict:
            head += " " + _verdict_badge(verdict)
        out.append(head + "</h3>")
        facts = []
        if nodeid and nodeid != tid:
            facts.append(f"<tr><th>Node id</th><td class=mono>{_e(nodeid)}</td></tr>")
        if expected:
            facts.append(f"<tr><th>Baseline expects</th><td>{_badge(expected)}</td></tr>")
        if violated:
            req = req_by_id.get(violated)
            ref = _e(violated)
            if violated in req_anchor:
                ref = f'<a href="#{req_anchor[violated]}">{ref}</a>'
            text = _text(req.get("text")) if req is not None else ""
            body = f'<div class="reqtext">{_e(text)}</div>' if text else ""
            facts.append(f"<tr><th>Violated</th><td><span class=mono>{ref}</span>{body}</td></tr>")
        checked = [_text(x) for x in _sequence(t.get("requirements"))]
        if checked:
            facts.append(
                "<tr><th>Checks</th><td class=mono>"
                + ", ".join(
                    f'<a href="#{req_anchor[c]}">{_e(c)}</a>' if c in req_anchor else _e(c)
                    for c in checked
                )
                + "</td></tr>"
            )
        unjudged = [c for c in checked if c != violated or status not in FAILING_REQUIREMENT]
        if unjudged:
            facts.append(
                "<tr><th>Not judged</th><td><span class=mono>"
                + ", ".join(
                    f'<a href="#{req_anchor[c]}">{_e(c)}</a>' if c in req_anchor else _e(c)
                    for c in unjudged
                )
                + '</span> <span class="muted">(tagged, not reached: '
                + ("blocked by this failure" if violated else "the check failed on no rule")
                + ")</span></td></tr>"
            )
        if ddi:
            facts.append(f"<tr><th>DDI</th><td class=mono>{_e(ddi)}</td></tr>")
        if bugcheck:
            facts.append(f"<tr><th>Bug check</th><td class=mono>{_e(bugcheck)}</td></tr>")
        reproduce = _mapping(t.get("reproduce"))
        for key, label in (
            ("command", "Run alone"),
            ("hypothesis", "Hypothesis"),
            ("fuzz", "Fuzz input"),
        ):
            if _text(reproduce.get(key)):
                facts.append(
                    f"<tr><th>{label}</th><td><code class=cmd>{_e(reproduce.get(key))}</code>"
                    "</td></tr>"
                )
        if facts:
            out.append('<table class="kv">' + "".join(facts) + "</table>")
        message = _text(t.get("message"))
        if message:
            out.append(f"<pre>{_message_html(message)}</pre>")
        out.append("</article>")
    out.append("</section>")
    return "\n".join(out)


def _skipped(tests: list[Mapping[str, Any]]) -> str:
    skipped = [t for t in tests if _text(t.get("status")) == Status.SKIP]
    out = ['<section id="skipped">', f"<h2>Skipped ({len(skipped)})</h2>"]
    if not skipped:
        out.append('<p class="muted">No test was skipped.</p>')
    else:
        out.append('<ul class="compact">')
        for t in skipped:
            reason = _text(t.get("message"))
            tail = f' — <span class="skip-reason">{_e(reason)}</span>' if reason else ""
            out.append(f"<li><span class=mono>{_e(_text(t.get('id')))}</span>{tail}</li>")
        out.append("</ul>")
    out.append("</section>")
    return "\n".join(out)


def _all_tests(tests: list[Mapping[str, Any]], failure_anchor: Mapping[str, str]) -> str:
    out = [
        '<section id="tests">',
        "<h2>All tests</h2>",
        f"<details><summary>{len(tests)} test{'' if len(tests) == 1 else 's'}</summary>",
        "<table>\n<tr><th>Test</th><th>Status</th><th>Verdict</th><th>Requirements</th>"
        "<th class=num>Duration</th></tr>",
    ]
    for t in tests:
        tid = _text(t.get("id"))
        name = f"<span class=mono>{_e(tid)}</span>"
        if tid in failure_anchor:
            name = f'<a href="#{failure_anchor[tid]}">{name}</a>'
        verdict = _text(t.get("verdict"))
        reqs = ", ".join(_e(_text(x)) for x in _sequence(t.get("requirements")))
        out.append(
            f"<tr><td>{name}</td><td>{_badge(_text(t.get('status')))}</td>"
            f"<td>{_verdict_badge(verdict) if verdict else ''}</td>"
            f"<td class=mono>{reqs}</td><td class=num>{_duration(t.get('duration'))}</td></tr>"
        )
    out.append("</table>\n</details>\n</section>")
    return "\n".join(out)


def _named(test: Mapping[str, Any], rid: str) -> bool:
    """Whether ``test`` failed naming ``rid`` (a record without ``violated``, as older
    reports have: whether it is tagged with it)."""
    if "violated" not in test:
        return rid in [_text(x) for x in _sequence(test.get("requirements"))]
    return _text(test.get("violated")) == rid


def _check_link(check: str, failure_anchor: Mapping[str, str]) -> str:
    if check in failure_anchor:
        return f'<a href="#{failure_anchor[check]}" class=mono>{_e(check)}</a>'
    return f"<span class=mono>{_e(check)}</span>"


def _blocked_html(
    entry: Mapping[str, Any], failure_anchor: Mapping[str, str], req_anchor: Mapping[str, str]
) -> str:
    """``not judged: blocked by REN-X (check a, b)`` with links to the rule and the checks."""
    by, status = _text(entry.get("by")), _text(entry.get("status"))
    if by:
        rule = (
            f'<a href="#{req_anchor[by]}" class=mono>{_e(by)}</a>' if by in req_anchor else _e(by)
        )
    elif status == Status.INTERNAL_ERROR:
        rule = "an INTERNAL-ERROR (a harness fault)"
    else:
        rule = f"a {_e(status)} that names no rule"
    checks = ", ".join(
        _check_link(_text(c), failure_anchor) for c in _sequence(entry.get("checks"))
    )
    plural = "s" if len(_sequence(entry.get("checks"))) > 1 else ""
    return f'<span class="blocked">not judged: blocked by {rule} (check{plural} {checks})</span>'


# --- message listing -------------------------------------------------------------------------


def _message_html(message: str) -> str:
    """The escaped message for a ``<pre>``; ``=>`` lines marked, long listings elided around them.

    A listing is a run of consecutive disassembly lines (hex offset first). In a listing that
    holds a ``=>`` line, only the lines within CONTEXT_BEFORE/CONTEXT_AFTER of a marker are
    kept; every other line of the message is kept as it is.
    """
    lines = message.replace("\r\n", "\n").split("\n")
    keep = [True] * len(lines)
    start = 0
    while start < len(lines):
        if not _LISTING_LINE.match(lines[start]):
            start += 1
            continue
        stop = start
        while stop < len(lines) and _LISTING_LINE.match(lines[stop]):
            stop += 1
        marks = [i for i in range(start, stop) if lines[i].startswith("=>")]
        if marks:
            for i in range(start, stop):
                keep[i] = any(at - CONTEXT_BEFORE <= i <= at + CONTEXT_AFTER for at in marks)
        start = stop

    out: list[str] = []
    i = 0
    while i < len(lines):
        if keep[i]:
            line = _e(lines[i])
            out.append(f'<mark class="fault">{line}</mark>' if lines[i].startswith("=>") else line)
            i += 1
            continue
        j = i
        while j < len(lines) and not keep[j]:
            j += 1
        if j - i == 1:  # a note would be as long as the line itself
            out.append(_e(lines[i]))
        else:
            out.append(f'<span class="elided">   … {j - i} lines elided</span>')
        i = j
    return "\n".join(out)


# --- small helpers ----------------------------------------------------------------------------


class _Anchors:
    """Unique, URL-safe ``id`` values derived from arbitrary text."""

    def __init__(self) -> None:
        self._used: set[str] = set()

    def new(self, text: str) -> str:
        base = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "x"
        anchor, n = base, 2
        while anchor in self._used:
            anchor, n = f"{base}-{n}", n + 1
        self._used.add(anchor)
        return anchor


_SEVERITY = (str(Status.INTERNAL_ERROR), *REQUIREMENT_STATUSES)


def _worst(statuses: Iterable[str]) -> str:
    """The most severe of ``statuses`` (for a DDI section's heading badge)."""
    rank = {s: i for i, s in enumerate(_SEVERITY)}
    found = [s for s in statuses if s]
    if not found:
        return NOT_RUN
    return min(found, key=lambda s: rank.get(s, len(rank)))


def _badge(status: str) -> str:
    label = status or "UNKNOWN"
    cls = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-") or "unknown"
    return f'<span class="badge st-{cls}">{_e(label)}</span>'


def _verdict_badge(verdict: str) -> str:
    cls = re.sub(r"[^a-z0-9]+", "-", verdict.lower()).strip("-") or "unknown"
    return f'<span class="badge v-{cls}">{_e(verdict)}</span>'


def _duration(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:.3f} s"
    return ""


def _e(value: Any) -> str:
    return escape(_text(value), quote=True)


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _sequence(value: Any) -> list[Any]:
    if isinstance(value, list | tuple):
        return list(value)
    return []
