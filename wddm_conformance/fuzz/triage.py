"""Triage: replay a finding as a readable DDI story, minimize it, keep it as a regression.

* :func:`repro` runs one input on a fresh target (with the DDI watchdog, so a hang is a
  TIMEOUT) and prints the decoded scenario, the outcome with the violated requirement
  and its text, the DDI call sequence and the last DMA buffer disassembled.
* :func:`minimize` asks libFuzzer (``-minimize_crash``) for a smaller input that still
  breaks the *same* requirement (other findings do not count while minimizing).
* :func:`promote` copies a finding into ``<regressions>/<target>/`` with a record
  of what it found, so the suite's replay keeps the bug fixed.
* :func:`coverage_report` measures the driver's line and branch coverage over corpora
  with coverage.py and writes an HTML report.
"""

from __future__ import annotations

import hashlib
import json
import marshal
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .. import isolation
from ..defaults import TDR_DDI_DELAY
from ..driver import REGISTRY, DriverSpec, load_driver, module_path
from ..errors import DriverFailure, DriverLoadError
from ..requirements import catalogue
from ..results import Outcome, Status, classify
from ..watchdog import WatchdogInvoker
from . import TARGETS, script, target_class
from .runner import ENV_DRIVER, ENV_ONLY, driver_modules


@dataclass(frozen=True)
class Replay:
    """The outcome of one input, with what a person needs to understand it."""

    outcome: Outcome
    scenario: str
    calls: str
    dma: str
    #: Python's stack when the replay's process died (faulthandler), else "".
    stack: str = ""
    #: The report of the sanitizer that stopped the replay's process, else "".
    sanitizer: str = ""

    @property
    def reproduced(self) -> bool:
        return self.outcome.status is not Status.PASS


def sidecar(path: Path) -> dict[str, Any]:
    """The JSON record written next to a finding or regression input (empty if none)."""
    record = path.with_name(path.name + ".json")
    if not record.is_file():
        record = path.with_suffix(".json")
    if record.is_file() and record != path:
        try:
            data: dict[str, Any] = json.loads(record.read_text())
            return data
        except ValueError as exc:
            raise ValueError(f"corrupt finding record {record}: {exc}") from None
    return {}


def infer_target(path: Path, given: str | None) -> str:
    """The target an input belongs to: given, from its record, its name or its folder."""
    if given:
        target_class(given)
        return given
    recorded = sidecar(path).get("target")
    if isinstance(recorded, str) and recorded in TARGETS:
        return recorded
    for name in sorted(TARGETS, key=len, reverse=True):
        if path.name.startswith(f"{name}-") or path.parent.name == name:
            return name
    raise ValueError(
        f"cannot tell which target {path} is for: pass --target ({', '.join(TARGETS)})"
    )


def replay(
    spec: DriverSpec, target_name: str, data: bytes, timeout: float = TDR_DDI_DELAY
) -> Replay:
    """Run ``data`` once on a fresh target for ``spec``, capturing calls and DMA."""
    target: Any = target_class(target_name)(spec, WatchdogInvoker(timeout))  # type: ignore[call-arg]
    try:
        rig = getattr(target, "rig", None)
        scenario = target.describe(data)
    except DriverFailure as exc:
        return Replay(
            classify(exc), f"{target_name}: the driver fails while the target is set up", "", ""
        )
    kernel = rig.kernel if rig is not None else None
    last: list[tuple[bytes, int | None]] = []
    if kernel is not None:
        execute = kernel.gpu.execute

        def recording(dma: Any, *, privileged: bool) -> Any:
            execution = execute(dma, privileged=privileged)
            fault = getattr(execution, "fault", None)
            last[:] = [(bytes(dma), getattr(fault, "dma_offset", None))]
            return execution

        kernel.gpu.execute = recording
    error: BaseException | None = None
    try:
        target.run(data)
    except Exception as exc:
        error = exc
    calls = kernel.caller.sequence() if kernel is not None else ""
    dma = ""
    if kernel is not None and last:
        buffer, mark = last[0]
        dma = kernel.gpu.disassemble(buffer, mark=mark)
    return Replay(classify(error), scenario, calls, dma)


def replay_isolated(
    spec: DriverSpec, target_name: str, data: bytes, timeout: float = TDR_DDI_DELAY
) -> tuple[Replay, DriverFailure | None]:
    """:func:`replay` in a process of its own, so that an input that kills it (a segfault,
    an abort, an exit, a hang that ignores the watchdog) is reported as what Windows would
    do (INTERPRETING.md §5, "When the check's process dies"), not lost. Returns the replay
    and, when the process died, the failure its death stands for."""
    if not isolation.available():
        return replay(spec, target_name, data, timeout), None

    def job() -> bytes:
        r = replay(spec, target_name, data, timeout)
        o = r.outcome
        return marshal.dumps((o.status.value, o.requirement, o.message, r.scenario, r.calls, r.dma))

    ended = isolation.run(job, isolation.Limits(seconds=max(60.0, 4 * timeout)))
    if isinstance(ended, isolation.Death):
        failure = ended.failure("the replay's process")
        scenario = f"{target_name}: the input killed the replay's process"
        return (
            Replay(
                classify(failure), scenario, "", "", ended.output.strip(), ended.sanitizer.strip()
            ),
            failure,
        )
    status, requirement, message, scenario, calls, dma = marshal.loads(ended)
    return Replay(Outcome(Status(status), requirement, message), scenario, calls, dma), None


def render_replay(r: Replay, target: str, driver: str) -> str:
    """The replay as text for a terminal or a bug report."""
    lines = [f"target {target}, driver {driver}", r.scenario, ""]
    o = r.outcome
    if o.status is Status.PASS:
        lines.append("PASS: the input breaks no rule on this driver")
        return "\n".join(lines)
    lines.append(f"{o.status.value}  {o.requirement or '(no requirement)'}")
    req = catalogue().get(o.requirement)
    if req is not None:
        lines.append(f"  {req.id} ({req.ddi}): {req.text}")
    lines.append(f"  {o.message}")
    if r.calls:
        lines += ["", "DDI calls (oldest first):", r.calls]
    if r.dma and r.dma not in o.message:
        lines += ["", "last DMA buffer the GPU ran:", r.dma]
    if r.sanitizer:
        lines += ["", "sanitizer report:", r.sanitizer]
    if r.stack:
        lines += ["", "Python stack when the process died:", r.stack]
    return "\n".join(lines)


def repro(path: Path, target: str | None, driver: str | None, out: IO[str] = sys.stdout) -> int:
    """Replay one input and print it; 1 when it still finds something, 0 when it passes."""
    name = infer_target(path, target)
    driver = driver or str(sidecar(path).get("driver") or "reference")
    spec = load_driver(driver)
    r, _ = replay_isolated(spec, name, path.read_bytes())
    print(render_replay(r, name, driver), file=out)
    return 1 if r.reproduced else 0


def minimize(
    path: Path,
    target: str | None,
    driver: str | None,
    runs: int = 2000,
    output: Path | None = None,
    out: IO[str] = sys.stdout,
) -> int:
    """Shrink a finding with libFuzzer's -minimize_crash, keeping its requirement ID."""
    name = infer_target(path, target)
    driver = driver or str(sidecar(path).get("driver") or "reference")
    spec = load_driver(driver)
    first = replay(spec, name, path.read_bytes())
    if not first.reproduced:
        print(f"{path} does not fail on {driver}: nothing to minimize", file=out)
        return 1
    rule = first.outcome.requirement
    output = output or path.with_name(path.name + ".min")
    env = dict(os.environ, **{ENV_DRIVER: driver})
    if rule:
        env[ENV_ONLY] = rule
    env.pop("WDDM_FINDINGS", None)
    cmd = [
        sys.executable,
        str(script(name)),
        "-minimize_crash=1",
        f"-runs={runs}",
        f"-exact_artifact_path={output}",
        str(path),
    ]
    done = subprocess.run(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False
    )
    if not output.is_file() and done.returncode != 0:
        lines = [line for line in done.stdout.splitlines() if line.strip()]
        print(
            f"libFuzzer's -minimize_crash wrote nothing (exit {done.returncode}): "
            f"{lines[-1] if lines else 'no output'}; keeping the input as it is",
            file=out,
        )
    if not output.is_file():
        shutil.copyfile(path, output)
    again = replay(spec, name, output.read_bytes())
    if again.outcome.requirement != rule:
        shutil.copyfile(path, output)
    size = output.stat().st_size
    print(
        f"{path} ({path.stat().st_size} bytes) -> {output} ({size} bytes), still {rule or first.outcome.status.value}",
        file=out,
    )
    return 0


def promote(
    path: Path,
    target: str | None,
    driver: str | None,
    regressions: Path,
    out: IO[str] = sys.stdout,
) -> Path:
    """Copy a finding into ``regressions/<target>/`` with a ``.json`` record; return its path.

    ``regressions`` is the driver repository's own directory (``--regressions``, default
    :data:`~wddm_conformance.fuzz.REGRESSIONS`); the suite and campaigns replay it.
    """
    name = infer_target(path, target)
    driver = driver or str(sidecar(path).get("driver") or "reference")
    data = path.read_bytes()
    r = replay(load_driver(driver), name, data)
    if not r.reproduced:
        raise ValueError(
            f"{path} does not fail on {driver}; a regression input must have found something"
        )
    rule = r.outcome.requirement or r.outcome.status.value
    folder = regressions / name
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / f"{rule}-{hashlib.sha1(data).hexdigest()[:12]}"
    dest.write_bytes(data)
    record = {
        "target": name,
        "requirement": r.outcome.requirement,
        "status": r.outcome.status.value,
        "found_with": driver,
        "message": r.outcome.message.splitlines()[0] if r.outcome.message else "",
    }
    dest.with_name(dest.name + ".json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"regression input {dest} ({rule}, found with {driver})", file=out)
    return dest


def inputs(paths: Sequence[Path]) -> Iterator[Path]:
    """Every input file under ``paths`` (records and hidden files skipped)."""
    for p in paths:
        files = sorted(p.rglob("*")) if p.is_dir() else [p]
        for f in files:
            if f.is_file() and f.suffix != ".json" and not f.name.startswith("."):
                yield f


def coverage_report(
    target: str,
    driver: str,
    paths: Sequence[Path],
    html: Path,
    out: IO[str] = sys.stdout,
) -> float:
    """Replay every input under ``paths``; HTML coverage of the driver's own modules (those
    of its class and its bases, :func:`~.runner.driver_modules`) into ``html``. Prints one
    line naming each module's file as its import path spells it; returns the percentage.

    The modules are found by loading the driver in a child process first, so that this
    process imports them under coverage (module-level lines count) and measures them
    wherever they are installed (coverage.py skips site-packages unless told). Raises
    RuntimeError for a native driver or without coverage.py, DriverLoadError for a bad one.
    """
    try:
        import coverage
    except ImportError:
        raise RuntimeError(
            "coverage is not installed (the harness's fuzz extra): pip install 'coverage>=7'"
        ) from None
    if REGISTRY.get(driver, driver).startswith("native:"):
        raise RuntimeError(
            f"fuzz coverage measures a Python driver's lines; {driver!r} is a native library"
        )
    files = _driver_files(driver)
    cov = coverage.Coverage(data_file=None, branch=True, include=list(files))
    cov.start()  # before the driver is imported, so its module-level lines count too
    try:
        spec = load_driver(driver)
        instance: Any = target_class(target)(spec)  # type: ignore[call-arg]
        count = failures = 0
        for f in inputs(paths):
            count += 1
            try:
                instance.run(f.read_bytes())
            except Exception:
                failures += 1
    finally:
        cov.stop()
    title = f"{driver} under fuzz target {target}"
    percent = float(cov.html_report(directory=str(html), title=title))
    print(
        f"{count} inputs ({failures} failing) cover {percent:.1f}% of {', '.join(files.values())}; "
        f"report: {html / 'index.html'}",
        file=out,
    )
    return percent


def driver_files(driver: str) -> dict[str, str]:
    """The files of ``driver``'s modules (:func:`~.runner.driver_modules`), resolved, each
    once (a file imported under two module names too), with its import path spelling
    (``mydriver/miniport.py``, beside ``wddm_conformance/reference/miniport.py`` for a
    subclass of the reference: not ``miniport.py, miniport.py``)."""
    files: dict[str, str] = {}
    for module in driver_modules(load_driver(driver)):
        if module.__file__:
            files.setdefault(str(Path(module.__file__).resolve()), module_path(module))
    return files


def _driver_files(driver: str) -> dict[str, str]:
    """:func:`driver_files` from a child process with this one's ``sys.path`` (the
    driver's modules stay unimported here); its one-line error as a DriverLoadError."""
    code = (
        "import json, sys; sys.path[:] = json.loads(sys.argv[2])\n"
        "from wddm_conformance.errors import DriverLoadError\n"
        "from wddm_conformance.fuzz.triage import driver_files\n"
        "try: found = {'files': driver_files(sys.argv[1])}\n"
        "except DriverLoadError as exc: found = {'error': str(exc)}\n"
        "print('\\n' + json.dumps(found))"
    )
    child = subprocess.run(
        [sys.executable, "-c", code, driver, json.dumps(sys.path)],
        capture_output=True,
        text=True,
        check=False,
    )
    lines = child.stdout.splitlines()
    if child.returncode or not lines:
        why = (child.stderr.strip().splitlines() or [f"exit status {child.returncode}"])[-1]
        raise DriverLoadError(f"invalid --driver {driver!r}: loading it failed: {why}")
    found: dict[str, Any] = json.loads(lines[-1])
    if "error" in found:
        raise DriverLoadError(found["error"])
    files: dict[str, str] = found["files"]
    if not files:
        raise RuntimeError(f"fuzz coverage: driver {driver!r} has no Python module of its own")
    return files
