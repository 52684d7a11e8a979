"""The pytest plugin: ``pytest --pyargs wddm_conformance.suite --wddm-driver=module:Class``
runs the conformance suite on a driver.

One option group (``wddm-conformance``), a report header that makes every run
repeatable, the ``requirement`` marker with a closed list of IDs, the outcome statuses
(PASS, FAIL, CRASH, TIMEOUT, SKIP, INTERNAL-ERROR), expected-results baselines and the
JSON/HTML conformance report.

Installed as the ``wddm_conformance`` pytest11 entry point, it loads in every pytest run
of the environment but stays inert -- no header, no hypothesis profile, no driver, no
marker, no report -- unless the run is *active*:

* ``--wddm-driver`` (or its short form ``--driver``) is given; or
* the arguments (or ``testpaths``) name the suite: ``--pyargs wddm_conformance.suite``
  (or ``wddm_conformance``), a path inside the suite, or a directory the suite lies below
  outside virtual environments and ``norecursedirs`` (this checkout's root); or
* the suite is collected all the same: the run activates when its directory is collected,
  and the header follows the collection line. Under xdist name the suite on the command
  line: the controller collects nothing.

Options are registered only where their names are free. The short form ``--driver`` is
added after the initial (rootdir) ``conftest.py`` files, so a conftest or plugin that owns
``--driver`` (pytest-selenium and pytest-base-url do) keeps it, and ``--wddm-driver``
names the miniport. The suite's fixtures live in the suite's own ``conftest.py``.

Bad input (a wrong driver, an unknown ``--kernel-mode``, a bad ``--baseline``, a report
path that cannot be written) is a one-line usage error with pytest's usage exit code
before any check runs, never a traceback.
"""

from __future__ import annotations

import argparse
import fnmatch
import functools
import json
import os
import re
import shlex
import sys
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from . import watchdog
from .defaults import (
    ALL_STRESS,
    ISOLATED_MEMORY_MIB,
    ISOLATED_SECONDS,
    KERNEL_MODES,
    TDR_DDI_DELAY,
)
from .fuzz import CORPORA, REGRESSIONS
from .run import Run

if TYPE_CHECKING:
    from .errors import BugCheckData
    from .isolation import Limits
    from .results import Status

SUITE_PACKAGE = "wddm_conformance.suite"
SUITE_DIR = Path(__file__).resolve().parent / "suite"
PROPERTY = "wddm"  # the user property that carries a test's outcome to the controller and JUnit
GROUP = "wddm-conformance"


RUN = pytest.StashKey[Run]()
#: How the run became active: "options", "arguments" or "collection".
ACTIVE = pytest.StashKey[str]()
#: Whether this plugin owns the short ``--driver`` option in this run.
SHORT_DRIVER = pytest.StashKey[bool]()


# ------------------------------------------------------------------------- options


def _add(group: pytest.OptionGroup, *names: str, **attrs: Any) -> bool:
    """Add an option unless a plugin or conftest already owns one of its names."""
    try:
        group.addoption(*names, **attrs)
    except (ValueError, argparse.ArgumentError):
        return False
    return True


#: dest -> default, for options skipped because another plugin owns their name.
DEFAULTS: dict[str, Any] = {
    "wddm_driver": None,
    "wddm_kernel_mode": "default",
    "wddm_seed": 0,
    "wddm_ddi_timeout": TDR_DDI_DELAY,
    "wddm_baseline": None,
    "wddm_update_baseline": False,
    "wddm_report_json": None,
    "wddm_report_html": None,
    "wddm_fuzz_corpora": None,
    "wddm_fuzz_regressions": None,
    "wddm_isolate": "check",
    "wddm_check_timeout": ISOLATED_SECONDS,
    "wddm_check_memory": ISOLATED_MEMORY_MIB,
}


def _option(config: pytest.Config, dest: str) -> Any:
    return getattr(config.option, dest, DEFAULTS[dest])


def pytest_addoption(parser: pytest.Parser) -> None:
    from .driver import REGISTRY

    group = parser.getgroup(GROUP, "WDDM display miniport conformance")
    _add(
        group,
        "--wddm-driver",
        dest="wddm_driver",
        default=None,
        metavar="module:Class",
        help="the miniport under test: module:Class (importable from the current directory), "
        f"native:LIB, or a registered name ({', '.join(REGISTRY)}); default: reference",
    )
    _add(
        group,
        "--kernel-mode",
        dest="wddm_kernel_mode",
        default="default",
        help=f"kernel stress applied to every check: default, {ALL_STRESS} (every stress at once), "
        f"or a comma-separated list of {', '.join(KERNEL_MODES)} (checks that need a stress add "
        "it themselves)",
    )
    _add(
        group,
        "--wddm-seed",
        dest="wddm_seed",
        type=int,
        default=0,
        help="seed of the simulated kernel (default 0)",
    )
    _add(
        group,
        "--ddi-timeout",
        dest="wddm_ddi_timeout",
        type=float,
        default=TDR_DDI_DELAY,
        help=f"seconds before a hung DDI call is a TDR (default {TDR_DDI_DELAY:g}, as TdrDdiDelay)",
    )
    _add(
        group,
        "--baseline",
        dest="wddm_baseline",
        default=None,
        metavar="FILE",
        help="expected results (test-id,STATUS lines): only unexpected results fail the run",
    )
    _add(
        group,
        "--update-baseline",
        dest="wddm_update_baseline",
        action="store_true",
        help="write this run's non-passing results to --baseline (FLAKY entries are kept)",
    )
    _add(
        group,
        "--report-json",
        dest="wddm_report_json",
        default=None,
        metavar="FILE",
        help="write the JSON report",
    )
    _add(
        group,
        "--report-html",
        dest="wddm_report_html",
        default=None,
        metavar="FILE",
        help="write the self-contained HTML report",
    )
    _add(
        group,
        "--fuzz-corpora",
        dest="wddm_fuzz_corpora",
        default=None,
        help="seed corpora and regressions/ the suite replays (default: the packaged ones)",
    )
    _add(
        group,
        "--fuzz-regressions",
        dest="wddm_fuzz_regressions",
        default=None,
        metavar="DIR",
        help="your regression inputs (DIR/TARGET/, written by `wddm-conformance fuzz promote`), "
        "replayed by the suite (default: the wddm_fuzz_regressions ini value, else "
        "./wddm-regressions under the rootdir when it exists)",
    )
    _add(
        group,
        "--isolate",
        dest="wddm_isolate",
        choices=("check", "none"),
        default="check",
        help="where each conformance check runs: 'check' (default), a process of its own "
        "that a crash, a hang or a memory flood of the driver ends without ending the run; "
        "'none', the run's own process (for debuggers; implied by --pdb and --trace)",
    )
    _add(
        group,
        "--check-timeout",
        dest="wddm_check_timeout",
        type=float,
        default=ISOLATED_SECONDS,
        metavar="SECONDS",
        help=f"wall-clock limit of one isolated check (default {ISOLATED_SECONDS:g}; 0: none)",
    )
    _add(
        group,
        "--check-memory",
        dest="wddm_check_memory",
        type=int,
        default=ISOLATED_MEMORY_MIB,
        metavar="MIB",
        help=f"memory one isolated check may allocate, in MiB (default {ISOLATED_MEMORY_MIB}; 0: no limit; "
        "not applied under AddressSanitizer)",
    )
    parser.addini(
        "wddm_fuzz_regressions",
        "your fuzz regression inputs (DIR/TARGET/), replayed by the conformance suite",
        default="",
    )


@pytest.hookimpl(wrapper=True)
def pytest_load_initial_conftests(
    early_config: pytest.Config, parser: pytest.Parser
) -> Generator[None, None, None]:
    """Add the short form ``--driver`` once the rootdir conftest files have added theirs."""
    result = yield
    owned = _add(
        parser.getgroup(GROUP),
        "--driver",
        dest="wddm_driver",
        default=None,
        metavar="module:Class",
        help="short form of --wddm-driver (absent where another plugin or conftest owns it)",
    )
    early_config.stash[SHORT_DRIVER] = owned
    # hypothesis' pytest_configure loads --hypothesis-profile: the suite's profile names
    # must exist by then (registered only where no profile of that name exists).
    given = getattr(early_config.known_args_namespace, "hypothesis_profile", None)
    if given:
        from . import profiles

        if given in profiles.NAMES:
            profiles.register()
    return result


# ------------------------------------------------------------------------- activation


def _suite_module(name: str) -> bool:
    return (
        name == "wddm_conformance" or name == SUITE_PACKAGE or name.startswith(SUITE_PACKAGE + ".")
    )


def _collects_suite_below(config: pytest.Config, path: Path) -> bool:
    """Whether ``path`` is a directory pytest recurses from into the suite: no virtual
    environment and no ``norecursedirs`` match on the way down."""
    if path not in SUITE_DIR.parents:
        return False
    patterns = [str(p) for p in config.getini("norecursedirs")]
    here = path
    for part in SUITE_DIR.relative_to(path).parts:
        here = here / part
        if any(fnmatch.fnmatch(part, p) for p in patterns):
            return False
        if (here / "pyvenv.cfg").is_file() or (here / "conda-meta").is_dir():
            return False
    return True


def _names_suite(config: pytest.Config) -> bool:
    """Whether the run's arguments (or testpaths) select the suite."""
    base = config.invocation_params.dir
    for arg in config.args:
        target = str(arg).split("::")[0]
        if config.option.pyargs and _suite_module(target):
            return True
        try:
            path = (base / target).resolve()
        except (OSError, ValueError):
            continue
        if path == SUITE_DIR or SUITE_DIR in path.parents or _collects_suite_below(config, path):
            return True
    return False


def pytest_configure(config: pytest.Config) -> None:
    if _option(config, "wddm_driver") is not None:
        config.stash[ACTIVE] = "options"
    elif _names_suite(config):
        config.stash[ACTIVE] = "arguments"
    else:
        return
    _activate(config)


def _activate(config: pytest.Config) -> Run:
    """Validate the options, load the driver and register the run (once)."""
    if RUN in config.stash:
        return config.stash[RUN]
    from hypothesis.errors import InvalidArgument

    from . import baseline as baselines
    from . import profiles
    from .driver import load_driver
    from .errors import DriverLoadError
    from .kernel import KernelMode

    config.addinivalue_line(
        "markers",
        "requirement(*ids): the REQUIREMENTS.md IDs a conformance check checks (closed list)",
    )
    try:
        profile = profiles.select(config.getoption("hypothesis_profile", None))
    except InvalidArgument as exc:
        raise pytest.UsageError(f"invalid hypothesis profile: {exc}") from None
    driver = _option(config, "wddm_driver") or "reference"
    try:
        spec = load_driver(driver)
    except DriverLoadError as exc:
        raise pytest.UsageError(str(exc)) from None
    text = _option(config, "wddm_kernel_mode")
    try:
        mode = KernelMode.parse(text)
    except ValueError as exc:
        raise pytest.UsageError(f"invalid --kernel-mode {text!r}: {exc}") from None
    timeout = _option(config, "wddm_ddi_timeout")
    if not timeout > 0:
        raise pytest.UsageError(f"invalid --ddi-timeout {timeout!r}: must be positive")
    seed = _option(config, "wddm_seed")
    run = Run(spec, mode, seed, timeout, "", profile=profile, abandon_on_tdr=True)
    baseline, update = _option(config, "wddm_baseline"), _option(config, "wddm_update_baseline")
    if update and not baseline:
        raise pytest.UsageError("invalid --update-baseline: give the file with --baseline=FILE")
    if baseline:
        run.baseline_path = Path(baseline)
        run.update_baseline = update
        if update:  # made with its directories at the end: fail now if it cannot be
            _writable("--baseline", baseline)
        if not (run.update_baseline and not run.baseline_path.exists()):
            try:
                run.baseline = baselines.load(run.baseline_path)
            except baselines.BaselineError as exc:
                raise pytest.UsageError(str(exc)) from None
    run.limits = _limits(config)
    run.corpora = _corpora(_option(config, "wddm_fuzz_corpora"))
    run.regressions = _regressions(config)
    run.json_path = _writable("--report-json", _option(config, "wddm_report_json"))
    run.html_path = _writable("--report-html", _option(config, "wddm_report_html"))
    run.options = _options(config, run)
    run.command = _command(config, run)
    config.stash[RUN] = run
    config.pluginmanager.register(Results(run, config), "wddm-conformance-results")
    return run


def pytest_collectstart(collector: pytest.Collector) -> None:
    """Activate the run when the suite's directory is collected (before its modules are
    imported); a bad option is then still a usage error before any check runs."""
    config = collector.config
    if RUN in config.stash:
        return
    path = getattr(collector, "path", None)
    if path is None:
        return
    path = path.resolve()
    if path == SUITE_DIR or SUITE_DIR in path.parents:
        config.stash[ACTIVE] = "collection"
        _activate(config)


def _writable(option: str, given: str | None) -> Path | None:
    """``given`` if a report can be written there (missing directories are created then)."""
    if not given:
        return None
    path = Path(given)
    if path.is_dir():
        raise pytest.UsageError(f"invalid {option} {given!r}: {path} is a directory")
    ancestor = path.absolute().parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise pytest.UsageError(
            f"invalid {option} {given!r}: {ancestor} is a file, not a directory"
        )
    # Trying is the only test that holds for root and for /proc, /sys or read-only mounts.
    existed = path.exists()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8"):
            pass
    except OSError as exc:
        raise pytest.UsageError(
            f"invalid {option} {given!r}: cannot write there ({exc.strerror or exc})"
        ) from None
    if not existed:
        path.unlink()
    return path


def _limits(config: pytest.Config) -> Limits | None:
    """The isolation limits of the run's checks, or None when checks run in-process."""
    from . import isolation, watchdog

    watchdog.watch_interrupts()
    seconds, memory = _option(config, "wddm_check_timeout"), _option(config, "wddm_check_memory")
    if not seconds >= 0:
        raise pytest.UsageError(f"invalid --check-timeout {seconds!r}: must be 0 or more")
    if memory < 0:
        raise pytest.UsageError(f"invalid --check-memory {memory!r}: must be 0 or more")
    debugging = config.getoption("usepdb", False) or config.getoption("trace", False)
    if _option(config, "wddm_isolate") == "none" or debugging or not isolation.available():
        return None
    return isolation.Limits(seconds=seconds or None, memory=memory << 20 if memory else None)


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
    given = _option(config, "wddm_fuzz_regressions")
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


def _command(config: pytest.Config, run: Run) -> str:
    """A command line that repeats this run from the directory it was started in: the
    arguments given (``--pyargs wddm_conformance.suite``, paths), ``-k``/``-m``, then
    :func:`_options`."""
    opt = config.option
    parts = ["pytest"]
    if config.args_source is pytest.Config.ArgsSource.ARGS:
        parts += ["--pyargs", *config.args] if opt.pyargs else list(config.args)
    if getattr(opt, "keyword", ""):
        parts += ["-k", opt.keyword]
    if getattr(opt, "markexpr", ""):
        parts += ["-m", opt.markexpr]
    return shlex.join(parts + run.options)


def _options(config: pytest.Config, run: Run) -> list[str]:
    """The run's options that decide a check's result: the driver, the kernel's settings,
    the hypothesis profile (and seed, when given), the baseline, the replayed fuzz inputs
    and the isolation limits that differ from their defaults."""
    parts = [
        f"--wddm-driver={run.spec.spec}",
        f"--kernel-mode={run.mode}",
        f"--wddm-seed={run.seed}",
        f"--ddi-timeout={run.ddi_timeout:g}",
        f"--hypothesis-profile={run.profile}",
    ]
    seed = config.getoption("hypothesis_seed", None)
    if seed is not None:
        parts.append(f"--hypothesis-seed={seed}")
    if run.baseline_path is not None:
        parts.append(f"--baseline={run.baseline_path}")
    for dest, option in (
        ("wddm_fuzz_corpora", "--fuzz-corpora"),
        ("wddm_fuzz_regressions", "--fuzz-regressions"),
        ("wddm_isolate", "--isolate"),
        ("wddm_check_timeout", "--check-timeout"),
        ("wddm_check_memory", "--check-memory"),
    ):
        value = _option(config, dest)
        if value != DEFAULTS[dest]:
            parts.append(f"{option}={value:g}" if isinstance(value, float) else f"{option}={value}")
    return parts


def _header(config: pytest.Config) -> list[str]:
    from . import CONTRACT_VERSION, __version__

    run = config.stash[RUN]
    cls = f"{run.spec.cls.__module__}:{run.spec.cls.__qualname__}"
    driver = run.spec.spec if cls == run.spec.spec else f"{run.spec.spec} ({cls})"
    lines = [
        f"wddm-conformance {__version__} (contract {CONTRACT_VERSION}): driver {driver}, "
        f"kernel mode {run.mode}, seed {run.seed}, DDI timeout {run.ddi_timeout:g} s, "
        f"hypothesis profile {run.profile}",
        f"repeat with: {run.command}",
        _isolation_line(run),
    ]
    native = sys.modules.get("wddm_conformance.native.adapter")  # imported if the driver is one
    if native is not None and issubclass(run.spec.cls, native.NativeMiniport):
        lines.append(native.direct_reads_note())
    if not config.stash.get(SHORT_DRIVER, False):
        lines.append(
            "wddm-conformance: --driver is not this plugin's option here (another plugin or "
            "conftest owns it): name the miniport with --wddm-driver"
        )
    return lines


def _isolation_line(run: Run) -> str:
    limits = run.limits
    if limits is None:
        return (
            "isolation: none, checks run in this process (a driver that crashes, exits or "
            "hangs ends the run)"
        )
    seconds = f"{limits.seconds:g} s" if limits.seconds else "no time limit"
    memory = f"{limits.memory >> 20} MiB" if limits.memory else "no memory limit"
    return f"isolation: a process per check ({seconds}, {memory})"


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    if RUN not in config.stash:
        return None
    return _header(config)


def pytest_report_collectionfinish(config: pytest.Config) -> list[str] | None:
    """The header of a run that became active only when the suite was collected."""
    if config.stash.get(ACTIVE, "") != "collection" or RUN not in config.stash:
        return None
    return _header(config)


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
    if RUN not in config.stash:
        return
    from .requirements import catalogue

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
        if _is_suite(item) and isinstance(item, pytest.Function):
            _note_examples(item)


def _note_examples(item: pytest.Function) -> None:
    """Make a hypothesis check record each example's arguments before it runs, so that a
    TDR that abandons the check (errors.CheckAbandoned) says which example hung."""
    handle: Any = getattr(item.obj, "hypothesis", None)
    inner = getattr(handle, "inner_test", None)
    if inner is None or getattr(inner, "wddm_noted", False):
        return
    fixtures = set(item.fixturenames)

    @functools.wraps(inner)
    def noted(*args: Any, **kwargs: Any) -> Any:
        shown = ", ".join(f"{k}={v!r}" for k, v in kwargs.items() if k not in fixtures)
        watchdog.note_example(f"{item.name}({shown})")
        return inner(*args, **kwargs)

    noted.wddm_noted = True  # type: ignore[attr-defined]
    handle.inner_test = noted  # hypothesis documents replacing inner_test (pytest-trio does)


# ------------------------------------------------------------------------- outcomes


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
    """Run each conformance check in a process of its own (unless ``--isolate=none``)."""
    run = item.config.stash.get(RUN, None)
    if run is None or run.limits is None or not _is_suite(item):
        return None
    from .isolated_check import run_check

    ihook = item.ihook
    ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    for report in run_check(item, nextitem, run, run.limits):
        ihook.pytest_runtest_logreport(report=report)
    ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True


def _driver_failure(exc: BaseException) -> BaseException:
    """The DriverFailure inside hypothesis' exception groups, if there is one."""
    from .errors import DriverFailure

    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _driver_failure(inner)
            if isinstance(found, DriverFailure):
                return found
    return exc


def _notes(exc: BaseException) -> str:
    notes = getattr(exc, "__notes__", None) or []
    return "\n".join(str(n) for n in notes)


def _all_notes(exc: BaseException) -> str:
    """The notes of ``exc`` and of every exception grouped inside it."""
    text = _notes(exc)
    if isinstance(exc, BaseExceptionGroup):
        text += "".join("\n" + _all_notes(inner) for inner in exc.exceptions)
    return text


#: What hypothesis prints to reproduce a failure: the decorator (``print_blob``, on in the
#: ``ci`` profile) in the exception's notes, the seed (a failure it could not replay) in
#: the "Hypothesis" report section.
_BLOB = re.compile(r"@reproduce_failure\([^()]*\)")
_SEED = re.compile(r"--hypothesis-seed=-?\d+")


def _hypothesis_reproduction(
    item: pytest.Item, report: pytest.TestReport, exc: BaseException | None
) -> tuple[str, str]:
    """The ``@reproduce_failure(...)`` decorator and the ``--hypothesis-seed=N`` option
    hypothesis printed for this failure ("" for what it did not print)."""
    texts = [_all_notes(exc) if exc is not None else ""]
    texts.append(str(getattr(item, "hypothesis_report_information", "")))
    texts += [content for name, content in report.sections if name == "Hypothesis"]
    text = "\n".join(texts)
    blob, seed = _BLOB.search(text), _SEED.search(text)
    return (blob.group(0) if blob else "", seed.group(0) if seed else "")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if RUN not in item.config.stash:
        return report
    _locate_in_module(item, report)
    ids = requirement_ids(item)
    if not ids:
        return report
    if report.when == "teardown" and not report.failed:
        return report
    if report.when == "setup" and report.passed:
        return report
    from .errors import BugCheck, DriverFailure
    from .results import Status, classify

    hypothesis = seed = ""
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        status, requirement, message = Status.SKIP, "", reason.removeprefix("Skipped: ")
        exc: BaseException | None = None
    else:
        exc = call.excinfo.value if call.excinfo is not None else None
        if exc is not None:
            hypothesis, seed = _hypothesis_reproduction(item, report, exc)
            exc = _driver_failure(exc)
        outcome = classify(exc)
        status, requirement, message = outcome.status, outcome.requirement, outcome.message
    report = conclude(
        item.config.stash[RUN],
        report,
        ids,
        status,
        requirement,
        message,
        ddi=exc.ddi if isinstance(exc, DriverFailure) else "",
        bugcheck=exc.data if isinstance(exc, BugCheck) else None,
        details=_notes(exc) if exc is not None else "",
        hypothesis=hypothesis,
        hypothesis_seed=seed,
        fuzz=exc.reproduce if isinstance(exc, DriverFailure) else "",
    )
    # pytest copies the item's properties into the tear-down report, where JUnit reads them.
    mine = [p for p in report.user_properties if _ours(p[0])]
    item.user_properties[:] = [p for p in item.user_properties if not _ours(p[0])] + mine
    return report


def _locate_in_module(item: pytest.Item, report: pytest.TestReport) -> None:
    """A suite check's report points at its module, not at the file of a decorator that
    wraps it (release.per_example): the progress line and :func:`check_id` use it."""
    module = getattr(item, "module", None)
    where = getattr(module, "__file__", None)
    if not _is_suite(item) or where is None or Path(report.location[0]).name == Path(where).name:
        return
    path = os.path.relpath(where, item.config.rootpath)
    report.location = (path, report.location[1], report.location[2])


def check_id(report: pytest.TestReport) -> str:
    """The check's directory-independent ID, ``test_render.py::name[params]``, also when
    its node ID has no file (``::name``: pytest's ID of a check whose file was itself the
    collection argument, as in :func:`check_command`)."""
    from . import baseline as baselines

    test = baselines.test_id(report.nodeid)
    if test.startswith("::") and report.location:
        test = Path(str(report.location[0]).replace("\\", "/")).name + test
    return test


def check_command(run: Run, report: pytest.TestReport, seed: str = "") -> str:
    """The command that runs the check of ``report`` alone with the run's options (and
    ``seed``, a ``--hypothesis-seed=N`` option, instead of the run's): ``pytest --pyargs
    wddm_conformance.suite.MODULE::NAME --wddm-driver=...`` for a suite check, which works
    from any directory the run's driver imports from; the node ID for any other test."""
    folder = report.nodeid.partition("::")[0].replace("\\", "/").rpartition("/")[0]
    file, _, name = check_id(report).partition("::")
    module = file.removesuffix(".py")
    suite = not folder or folder.endswith("wddm_conformance/suite")
    if suite and (SUITE_DIR / file).is_file():
        target = ["--pyargs", f"{SUITE_PACKAGE}.{module}::{name}"]
    else:
        target = [report.nodeid]
    options = run.options
    if seed:
        options = [o for o in options if not o.startswith("--hypothesis-seed=")] + [seed]
    return shlex.join(["pytest", *target, *options])


def conclude(
    run: Run,
    report: pytest.TestReport,
    ids: list[str],
    status: Status,
    requirement: str,
    message: str,
    *,
    ddi: str = "",
    bugcheck: BugCheckData | None = None,
    details: str = "",
    hypothesis: str = "",
    hypothesis_seed: str = "",
    fuzz: str = "",
) -> pytest.TestReport:
    """Attach a check's outcome record to its report and judge it against the baseline.

    The record (the ``wddm`` user property, a JSON object; :func:`junit_properties` adds
    its fields one by one for JUnit) is what the terminal summary, the JSON and HTML
    reports and JUnit show. ``reproduce`` in it says how to run the check alone: the
    command (:func:`check_command`, with ``hypothesis_seed``, hypothesis'
    ``--hypothesis-seed=N``, when it printed one), hypothesis' ``@reproduce_failure``
    decorator (``hypothesis``) and the command that replays a fuzz input (``fuzz``), ""
    when there is none. A failure's text becomes ``STATUS: message`` plus ``details``.
    A result the baseline expects becomes an expected failure (xfail).
    """
    from . import baseline as baselines
    from .results import Status

    test = check_id(report)
    verdict = baselines.judge(status, run.baseline.get(test) if run.baseline_path else None)
    record = {
        "id": test,
        "nodeid": report.nodeid,
        "status": str(status),
        "expected": verdict.expected,
        "verdict": str(verdict.kind),
        "requirements": ids,
        "violated": requirement,
        "ddi": ddi,
        "message": message,
        "bugcheck": str(bugcheck) if bugcheck else "",
        "bugcheck_code": f"0x{bugcheck.code:X}" if bugcheck else "",
        "bugcheck_parameters": [f"0x{p:X}" for p in bugcheck.parameters] if bugcheck else [],
        "duration": round(report.duration, 4),
        "reproduce": {
            "command": check_command(run, report, hypothesis_seed),
            "hypothesis": hypothesis,
            "fuzz": fuzz,
        },
    }
    report.user_properties = [
        *(p for p in report.user_properties if not _ours(p[0])),
        *junit_properties(record),
    ]
    if status in (Status.FAIL, Status.CRASH, Status.TIMEOUT) and (message or details):
        report.longrepr = f"{status}: {message}" + (f"\n{details}" if details else "")
    if verdict.kind == baselines.VerdictKind.EXPECTED and status not in (Status.PASS, Status.SKIP):
        report.outcome = "skipped"
        report.wasxfail = verdict.reason
    elif verdict.kind == baselines.VerdictKind.UNEXPECTED and status == Status.PASS:
        report.outcome = "failed"
        report.longrepr = verdict.reason
    return report


def _ours(name: str) -> bool:
    return name == PROPERTY or name.startswith(PROPERTY + ".")


def junit_properties(record: dict[str, Any]) -> list[tuple[str, str]]:
    """The JUnit ``<property>`` elements of a check: the whole record as JSON under
    ``wddm``, then its fields one by one (``wddm.status``, ``wddm.violated`` -- the rule
    it broke --, ``wddm.requirements`` and ``wddm.not_judged`` -- the IDs it is tagged
    with, and those of them it did not judge, comma-separated --, ``wddm.ddi``,
    ``wddm.bugcheck.code``, ``wddm.bugcheck.parameters``, ``wddm.reproduce`` and, when
    there is one, ``wddm.reproduce.hypothesis`` and ``wddm.reproduce.fuzz``)."""
    from .report import not_judged

    reproduce = record["reproduce"]
    props = [
        (PROPERTY, json.dumps(record)),
        (f"{PROPERTY}.status", record["status"]),
        (f"{PROPERTY}.verdict", record["verdict"]),
        (f"{PROPERTY}.violated", record["violated"]),
        (f"{PROPERTY}.requirements", ",".join(record["requirements"])),
        (f"{PROPERTY}.not_judged", ",".join(not_judged(record))),
        (f"{PROPERTY}.ddi", record["ddi"]),
        (f"{PROPERTY}.bugcheck", record["bugcheck"]),
        (f"{PROPERTY}.bugcheck.code", record["bugcheck_code"]),
        (f"{PROPERTY}.bugcheck.parameters", ",".join(record["bugcheck_parameters"])),
        (f"{PROPERTY}.reproduce", reproduce["command"]),
    ]
    for key in ("hypothesis", "fuzz"):
        if reproduce[key]:
            props.append((f"{PROPERTY}.reproduce.{key}", reproduce[key]))
    return props


def _record(report: pytest.TestReport) -> dict[str, Any] | None:
    for name, value in report.user_properties:
        if name == PROPERTY:
            return json.loads(str(value))  # type: ignore[no-any-return]
    return None


def pytest_report_teststatus(
    report: pytest.TestReport, config: pytest.Config
) -> tuple[str, str, str] | None:
    if RUN not in config.stash:
        return None
    record = _record(report)
    if record is None or not report.failed:
        return None
    from .baseline import VerdictKind
    from .results import Status

    status = record["status"]
    if record["verdict"] == VerdictKind.UNEXPECTED and status == Status.PASS:
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

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        record = _record(report)
        if record is None and str(report.when) == "???" and report.failed:  # xdist: worker died
            record = self._lost(report)
        if record is not None:
            self.run.results[record["id"]] = record

    def _lost(self, report: pytest.TestReport) -> dict[str, Any] | None:
        """The record of a check whose xdist worker died (only with ``--isolate=none``:
        isolated checks never take their worker down)."""
        from .results import Status

        path, _, name = report.nodeid.partition("::")
        module = Path(path.replace("\\", "/")).stem
        if not (SUITE_DIR / f"{module}.py").is_file():
            return None
        message = f"the process running the check died: {report.longrepr}"
        ids = _marked_requirements(module, name.split("[")[0])
        return _record(conclude(self.run, report, ids, Status.CRASH, "", message))

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        from . import baseline as baselines
        from .report import build_report, write_reports
        from .results import Status

        run = self.run
        if self.worker or not run.results:
            return
        report = build_report(run, run.profile, sys.version.split()[0])
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
        from .baseline import VerdictKind
        from .results import Status

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
            mark = (
                " (expected by the baseline)" if record["verdict"] == VerdictKind.EXPECTED else ""
            )
            tr.line(f"{record['status']:<14} {record['id']}{mark}: {first}"[:400])
            if record["status"] != Status.SKIP:
                for line in _reproduction(record):
                    tr.line(" " * 15 + line)
        for line in _matrix_summary(list(run.results.values())):
            tr.line(line)
        for path in (run.json_path, run.html_path):
            if path is not None:
                tr.line(f"report written to {path}")
        if run.update_baseline and run.baseline_path is not None:
            tr.line(f"baseline written to {run.baseline_path}")


def _reproduction(record: dict[str, Any]) -> list[str]:
    """How to reproduce a check's result alone, a line per way (its record's ``reproduce``)."""
    reproduce = record["reproduce"]
    lines = [f"alone: {reproduce['command']}"]
    if reproduce["hypothesis"]:
        lines.append(f"hypothesis: {reproduce['hypothesis']} (add it to the check)")
    if reproduce["fuzz"]:
        lines.append(f"fuzz input: {reproduce['fuzz']}")
    return lines


def _matrix_summary(records: list[dict[str, Any]]) -> list[str]:
    """The reports' requirement matrix in a few lines: the count per status, the IDs that
    failed, and the IDs not judged grouped by what blocked them."""
    from .report import FAILING, NOT_JUDGED, REQUIREMENT_STATUSES, blocker, requirement_matrix

    rows = requirement_matrix(records)
    counts = {s: sum(1 for r in rows if r["status"] == s) for s in REQUIREMENT_STATUSES}
    lines = ["requirements: " + "  ".join(f"{s}: {n}" for s, n in counts.items())]
    for status in FAILING:
        ids = [r["id"] for r in rows if r["status"] == status]
        if ids:
            lines.append(f"{status:<14} {', '.join(ids)}")
    blocked: dict[str, list[str]] = {}
    for row in (r for r in rows if r["status"] == NOT_JUDGED):
        for entry in row["blocked_by"]:
            ids = blocked.setdefault(blocker(entry["status"], entry["by"]), [])
            if row["id"] not in ids:
                ids.append(row["id"])
    for by, ids in sorted(blocked.items()):
        lines.append(f"{NOT_JUDGED:<14} blocked by {by}: {', '.join(ids)}")
    return lines


def _marked_requirements(module: str, function: str) -> list[str]:
    """The requirement IDs of suite check ``module::function``, read from its markers."""
    import importlib

    try:
        test = getattr(importlib.import_module(f"{SUITE_PACKAGE}.{module}"), function)
    except (ImportError, AttributeError):
        return []
    ids: list[str] = []
    for mark in getattr(test, "pytestmark", []):
        if mark.name == "requirement":
            ids += [i for i in mark.args if i not in ids]
    return ids
