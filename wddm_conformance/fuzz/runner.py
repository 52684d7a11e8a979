"""The process side of a fuzz target: options, instrumentation, findings that are never lost.

:func:`prepare` is all a ``fuzz_<name>.py`` script calls. It takes the harness's own
options out of ``sys.argv`` (everything else goes to libFuzzer), puts them in the
environment so the processes libFuzzer forks inherit them, makes libFuzzer re-execute the
script with this same interpreter, loads the driver, sets the target up under the DDI
watchdog, instruments only the driver's own modules for coverage, and hands
:func:`one_input` to atheris.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import shlex
import signal
import sys
import threading
import types
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .. import isolation
from ..defaults import TDR_DDI_DELAY
from ..driver import DriverSpec, load_driver
from ..errors import BugCheck, DriverFailure, DriverLoadError
from ..results import classify
from ..watchdog import WatchdogInvoker
from . import target_class
from .base import Target

ENV_DRIVER = "WDDM_DRIVER"
#: Directory where each finding's input and record are written before anything else happens.
ENV_FINDINGS = "WDDM_FINDINGS"
#: Only this requirement ID counts as a finding (the others pass): for minimizing one bug.
ENV_ONLY = "WDDM_FUZZ_ONLY"
#: "0" runs every input with every check on; anything else (the default) runs the lean
#: path and only a failing input again with every check (:func:`confirm`).
ENV_LEAN = "WDDM_FUZZ_LEAN"
OPTIONS = {
    "--driver": ENV_DRIVER,
    "--findings": ENV_FINDINGS,
    "--only": ENV_ONLY,
    "--lean": ENV_LEAN,
}
#: Read end of a pipe whose write end only the campaign holds. When it closes -- the campaign
#: ended, by a signal, SIGKILL included, or by its own hand -- every fuzzing process of the
#: campaign (libFuzzer's parent and its -fork jobs) ends with it.
ENV_CAMPAIGN_FD = "WDDM_CAMPAIGN_FD"


def take_options(argv: Sequence[str]) -> list[str]:
    """Move ``--driver=``, ``--findings=`` and ``--only=`` into the environment; return the rest."""
    rest: list[str] = []
    for arg in argv:
        name, eq, value = arg.partition("=")
        if name in OPTIONS and eq:
            os.environ[OPTIONS[name]] = value
        else:
            rest.append(arg)
    return rest


def relaunchable(argv: Sequence[str]) -> list[str]:
    """``argv`` with ``argv[0]`` made a shell command running this script with this interpreter.

    libFuzzer re-executes ``argv[0]`` through ``system(3)`` for ``-fork``, ``-jobs``,
    ``-merge`` and ``-minimize_crash``. The script's own ``#!/usr/bin/env python3`` would run
    whatever ``python3`` is first on PATH, which in a venv off PATH has neither atheris nor
    the harness. A frozen target (OSS-Fuzz's pyinstaller binary) is its own interpreter and
    keeps its argv.
    """
    if not argv or getattr(sys, "frozen", False):
        return list(argv)
    return [shlex.join([sys.executable, os.path.abspath(argv[0])]), *argv[1:]]


def follow_campaign() -> None:
    """End this process's group when the campaign that started it ends (see ENV_CAMPAIGN_FD)."""
    value = os.environ.get(ENV_CAMPAIGN_FD, "")
    if not value.isdigit():
        return
    fd = int(value)

    def watch() -> None:
        try:
            while os.read(fd, 1):
                pass
        except OSError:
            return  # not the campaign's pipe (a process started by hand with the variable set)
        os.killpg(os.getpgrp(), signal.SIGKILL)

    threading.Thread(target=watch, name="wddm-campaign-watch", daemon=True).start()


def driver_modules(spec: DriverSpec) -> list[types.ModuleType]:
    """The modules that define the driver class and its bases (never the harness's)."""
    out: list[types.ModuleType] = []
    for cls in spec.cls.__mro__:
        module = sys.modules.get(cls.__module__)
        if (
            module is None
            or module in out
            or cls.__module__ == "builtins"
            or (
                cls.__module__.startswith("wddm_conformance")
                and not cls.__module__.startswith("wddm_conformance.reference")
            )
        ):
            continue
        out.append(module)
    return out


def instrument_driver(spec: DriverSpec, instrument: Callable[[Any], Any]) -> int:
    """Instrument every function and method defined in the driver's modules; return how many."""
    done = 0
    seen: set[int] = set()

    def visit(fn: Any) -> None:
        nonlocal done
        if isinstance(fn, staticmethod | classmethod):
            fn = fn.__func__
        if isinstance(fn, types.FunctionType) and id(fn.__code__) not in seen:
            instrument(fn)
            seen.add(id(fn.__code__))
            done += 1

    for module in driver_modules(spec):
        for value in list(vars(module).values()):
            if getattr(value, "__module__", None) != module.__name__:
                continue
            if isinstance(value, type):
                for member in list(vars(value).values()):
                    visit(member)
            else:
                visit(value)
    return done


class Findings:
    """Writes each finding's input and a JSON record, atomically, before it is reported."""

    def __init__(self, directory: str | None, target: str, driver: str) -> None:
        self.directory = Path(directory) if directory else None
        self.target = target
        self.driver = driver

    def record(
        self, data: bytes, exc: BaseException, checks: str = "full", executions: int | None = None
    ) -> Path | None:
        """Write ``data`` and its record; ``checks``: "full" when every check named the
        finding, "lean" for a lean failure that the run with every check did not repeat;
        ``executions``: inputs this fuzzing process ran up to and including ``data``
        (None: not known, e.g. found while the target was set up)."""
        if self.directory is None:
            return None
        outcome = classify(exc)
        digest = hashlib.sha1(data).hexdigest()
        rule = outcome.requirement or outcome.status.value
        stem = self.directory / f"{self.target}-{rule}-{digest[:12]}"
        record = {
            "target": self.target,
            "driver": self.driver,
            "status": outcome.status.value,
            "requirement": outcome.requirement,
            "ddi": getattr(exc, "ddi", ""),
            "message": outcome.message,
            "bugcheck": str(exc.data) if isinstance(exc, BugCheck) else "",
            "sha1": digest,
            "input": stem.name,
            "checks": checks,
            "executions": executions,
        }
        self.directory.mkdir(parents=True, exist_ok=True)
        _atomic_write(stem, data)
        _atomic_write(stem.with_suffix(".json"), json.dumps(record, indent=2).encode() + b"\n")
        return stem


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def lean_from_environment() -> bool:
    """Whether this fuzzing process runs the lean path (``$WDDM_FUZZ_LEAN``, default on)."""
    return os.environ.get(ENV_LEAN, "1").strip() != "0"


def confirm(data: bytes, failure: Exception, full: Callable[[], Target]) -> Exception:
    """What every check says of an input that failed on the lean path.

    ``full`` makes a fresh target with every check on; the exception of its run of
    ``data`` is returned: the finding as ``fuzz repro`` and the suite give it (record,
    requirement ID and message). When that run passes, the failure depended on the inputs
    run before on the same rig, and ``failure`` itself is returned: never lost.
    """
    try:
        full().run(data)
    except Exception as exc:  # DriverFailure or a harness fault, as the lean run raised
        return exc
    return failure


def one_input(
    target: Target,
    findings: Findings,
    only: str | None,
    full: Callable[[], Target] | None = None,
) -> Callable[[bytes], None]:
    """The libFuzzer entry point: run one input; record and re-raise what it finds.

    With ``full`` (the target runs the lean path) a failing input is run again on
    ``full()`` with every check on (:func:`confirm`), and that is what is recorded,
    filtered by ``only`` and raised.
    """

    executions = 0

    def test_one_input(data: bytes) -> None:
        nonlocal executions
        executions += 1
        try:
            target.run(data)
        except Exception as exc:
            found = exc if full is None else confirm(data, exc, full)
            if isinstance(found, DriverFailure):
                if only and found.requirement != only:
                    return
            elif only:  # a harness fault: recorded as INTERNAL-ERROR, still reported
                return
            checks = "lean" if full is not None and found is exc else "full"
            findings.record(data, found, checks, executions)
            if found is exc:
                raise
            raise found from None

    return test_one_input


def load(name: str, where: str = ENV_DRIVER) -> tuple[DriverSpec, Target]:
    """The driver from ``$WDDM_DRIVER`` (default: reference) and target ``name`` for it, set up.

    Set-up runs before libFuzzer's -timeout applies, so its DDI calls go through the
    watchdog (:data:`~wddm_conformance.defaults.TDR_DDI_DELAY`): a driver that hangs there
    is a TDR (ALL-BOUNDED).
    Raises DriverLoadError, or the DriverFailure of a driver that breaks a rule while the
    target is set up.
    """
    spec = load_driver(os.environ.get(ENV_DRIVER, "reference"), where=where)
    return spec, set_up(name, spec)


def set_up(name: str, spec: DriverSpec, lean: bool = False) -> Target:
    """Target ``name`` for ``spec``'s driver, set up (see :func:`load`); ``lean``: on its
    lean path, when it has one (a ``lean`` attribute)."""
    target = target_class(name)(spec)  # type: ignore[call-arg]
    if lean and hasattr(target, "lean"):
        target.lean = True
    # What exists now (modules, hypothesis, the target) lives as long as the process: the
    # collector need not scan it again, so the collections that free each input's (or
    # failed rig's) reference cycles stay cheap. The rig is built after, so it can be freed.
    gc.collect()
    gc.freeze()
    start = getattr(target, "start", None)
    if callable(start):
        start(WatchdogInvoker(TDR_DDI_DELAY))
    return target


def _set_up_dies(name: str, spec: DriverSpec) -> isolation.Death | None:
    """How setting the target up killed a process of its own (a segfault, an exit, a hang
    that ignores the watchdog), or None when it ended (set up, or failed in a way the
    set-up in this process reports: a broken rule)."""
    if not isolation.available():
        return None
    ended = isolation.run(lambda: (set_up(name, spec), b"")[1], isolation.Limits(seconds=120.0))
    if isinstance(ended, isolation.Death) and ended.kind != isolation.DeathKind.RAISED:
        return ended
    return None


def prepare(name: str, argv: Sequence[str]) -> tuple[Callable[[bytes], None], list[str]]:
    """Everything a ``fuzz_<name>.py`` script does before ``atheris.Setup``.

    Returns the TestOneInput callback and the command line left for libFuzzer, whose
    ``argv[0]`` re-runs this script with this interpreter (:func:`relaunchable`). A driver
    that cannot be loaded ends the process with one line naming it (status 1); one that
    breaks a rule while the target is set up is recorded as a finding of the empty input,
    which reproduces it, and ends the process the same way.
    """
    where = "--driver" if any(a.startswith("--driver=") for a in argv) else ENV_DRIVER
    rest = relaunchable(take_options(argv))
    follow_campaign()
    import atheris

    driver = os.environ.get(ENV_DRIVER, "reference")
    try:
        spec = load_driver(driver, where=where)
    except DriverLoadError as exc:
        sys.exit(f"error: {exc}")
    died = _set_up_dies(name, spec)
    if died is not None:
        failure = died.failure("the fuzzing process")
        stem = Findings(os.environ.get(ENV_FINDINGS), name, driver).record(b"", failure)
        where = f"; recorded as {stem}" if stem is not None else ""
        sys.exit(
            f"error: {driver} killed the process while the {name} target was set up: {failure}{where}"
        )
    lean = lean_from_environment()
    try:
        target = set_up(name, spec, lean)
    except DriverLoadError as exc:
        sys.exit(f"error: {exc}")
    except DriverFailure as exc:
        stem = Findings(os.environ.get(ENV_FINDINGS), name, driver).record(b"", exc)
        where = f"; recorded as {stem}" if stem is not None else ""
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        sys.exit(f"error: {driver} broke a rule while the {name} target was set up: {first}{where}")
    instrument_driver(spec, atheris.instrument_func)
    findings = Findings(os.environ.get(ENV_FINDINGS), name, spec.spec)
    full = None
    if getattr(target, "lean", False):
        cls = target_class(name)

        def full() -> Target:
            return cls(spec)  # type: ignore[call-arg]

    return one_input(target, findings, os.environ.get(ENV_ONLY) or None, full), rest
