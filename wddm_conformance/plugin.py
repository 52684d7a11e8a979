"""The pytest plugin: ``pytest --driver=module:Class`` runs the conformance suite on a driver.

One option group (``wddm-conformance``), a report header that makes every run
repeatable, the ``requirement`` marker with a closed list of IDs, the outcome statuses
(PASS, FAIL, CRASH, TIMEOUT, SKIP, INTERNAL-ERROR), expected-results baselines and the
JSON/HTML conformance report. Installed as the ``wddm_conformance`` pytest11 entry point,
so it is active wherever the package is installed.

Bad input (a wrong ``--driver``, an unknown ``--kernel-mode``, a bad ``--baseline``) is a
one-line usage error with pytest's usage exit code, never a traceback.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Generator
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from . import CONTRACT_VERSION, __version__, profiles
from . import baseline as baselines
from .driver import REGISTRY, DriverSpec, load_driver
from .errors import BugCheck, DriverFailure, DriverLoadError
from .fuzz import CORPORA, REGRESSIONS
from .kernel import Kernel, KernelConfig, KernelMode
from .report import build_report, write_reports
from .requirements import catalogue
from .results import Status, classify

profiles.register()

SUITE_PACKAGE = "wddm_conformance.suite"
PROPERTY = "wddm"  # the user property that carries a test's outcome to the controller and JUnit


@dataclass
class Run:
    """One conformance run: what is tested, how, and what came out."""

    spec: DriverSpec
    mode: KernelMode
    seed: int
    ddi_timeout: float
    command: str
    baseline_path: Path | None = None
    baseline: dict[str, str] = field(default_factory=dict)
    update_baseline: bool = False
    json_path: Path | None = None
    html_path: Path | None = None
    #: Seed corpora and the project's regression inputs the suite replays.
    corpora: Path = CORPORA
    #: The driver repository's own regression inputs (``<dir>/<target>/``), if it has any.
    regressions: Path | None = None
    #: Outcome records by test id, gathered from the reports (on the xdist controller too).
    results: dict[str, dict[str, Any]] = field(default_factory=dict)

    def kernel(self, mode: KernelMode | str | None = None, **config: Any) -> Kernel:
        """A fresh simulated kernel for this run's driver: the run's mode plus ``mode``."""
        extra = KernelMode.parse(mode) if isinstance(mode, str) else mode or KernelMode()
        combined = KernelMode(
            **{f.name: getattr(self.mode, f.name) or getattr(extra, f.name) for f in fields(extra)}
        )
        cfg = replace(KernelConfig(seed=self.seed, ddi_timeout=self.ddi_timeout), **config)
        return Kernel(self.spec, combined, cfg)


RUN = pytest.StashKey[Run]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("wddm-conformance", "WDDM display miniport conformance")
    group.addoption(
        "--driver",
        default="reference",
        help="the miniport under test: module:Class, or a registered name "
        f"({', '.join(REGISTRY)}); default: reference",
    )
    group.addoption(
        "--kernel-mode",
        default="default",
        help="kernel stress applied to every check: default, all, or a comma-separated list of "
        "always-repatch, no-prepatching, forced-eviction, forced-relocation, tiny-buffers, "
        "split-submissions (checks that need a stress add it themselves)",
    )
    group.addoption(
        "--wddm-seed", type=int, default=0, help="seed of the simulated kernel (default 0)"
    )
    group.addoption(
        "--ddi-timeout",
        type=float,
        default=5.0,
        help="seconds before a hung DDI call is a TDR (default 5, as TdrDdiDelay)",
    )
    group.addoption(
        "--baseline",
        default=None,
        metavar="FILE",
        help="expected results (test-id,STATUS lines): only unexpected results fail the run",
    )
    group.addoption(
        "--update-baseline",
        action="store_true",
        help="write this run's non-passing results to --baseline (FLAKY entries are kept)",
    )
    group.addoption("--report-json", default=None, metavar="FILE", help="write the JSON report")
    group.addoption(
        "--report-html", default=None, metavar="FILE", help="write the self-contained HTML report"
    )
    group.addoption(
        "--fuzz-corpora",
        default=None,
        help="seed corpora and regressions/ the suite replays (default: the packaged ones)",
    )
    group.addoption(
        "--fuzz-regressions",
        default=None,
        metavar="DIR",
        help="your regression inputs (DIR/TARGET/, written by `wddm-conformance fuzz promote`), "
        "replayed by the suite (default: the wddm_fuzz_regressions ini value, else "
        "./wddm-regressions under the rootdir when it exists)",
    )
    parser.addini(
        "wddm_fuzz_regressions",
        "your fuzz regression inputs (DIR/TARGET/), replayed by the conformance suite",
        default="",
    )


def _command(config: pytest.Config) -> str:
    """The options that repeat this run."""
    opt = config.option
    parts = ["pytest", f"--driver={opt.driver}", f"--kernel-mode={opt.kernel_mode}"]
    parts += [f"--wddm-seed={opt.wddm_seed}", f"--ddi-timeout={opt.ddi_timeout:g}"]
    if opt.baseline:
        parts.append(f"--baseline={opt.baseline}")
    return " ".join(parts)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "requirement(*ids): the REQUIREMENTS.md IDs a conformance check checks (closed list)",
    )
    if getattr(config.option, "hypothesis_profile", None) is None:
        settings.load_profile(profiles.from_environment())
    opt = config.option
    try:
        spec = load_driver(opt.driver)
    except DriverLoadError as exc:
        raise pytest.UsageError(str(exc)) from None
    try:
        mode = KernelMode.parse(opt.kernel_mode)
    except ValueError as exc:
        raise pytest.UsageError(f"invalid --kernel-mode {opt.kernel_mode!r}: {exc}") from None
    if not opt.ddi_timeout > 0:
        raise pytest.UsageError(f"invalid --ddi-timeout {opt.ddi_timeout!r}: must be positive")
    run = Run(spec, mode, opt.wddm_seed, opt.ddi_timeout, _command(config))
    if opt.update_baseline and not opt.baseline:
        raise pytest.UsageError("invalid --update-baseline: give the file with --baseline=FILE")
    if opt.baseline:
        run.baseline_path = Path(opt.baseline)
        run.update_baseline = opt.update_baseline
        if not (run.update_baseline and not run.baseline_path.exists()):
            try:
                run.baseline = baselines.load(run.baseline_path)
            except baselines.BaselineError as exc:
                raise pytest.UsageError(str(exc)) from None
    run.corpora = _corpora(opt.fuzz_corpora)
    run.regressions = _regressions(config)
    run.json_path = Path(opt.report_json) if opt.report_json else None
    run.html_path = Path(opt.report_html) if opt.report_html else None
    config.stash[RUN] = run
    config.pluginmanager.register(Results(run, config), "wddm-conformance-results")


def _corpora(given: str | None) -> Path:
    if given:
        path = Path(given)
        if not path.is_dir():
            raise pytest.UsageError(f"invalid --fuzz-corpora {given!r}: not a directory")
        return path
    return CORPORA


def _regressions(config: pytest.Config) -> Path | None:
    """``--fuzz-regressions``, else the ini value (relative to the rootdir), else the
    default directory of ``fuzz promote`` under the rootdir when it exists."""
    given = config.option.fuzz_regressions
    if given:
        path = Path(given)
        if not path.is_dir():
            raise pytest.UsageError(f"invalid --fuzz-regressions {given!r}: not a directory")
        return path
    ini = str(config.getini("wddm_fuzz_regressions") or "")
    if ini:
        path = config.rootpath / ini
        if not path.is_dir():
            raise pytest.UsageError(
                f"invalid wddm_fuzz_regressions {ini!r}: {path} is not a directory"
            )
        return path
    default = config.rootpath / REGRESSIONS
    return default if default.is_dir() else None


def pytest_report_header(config: pytest.Config) -> list[str]:
    run = config.stash[RUN]
    cls = f"{run.spec.cls.__module__}:{run.spec.cls.__qualname__}"
    return [
        f"wddm-conformance {__version__} (contract {CONTRACT_VERSION}): driver {run.spec.spec} "
        f"({cls}), kernel mode {run.mode}, seed {run.seed}, DDI timeout {run.ddi_timeout:g} s, "
        f"hypothesis profile {settings._current_profile}",
        f"repeat with: {run.command}",
    ]


def _is_suite(item: pytest.Item) -> bool:
    module = getattr(item, "module", None)
    return module is not None and module.__name__.startswith(SUITE_PACKAGE)


def requirement_ids(item: pytest.Item) -> list[str]:
    """The IDs an item's ``requirement`` markers name, in order."""
    ids: list[str] = []
    for marker in item.iter_markers("requirement"):
        ids += [i for i in marker.args if i not in ids]
    return ids


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    known = catalogue()
    for item in items:
        ids = requirement_ids(item)
        unknown = [i for i in ids if i not in known]
        if unknown:
            raise pytest.UsageError(
                f"invalid requirement marker on {item.nodeid}: unknown ID(s) {', '.join(unknown)} "
                f"(the IDs are those of REQUIREMENTS.md)"
            )
        if _is_suite(item) and not ids:
            raise pytest.UsageError(
                f"invalid conformance check {item.nodeid}: it names no requirement "
                f"(add @pytest.mark.requirement('ID'))"
            )


# ------------------------------------------------------------------------- the fixtures


@pytest.fixture
def wddm_run(request: pytest.FixtureRequest) -> Run:
    """The run: driver spec, kernel mode, seed, timeout."""
    return request.config.stash[RUN]


@pytest.fixture
def make_kernel(wddm_run: Run) -> Callable[..., Kernel]:
    """``make_kernel(mode=None, **KernelConfig fields)``: a fresh kernel for the driver under test."""
    return wddm_run.kernel


@pytest.fixture
def kernel(wddm_run: Run) -> Kernel:
    """A fresh simulated kernel (the run's mode) with the driver under test started."""
    return wddm_run.kernel()


# ------------------------------------------------------------------------- outcomes


def _driver_failure(exc: BaseException) -> BaseException:
    """The DriverFailure inside hypothesis' exception groups, if there is one."""
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _driver_failure(inner)
            if isinstance(found, DriverFailure):
                return found
    return exc


def _notes(exc: BaseException) -> str:
    notes = getattr(exc, "__notes__", None) or []
    return "\n".join(str(n) for n in notes)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    ids = requirement_ids(item)
    if not ids:
        return report
    if report.when == "teardown" and not report.failed:
        return report
    if report.when == "setup" and report.passed:
        return report
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        status, requirement, message = Status.SKIP, "", reason.removeprefix("Skipped: ")
        exc: BaseException | None = None
    else:
        exc = call.excinfo.value if call.excinfo is not None else None
        if exc is not None:
            exc = _driver_failure(exc)
        outcome = classify(exc)
        status, requirement, message = outcome.status, outcome.requirement, outcome.message
    run = item.config.stash[RUN]
    test = baselines.test_id(report.nodeid)
    verdict = baselines.judge(status, run.baseline.get(test) if run.baseline_path else None)
    record = {
        "id": test,
        "nodeid": report.nodeid,
        "status": str(status),
        "expected": verdict.expected,
        "verdict": verdict.kind,
        "requirements": ids,
        "violated": requirement,
        "ddi": exc.ddi if isinstance(exc, DriverFailure) else "",
        "message": message,
        "bugcheck": str(exc.data) if isinstance(exc, BugCheck) else "",
        "duration": round(report.duration, 4),
    }
    report.user_properties = [*report.user_properties, (PROPERTY, json.dumps(record))]
    if status in (Status.FAIL, Status.CRASH, Status.TIMEOUT) and exc is not None:
        notes = _notes(exc)
        report.longrepr = f"{status}: {message}" + (f"\n{notes}" if notes else "")
    if verdict.kind == "expected" and status not in (Status.PASS, Status.SKIP):
        report.outcome = "skipped"
        report.wasxfail = verdict.reason
    elif verdict.kind == "unexpected" and status == Status.PASS:
        report.outcome = "failed"
        report.longrepr = verdict.reason
    return report


def _record(report: pytest.TestReport) -> dict[str, Any] | None:
    for name, value in report.user_properties:
        if name == PROPERTY:
            return json.loads(str(value))  # type: ignore[no-any-return]
    return None


def pytest_report_teststatus(
    report: pytest.TestReport, config: pytest.Config
) -> tuple[str, str, str] | None:
    record = _record(report)
    if record is None or not report.failed:
        return None
    status = record["status"]
    if record["verdict"] == "unexpected" and status == Status.PASS:
        return "failed", "U", "UNEXPECTED-PASS"
    letters = {Status.CRASH: "C", Status.TIMEOUT: "T", Status.INTERNAL_ERROR: "E"}
    if status in letters:
        return "failed", letters[Status(status)], status
    return None


class Results:
    """Gathers every check's record (on the xdist controller from the workers' reports), then
    writes the reports, the baseline and the terminal summary once."""

    def __init__(self, run: Run, config: pytest.Config) -> None:
        self.run = run
        self.worker = hasattr(config, "workerinput")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        record = _record(report)
        if record is not None:
            self.run.results[record["id"]] = record

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        run = self.run
        if self.worker or not run.results:
            return
        report = build_report(run, str(settings._current_profile), sys.version.split()[0])
        write_reports(report, run.json_path, run.html_path)
        if run.update_baseline and run.baseline_path is not None:
            statuses = {name: Status(r["status"]) for name, r in run.results.items()}
            header = [
                f"wddm-conformance baseline for {run.spec.spec}, written by: {run.command} "
                f"--update-baseline",
                "test-id,STATUS (FAIL, CRASH, TIMEOUT, INTERNAL-ERROR, or FLAKY for any result)",
            ]
            run.baseline_path.write_text(
                baselines.render(statuses, run.baseline, header), encoding="utf-8"
            )

    def pytest_terminal_summary(self, terminalreporter: Any, exitstatus: int) -> None:
        run = self.run
        if self.worker or not run.results:
            return
        tr = terminalreporter
        counts: dict[str, int] = {}
        for record in run.results.values():
            counts[record["status"]] = counts.get(record["status"], 0) + 1
        tr.section("wddm-conformance")
        tr.line(
            "  ".join(f"{s}: {counts.get(s, 0)}" for s in Status)
            + f"   (driver {run.spec.spec}, kernel mode {run.mode}, seed {run.seed})"
        )
        for record in sorted(
            run.results.values(), key=lambda r: (r["status"] == Status.SKIP, r["id"])
        ):
            if record["status"] == Status.PASS:
                continue
            first = record["message"].splitlines()[0] if record["message"] else ""
            mark = " (expected by the baseline)" if record["verdict"] == "expected" else ""
            tr.line(f"{record['status']:<14} {record['id']}{mark}: {first}"[:400])
        for path in (run.json_path, run.html_path):
            if path is not None:
                tr.line(f"report written to {path}")
        if run.update_baseline and run.baseline_path is not None:
            tr.line(f"baseline written to {run.baseline_path}")
