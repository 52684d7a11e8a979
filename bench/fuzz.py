"""Benchmark: executions per second of every fuzz target on the reference driver.

Every target is measured side by side with ``bench/fuzz_calibration.py``, a target that
does a fixed amount of instrumented dict and list work per input (tuned to about 16,000
exec/s on the 2-core reference machine), in the same run: the machines this runs on are noisy
(shared CPUs, other jobs), so each target's exec/s is also quoted as a ratio to the
calibration's. Rounds are interleaved (every target once per round, the order rotating
each round) so drift and background load hit all alike; medians are quoted.

One run is ``python fuzz_<name>.py -max_total_time=T -print_final_stats=1 ...`` in a fresh
temporary directory, with the flags a campaign (``wddm-conformance fuzz run``) uses
(``-dict=corpora/<name>.dict`` when there is one, ``-max_len=8192 -timeout=25
-rss_limit_mb=4096``), a fresh empty corpus directory first (libFuzzer writes new inputs
only there) and the seed corpus ``corpora/<name>/`` after it, so the seeds are read,
never written (the calibration starts from an empty corpus and has no dictionary). The
exec/s figure is libFuzzer's own ``stat::average_exec_per_sec`` (executions over whole
seconds since the process started, imports included).

Goals (issue 14), as ratios to the calibration: render >= 0.25, patch >= 0.10,
build_paging_buffer >= 0.15, create_allocation >= 0.40, lifecycle >= 0.06,
statemachine >= 0.01. Also measured:
``-fork=2`` scaling on render, the total executions in the same time with ``-fork=1``
and ``-fork=2``: counted as the jobs run, from each job's own log (the fork parent's
``#N:`` lines count a job only once it has ended, and drop the jobs still running when
it stops), at the moment the time budget is up (``--fork-seconds``), goal >= 1.85x. The load average before and after is printed: a figure taken while other
work used the CPUs is not comparable, least of all the fork scaling.

The reference driver must have no findings. A run that a finding stops early has no
meaningful speed: it is reported (requirement, message) instead of a number, and the
exit status is 3. ``--ignore-findings`` sets ``$WDDM_FUZZ_ONLY`` to a requirement ID
that does not exist, so every finding passes silently and throughput can still be
measured while a false positive is being fixed (the table says so).

Usage: ``python bench/fuzz.py [--targets NAME...] [--seconds S] [--repeat N] [--quick]
[--ignore-findings] [--full-checks] [--json PATH]``. The targets run the lean path, as a
campaign does (``--full-checks``: every check on every input). Exit status 0 whether
targets are met or missed, 3 when a run failed (a script that did not start, or a
finding on the reference driver), 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wddm_conformance.fuzz import CORPORA, TARGETS, script
from wddm_conformance.fuzz.progress import ForkJobs, ProgressParser
from wddm_conformance.fuzz.runner import ENV_DRIVER, ENV_FINDINGS, ENV_LEAN, ENV_ONLY

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CALIBRATION = "calibration"
CALIBRATION_SCRIPT = HERE / "fuzz_calibration.py"

#: Issue 14's goals on the reference driver: exec/s over the calibration's, same run.
RATIO_GOALS: dict[str, float | None] = {
    "render": 0.25,
    "patch": 0.10,
    "build_paging_buffer": 0.15,
    "create_allocation": 0.40,
    "lifecycle": 0.06,
    "statemachine": 0.01,
}
#: Total executions with -fork=2 over -fork=1 in the same time (issue 14: >= 1.85x in 60 s).
FORK_TARGET = 1.85
FORK_TARGET_NAME = "render"

DEFAULT_SECONDS = 10
DEFAULT_REPEAT = 3
QUICK_SECONDS = 3
QUICK_REPEAT = 1
#: libFuzzer flags of every run besides the time limit, as ``wddm-conformance fuzz run`` uses.
CAMPAIGN_FLAGS = ("-print_final_stats=1", "-max_len=8192", "-timeout=25", "-rss_limit_mb=4096")
#: A requirement ID that no finding has: in $WDDM_FUZZ_ONLY it makes every finding pass.
NO_REQUIREMENT = "BENCH-IGNORE-ALL-FINDINGS"
#: Lines of a failed run's output shown in the report.
TAIL_LINES = 8
#: Seconds a run may take beyond its time limit (start-up, seed corpus) before it is killed.
GRACE_S = 120.0
#: Seconds between two reads of the fork jobs' logs.
FORK_POLL_S = 0.25


# --------------------------------------------------------------------------- one run


@dataclass
class Run:
    """One libFuzzer process: what it printed and what it found."""

    name: str
    command: list[str]
    returncode: int | None
    wall_s: float
    #: libFuzzer's ``stat::average_exec_per_sec`` (None: not printed).
    exec_per_s: int | None
    #: ``stat::number_of_executed_units``; in fork mode the executions of every job,
    #: running ones included, when the time budget was up (:class:`ForkJobs`).
    executed: int | None
    findings: list[dict[str, Any]] = field(default_factory=list)
    tail: list[str] = field(default_factory=list)
    timed_out: bool = False
    #: In fork mode: the fork parent's own last ``#N`` (merged jobs only, at its end).
    parent_executed: int | None = None

    @property
    def problem(self) -> str | None:
        """Why this run's numbers do not count, in one line; None when they do."""
        if self.findings:
            f = self.findings[0]
            rule = f.get("requirement") or f.get("status") or "?"
            message = str(f.get("message", ""))
            said = message if message.startswith(f"[{rule}]") else f"{rule} {message}"
            more = f" (+{len(self.findings) - 1} more)" if len(self.findings) > 1 else ""
            return f"stopped by a finding after {self.wall_s:.1f} s: {said}{more}"
        if self.timed_out:
            return f"did not end within its time limit + {GRACE_S:.0f} s; killed"
        if self.returncode != 0 or self.executed is None:
            return f"exited with status {self.returncode} without stats (final or progress)"
        return None

    @property
    def is_error(self) -> bool:
        """True when the script failed in a way that is not a finding (did not start, crashed)."""
        return self.problem is not None and not self.findings

    def summary(self) -> dict[str, Any]:
        """JSON-ready view of the run."""
        return {
            "exec_per_s": self.exec_per_s,
            "executed": self.executed,
            "parent_executed": self.parent_executed,
            "wall_s": self.wall_s,
            "returncode": self.returncode,
            "problem": self.problem,
            "findings": self.findings,
            "tail": self.tail if self.problem else [],
            "command": self.command,
        }


def _stop_group(proc: subprocess.Popen[str]) -> None:
    """End the process group this benchmark started for ``proc`` (libFuzzer and its forks)."""
    for sig in (signal.SIGINT, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=5)
            return
        except subprocess.TimeoutExpired:
            continue


def base_env(ignore_findings: bool, full_checks: bool = False) -> dict[str, str]:
    """The environment of every run: the reference driver, this checkout first on PYTHONPATH,
    the lean path as a campaign runs it (every check on every input with ``full_checks``)."""
    drop = (ENV_DRIVER, ENV_FINDINGS, ENV_ONLY, ENV_LEAN)
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env[ENV_DRIVER] = "reference"
    env[ENV_LEAN] = "0" if full_checks else "1"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    if ignore_findings:
        env[ENV_ONLY] = NO_REQUIREMENT
    return env


def _seed_state(directory: Path | None) -> dict[str, tuple[int, int]]:
    """Name -> (size, mtime) of every file in ``directory``, to prove the seeds stay untouched."""
    if directory is None or not directory.is_dir():
        return {}
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in directory.iterdir()}


def _read_record(path: Path) -> dict[str, Any]:
    """A finding record; an unreadable one becomes a record saying so (records are atomic)."""
    try:
        record: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        record = {"status": "UNREADABLE", "requirement": None, "message": f"{path.name}: {exc}"}
    return record


def run_fuzzer(name: str, seconds: int, env: dict[str, str], extra: Sequence[str] = ()) -> Run:
    """Run target ``name`` (or the calibration) for ``seconds`` in a fresh temporary directory."""
    if name == CALIBRATION:
        path, seeds, dictionary = CALIBRATION_SCRIPT, None, None
    else:
        path, seeds = script(name), CORPORA / name
        dictionary = CORPORA / f"{name}.dict"
    with tempfile.TemporaryDirectory(prefix=f"fuzzbench-{name}-") as tmp:
        work = Path(tmp)
        corpus, findings, artifacts = work / "corpus", work / "findings", work / "artifacts"
        for d in (corpus, findings, artifacts):
            d.mkdir()
        command = [sys.executable, str(path), f"-max_total_time={seconds}", *CAMPAIGN_FLAGS]
        command += [f"-artifact_prefix={artifacts}{os.sep}", *extra]
        if dictionary is not None and dictionary.is_file():
            command.append(f"-dict={dictionary}")
        command.append(str(corpus))
        if seeds is not None and seeds.is_dir():
            command.append(str(seeds))
        run_env = dict(env, **{ENV_FINDINGS: str(findings)})
        parser = ProgressParser()
        tail: deque[str] = deque(maxlen=TAIL_LINES)
        start = time.perf_counter()
        proc = subprocess.Popen(
            command,
            cwd=work,
            env=run_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
            start_new_session=True,
        )
        timed_out = threading.Event()

        def expire() -> None:
            timed_out.set()
            _stop_group(proc)

        fork = any(a.startswith("-fork=") for a in extra)
        jobs = ForkJobs()
        at_budget: list[int] = []
        ended = threading.Event()

        def count_jobs() -> None:
            """Poll the fork jobs' logs; note the executions when the time budget is up."""
            while not ended.wait(FORK_POLL_S):
                jobs.poll()
                if not at_budget and time.perf_counter() - start >= seconds:
                    at_budget.append(jobs.executions)

        watchdog = threading.Timer(seconds + GRACE_S, expire)
        watchdog.start()
        poller = threading.Thread(target=count_jobs, daemon=True)
        if fork:
            poller.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                parser.feed(line, time.perf_counter() - start)
                jobs.feed(line)
                if line.strip():
                    tail.append(line.rstrip())
            proc.wait()
        finally:
            ended.set()
            watchdog.cancel()
            if proc.poll() is None:
                _stop_group(proc)
            if fork:
                poller.join()
        wall = time.perf_counter() - start
        records = [_read_record(p) for p in sorted(findings.glob("*.json"))]
    parent = parser.last.execs if parser.last is not None else None
    if fork:
        executed = at_budget[0] if at_budget else jobs.executions or parent
    else:
        executed = parser.final_stats.get("number_of_executed_units")
    return Run(
        name=name,
        command=command,
        returncode=proc.returncode,
        wall_s=wall,
        exec_per_s=parser.final_stats.get("average_exec_per_sec"),
        executed=executed,
        findings=records,
        tail=list(tail),
        timed_out=timed_out.is_set(),
        parent_executed=parent if fork else None,
    )


# --------------------------------------------------------------------------- measurements


def _rotate(items: Sequence[str], r: int) -> list[str]:
    """``items`` rotated left by ``r`` (round ``r`` of an interleaved measurement)."""
    shift = r % len(items)
    return [*items[shift:], *items[:shift]]


def _log(text: str) -> None:
    """One progress line on stderr (the report goes to stdout)."""
    print(text, file=sys.stderr, flush=True)


def _describe(run: Run) -> str:
    """The headline of a run for the progress log."""
    if run.problem is not None:
        return run.problem
    if run.exec_per_s is not None:
        return f"{run.exec_per_s:,} exec/s ({run.executed:,} execs, {run.wall_s:.1f} s)"
    return f"{run.executed:,} execs in {run.wall_s:.1f} s"


def measure_throughput(
    names: Sequence[str],
    seconds: int,
    repeat: int,
    env: dict[str, str],
    runner: Callable[..., Run] = run_fuzzer,
) -> dict[str, list[Run]]:
    """Run the calibration and every target ``repeat`` times, interleaved, rotating the order."""
    order = [CALIBRATION, *names]
    runs: dict[str, list[Run]] = {name: [] for name in order}
    for r in range(repeat):
        for name in _rotate(order, r):
            run = runner(name, seconds, env)
            runs[name].append(run)
            _log(f"[round {r + 1}/{repeat}] {name}: {_describe(run)}")
    return runs


def measure_fork(
    seconds: int, repeat: int, env: dict[str, str], runner: Callable[..., Run] = run_fuzzer
) -> dict[int, list[Run]]:
    """Run the fork target with -fork=1 and -fork=2 ``repeat`` times each, alternating the order."""
    runs: dict[int, list[Run]] = {1: [], 2: []}
    for r in range(repeat):
        for forks in (1, 2) if r % 2 == 0 else (2, 1):
            run = runner(FORK_TARGET_NAME, seconds, env, (f"-fork={forks}",))
            runs[forks].append(run)
            _log(f"[round {r + 1}/{repeat}] {FORK_TARGET_NAME} -fork={forks}: {_describe(run)}")
    return runs


def _median(values: Sequence[float]) -> float | None:
    """Median, or None for no values."""
    return statistics.median(values) if values else None


def speeds(runs: Sequence[Run]) -> list[int]:
    """exec/s of the runs whose numbers count."""
    return [r.exec_per_s for r in runs if r.problem is None and r.exec_per_s is not None]


def totals(runs: Sequence[Run]) -> list[int]:
    """Executions of the runs whose numbers count."""
    return [r.executed for r in runs if r.problem is None and r.executed is not None]


# --------------------------------------------------------------------------- report


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table, first column left-aligned, the others right-aligned."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def _load() -> tuple[float, float, float] | None:
    """The system's load average (1, 5, 15 minutes), or None where the OS has none."""
    try:
        return os.getloadavg()
    except OSError:
        return None


def _fmt_load(load: tuple[float, float, float] | None) -> str:
    """A load average for the report."""
    return "n/a" if load is None else "/".join(f"{x:.2f}" for x in load)


def _num(value: float | None) -> str:
    """A count with thousands separators, or ``-``."""
    return "-" if value is None else f"{round(value):,}"


def _problems(label: str, runs: Sequence[Run]) -> list[str]:
    """Report lines for the runs whose numbers do not count (with the output of errors)."""
    out: list[str] = []
    for i, run in enumerate(runs, 1):
        if run.problem is None:
            continue
        out.append(f"  {label} run {i}: {'ERROR: ' if run.is_error else ''}{run.problem}")
        if run.is_error:
            out += [f"      | {line}" for line in run.tail]
    return out


def report_throughput(
    runs: dict[str, list[Run]], seconds: int, repeat: int
) -> tuple[str, dict[str, Any]]:
    """Text table and JSON of the exec/s measurement."""
    calib = _median(speeds(runs[CALIBRATION]))
    rows: list[list[str]] = []
    data: dict[str, Any] = {}
    notes: list[str] = []
    for name, target_runs in runs.items():
        samples = speeds(target_runs)
        median = _median(samples)
        ratio = median / calib if median is not None and calib else None
        target = RATIO_GOALS.get(name)
        met = None if target is None or ratio is None else ratio >= target
        if median is None:
            verdict = "ERROR" if any(r.is_error for r in target_runs) else "FINDING"
        else:
            verdict = "-" if met is None else "met" if met else "missed"
        rows.append(
            [
                name,
                _num(median),
                ", ".join(f"{s:,}" for s in samples) or "-",
                "-" if ratio is None else f"{ratio:.3f}",
                "-" if target is None else f">= {target:.2f}",
                verdict,
                _num(_median(totals(target_runs))),
            ]
        )
        notes += _problems(name, target_runs)
        data[name] = {
            "median_exec_per_s": median,
            "samples_exec_per_s": samples,
            "ratio_to_calibration": ratio,
            "goal_ratio_to_calibration": target,
            "met": met,
            "runs": [r.summary() for r in target_runs],
        }
    headers = ["target", "exec/s", "samples", "/ calib", "goal", "", "execs"]
    text = (
        f"1. exec/s on the reference driver ({seconds} s runs, median of {repeat}, rounds "
        "interleaved; / calib = target exec/s over the calibration's, same run)\n"
    )
    text += _table(headers, rows)
    if notes:
        text += "\n" + "\n".join(notes)
    return text, data


def report_fork(runs: dict[int, list[Run]], seconds: int) -> tuple[str, dict[str, Any]]:
    """Text and JSON of the -fork scaling measurement."""
    one, two = _median(totals(runs[1])), _median(totals(runs[2]))
    ratio = two / one if one and two is not None else None
    met = None if ratio is None else ratio >= FORK_TARGET
    rows = [
        [
            f"-fork={forks}",
            _num(_median(totals(rs))),
            ", ".join(f"{t:,}" for t in totals(rs)) or "-",
            _num(_median([r.parent_executed for r in rs if r.parent_executed is not None])),
        ]
        for forks, rs in runs.items()
    ]
    text = (
        f"2. -fork scaling on {FORK_TARGET_NAME}: total executions in {seconds} s "
        f"(every job's, running ones from their logs), median of {len(runs[1])}\n"
    )
    text += _table(["variant", "execs", "samples", "parent's #N at its end"], rows)
    verdict = "-" if met is None else "met" if met else "missed"
    shown = "-" if ratio is None else f"{ratio:.2f}x"
    text += f"\n   -fork=2 / -fork=1 = {shown}  goal >= {FORK_TARGET}x  {verdict}"
    notes = _problems("-fork=1", runs[1]) + _problems("-fork=2", runs[2])
    if notes:
        text += "\n" + "\n".join(notes)
    data = {
        "target": FORK_TARGET_NAME,
        "median_execs": {"1": one, "2": two},
        "ratio": ratio,
        "ratio_target": FORK_TARGET,
        "met": met,
        "runs": {str(k): [r.summary() for r in v] for k, v in runs.items()},
    }
    return text, data


def main(argv: Sequence[str] | None = None) -> int:
    """Measure, print the tables, optionally write JSON; 3 if a run failed, else 0."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--targets",
        nargs="+",
        choices=list(TARGETS),
        default=list(TARGETS),
        metavar="NAME",
        help=f"targets to measure (default all: {', '.join(TARGETS)})",
    )
    parser.add_argument(
        "--seconds",
        type=int,
        default=None,
        help=f"-max_total_time of each run (default {DEFAULT_SECONDS}, {QUICK_SECONDS} with --quick)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=None,
        help=f"rounds (default {DEFAULT_REPEAT}, {QUICK_REPEAT} with --quick)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run for CI: {QUICK_SECONDS} s runs, {QUICK_REPEAT} round",
    )
    parser.add_argument(
        "--fork-seconds",
        type=int,
        default=None,
        help="-max_total_time of the -fork runs (default: --seconds); executions are counted "
        "from the jobs' logs when this budget is up",
    )
    parser.add_argument(
        "--no-fork",
        action="store_true",
        help=f"skip the -fork scaling measurement on {FORK_TARGET_NAME}",
    )
    parser.add_argument(
        "--ignore-findings",
        action="store_true",
        help="let every finding pass ($WDDM_FUZZ_ONLY), to measure speed despite a false positive",
    )
    parser.add_argument(
        "--full-checks",
        action="store_true",
        help="every check on every input (a campaign's --full-checks), not the lean path",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    seconds = (
        args.seconds
        if args.seconds is not None
        else QUICK_SECONDS
        if args.quick
        else DEFAULT_SECONDS
    )
    repeat = (
        args.repeat if args.repeat is not None else QUICK_REPEAT if args.quick else DEFAULT_REPEAT
    )
    if seconds < 1:
        parser.error("--seconds must be at least 1")
    if repeat < 1:
        parser.error("--repeat must be at least 1")
    fork_seconds = args.fork_seconds if args.fork_seconds is not None else seconds
    if fork_seconds < 1:
        parser.error("--fork-seconds must be at least 1")
    names = [n for n in TARGETS if n in args.targets]
    env = base_env(args.ignore_findings, args.full_checks)
    seeds_before = {n: _seed_state(CORPORA / n) for n in names}

    load_before = _load()
    started = time.perf_counter()
    throughput = measure_throughput(names, seconds, repeat, env)
    fork = None if args.no_fork else measure_fork(fork_seconds, repeat, env)
    elapsed = time.perf_counter() - started
    load_after = _load()

    print(
        f"fuzz target throughput, reference driver: Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPU(s), {platform.platform()}" + (" (--quick)" if args.quick else "")
    )
    print(
        f"load average (1/5/15 min) before {_fmt_load(load_before)}, after "
        f"{_fmt_load(load_after)} (these runs add about 1, 2 with -fork=2; more means other work)"
    )
    if args.ignore_findings:
        print(f"--ignore-findings: ${ENV_ONLY}={NO_REQUIREMENT}, every finding passes silently")
    print(f"{'every check on every input' if args.full_checks else 'the lean path'} (${ENV_LEAN})")
    print()
    text, throughput_json = report_throughput(throughput, seconds, repeat)
    print(text)
    fork_json = None
    if fork is not None:
        print()
        text, fork_json = report_fork(fork, fork_seconds)
        print(text)
    touched = [n for n in names if _seed_state(CORPORA / n) != seeds_before[n]]
    if touched:
        print(f"\nWARNING: seed corpora changed during the run: {', '.join(touched)}")
    all_runs = [r for rs in throughput.values() for r in rs]
    if fork is not None:
        all_runs += [r for rs in fork.values() for r in rs]
    failed = [r for r in all_runs if r.problem is not None]
    print(
        f"\n(total {elapsed:.0f} s; {len(failed)} of {len(all_runs)} runs did not count; "
        "missed targets do not change the exit status)"
    )
    if args.json is not None:
        payload = {
            "seconds": seconds,
            "fork_seconds": fork_seconds,
            "repeat": repeat,
            "quick": args.quick,
            "ignore_findings": args.ignore_findings,
            "full_checks": args.full_checks,
            "environment": {
                "python": sys.version.split()[0],
                "platform": platform.platform(),
                "cpus": os.cpu_count(),
                "load_before": load_before,
                "load_after": load_after,
            },
            "elapsed_s": elapsed,
            "throughput": throughput_json,
            "fork": fork_json,
            "seed_corpora_changed": touched,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 3 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
