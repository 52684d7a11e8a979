"""Unit tests for wddm_conformance.report_html: the self-contained HTML report page."""

from __future__ import annotations

import copy
import re
from html.parser import HTMLParser
from typing import Any

import pytest

from wddm_conformance.report_html import render_html

XSS = "<script>alert(1)</script>"


def _listing(lines: int, mark: int) -> str:
    """A disassembly listing shaped like wddm_conformance.reference.isa.disassemble output."""
    return "\n".join(
        f"{'=>' if i == mark else '  '} +0x{i * 8:04X}  op{i}    r{i}, r{i + 1}"
        for i in range(lines)
    )


def _sample() -> dict[str, Any]:
    return {
        "harness": {"name": "wddm-conformance", "version": "0.1.0", "contract": "1.0"},
        "run": {
            "driver": "reference",
            "driver_class": "wddm_conformance.reference.miniport:ReferenceMiniport",
            "kernel_mode": "default",
            "seed": 1234,
            "ddi_timeout": 5.0,
            "hypothesis_profile": "ci",
            "python": "3.11.2",
            "baseline": "baselines/ref.csv",
            "command": "pytest --driver=reference --seed=1234",
        },
        "summary": {
            "PASS": 1,
            "FAIL": 1,
            "CRASH": 1,
            "TIMEOUT": 0,
            "SKIP": 1,
            "INTERNAL-ERROR": 0,
            "unexpected": 1,
            "expected": 1,
        },
        "tests": [
            {
                "id": "test_render.py::test_render_pre_patches[default]",
                "nodeid": "wddm_conformance/suite/test_render.py::test_render_pre_patches[default]",
                "status": "FAIL",
                "expected": None,
                "verdict": "unexpected",
                "requirements": ["REN-PREPATCH"],
                "violated": "REN-PREPATCH",
                "ddi": "DxgkDdiRender",
                "message": "the DMA buffer it built faulted on the GPU: page fault\n"
                + _listing(40, mark=20)
                + f"\ndriver said: {XSS} & \"quoted\" 'too'",
                "bugcheck": "",
                "duration": 0.012,
            },
            {
                "id": "test_paging.py::test_fill_crash",
                "nodeid": "wddm_conformance/suite/test_paging.py::test_fill_crash",
                "status": "CRASH",
                "expected": "CRASH",
                "verdict": "expected",
                "requirements": ["BPB-FILL"],
                "violated": "BPB-FILL",
                "ddi": "DxgkDdiBuildPagingBuffer",
                "message": "short message",
                "bugcheck": "BugCheck 0x119 (VIDEO_SCHEDULER_INTERNAL_ERROR) (0x3, 0x0, 0x0, 0x0)",
                "duration": 0.5,
            },
            {
                "id": "test_patch.py::test_patch_ok",
                "nodeid": "wddm_conformance/suite/test_patch.py::test_patch_ok",
                "status": "PASS",
                "expected": None,
                "verdict": "ok",
                "requirements": ["PAT-OK"],
                "violated": "",
                "ddi": "",
                "message": "",
                "bugcheck": "",
                "duration": 0.001,
            },
            {
                "id": "test_patch.py::test_optional_swizzle",
                "nodeid": "wddm_conformance/suite/test_patch.py::test_optional_swizzle",
                "status": "SKIP",
                "expected": None,
                "verdict": "ok",
                "requirements": ["PAT-OK"],
                "violated": "",
                "ddi": "",
                "message": "driver declares no swizzled <tiling> support",
                "bugcheck": "",
                "duration": 0.0,
            },
        ],
        "requirements": [
            {
                "id": "REN-PREPATCH",
                "ddi": "DxgkDdiRender",
                "text": "When an allocation-list element has SegmentId ≠ 0, the driver "
                "pre-patches the DMA buffer with its address & keeps it <valid>.",
                "oracle": "gpu",
                "documented_only": False,
                "status": "FAIL",
                "tests": 1,
                "failures": ["test_render.py::test_render_pre_patches[default]"],
            },
            {
                "id": "PAT-OK",
                "ddi": "DxgkDdiPatch",
                "text": "Patch writes each patch-location address.",
                "oracle": "memory",
                "documented_only": False,
                "status": "PASS",
                "tests": 2,
                "failures": [],
            },
            {
                "id": "BPB-FILL",
                "ddi": "DxgkDdiBuildPagingBuffer",
                "text": "A fill operation writes the fill pattern over the whole range.",
                "oracle": "gpu",
                "documented_only": False,
                "status": "CRASH",
                "tests": 1,
                "failures": ["test_paging.py::test_fill_crash"],
            },
            {
                "id": "ALL-IRQL",
                "ddi": "Across the DDIs",
                "text": "DDIs are called at PASSIVE_LEVEL.",
                "oracle": "",
                "documented_only": True,
                "status": "DOCUMENTED-ONLY",
                "tests": 0,
                "failures": [],
            },
        ],
    }


@pytest.fixture(scope="module")
def page() -> str:
    return render_html(_sample())


class _Collector(HTMLParser):
    """Collects ids, hrefs, srcs and tag names from a page."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.hrefs: list[str] = []
        self.srcs: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if name == "id" and value is not None:
                self.ids.append(value)
            elif name == "href" and value is not None:
                self.hrefs.append(value)
            elif name == "src" and value is not None:
                self.srcs.append(value)


def _collect(html: str) -> _Collector:
    parser = _Collector()
    parser.feed(html)
    parser.close()
    return parser


def _failure_article(page: str, test_id: str) -> str:
    """The <article> of the failure whose heading names ``test_id``."""
    for article in re.findall(r"<article\b.*?</article>", page, flags=re.S):
        if f">{test_id}<" in article:
            return str(article)
    raise AssertionError(f"no failure article for {test_id}")


def test_is_a_complete_html_document(page: str) -> None:
    assert page.startswith("<!DOCTYPE html>")
    assert page.rstrip().endswith("</html>")
    for tag in ("<html", "<head>", '<meta charset="utf-8">', "<title>", "<style>", "<body>"):
        assert tag in page, tag


def test_header_shows_harness_and_how_to_repeat_the_run(page: str) -> None:
    for text in (
        "wddm-conformance",
        "0.1.0",
        "contract 1.0",
        "wddm_conformance.reference.miniport:ReferenceMiniport",
        "1234",
        "5.0",
        "ci",
        "3.11.2",
        "baselines/ref.csv",
        "pytest --driver=reference --seed=1234",
    ):
        assert text in page, text


def test_every_requirement_and_status_is_listed(page: str) -> None:
    for rid in ("REN-PREPATCH", "PAT-OK", "BPB-FILL", "ALL-IRQL"):
        assert rid in page, rid
    for status in ("PASS", "FAIL", "CRASH", "SKIP", "DOCUMENTED-ONLY"):
        assert f"st-{status.lower()}" in page, status
        assert f">{status}</span>" in page, status


def test_requirement_tables_follow_ddi_order(page: str) -> None:
    headings = re.findall(r"<h3>([^<]+) <span", page)
    assert headings == [
        "DxgkDdiRender",
        "DxgkDdiPatch",
        "DxgkDdiBuildPagingBuffer",
        "Across the DDIs",
    ]


def test_documented_only_row_is_shown_as_such(page: str) -> None:
    row = re.search(r'<tr class="documented-only"[^>]*>.*?</tr>', page, flags=re.S)
    assert row is not None
    assert "ALL-IRQL" in row.group(0)
    assert "documented only" in row.group(0)
    assert "DOCUMENTED-ONLY" in row.group(0)


def test_failing_requirement_links_to_its_failure_anchor(page: str) -> None:
    parsed = _collect(page)
    row = re.search(r"<tr[^>]*>\s*<td class=mono>REN-PREPATCH</td>.*?</tr>", page, flags=re.S)
    assert row is not None
    targets = re.findall(r'href="#([^"]+)"', row.group(0))
    assert targets, "a failing requirement links to its failures"
    article = _failure_article(page, "test_render.py::test_render_pre_patches[default]")
    article_id = re.search(r'<article[^>]*id="([^"]+)"', article)
    assert article_id is not None
    assert all(t == article_id.group(1) for t in targets)
    assert article_id.group(1) in parsed.ids
    # every internal link resolves to an element on the page; ids are unique
    assert len(parsed.ids) == len(set(parsed.ids))
    for href in parsed.hrefs:
        assert href.startswith("#") and href[1:] in parsed.ids, href


def test_failure_shows_verdict_violated_requirement_text_and_ddi(page: str) -> None:
    article = _failure_article(page, "test_render.py::test_render_pre_patches[default]")
    assert "v-unexpected" in article
    assert "st-fail" in article
    assert "REN-PREPATCH" in article
    assert "SegmentId ≠ 0" in article
    assert "address &amp; keeps it &lt;valid&gt;." in article  # full text, escaped
    assert "DxgkDdiRender" in article
    crash = _failure_article(page, "test_paging.py::test_fill_crash")
    assert "v-expected" in crash
    assert "BugCheck 0x119 (VIDEO_SCHEDULER_INTERNAL_ERROR)" in crash
    assert "A fill operation writes the fill pattern" in crash
    section = re.search(r'<section id="failures">.*?</section>', page, flags=re.S)
    assert section is not None
    assert "test_patch_ok" not in section.group(0)  # PASS and SKIP are not failures


def test_message_text_is_escaped(page: str) -> None:
    assert XSS not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&amp; &quot;quoted&quot; &#x27;too&#x27;" in page
    assert "no swizzled &lt;tiling&gt; support" in page
    assert "<script" not in page.lower()


def test_faulting_instruction_is_highlighted_and_long_listing_elided(page: str) -> None:
    article = _failure_article(page, "test_render.py::test_render_pre_patches[default]")
    marked = re.findall(r'<mark class="fault">(.*?)</mark>', article)
    assert marked == ["=&gt; +0x00A0  op20    r20, r21"]
    pre = re.search(r"<pre>(.*?)</pre>", article, flags=re.S)
    assert pre is not None
    listing = [line for line in pre.group(1).split("\n") if "+0x" in line]
    assert len(listing) <= 13
    assert "op14 " in pre.group(1) and "op25 " in pre.group(1)
    assert "op0 " not in pre.group(1) and "op39 " not in pre.group(1)
    assert "… 14 lines elided" in pre.group(1)  # op0..op13
    assert "… 14 lines elided" in pre.group(1).split("op20")[0]
    assert "… 14 lines elided" in pre.group(1).split("op20")[1]  # op26..op39
    # text around the listing is kept in full
    assert "the DMA buffer it built faulted on the GPU: page fault" in pre.group(1)
    assert "driver said:" in pre.group(1)


def test_short_listing_is_not_elided() -> None:
    report = _sample()
    report["tests"][0]["message"] = "fault\n" + _listing(8, mark=3)
    page = render_html(report)
    assert "elided" not in page.split("<style>")[1].split("</style>")[1]
    for i in range(8):
        assert f"op{i} " in page


def test_skipped_tests_list_their_reason(page: str) -> None:
    section = re.search(r'<section id="skipped">.*?</section>', page, flags=re.S)
    assert section is not None
    assert "test_patch.py::test_optional_swizzle" in section.group(0)
    assert "driver declares no swizzled &lt;tiling&gt; support" in section.group(0)


def test_full_test_table_lists_every_test(page: str) -> None:
    section = re.search(r'<section id="tests">.*?</section>', page, flags=re.S)
    assert section is not None
    assert "<details>" in section.group(0)
    for t in _sample()["tests"]:
        assert t["id"] in section.group(0)
    assert "0.012 s" in section.group(0)


def test_summary_counts_and_verdicts(page: str) -> None:
    section = re.search(r'<section id="summary">.*?</section>', page, flags=re.S)
    assert section is not None
    text = section.group(0)
    assert "1 unexpected result " in text
    assert re.search(r"st-crash\">CRASH</span></td><td class=num>1<", text)
    assert re.search(r"Total</th><th class=num>4<", text)


def test_no_external_resources(page: str) -> None:
    parsed = _collect(page)
    assert not parsed.srcs
    assert not any(h.startswith(("http:", "https:", "//")) for h in parsed.hrefs)
    assert "<link" not in page
    assert "@import" not in page
    assert "url(" not in page


def test_empty_tests_and_requirements() -> None:
    report = _sample()
    report["tests"] = []
    report["requirements"] = []
    page = render_html(report)
    assert page.startswith("<!DOCTYPE html>")
    assert "Failures (0)" in page
    assert "Skipped (0)" in page
    assert "0 tests" in page


def test_missing_optional_keys_do_not_raise() -> None:
    report = copy.deepcopy(_sample())
    for t in report["tests"]:
        for key in ("bugcheck", "violated", "expected", "ddi", "nodeid", "duration"):
            t.pop(key)
    for r in report["requirements"]:
        r.pop("failures")
        r.pop("documented_only")
    del report["run"]["baseline"]
    page = render_html(report)
    assert "Bug check" not in page
    assert "none" in page  # no baseline
    # without a "failures" list the failing requirement still links to its failure
    row = re.search(r"<tr[^>]*>\s*<td class=mono>REN-PREPATCH</td>.*?</tr>", page, flags=re.S)
    assert row is not None and 'href="#failure-' in row.group(0)


def test_minimal_report() -> None:
    page = render_html({})
    assert page.startswith("<!DOCTYPE html>")
    assert "No unexpected results." in page
    assert page.rstrip().endswith("</html>")


def _with_blocked_requirement() -> dict[str, Any]:
    """The sample where the failing check is also tagged with PAT-OK, which it never judged,
    and says how to reproduce it alone."""
    report = copy.deepcopy(_sample())
    failing = report["tests"][0]
    failing["requirements"] = ["REN-PREPATCH", "PAT-OK"]
    failing["reproduce"] = {
        "command": "pytest --pyargs 'wddm_conformance.suite.test_render::test_render_pre_patches"
        "[default]' --wddm-driver=mydriver:Miniport --kernel-mode=default --wddm-seed=1234",
        "hypothesis": "@reproduce_failure('6.170.17', b'AAFBAkEAQQBBAAA=')",
        "fuzz": "wddm-conformance fuzz repro corpora/render/x --target=render --driver=<d>",
    }
    ok = report["requirements"][1]
    ok["status"] = "NOT-JUDGED"
    ok["blocked_by"] = [{"by": "REN-PREPATCH", "status": "FAIL", "checks": [failing["id"]]}]
    ok["note"] = f"not judged: blocked by REN-PREPATCH (check {failing['id']})"
    return report


def test_a_requirement_not_judged_names_the_rule_and_check_that_blocked_it() -> None:
    page = render_html(_with_blocked_requirement())
    row = re.search(r"<tr[^>]*>\s*<td class=mono>PAT-OK</td>.*?</tr>", page, flags=re.S)
    assert row is not None
    assert 'st-not-judged">NOT-JUDGED<' in row.group(0)
    assert "not judged: blocked by " in row.group(0)
    article = _failure_article(page, "test_render.py::test_render_pre_patches[default]")
    anchor = re.search(r'<article[^>]*id="([^"]+)"', article)
    assert anchor is not None
    assert f'href="#{anchor.group(1)}" class=mono>test_render.py::' in row.group(0)
    assert 'href="#req-REN-PREPATCH"' in row.group(0)
    assert "<th>Not judged</th>" in article and ">PAT-OK</a>" in article
    assert re.search(r"<h3>DxgkDdiPatch <span class=\"badge st-not-judged\">", page)
    parsed = _collect(page)
    for href in parsed.hrefs:
        assert href[1:] in parsed.ids, href


def test_a_failure_says_how_to_reproduce_it_alone_and_the_commands_wrap() -> None:
    page = render_html(_with_blocked_requirement())
    article = _failure_article(page, "test_render.py::test_render_pre_patches[default]")
    assert (
        "<th>Run alone</th><td><code class=cmd>pytest --pyargs &#x27;wddm_conformance.suite."
        "test_render::test_render_pre_patches[default]&#x27; --wddm-driver=mydriver:Miniport"
    ) in article
    assert "<th>Hypothesis</th><td><code class=cmd>@reproduce_failure(&#x27;6.170.17" in article
    assert "<th>Fuzz input</th><td><code class=cmd>wddm-conformance fuzz repro corpora/" in article
    assert "--driver=&lt;d&gt;" in article
    # long IDs and commands break inside words rather than widen the page
    css = page.split("<style>")[1].split("</style>")[0]
    rule = re.search(r"td\.failures[^{]*code\.cmd[^{]*\{([^}]*)\}", css)
    assert rule is not None and "overflow-wrap: anywhere" in rule.group(1)
    assert re.search(r"code\.cmd \{[^}]*white-space: pre-wrap", css)
    assert page.count("<td class=failures>") == len(_sample()["requirements"])
