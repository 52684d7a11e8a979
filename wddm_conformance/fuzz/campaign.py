"""Fuzz campaigns: one command runs a target under libFuzzer and keeps everything it finds.

A campaign lives in a work directory::

    <work>/corpus/       inputs libFuzzer found interesting (the seeds are read, never written)
    <work>/seeds/        the seeds and dictionary the driver's own encoder built (a driver
                         other than the reference, with the packaged corpora)
    <work>/artifacts/    libFuzzer's crash-/timeout-/oom- files
    <work>/findings/     <target>-<ID>-<sha1> inputs and .json records, written by the target
                         itself before libFuzzer reacts, so a killed campaign loses nothing
    <work>/fuzz.log      libFuzzer's whole output
    <work>/stats.csv     progress samples (elapsed, execs, coverage, corpus, exec/s)
    <work>/campaign.json what ran so far; running the same command again resumes
    <work>/summary.txt, <work>/progress.png   written at the end, also after Ctrl-C

With ``jobs > 1`` libFuzzer runs in ``-fork`` mode and keeps going after findings.

Whatever ends the campaign -- its time budget (enforced here too, so a driver that hangs
where libFuzzer's own timers do not reach cannot stretch it), Ctrl-C, SIGTERM, SIGHUP, or
SIGKILL and the death of the campaign's process -- ends libFuzzer and all its jobs; the
findings already written stay. A campaign that cannot run (atheris missing, a driver
that does not load, fuzzing jobs that all die at start) stops within seconds with the
child's own error as one line: exit status 2 for a driver that does not load (bad usage,
as in ``check``), 3 otherwise.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ..defaults import TDR_DDI_DELAY
from ..driver import load_driver, require_driver_form
from ..errors import VIDEO_TDR_FAILURE, DriverLoadError, Tdr
from ..native.abi import is_sanitized
from . import CORPORA, REGRESSIONS, sanitizer, script, target_class
from .progress import ProgressParser, plot, read_csv, status_line, summarize, write_csv
from .runner import ENV_CAMPAIGN_FD, ENV_DRIVER, ENV_FINDINGS, ENV_LEAN, Findings
from .seeds import differences

#: Seconds between status lines when the output is not a terminal (CI logs).
LOG_EVERY = 10.0
#: libFuzzer's -timeout: seconds one input may run.
INPUT_TIMEOUT = 25
#: Seconds past the time budget before the campaign stops libFuzzer itself: one input's
#: -timeout plus libFuzzer's own wrapping up.
GRACE = INPUT_TIMEOUT + 15
#: -fork jobs that ended without a single execution, past which they are taken to die at start.
DEAD_JOBS = 4
#: Seconds the driver under test has to build its seeds (a process of its own).
SEED_TIMEOUT = 2 * TDR_DDI_DELAY


@dataclass
class Campaign:
    """What to run and where to keep it."""

    target: str
    driver: str = "reference"
    work: Path = Path("fuzz-work")
    seconds: float | None = 60.0
    runs: int | None = None
    jobs: int = 1
    keep_going: bool = False
    corpora: Path = CORPORA
    extra: list[str] = field(default_factory=list)
    #: The driver repository's own regression inputs (``<dir>/<target>/``), also seeds.
    regressions: Path = REGRESSIONS
    #: Seconds past the time budget before the campaign stops libFuzzer itself.
    grace: float = GRACE
    #: The lean path: each input without the work that only names a failure's rule; a
    #: failing input runs again with every check on, and that names the finding
    #: (:func:`.runner.confirm`). False: every input with every check.
    lean: bool = True
    #: Seeds and dictionary built by the driver under test (:func:`own_seeds`), used in
    #: place of the packaged ones; None: ``corpora``'s.
    seeds: Path | None = None

    @property
    def corpus(self) -> Path:
        return self.work / "corpus"

    @property
    def artifacts(self) -> Path:
        return self.work / "artifacts"

    @property
    def findings(self) -> Path:
        return self.work / "findings"

    def seed_dirs(self) -> list[Path]:
        dirs = [
            (self.seeds or self.corpora) / self.target,
            self.corpora / "regressions" / self.target,
            self.regressions / self.target,
        ]
        return [d for d in dirs if d.is_dir() and any(d.iterdir())]

    def command(self) -> list[str]:
        """The libFuzzer command line of this campaign."""
        cmd = [
            sys.executable,
            str(script(self.target)),
            f"--driver={self.driver}",
            str(self.corpus),
        ]
        cmd += [str(d) for d in self.seed_dirs()]
        cmd += [
            f"-artifact_prefix={self.artifacts}{os.sep}",
            "-print_final_stats=1",
            "-max_len=8192",
            f"-timeout={INPUT_TIMEOUT}",
            "-rss_limit_mb=4096",
        ]
        dictionary = (self.seeds or self.corpora) / f"{self.target}.dict"
        if dictionary.is_file():
            cmd.append(f"-dict={dictionary}")
        if self.seconds is not None:
            cmd.append(f"-max_total_time={max(1, int(self.seconds))}")
        if self.runs is not None:
            cmd.append(f"-runs={self.runs}")
        if self.jobs > 1 or self.keep_going:
            cmd += [
                f"-fork={self.jobs}",
                "-ignore_crashes=1",
                "-ignore_timeouts=1",
                "-ignore_ooms=1",
            ]
        return cmd + self.extra


def own_seeds(c: Campaign, env: dict[str, str]) -> str:
    """Build the driver's own seeds and dictionary into ``<work>/seeds`` (its encoder, its
    allocation sizes); with the packaged corpora, which the reference driver built, start
    from them where they differ (sets ``c.seeds``). Returns the line that says whose seeds
    the campaign starts from.

    The driver runs in a process of its own (``fuzz seeds --target``): one that does not
    load raises DriverLoadError with its one-line reason (bad usage, as in ``check``); one
    that crashes or hangs there costs the campaign its own seeds, and the line says why.
    """
    given = f"seeds: {c.corpora / c.target} (--corpora)" if c.corpora != CORPORA else ""
    packaged = "seeds: the packaged ones, built by the reference driver's encoder"
    if c.driver == "reference":
        return given or packaged
    out = c.work / "seeds"
    command = [sys.executable, "-m", "wddm_conformance.fuzz.seeds", f"--driver={c.driver}"]
    command += ["--out", str(out), "--target", c.target]
    why = ""
    try:
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=SEED_TIMEOUT
        )
        lines = (done.stderr or done.stdout).strip().splitlines()
        if done.returncode == 2 and lines:
            raise DriverLoadError(lines[-1].removeprefix("error: "))
        if done.returncode != 0:
            why = lines[-1] if lines else f"exit status {done.returncode}"
    except subprocess.TimeoutExpired:
        why = f"no answer within {SEED_TIMEOUT} s"
    if given:
        return given
    if why:
        return f"{packaged}: building {c.driver}'s own failed: {why}"
    if not differences(CORPORA, _read_seeds(out, c.target), (c.target,)):
        return f"seeds: the packaged ones ({c.driver}'s encoder builds the same)"
    c.seeds = out
    count = sum(1 for p in (out / c.target).iterdir() if p.is_file())
    return f"seeds: {count} built by {c.driver}'s own encoder, in {out / c.target}"


def _read_seeds(out: Path, target: str) -> dict[str, bytes]:
    files = {f"{target}/{p.name}": p.read_bytes() for p in (out / target).glob("*") if p.is_file()}
    dictionary = out / f"{target}.dict"
    if dictionary.is_file():
        files[f"{target}.dict"] = dictionary.read_bytes()
    return files


def load_findings(directory: Path) -> list[dict[str, Any]]:
    """Every finding record in ``directory`` (a corrupt record is named, not fatal)."""
    out: list[dict[str, Any]] = []
    if not directory.is_dir():
        return out
    for path in sorted(directory.glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            record = {
                "requirement": "",
                "status": "UNREADABLE",
                "input": path.stem,
                "ddi": "",
                "message": f"{path}: {exc}",
            }
        out.append(record)
    return out


@dataclass
class Outcome:
    """What a campaign ended with."""

    exit_code: int
    findings: list[dict[str, Any]]
    summary: str
    elapsed: float


class CampaignError(Exception):
    """The campaign could not run; the message is one line naming the cause."""


class Stopped(Exception):
    """SIGTERM or SIGHUP reached the campaign: stop as Ctrl-C does."""


@contextmanager
def _stopping_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP stop the campaign as Ctrl-C does (in the main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: object) -> None:
        raise Stopped(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def check_runnable() -> None:
    """Raise CampaignError when this interpreter cannot run a target at all."""
    if importlib.util.find_spec("atheris") is None:
        raise CampaignError(
            f"atheris is not installed for {sys.executable} (the harness's fuzz extra): "
            f"pip install 'atheris>=2.3' into that environment"
        )


def _child_error(lines: Sequence[str]) -> str:
    """The line that says why a fuzzing process ended: its own ``error:`` line, else the
    last line of an uncaught exception, else its last line."""
    text = [line.strip() for line in lines if line.strip()]
    for line in reversed(text):
        if line.startswith("error:"):
            return line.removeprefix("error:").strip()
    for line in reversed(text):
        if line.split(":", 1)[0].endswith(("Error", "Exception")):
            return line
    return text[-1] if text else "no output"


def _job_error(c: Campaign, env: dict[str, str]) -> str:
    """Run one fuzzing job the way -fork does and return the line that says why it dies."""
    with tempfile.TemporaryDirectory(prefix="wddm-fuzz-probe-") as empty:
        cmd = [sys.executable, str(script(c.target)), empty, "-runs=1"]
        try:
            done = subprocess.run(
                cmd,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
                timeout=GRACE,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return f"a fuzzing job did not start within {GRACE} s"
    return _child_error(done.stdout.splitlines())


def run(c: Campaign, out: IO[str] = sys.stdout, tty: bool | None = None) -> Outcome:
    """Run (or resume) campaign ``c``; always writes the summary, CSV and plot at the end.

    Raises ValueError for an unknown target, DriverLoadError for a driver that does not
    load (:func:`own_seeds`) and CampaignError when this interpreter has no atheris; a
    campaign whose fuzzing processes cannot start returns exit code 3 with their error in
    the summary.
    """
    target_class(c.target)  # an unknown target is a ValueError before anything starts
    require_driver_form(c.driver)  # a misspelled one too, before a work directory is made
    check_runnable()
    for d in (c.corpus, c.artifacts, c.findings):
        d.mkdir(parents=True, exist_ok=True)
    state_path = c.work / "campaign.json"
    state: dict[str, Any] = json.loads(state_path.read_text()) if state_path.is_file() else {}
    for what, value in (("target", c.target), ("driver", c.driver)):
        if state.get(what, value) != value:
            raise ValueError(
                f"{c.work} holds a campaign of {state.get('target')} on {state.get('driver')}: "
                f"resume it with the same target and --driver, or give this one its own --work DIR"
            )
    before = float(state.get("elapsed", 0.0))
    sessions = int(state.get("sessions", 0))
    if sessions:
        print(f"resuming {c.work}: {sessions} earlier session(s), {before:.0f} s", file=out)
    env = sanitizer.environment(
        c.driver,
        dict(
            os.environ,
            **{
                ENV_DRIVER: c.driver,
                ENV_FINDINGS: str(c.findings),
                ENV_LEAN: "1" if c.lean else "0",
            },
        ),
    )
    print(own_seeds(c, env), file=out)
    library = sanitizer.native_library(c.driver)
    if library is not None and library.is_file() and not is_sanitized(library):
        print(
            f"note: {library.name} is not built for coverage: libFuzzer sees none of it, so "
            f"the corpus does not grow from it; build it with `wddm-conformance native build "
            f"--sanitize` for a coverage-guided campaign (docs/native.md)",
            file=out,
        )
    tty = out.isatty() if tty is None else tty
    parser = ProgressParser()
    start = time.monotonic()
    last_print = 0.0
    log_path = c.work / "fuzz.log"
    log_start = (
        len(log_path.read_text(encoding="utf-8", errors="replace")) if log_path.is_file() else 0
    )
    tail: list[str] = []
    kept_before = _kept(c)
    found_before = len(load_findings(c.findings))
    cannot_run = ""
    interrupted = ""
    over_time = threading.Event()
    # The fuzzing processes hold the read end; when this process ends, however it ends, the
    # write end closes and they end too (runner.follow_campaign).
    lifeline, keep = os.pipe()
    env[ENV_CAMPAIGN_FD] = str(lifeline)
    with open(log_path, "a", encoding="utf-8", errors="replace") as log, _stopping_signals():
        log.write(f"$ {' '.join(c.command())}\n")
        proc = subprocess.Popen(
            c.command(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            text=True,
            errors="replace",
            start_new_session=True,
            pass_fds=(lifeline,),
        )
        os.close(lifeline)
        deadline: threading.Timer | None = None
        if c.seconds is not None:

            def overrun() -> None:
                over_time.set()
                _stop(proc)

            deadline = threading.Timer(c.seconds + c.grace, overrun)
            deadline.daemon = True
            deadline.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                log.write(line)
                tail = [*tail[-49:], line]
                now = time.monotonic() - start
                sample = parser.feed(line, before + now)
                if sample is None:
                    continue
                dead = parser.ooms + parser.timeouts + parser.crashes
                forked = c.jobs > 1 or c.keep_going
                if forked and sample.execs == 0 and dead >= DEAD_JOBS and _kept(c) == kept_before:
                    cannot_run = f"every fuzzing job died at start: {_job_error(c, env)}"
                    _stop(proc)
                    break
                if tty or now - last_print >= LOG_EVERY:
                    last_print = now
                    found = len(list(c.findings.glob("*.json")))
                    text = status_line(
                        c.target, parser.last, found, before + now, _budget(c, before)
                    )
                    print(
                        f"\r{text}" if tty else text, end="" if tty else "\n", file=out, flush=True
                    )
            proc.wait()
        except KeyboardInterrupt:
            interrupted = "interrupted"
            _stop(proc)
        except Stopped as exc:
            interrupted = f"stopped by {exc}"
            _stop(proc)
        finally:
            if deadline is not None:
                deadline.cancel()
            if proc.poll() is None:
                _stop(proc)
            os.close(keep)
    if tty:
        print(file=out)
    elapsed = time.monotonic() - start
    write_csv(parser.samples, c.work / "stats.csv", append=True)
    state = {
        "target": c.target,
        "driver": c.driver,
        "elapsed": before + elapsed,
        "sessions": sessions + 1,
        "command": c.command(),
    }
    state_path.write_text(json.dumps(state, indent=2) + "\n")
    report = sanitizer.parse(log_path.read_text(encoding="utf-8", errors="replace")[log_start:])
    if report is not None:  # the sanitizer stopped the process before the harness could record it
        crashes = [Path(a) for a in parser.artifacts if Path(a).name.startswith("crash-")]
        sanitizer.record(report, c.target, c.driver, crashes[-1] if crashes else None, c.findings)
    record_deaths(c)
    findings = load_findings(c.findings)
    samples = read_csv(c.work / "stats.csv")
    summary = summarize(c.target, c.driver, samples, findings, before + elapsed, c.findings)
    if parser.artifacts and not findings:
        summary += "\nlibFuzzer artifacts: " + ", ".join(parser.artifacts)
    if interrupted:
        summary += f"\n{interrupted}: run the same command again to resume"
    if over_time.is_set():
        summary += f"\nstopped {c.grace:g} s past the time budget: libFuzzer did not stop by itself"
    new_findings = len(findings) > found_before
    # The target ends its process once it has recorded a set-up failure as a finding, and
    # libFuzzer ends it on an input that kills it: a finding, maybe one an earlier session
    # recorded.
    known = {str(f.get("sha1", "")) for f in findings}
    died_on_finding = any(
        Path(a).is_file() and hashlib.sha1(Path(a).read_bytes()).hexdigest() in known
        for a in parser.artifacts
    )
    recorded = "; recorded as " in _child_error(tail) or died_on_finding
    failed = proc.returncode not in (0, None) and not (new_findings or recorded or interrupted)
    if failed and not cannot_run and not over_time.is_set():
        cannot_run = f"libFuzzer exited with status {proc.returncode}: {_child_error(tail)}"
    if cannot_run:
        summary += f"\nerror: {cannot_run} (log: {log_path})"
    (c.work / "summary.txt").write_text(summary + "\n")
    try:
        plot(samples, c.work / "progress.png", f"{c.target} on {c.driver}")
    except RuntimeError as exc:
        summary += f"\nno plot: {exc}"
    if cannot_run and not any(s.execs for s in parser.samples):
        print(f"error: {cannot_run} (log: {log_path})", file=out)  # nothing ran: no summary
    else:
        print(summary, file=out)
        print(f"work directory: {c.work}", file=out)
    internal = any(f.get("status") == "INTERNAL-ERROR" for f in findings)
    code = 3 if internal or cannot_run else 1 if findings else 0
    return Outcome(code, findings, summary, before + elapsed)


def record_deaths(c: Campaign) -> int:
    """Record each input libFuzzer saw end a fuzzing process (its ``crash-*``, ``oom-*`` and
    ``timeout-*`` artifacts, from the process itself or any -fork job) that the target
    could not record itself: a segfault or an abort in the driver, a hang libFuzzer's alarm
    ended. Each is replayed in a process of its own and recorded as what its death stands
    for (INTERPRETING.md §5); a hang that no longer hangs on replay is still a TIMEOUT under
    ALL-BOUNDED. Returns how many were recorded."""
    from .triage import replay_isolated

    findings = Findings(str(c.findings), c.target, c.driver)
    known = {str(f.get("sha1", "")) for f in load_findings(c.findings)}
    spec = None
    done = 0
    for pattern in ("crash-*", "oom-*", "timeout-*"):
        for artifact in sorted(c.artifacts.glob(pattern)):
            data = artifact.read_bytes()
            if hashlib.sha1(data).hexdigest() in known:
                continue
            spec = spec or load_driver(c.driver)
            _, failure = replay_isolated(spec, c.target, data, TDR_DDI_DELAY)
            if failure is None and pattern == "timeout-*":
                failure = Tdr(
                    VIDEO_TDR_FAILURE,
                    (0, 0, 0, 0),
                    "ALL-BOUNDED",
                    "",
                    "the input ran past libFuzzer's -timeout: a DDI call did not return "
                    f"(fuzz repro {artifact.name} names it)",
                )
            if failure is None:
                continue
            findings.record(data, failure)
            known.add(hashlib.sha1(data).hexdigest())
            done += 1
    return done


def _kept(c: Campaign) -> int:
    """How many findings and libFuzzer artifacts the campaign holds."""
    return sum(1 for d in (c.findings, c.artifacts) if d.is_dir() for _ in d.iterdir())


def _budget(c: Campaign, before: float) -> float | None:
    return before + c.seconds if c.seconds is not None else None


def _stop(proc: subprocess.Popen[str]) -> None:
    """Stop libFuzzer (and its forks) the way Ctrl-C does, then harder if it lingers."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=10)
            return
        except subprocess.TimeoutExpired:
            continue
