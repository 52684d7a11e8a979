"""The report follows the rule, not the tag: the requirement matrix, JUnit's properties and
how each failure is reproduced alone, in the JSON, the HTML, the terminal and JUnit.

The matrix is unit-tested on hand-made check records; the rest runs the installed suite
in a subprocess on mutants (as a driver team would), with the fast ``quick`` profile.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests import killmatrix as km
from tests import mutants as m
from wddm_conformance.report import FAILING, NOT_JUDGED, requirement_matrix

ROOT = Path(__file__).resolve().parent.parent
PROPERTY_CHECK = "test_gpu_memory_matches_the_program_model and default"


def record(test: str, status: str, tags: list[str], violated: str = "") -> dict[str, Any]:
    return {"id": test, "status": status, "requirements": tags, "violated": violated}


def rows(*records: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in requirement_matrix(list(records))}


# ------------------------------------------------------------------------- the matrix


def test_a_check_failing_on_another_rule_fails_that_rule_and_leaves_its_tags_not_judged() -> None:
    got = rows(
        record("a.py::x", "FAIL", ["REN-STATUS", "REN-TRANSLATE"], "REN-PREPATCH"),
        record("a.py::y", "FAIL", ["REN-STATUS"], "REN-PREPATCH"),
        record("a.py::z", "PASS", ["REN-STATUS"]),
    )
    assert got["REN-PREPATCH"]["status"] == "FAIL"
    assert got["REN-PREPATCH"]["failures"] == ["a.py::x", "a.py::y"]
    status = got["REN-STATUS"]
    assert status["status"] == NOT_JUDGED  # one check passed, two never judged it
    assert status["failures"] == []
    assert status["blocked_by"] == [
        {"by": "REN-PREPATCH", "status": "FAIL", "checks": ["a.py::x", "a.py::y"]}
    ]
    assert status["note"] == "not judged: blocked by REN-PREPATCH (check a.py::x and 1 more)"
    assert got["REN-TRANSLATE"]["note"] == "not judged: blocked by REN-PREPATCH (check a.py::x)"
    assert status["tests"] == 3


def test_a_check_failing_on_its_own_rule_judges_only_that_rule() -> None:
    got = rows(record("a.py::x", "FAIL", ["REN-STATUS", "REN-TRANSLATE"], "REN-TRANSLATE"))
    assert got["REN-TRANSLATE"]["status"] == "FAIL"
    assert got["REN-STATUS"]["status"] == NOT_JUDGED
    assert got["REN-TRANSLATE"]["blocked_by"] == []


@pytest.mark.parametrize("status", ["CRASH", "TIMEOUT"])
def test_a_crash_or_timeout_with_a_rule_counts_for_that_rule(status: str) -> None:
    got = rows(
        record("a.py::x", status, ["PGB-MAP"], "ALL-NORAISE"),
        record("a.py::y", "FAIL", ["ALL-NORAISE"], "ALL-NORAISE"),
    )
    assert got["ALL-NORAISE"]["status"] == status  # the worst of the checks naming it
    assert got["PGB-MAP"]["status"] == NOT_JUDGED
    assert got["PGB-MAP"]["blocked_by"][0]["status"] == status


@pytest.mark.parametrize(
    ("status", "words"),
    [
        ("CRASH", "a CRASH that names no rule"),
        ("TIMEOUT", "a TIMEOUT that names no rule"),
        ("INTERNAL-ERROR", "an INTERNAL-ERROR (a harness fault)"),
    ],
)
def test_a_check_that_failed_on_no_rule_leaves_its_tags_not_judged(status: str, words: str) -> None:
    got = rows(record("a.py::x", status, ["PGB-MAP", "PGB-UNMAP"]))
    for rid in ("PGB-MAP", "PGB-UNMAP"):
        assert got[rid]["status"] == NOT_JUDGED
        assert got[rid]["note"] == f"not judged: blocked by {words} (check a.py::x)"
    assert not [r for r in got.values() if r["status"] in FAILING]


def test_passes_skips_and_the_rest() -> None:
    got = rows(
        record("a.py::x", "PASS", ["REN-STATUS"]),
        record("a.py::y", "SKIP", ["REN-STATUS", "REN-CONTRACT"]),
        record("a.py::z", "PASS", ["REN-IRQL"]),
    )
    assert got["REN-STATUS"]["status"] == "PASS"
    assert got["REN-CONTRACT"]["status"] == "SKIP"
    assert got["REN-TRANSLATE"]["status"] == "NOT-RUN"
    assert got["REN-IRQL"]["status"] == "DOCUMENTED-ONLY"
    assert all(r["note"] == "" for r in got.values())


def test_a_documented_only_rule_a_check_failed_on_takes_that_verdict() -> None:
    """A WDK-style native driver's runtime judges REN-IRQL (a lock held at return is 0x4A)."""
    got = rows(record("a.py::x", "CRASH", ["PGB-MAP"], "REN-IRQL"))
    assert got["REN-IRQL"]["status"] == "CRASH"
    assert got["REN-IRQL"]["failures"] == ["a.py::x"]
    assert got["REN-IRQL"]["documented_only"] is True


# ------------------------------------------------------------------------- reproducing alone


def _report(nodeid: str, path: str) -> pytest.TestReport:
    return pytest.TestReport(nodeid, (path, 1, "x"), {}, "failed", None, "call")


def test_the_check_command_selects_the_check_by_module_with_the_runs_options() -> None:
    from wddm_conformance.driver import load_driver
    from wddm_conformance.kernel import KernelMode
    from wddm_conformance.plugin import check_command, check_id
    from wddm_conformance.run import Run

    options = ["--wddm-driver=reference", "--hypothesis-seed=1", "--isolate=none"]
    run = Run(load_driver("reference"), KernelMode(), 0, 5.0, "pytest", options=options)
    in_checkout = _report(
        "wddm_conformance/suite/test_render.py::test_x[a b]",
        "wddm_conformance/suite/test_render.py",
    )
    assert check_command(run, in_checkout) == (
        "pytest --pyargs 'wddm_conformance.suite.test_render::test_x[a b]' "
        "--wddm-driver=reference --hypothesis-seed=1 --isolate=none"
    )
    # a seed hypothesis printed for the failure replaces the run's
    assert check_command(run, in_checkout, "--hypothesis-seed=9").endswith(
        "--wddm-driver=reference --isolate=none --hypothesis-seed=9"
    )
    # the node ID pytest gives a check whose file was the argument names no file
    alone = _report("::test_x", "../venv/site-packages/wddm_conformance/suite/test_patch.py")
    assert check_id(alone) == "test_patch.py::test_x"
    assert check_command(run, alone).startswith(
        "pytest --pyargs wddm_conformance.suite.test_patch::"
    )
    # a test of another project keeps its node ID
    other = _report("tests/test_render.py::test_y", "tests/test_render.py")
    assert check_command(run, other).startswith("pytest tests/test_render.py::test_y --wddm-")


def test_hypothesis_reproduction_is_read_from_notes_and_report_sections() -> None:
    from wddm_conformance.plugin import _hypothesis_reproduction

    class Item:
        hypothesis_report_information = ""

    exc = ExceptionGroup("two", [ValueError("a"), ValueError("b")])
    exc.exceptions[1].add_note("You can reproduce ... @reproduce_failure('6.1', b'AAE=') as a")
    report = _report("a.py::t", "a.py")
    report.sections.append(("Hypothesis", "or by running pytest with --hypothesis-seed=42."))
    item: Any = Item()
    assert _hypothesis_reproduction(item, report, exc) == (
        "@reproduce_failure('6.1', b'AAE=')",
        "--hypothesis-seed=42",
    )
    assert _hypothesis_reproduction(item, _report("a.py::t", "a.py"), ValueError()) == ("", "")


# ------------------------------------------------------------------------- running the suite


@dataclass
class Result:
    returncode: int
    stdout: str
    report: dict[str, Any]
    html: str
    junit: ET.Element

    def tests(self) -> dict[str, dict[str, Any]]:
        return {t["id"]: t for t in self.report["tests"]}

    def failing(self) -> list[dict[str, Any]]:
        return [t for t in self.report["tests"] if t["status"] not in ("PASS", "SKIP")]

    def matrix(self) -> dict[str, dict[str, Any]]:
        return {r["id"]: r for r in self.report["requirements"]}

    def properties(self) -> dict[str, dict[str, str]]:
        """JUnit testcase name -> its properties."""
        return {
            str(case.get("name")): {
                str(p.get("name")): str(p.get("value")) for p in case.iter("property")
            }
            for case in self.junit.iter("testcase")
        }


def run_suite(
    tmp: Path, *args: str, env: dict[str, str] | None = None, suite: bool = True
) -> Result:
    """Run pytest on the installed suite (``suite``: the whole suite, else what ``args``
    select) in ``tmp``, writing every report."""
    out = tmp / "out"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:randomly",
            "-o",
            "addopts=",
            *(["--pyargs", "wddm_conformance.suite"] if suite else []),
            f"--report-json={out / 'report.json'}",
            f"--report-html={out / 'report.html'}",
            f"--junitxml={out / 'junit.xml'}",
            *args,
        ],
        cwd=tmp,
        env={**_env(), **(env or {})},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert (out / "report.json").exists(), result.stdout + result.stderr
    return Result(
        result.returncode,
        result.stdout,
        json.loads((out / "report.json").read_text()),
        (out / "report.html").read_text(),
        ET.parse(out / "junit.xml").getroot(),
    )


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "HYPOTHESIS_PROFILE")}
    env["PYTHONPATH"] = str(ROOT)  # the mutants live in this checkout
    return env


@pytest.fixture(scope="module")
def no_prepatch(tmp_path_factory: pytest.TempPathFactory) -> Result:
    """The whole suite (fuzz replay included) on a driver that breaks only REN-PREPATCH."""
    tmp = tmp_path_factory.mktemp("no-prepatch")
    return run_suite(tmp, f"--driver={km.spec(m.NoPrePatch)}", "--hypothesis-profile=quick")


def _html_statuses(html: str) -> dict[str, str]:
    """Requirement ID -> the status badge of its matrix row."""
    found = re.findall(
        r'<tr[^>]*>\s*<td class=mono>([A-Z]{3}-[A-Z0-9]+)</td>.*?badge st-[a-z-]+">([A-Z-]+)<',
        html,
    )
    return dict(found)


def test_a_driver_breaking_one_rule_fails_only_that_rule_everywhere(no_prepatch: Result) -> None:
    r = no_prepatch
    assert len(r.failing()) > 15 and {t["violated"] for t in r.failing()} == {"REN-PREPATCH"}
    matrix = r.matrix()
    # JSON: one requirement fails; every other one a failing check is tagged with is not judged
    assert {i for i, row in matrix.items() if row["status"] in FAILING} == {"REN-PREPATCH"}
    tagged = {i for t in r.failing() for i in t["requirements"]} - {"REN-PREPATCH"}
    assert len(tagged) >= 20
    assert {i for i, row in matrix.items() if row["status"] == NOT_JUDGED} == tagged
    for rid in tagged:
        assert matrix[rid]["note"].startswith("not judged: blocked by REN-PREPATCH (check "), rid
    # HTML: the same statuses, and the blocking rule and check named in the row
    assert _html_statuses(r.html) == {i: row["status"] for i, row in matrix.items()}
    row = re.search(r'<tr id="req-REN-STATUS">.*?</tr>', r.html, flags=re.S)
    assert row is not None
    assert 'st-not-judged">NOT-JUDGED<' in row.group(0)
    assert "not judged: blocked by <a " in row.group(0) and ">REN-PREPATCH</a>" in row.group(0)
    # terminal: the failing IDs, and the others grouped under what blocked them
    assert "\nFAIL           REN-PREPATCH\n" in r.stdout
    blocked = re.search(r"\nNOT-JUDGED     blocked by REN-PREPATCH: (.*)\n", r.stdout)
    assert blocked is not None and set(blocked.group(1).split(", ")) == tagged
    # JUnit: the broken rule and the IDs left unjudged, per testcase
    props = r.properties()
    junit_failing = {n: p for n, p in props.items() if p["wddm.status"] not in ("PASS", "SKIP")}
    assert len(junit_failing) == len(r.failing())
    assert {p["wddm.violated"] for p in junit_failing.values()} == {"REN-PREPATCH"}
    unjudged = {i for p in junit_failing.values() for i in p["wddm.not_judged"].split(",") if i}
    assert unjudged == tagged


def test_junit_carries_each_checks_verdict_as_properties(no_prepatch: Result) -> None:
    props = no_prepatch.properties()
    tests = no_prepatch.tests()
    assert len(props) == len(tests)
    case = props["test_a_submission_reaches_only_its_own_allocations"]
    record = tests["test_across.py::test_a_submission_reaches_only_its_own_allocations"]
    assert case["wddm.status"] == "FAIL"
    assert case["wddm.violated"] == "REN-PREPATCH"
    assert case["wddm.requirements"] == "ALL-ISOLATION"
    assert case["wddm.not_judged"] == "ALL-ISOLATION"
    assert case["wddm.ddi"] == "DxgkDdiRender"
    assert case["wddm.bugcheck.code"] == case["wddm.bugcheck.parameters"] == ""
    assert case["wddm.reproduce"] == record["reproduce"]["command"]
    assert json.loads(case["wddm"]) == record  # the whole record, as before
    passing = next(p for p in props.values() if p["wddm.status"] == "PASS")
    assert passing["wddm.violated"] == passing["wddm.not_judged"] == ""


def test_each_failure_says_how_to_run_it_alone(no_prepatch: Result, tmp_path: Path) -> None:
    failing = no_prepatch.failing()
    for t in failing:
        command = t["reproduce"]["command"]
        module, name = t["id"].removesuffix("]").split("[")[0].split("::")
        assert command.startswith(
            f"pytest --pyargs 'wddm_conformance.suite.{module.removesuffix('.py')}::{name}"
        ) or command.startswith(
            f"pytest --pyargs wddm_conformance.suite.{module.removesuffix('.py')}::{name} "
        ), command
        assert "--wddm-driver=tests.mutants:NoPrePatch" in command
        assert "--hypothesis-profile=quick" in command
        assert f"               alone: {command}\n" in no_prepatch.stdout
        assert t["reproduce"]["hypothesis"] == ""  # the quick profile prints no blob
    article = re.search(r'<article class="failure".*?</article>', no_prepatch.html, flags=re.S)
    assert article is not None and "<th>Run alone</th><td><code class=cmd>pytest --pyargs" in (
        article.group(0)
    )
    # the command is exact: it runs that one check, with the same result and record ID
    t = next(t for t in failing if "[" in t["id"])
    argv = shlex.split(t["reproduce"]["command"])
    assert argv[0] == "pytest"
    alone = run_suite(tmp_path, *argv[1:], suite=False)
    assert [(a["id"], a["status"], a["violated"]) for a in alone.report["tests"]] == [
        (t["id"], t["status"], t["violated"])
    ]
    assert alone.report["tests"][0]["reproduce"]["command"] == t["reproduce"]["command"]


def test_a_replayed_fuzz_input_says_how_to_replay_it(no_prepatch: Result, tmp_path: Path) -> None:
    replays = [t for t in no_prepatch.failing() if t["id"].startswith("test_fuzz_replay.py::")]
    assert replays
    for t in replays:
        fuzz = t["reproduce"]["fuzz"]
        assert fuzz.startswith("wddm-conformance fuzz repro "), fuzz
        assert f"               fuzz input: {fuzz}\n" in no_prepatch.stdout
        assert no_prepatch.properties()[t["id"].split("::")[1]]["wddm.reproduce.fuzz"] == fuzz
    assert "<th>Fuzz input</th><td><code class=cmd>wddm-conformance fuzz repro " in (
        no_prepatch.html
    )
    argv = shlex.split(replays[0]["reproduce"]["fuzz"])
    assert Path(argv[3]).is_file() and "--driver=tests.mutants:NoPrePatch" in argv
    replayed = subprocess.run(
        [sys.executable, "-m", "wddm_conformance", *argv[1:]],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert replayed.returncode == 1, replayed.stdout + replayed.stderr  # it still finds it
    assert "REN-PREPATCH" in replayed.stdout


def test_a_property_check_gives_hypothesis_reproduction(tmp_path: Path) -> None:
    r = run_suite(
        tmp_path,
        f"--driver={km.spec(m.NoPrePatch)}",
        "--hypothesis-profile=ci",  # hypothesis' own CI profile prints the blob
        "-k",
        PROPERTY_CHECK,
    )
    (t,) = r.report["tests"]
    blob = t["reproduce"]["hypothesis"]
    assert re.fullmatch(r"@reproduce_failure\('[\d.]+', b'[A-Za-z0-9+/=]+'\)", blob), blob
    assert f"               hypothesis: {blob} (add it to the check)\n" in r.stdout
    assert (
        f"<th>Hypothesis</th><td><code class=cmd>{blob.replace(chr(39), '&#x27;')}</code>" in r.html
    )
    (props,) = r.properties().values()
    assert props["wddm.reproduce.hypothesis"] == blob


def test_the_commands_keep_the_runs_hypothesis_seed_and_fuzz_regressions(tmp_path: Path) -> None:
    regressions = tmp_path / "regressions"
    (regressions / "render").mkdir(parents=True)
    r = run_suite(
        tmp_path,
        f"--driver={km.spec(m.NoPrePatch)}",
        "--hypothesis-profile=quick",
        "--hypothesis-seed=7",
        f"--fuzz-regressions={regressions}",
        "-k",
        "test_fuzz_inputs_replay_cleanly and render",
    )
    (t,) = r.report["tests"]
    assert t["reproduce"]["command"].endswith(
        f"--hypothesis-seed=7 --fuzz-regressions={regressions}"
    )
    assert f"--hypothesis-seed=7 --fuzz-regressions={regressions}" in r.report["run"]["command"]


DIES = """
import os, signal
from wddm_conformance.reference.miniport import ReferenceMiniport


class SegfaultsInRender(ReferenceMiniport):
    def render(self, hContext, args):
        os.kill(os.getpid(), signal.SIGSEGV)
"""


def test_a_check_whose_process_died_has_its_properties_in_junit(tmp_path: Path) -> None:
    (tmp_path / "dying_driver.py").write_text(DIES)
    r = run_suite(
        tmp_path,
        "--driver=dying_driver:SegfaultsInRender",
        "--hypothesis-profile=quick",
        "-k",
        "test_pre_patched_buffer_reaches_resident_allocations_without_a_patch_call",
        env={"PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"},
    )
    (t,) = r.report["tests"]
    assert (t["status"], t["violated"]) == ("CRASH", "ALL-NORAISE")
    (props,) = r.properties().values()
    assert props["wddm.status"] == "CRASH"
    assert props["wddm.violated"] == "ALL-NORAISE"
    assert props["wddm.not_judged"] == "REN-PREPATCH"
    assert props["wddm.bugcheck.code"] == "0x1E"
    assert props["wddm.bugcheck.parameters"] == "0xC0000005,0x0,0x0,0x0"
    assert props["wddm.reproduce"] == t["reproduce"]["command"]
    assert r.matrix()["REN-PREPATCH"]["status"] == NOT_JUDGED
    assert r.matrix()["ALL-NORAISE"]["status"] == "CRASH"


@pytest.mark.parametrize("driver", [m.PatchFails, m.DiscardClobbers, m.TrustsPagedOut])
def test_a_mutants_matrix_fails_only_the_ids_it_breaks(driver: type) -> None:
    """A few rows of the kill matrix (all of them: tests/test_kill_matrix.py): a CRASH
    with a bug check, CRASH and FAIL mixed, FAIL."""
    report = km.run_suite(km.spec(driver), *km.options(driver))
    failing = {r["id"] for r in report["requirements"] if r["status"] in FAILING}
    assert failing == km.expected(driver)
    assert any(r["status"] == NOT_JUDGED for r in report["requirements"])


def test_a_property_check_run_alone_is_named_by_its_module_not_its_decorator(
    tmp_path: Path,
) -> None:
    """The check's node ID has no file when it is the collection argument; its ID and its
    "alone" command come from its module, not from release.py (per_example wraps it)."""
    name = "test_properties::test_malformed_command_buffers_are_rejected_or_stay_isolated"
    result = run_suite(
        tmp_path,
        "--pyargs",
        f"wddm_conformance.suite.{name}",
        "--driver=tests.mutants:BadRenderStatus",
        suite=False,
    )
    (check,) = result.report["tests"]
    assert check["id"] == name.replace("::", ".py::")
    assert f"--pyargs wddm_conformance.suite.{name} " in check["reproduce"]["command"]
    assert "release.py" not in result.stdout
