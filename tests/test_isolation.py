"""Issue 16, done when: a driver that crashes, hangs, exits, floods memory or leaves a
thread cannot take the run down or make its report wrong.

For each hostile driver of ``tests/hostile.py`` (and the C ones of
``tests/native_drivers/``) the suite runs in a subprocess, serially and under ``-n 2``,
on a few checks that reach the broken DDI and one that reaches none. Every run must end
on its own, write every report (JSON, HTML, JUnit), count every check collected in each
of them and in the terminal summary, and give each check the status, requirement ID and
DDI the row calls for. ``wddm-conformance check`` is run on the drivers too, and a real
Ctrl-C must stop the run with pytest's interrupted status and the report of what ran.

Nothing here depends on the machine's speed: the broken DDIs never return by themselves,
the limits that must not be hit are generous, and the assertions are about statuses.
"""

from __future__ import annotations

import contextlib
import html
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from tests import hostile

ROOT = Path(__file__).resolve().parent.parent
NATIVE_DRIVERS = ROOT / "tests" / "native_drivers"

#: The checks each run selects, by function: what they call decides what a row breaks.
PRIVATE = "test_valid_private_data_is_accepted"  # CreateAllocation only
TRANSLATE = "test_render_translates_every_command_of_a_valid_buffer"  # BPB, Render, Patch
RANGE = "test_patch_uses_only_the_submission_range"  # BPB, Render, Patch
TRANSFER = "test_a_transfer_moves_the_whole_allocation"  # BPB, Patch (3 parameters)
CHECKS = (PRIVATE, TRANSLATE, RANGE, TRANSFER)
#: A hung check costs its watchdog and the grace (2 s) before it is killed: fewer of them.
HANG_CHECKS = (PRIVATE, TRANSLATE)
#: Wall-clock limit of one isolated check; no honest check comes near it.
CHECK_TIMEOUT = 60
#: The suite's statuses, in the order of its terminal summary line.
STATUSES = ("PASS", "FAIL", "CRASH", "TIMEOUT", "SKIP", "INTERNAL-ERROR")
PASS = ("PASS", "", "", "")


@dataclass(frozen=True)
class Row:
    """A table row of issue 16: the driver, what the run is given, what each check ends as.

    ``outcomes``: check function -> (status, violated requirement, DDI, start of the bug
    check); a check not named passes. ``says``: text the message of every non-passing
    check contains; ``last_words``: the driver's last output, which the text of every
    non-passing check shows in its JUnit failure text.
    """

    driver: str
    outcomes: dict[str, tuple[str, str, str, str]]
    says: str
    checks: tuple[str, ...] = CHECKS
    options: tuple[str, ...] = ()
    last_words: str = ""


def render_crash(code: int) -> tuple[str, str, str, str]:
    return (
        "CRASH",
        "ALL-NORAISE",
        "DxgkDdiRender",
        f"BugCheck 0x1E (KMODE_EXCEPTION_NOT_HANDLED) (0x{code:X},",
    )


def spec(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


@cache
def native(name: str) -> str:
    """``native:`` spec of a C driver of tests/native_drivers, built on first use."""
    from wddm_conformance.native.build import NativeBuildError, build, reference_source

    try:
        lib = build(
            [NATIVE_DRIVERS / f"{name}.c"],
            name=name,
            extra_flags=[f"-I{reference_source().parent}"],
        )
    except NativeBuildError as exc:
        pytest.skip(f"no C driver without a C compiler: {exc}")
    return f"native:{lib}"


TDR = ("TIMEOUT", "ALL-BOUNDED", "DxgkDdiBuildPagingBuffer", "BugCheck 0x116 (VIDEO_TDR_FAILURE)")
EXIT = ("CRASH", "ALL-NORAISE", "DxgkDdiPatch", "")
HUGE = ("FAIL", "REN-STATUS", "DxgkDdiRender", "")
OOM = ("CRASH", "", "", "")

ROWS = {
    "swallows-watchdog": Row(
        spec(hostile.SwallowsWatchdog),
        {TRANSLATE: TDR},
        "DxgkDdiBuildPagingBuffer did not return within 1 s and did not stop when interrupted",
        HANG_CHECKS,
        ("--ddi-timeout=1",),
    ),
    "exits-in-patch": Row(
        spec(hostile.ExitsInPatch),
        {TRANSLATE: EXIT, RANGE: EXIT, TRANSFER: EXIT},
        "the check's process exited with status 3 in DxgkDdiPatch",
        last_words=f"{hostile.LAST_WORDS} exiting",
    ),
    "keyboard-interrupt": Row(
        spec(hostile.KeyboardInterruptInRender),
        {TRANSLATE: render_crash(0), RANGE: render_crash(0)},
        "DxgkDdiRender: an exception escaped the DDI: KeyboardInterrupt",
    ),
    "system-exit": Row(
        spec(hostile.SystemExitInRender),
        {TRANSLATE: render_crash(0), RANGE: render_crash(0)},
        "DxgkDdiRender: an exception escaped the DDI: SystemExit: 4",
    ),
    "segfault": Row(
        spec(hostile.SegfaultsInRender),
        {TRANSLATE: render_crash(0xC0000005), RANGE: render_crash(0xC0000005)},
        "the check's process was killed by SIGSEGV (signal 11) in DxgkDdiRender",
        last_words=f"{hostile.LAST_WORDS} reading address 0",
    ),
    "abort": Row(
        spec(hostile.AbortsInRender),
        {TRANSLATE: render_crash(0x80000003), RANGE: render_crash(0x80000003)},
        "the check's process was killed by SIGABRT (signal 6) in DxgkDdiRender",
    ),
    "c-segfault": Row(
        "native:segv_render",
        {TRANSLATE: render_crash(0xC0000005), RANGE: render_crash(0xC0000005)},
        "the check's process was killed by SIGSEGV (signal 11) in DxgkDdiRender",
        last_words=f"{hostile.LAST_WORDS} writing through NULL",
    ),
    "c-abort": Row(
        "native:abort_render",
        {TRANSLATE: render_crash(0x80000003), RANGE: render_crash(0x80000003)},
        "the check's process was killed by SIGABRT (signal 6) in DxgkDdiRender",
    ),
    # 2 GiB per instance against a 256 MiB limit: refused before a page is written, so
    # the test holds no memory; without the limit each instance really holds 2 GiB.
    "hogs-memory": Row(
        spec(hostile.HogsMemory),
        dict.fromkeys(CHECKS, OOM),
        "out of memory (the check's memory limit, --check-memory)",
        options=("--check-memory=256",),
    ),
    "leaves-thread": Row(spec(hostile.LeavesThread), {}, ""),
    "huge-status": Row(
        spec(hostile.HugeStatus),
        {TRANSLATE: HUGE, RANGE: HUGE},
        f"DxgkDdiRender: returned {hostile.HUGE:#x} (not a 32-bit NTSTATUS)",
    ),
}


def driver_spec(row: Row) -> str:
    if row.driver.startswith("native:"):
        return native(row.driver.removeprefix("native:"))
    return row.driver


def env() -> dict[str, str]:
    """The environment of a run: this checkout importable, no profile forced by CI."""
    out = {k: v for k, v in os.environ.items() if k not in ("CI", "HYPOTHESIS_PROFILE")}
    out["PYTHONPATH"] = str(ROOT)
    return out


def pytest_args(driver: str, checks: tuple[str, ...], out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pytest",
        "--pyargs",
        "wddm_conformance.suite",
        f"--wddm-driver={driver}",
        "-k",
        " or ".join(checks),
        "-p",
        "no:cacheprovider",
        "-p",
        "no:randomly",
        "-o",
        "addopts=",
        f"--report-json={out / 'report.json'}",
        f"--report-html={out / 'report.html'}",
        f"--junitxml={out / 'junit.xml'}",
        *extra,
    ]


@cache
def collected(checks: tuple[str, ...]) -> tuple[str, ...]:
    """The node IDs the suite collects for ``checks`` (on the reference driver), as the
    runs name them (relative to the suite's directory)."""
    with tempfile.TemporaryDirectory() as tmp:
        return _collected(checks, Path(tmp))


def _collected(checks: tuple[str, ...], cwd: Path) -> tuple[str, ...]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--pyargs",
            "wddm_conformance.suite",
            "--collect-only",
            "-q",
            "-k",
            " or ".join(checks),
            "-p",
            "no:cacheprovider",
            "-o",
            "addopts=",
        ],
        cwd=cwd,
        env=env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    ids = tuple(line for line in done.stdout.splitlines() if "::" in line)
    assert len(ids) >= len(checks), done.stdout
    return ids


def function(test_id: str) -> str:
    return test_id.split("::")[-1].split("[")[0]


def no_process_left(group: int) -> None:
    """Every process of the run's session has ended (a killed check leaves no orphan)."""
    end = time.monotonic() + 60
    while True:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        # A zombie still counts for killpg until its parent, or init, reaps it.
        alive = [
            p
            for p in Path("/proc").glob("[0-9]*")
            if _pgid(p) == group and _state(p) not in ("Z", "X", "")
        ]
        if not alive:
            return
        assert time.monotonic() < end, f"processes of the run still alive: {alive}"
        time.sleep(0.1)


def _stat(proc: Path) -> list[str]:
    try:
        return proc.joinpath("stat").read_text().rpartition(")")[2].split()
    except OSError:
        return []


def _pgid(proc: Path) -> int:
    fields = _stat(proc)
    return int(fields[2]) if fields else -1


def _state(proc: Path) -> str:
    fields = _stat(proc)
    return fields[0] if fields else ""


def run_suite(row: Row, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    ids = collected(row.checks)
    args = pytest_args(
        driver_spec(row), row.checks, out, f"--check-timeout={CHECK_TIMEOUT}", *row.options, *extra
    )
    process = subprocess.Popen(
        args,
        cwd=out,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        # Ends on its own within (checks x limit), with room for start-up on a busy machine.
        stdout, _ = process.communicate(timeout=120 + len(ids) * CHECK_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, _ = process.communicate()
        pytest.fail(f"the run did not end on its own:\n{stdout[-3000:]}")
    no_process_left(process.pid)
    return subprocess.CompletedProcess(args, process.returncode, stdout, "")


def expected_of(row: Row, test_id: str) -> tuple[str, str, str, str]:
    return row.outcomes.get(function(test_id), PASS)


def assert_reports(row: Row, out: Path, done: subprocess.CompletedProcess[str]) -> None:
    ids = collected(row.checks)
    want = {i: expected_of(row, i) for i in ids}
    counts = {s: sum(1 for o in want.values() if o[0] == s) for s in STATUSES}
    failing = len(ids) - counts["PASS"]
    text = done.stdout
    assert done.returncode == (1 if failing else 0), text[-3000:]

    # JSON: every check once, with its status, requirement, DDI and bug check.
    report = json.loads((out / "report.json").read_text())
    tests = {t["id"]: t for t in report["tests"]}
    assert sorted(tests) == sorted(ids) and len(report["tests"]) == len(ids)
    assert {s: report["summary"][s] for s in STATUSES} == counts
    for test_id, (status, rule, ddi, bugcheck) in want.items():
        t = tests[test_id]
        got = (t["status"], t["violated"], t["ddi"], t["bugcheck"][: len(bugcheck)])
        assert got == (status, rule, ddi, bugcheck), (test_id, t)
        if status != "PASS":
            assert row.says in t["message"], (test_id, t["message"])

    # HTML: the same counts, the total, every check.
    page = html.unescape((out / "report.html").read_text())
    for status in STATUSES:
        assert re.search(rf">{status}</span></td><td class=num>{counts[status]}<", page), status
    assert f"Total</th><th class=num>{len(ids)}<" in page
    for test_id in ids:
        assert test_id in page, test_id

    # JUnit: one test case per check, its verdict in its properties; the broken ones fail
    # (or error, when the driver cannot even be constructed) with the status first.
    suite = ET.parse(out / "junit.xml").getroot().find("testsuite")
    assert suite is not None
    assert int(suite.get("tests", -1)) == len(ids)
    assert int(suite.get("failures", -1)) + int(suite.get("errors", -1)) == failing
    assert int(suite.get("skipped", -1)) == counts["SKIP"]
    cases = {f"{c.get('classname')}.{c.get('name')}": c for c in suite.iter("testcase")}
    assert len(cases) == len(ids)
    for test_id, (status, rule, ddi, _) in want.items():
        file, _, name = test_id.partition("::")
        case = cases[f"{file.removesuffix('.py')}.{name}"]
        props = {q.get("name"): q.get("value") for q in case.iter("property")}
        got = (props.get("wddm.status"), props.get("wddm.violated"), props.get("wddm.ddi"))
        assert got == (status, rule, ddi), (test_id, props)
        problems = [*case.iter("failure"), *case.iter("error")]
        if status == "PASS":
            assert not problems, test_id
        else:
            (problem,) = problems
            message = problem.get("message", "")
            assert re.match(rf'(failed on setup with ")?{status}: ', message), (test_id, message)
            assert row.last_words in (problem.text or ""), (test_id, problem.text)

    # The terminal: the suite's own summary line, and pytest's.
    line = " ".join(f"{s}: {counts[s]}" for s in STATUSES)
    assert re.search(r"\s+".join(line.split()), text), text[-3000:]
    final = text.strip().splitlines()[-1]
    numbers = dict((w, int(n)) for n, w in re.findall(r"(\d+) (\w+)", final))
    ran = sum(numbers.get(w, 0) for w in ("passed", "failed", "error", "errors", "skipped"))
    assert ran == len(ids), final
    assert "report written to" in text


@pytest.mark.parametrize("workers", ["serial", "-n 2"])
@pytest.mark.parametrize("name", ROWS)
def test_a_hostile_driver_ends_only_its_own_checks_and_every_report_counts_them(
    name: str, workers: str, tmp_path: Path
) -> None:
    row = ROWS[name]
    extra = ("-n", "2") if workers == "-n 2" else ()
    done = run_suite(row, tmp_path, *extra)
    assert_reports(row, tmp_path, done)


@pytest.mark.parametrize("name", ["keyboard-interrupt", "system-exit"])
def test_a_base_exception_a_driver_raises_is_0x1e_in_the_run_s_own_process_too(
    name: str, tmp_path: Path
) -> None:
    """Without isolation (``--isolate=none``) the run goes on too: it is the DDI caller,
    not the child process, that makes the driver's KeyboardInterrupt or SystemExit a 0x1E."""
    row = ROWS[name]
    done = run_suite(row, tmp_path, "--isolate=none")
    assert "isolation: none" in done.stdout
    assert_reports(row, tmp_path, done)


# ------------------------------------------------------------------------------- check

CHECK_ROWS = {
    "swallows-watchdog": (
        spec(hostile.SwallowsWatchdog),
        "TIMEOUT",
        "BugCheck 0x116 (VIDEO_TDR_FAILURE) (0x0, 0x0, 0x0, 0x0) [ALL-BOUNDED] "
        "DxgkDdiBuildPagingBuffer did not return within 1 s and did not stop when interrupted",
    ),
    "exits-in-patch": (
        spec(hostile.ExitsInPatch),
        "CRASH",
        "[ALL-NORAISE] the mode's process exited with status 3 in DxgkDdiPatch",
    ),
    "keyboard-interrupt": (
        spec(hostile.KeyboardInterruptInRender),
        "CRASH",
        "BugCheck 0x1E (KMODE_EXCEPTION_NOT_HANDLED) (0x0, 0x0, 0x0, 0x0) [ALL-NORAISE] "
        "DxgkDdiRender: an exception escaped the DDI: KeyboardInterrupt",
    ),
    "segfault": (
        spec(hostile.SegfaultsInRender),
        "CRASH",
        "BugCheck 0x1E (KMODE_EXCEPTION_NOT_HANDLED) (0xC0000005, 0x0, 0x0, 0x0) "
        "[ALL-NORAISE] the mode's process was killed by SIGSEGV (signal 11) in DxgkDdiRender",
    ),
    "c-abort": (
        "native:abort_render",
        "CRASH",
        "BugCheck 0x1E (KMODE_EXCEPTION_NOT_HANDLED) (0x80000003, 0x0, 0x0, 0x0) "
        "[ALL-NORAISE] the mode's process was killed by SIGABRT (signal 6) in DxgkDdiRender",
    ),
    "hogs-memory": (
        spec(hostile.HogsMemory),
        "CRASH",
        "out of memory (the mode's memory limit, --mode-memory)",
        "--mode-memory=256",
    ),
    "leaves-thread": (spec(hostile.LeavesThread), "PASS", ""),
    "huge-status": (
        spec(hostile.HugeStatus),
        "FAIL",
        f"[REN-STATUS] DxgkDdiRender: returned {hostile.HUGE:#x} (not a 32-bit NTSTATUS)",
    ),
}


@pytest.mark.parametrize("name", CHECK_ROWS)
def test_check_reports_a_hostile_driver_s_mode_and_ends(name: str, tmp_path: Path) -> None:
    driver, status, says, *options = CHECK_ROWS[name]
    if driver.startswith("native:"):
        driver = native(driver.removeprefix("native:"))
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "wddm_conformance",
            "check",
            f"--driver={driver}",
            "--mode=default",
            "--ddi-timeout=1",
            f"--mode-timeout={CHECK_TIMEOUT}",
            *options,
        ],
        cwd=tmp_path,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, _ = process.communicate(timeout=120 + CHECK_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        pytest.fail(f"check did not end on its own: {process.communicate()[0][-3000:]}")
    no_process_left(process.pid)
    lines = stdout.strip().splitlines()
    assert lines[0].startswith("wddm-conformance "), stdout
    (verdict,) = [line for line in lines if " mode=default: " in line]  # after the driver's output
    assert verdict.startswith(f"{status:<14} mode=default: {says}"), stdout
    assert lines[-1] == ("1 passed, 0 failed" if status == "PASS" else "0 passed, 1 failed")
    assert process.returncode == (0 if status == "PASS" else 1), stdout


# ------------------------------------------------------------------------- real Ctrl-C


@pytest.mark.parametrize(
    ("workers", "to"),
    [("serial", "process"), ("serial", "terminal"), ("-n 2", "terminal")],
)
def test_a_real_ctrl_c_stops_the_run_and_writes_the_report_of_what_ran(
    workers: str, to: str, tmp_path: Path
) -> None:
    """SIGINT to pytest alone, or to its whole process group as a terminal's Ctrl-C does,
    while a check blocks in Render (no watchdog, no time limit: it never ends by itself)."""
    extra = ("-n", "2") if workers == "-n 2" else ()
    checks = (PRIVATE, TRANSLATE, RANGE)
    args = pytest_args(
        spec(hostile.BlocksInRender),
        checks,
        tmp_path,
        "-v",
        "--ddi-timeout=100000",
        "--check-timeout=0",
        *extra,
    )
    process = subprocess.Popen(
        args,
        cwd=tmp_path,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None
    seen = []
    # Were the run to hang before its first result, reading its output would too.
    stuck = threading.Timer(120, os.killpg, (process.pid, signal.SIGKILL))
    stuck.start()
    try:
        for line in process.stdout:  # until the check that passes has been reported
            seen.append(line)
            if "PASSED" in line:
                break
        stuck.cancel()
        assert any(PRIVATE in line and "PASSED" in line for line in seen), "".join(seen)
        if to == "terminal":
            os.killpg(process.pid, signal.SIGINT)
        else:
            process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=120)
    except BaseException:
        stuck.cancel()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise
    text = "".join(seen) + rest
    assert process.returncode == pytest.ExitCode.INTERRUPTED, text[-3000:]
    assert "KeyboardInterrupt" in text
    no_process_left(process.pid)
    report = json.loads((tmp_path / "report.json").read_text())
    statuses = {t["id"]: t["status"] for t in report["tests"]}
    assert statuses[f"test_create_allocation.py::{PRIVATE}"] == "PASS"
    assert "PASS" not in {s for i, s in statuses.items() if function(i) != PRIVATE}
    assert sum(report["summary"][s] for s in STATUSES) == len(report["tests"])
    assert (tmp_path / "report.html").exists() and (tmp_path / "junit.xml").exists()
