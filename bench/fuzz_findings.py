"""Benchmark: how long the fuzzer takes to find each fuzzable mutant driver's bug.

Each mutant in ``tests/mutants.py`` breaks one requirement (``BREAKS[mutant]``). For
every mutant below, its fuzz target runs with ``WDDM_DRIVER=tests.mutants:<Name>`` and
``WDDM_FINDINGS=<tmp>``; the target writes each finding's ``.json`` record before
libFuzzer reacts, so the time to the first finding is the wall time from starting the
process until the first record appears in the findings directory (polled every 0.05 s;
the process is then ended). It includes Python's start-up and the driver's set-up, as a
user waiting for a campaign sees it. A run that ends without a record, or reaches its
``-max_total_time`` budget, found nothing.

Two modes:

* ``seeded``: a fresh empty corpus directory, then the target's seed corpus
  ``corpora/<target>/`` (read, never written) and dictionary ``corpora/<target>.dict``;
* ``scratch``: the empty corpus and the dictionary only -- the real test of the fuzzer,
  since the seeds were generated to reach every mutant.

``--repeat N`` runs each (mutant, mode) N times with ``-seed=1..N``; the median
(``median_high``) counts a run that found nothing as slower than any that did, so "not
found" wins when half or more found nothing. The table gives the mutant, its target, the expected requirement,
the mode, the median seconds to the first finding, the median number of inputs the
fuzzing process had run by then (the record's ``executions``; machine-independent), the
requirement(s) found and whether they match. ``--jobs N`` runs N fuzzers at once: on a machine with few cores that skews
the times (each fuzzer gets a share of the CPUs), which the output says.

Usage: ``python bench/fuzz_findings.py [--mutants NAME...] [--modes seeded scratch]
[--budget S] [--repeat N] [--jobs N] [--json PATH]``. Exit status 0 whatever was found
or missed; 3 when a run reported an INTERNAL-ERROR (a harness fault, not a driver bug)
or a script failed to start; 2 on bad arguments.
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
from collections import Counter, deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import Any

from wddm_conformance.fuzz import CORPORA, script
from wddm_conformance.fuzz.runner import ENV_DRIVER, ENV_FINDINGS, ENV_ONLY

ROOT = Path(__file__).resolve().parent.parent
MUTANTS_MODULE = "tests.mutants"


def _fuzzable() -> dict[str, str]:
    """Fuzzable mutant name -> the fuzz target that should find it (``tests.mutants.FUZZABLE``)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    fuzzable: dict[type, str] = import_module(MUTANTS_MODULE).FUZZABLE
    return {cls.__name__: target for cls, target in fuzzable.items()}


MUTANTS: dict[str, str] = _fuzzable()
MODES = ("seeded", "scratch")
DEFAULT_BUDGET = 60
POLL_S = 0.05
#: Seconds a run may go on past its budget (start-up, seed corpus) before it is killed.
GRACE_S = 30.0
TAIL_LINES = 8
INTERNAL_ERROR = "INTERNAL-ERROR"


def expected_ids() -> dict[str, str]:
    """Mutant name -> the requirement ID it breaks, from ``tests.mutants.BREAKS``."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    breaks: dict[type, str] = import_module(MUTANTS_MODULE).BREAKS
    by_name = {cls.__name__: rule for cls, rule in breaks.items()}
    return {name: by_name.get(name, "?") for name in MUTANTS}


@dataclass
class Run:
    """One fuzzer process hunting one mutant."""

    mutant: str
    target: str
    mode: str
    seed: int
    #: Seconds from start to the first finding record; None: nothing found.
    seconds: float | None
    #: The first record (its requirement, or its status when it has none).
    found: str | None
    record: dict[str, Any] | None
    #: The input that found it, hex (to replay it: ``wddm-conformance fuzz repro``).
    input_hex: str | None
    wall_s: float
    returncode: int | None
    #: libFuzzer printed its final stats (it ran, whatever it found).
    stats: bool = False
    #: This benchmark ended the process at its deadline (not after a finding).
    killed: bool = False
    tail: list[str] = field(default_factory=list)

    @property
    def executions(self) -> int | None:
        """Inputs the fuzzing process ran up to the finding (its record's ``executions``)."""
        value = (self.record or {}).get("executions")
        return value if isinstance(value, int) else None

    @property
    def failed_to_start(self) -> bool:
        """True when the script exited with an error and neither stats nor a finding."""
        return (
            self.record is None
            and not self.killed
            and not self.stats
            and self.returncode not in (0, None)
        )

    def summary(self) -> dict[str, Any]:
        """JSON-ready view of the run."""
        return {
            "seed": self.seed,
            "seconds_to_first_finding": self.seconds,
            "executions": self.executions,
            "found": self.found,
            "record": self.record,
            "input_hex": self.input_hex,
            "wall_s": self.wall_s,
            "returncode": self.returncode,
            "tail": self.tail if self.record is None else [],
        }


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """End the process group started for ``proc``: SIGTERM, then SIGKILL if it lingers."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=5)
            return
        except subprocess.TimeoutExpired:
            continue


def _first_record(findings: Path) -> dict[str, Any] | None:
    """The earliest finding record in ``findings`` (records are written atomically)."""
    paths = sorted(findings.glob("*.json"), key=lambda p: p.stat().st_mtime_ns)
    for path in paths:
        try:
            record: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        return record
    return None


def _read_log(log: Path) -> tuple[list[str], bool]:
    """The last non-blank lines of a run's output, and whether libFuzzer printed final stats."""
    lines: deque[str] = deque(maxlen=TAIL_LINES)
    stats = False
    with log.open(errors="replace") as f:
        for line in f:
            stats = stats or line.startswith("stat::number_of_executed_units")
            if line.strip():
                lines.append(line.rstrip())
    return list(lines), stats


def run_one(mutant: str, mode: str, seed: int, budget: int) -> Run:
    """Fuzz ``mutant`` with its target in ``mode`` until the first finding or the budget."""
    target = MUTANTS[mutant]
    dictionary = CORPORA / f"{target}.dict"
    seeds = CORPORA / target
    env = {k: v for k, v in os.environ.items() if k not in (ENV_DRIVER, ENV_FINDINGS, ENV_ONLY)}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env[ENV_DRIVER] = f"{MUTANTS_MODULE}:{mutant}"
    with tempfile.TemporaryDirectory(prefix=f"fuzzfind-{mutant}-{mode}-") as tmp:
        work = Path(tmp)
        corpus, findings, artifacts = work / "corpus", work / "findings", work / "artifacts"
        for d in (corpus, findings, artifacts):
            d.mkdir()
        env[ENV_FINDINGS] = str(findings)
        command = [
            sys.executable,
            str(script(target)),
            f"-max_total_time={budget}",
            f"-seed={seed}",
            f"-artifact_prefix={artifacts}{os.sep}",
            "-print_final_stats=1",
        ]
        if dictionary.is_file():
            command.append(f"-dict={dictionary}")
        command.append(str(corpus))
        if mode == "seeded" and seeds.is_dir():
            command.append(str(seeds))
        log = work / "fuzz.log"
        record: dict[str, Any] | None = None
        seconds: float | None = None
        killed = False
        with log.open("wb") as out:
            start = time.perf_counter()
            proc = subprocess.Popen(
                command,
                cwd=work,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            try:
                deadline = start + budget + GRACE_S
                while True:
                    record = _first_record(findings)
                    if record is not None:
                        seconds = time.perf_counter() - start
                        break
                    if proc.poll() is not None:
                        record = _first_record(findings)  # written just before it exited
                        if record is not None:
                            seconds = time.perf_counter() - start
                        break
                    if time.perf_counter() > deadline:
                        killed = True
                        break
                    time.sleep(POLL_S)
            finally:
                wall = time.perf_counter() - start
                if proc.poll() is None:
                    _stop_group(proc)
        found = None
        if record is not None:
            found = str(record.get("requirement") or record.get("status") or "?")
        tail, stats = _read_log(log)
        input_hex = None
        if record is not None:
            data = findings / str(record.get("input", ""))
            input_hex = data.read_bytes().hex() if data.is_file() else None
        return Run(
            mutant=mutant,
            target=target,
            mode=mode,
            seed=seed,
            seconds=seconds,
            found=found,
            record=record,
            input_hex=input_hex,
            wall_s=wall,
            returncode=proc.returncode,
            stats=stats,
            killed=killed,
            tail=tail,
        )


# --------------------------------------------------------------------------- report


def median_seconds(runs: Sequence[Run]) -> float | None:
    """Median seconds to the first finding; None when half or more of the runs found nothing.

    A run that found nothing counts as infinitely slow, and of an even number of runs the
    higher middle value is taken (``median_high``), so an average with infinity never occurs.
    """
    values = [r.seconds if r.seconds is not None else float("inf") for r in runs]
    value = statistics.median_high(values)
    return None if value == float("inf") else value


def _load() -> tuple[float, float, float] | None:
    """The system's load average (1, 5, 15 minutes), or None where the OS has none."""
    try:
        return os.getloadavg()
    except OSError:
        return None


def _fmt_load(load: tuple[float, float, float] | None) -> str:
    """A load average for the report."""
    return "n/a" if load is None else "/".join(f"{x:.2f}" for x in load)


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table, left-aligned (names and IDs read better that way)."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def report(
    runs: dict[tuple[str, str], list[Run]], expected: dict[str, str], budget: int
) -> tuple[str, list[dict[str, Any]]]:
    """The table (one row per mutant and mode) and its JSON."""
    rows: list[list[str]] = []
    data: list[dict[str, Any]] = []
    for (mutant, mode), group in runs.items():
        want = expected[mutant]
        median = median_seconds(group)
        found = Counter(r.found for r in group if r.found is not None)
        hits = sum(1 for r in group if r.seconds is not None)
        if not found:
            match = "-"
        elif set(found) == {want}:
            match = "yes"
        elif want in found:
            match = "partly"
        else:
            match = "no"
        shown = f"{median:.1f}" if median is not None else f"not found in {budget}s"
        counts = [r.executions for r in group if r.executions is not None]
        execs = f"{statistics.median_high(counts):,}" if counts else "-"
        if len(group) > 1:
            shown += f" ({hits}/{len(group)} found)"
        ids = ", ".join(
            f"{rule} x{n}" if len(group) > 1 else rule for rule, n in found.most_common()
        )
        rows.append([mutant, group[0].target, want, mode, shown, execs, ids or "-", match])
        data.append(
            {
                "mutant": mutant,
                "target": group[0].target,
                "expected": want,
                "mode": mode,
                "median_seconds": median,
                "median_executions": statistics.median_high(counts) if counts else None,
                "found": dict(found),
                "match": match,
                "runs": [r.summary() for r in group],
            }
        )
    headers = [
        "mutant",
        "target",
        "expected",
        "mode",
        "s to 1st finding",
        "execs",
        "ID found",
        "match",
    ]
    return _table(headers, rows), data


def main(argv: Sequence[str] | None = None) -> int:
    """Run every (mutant, mode, seed), print the table; 3 on an internal error, else 0."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--mutants",
        nargs="+",
        choices=list(MUTANTS),
        default=list(MUTANTS),
        metavar="NAME",
        help="mutants to hunt (default: all fuzzable ones)",
    )
    parser.add_argument(
        "--modes", nargs="+", choices=MODES, default=list(MODES), help="seeded and/or scratch"
    )
    parser.add_argument(
        "--budget",
        type=int,
        default=DEFAULT_BUDGET,
        help=f"-max_total_time of each run, seconds (default {DEFAULT_BUDGET})",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs per mutant and mode, -seed=1..N (default 1)"
    )
    parser.add_argument(
        "--jobs", type=int, default=1, help="fuzzers run at once (default 1; skews the times)"
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    for name in ("budget", "repeat", "jobs"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    mutants = [m for m in MUTANTS if m in args.mutants]
    modes = [m for m in MODES if m in args.modes]
    try:
        expected = expected_ids()
    except Exception as exc:  # the mutants module is part of the checkout; say what is wrong
        print(f"error: cannot read {MUTANTS_MODULE}.BREAKS: {exc}", file=sys.stderr)
        return 3

    runs: dict[tuple[str, str], list[Run]] = {(m, mode): [] for m in mutants for mode in modes}
    jobs = [
        (m, mode, seed) for m in mutants for mode in modes for seed in range(1, args.repeat + 1)
    ]
    load_before = _load()
    started = time.perf_counter()
    lock = threading.Lock()
    done = 0
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = {
            pool.submit(run_one, m, mode, seed, args.budget): (m, mode) for m, mode, seed in jobs
        }
        for future in as_completed(futures):
            run = future.result()
            with lock:
                done += 1
                runs[futures[future]].append(run)
            what = (
                f"{run.found} after {run.seconds:.1f} s"
                if run.seconds is not None
                else f"nothing in {run.wall_s:.0f} s (exit {run.returncode})"
            )
            print(
                f"[{done}/{len(jobs)}] {run.mutant} {run.mode} -seed={run.seed}: {what}",
                file=sys.stderr,
                flush=True,
            )
    for group in runs.values():
        group.sort(key=lambda r: r.seed)
    elapsed = time.perf_counter() - started
    load_after = _load()

    print(
        f"time to first finding per mutant: Python {sys.version.split()[0]}, {os.cpu_count()} "
        f"CPU(s), {platform.platform()}; budget {args.budget} s, {args.repeat} run(s) each "
        f"(-seed=1..{args.repeat}), wall time from process start (Python start-up included)"
    )
    print(
        f"load average (1/5/15 min) before {_fmt_load(load_before)}, after "
        f"{_fmt_load(load_after)} (these runs add about --jobs; more means other work)"
    )
    if args.jobs > 1:
        print(
            f"note: --jobs {args.jobs}: {args.jobs} fuzzers ran at once on {os.cpu_count()} "
            "CPU(s); concurrency skews the times (each run gets a share of the CPUs)"
        )
    print()
    text, data = report(runs, expected, args.budget)
    print(text)

    every = [r for group in runs.values() for r in group]
    internal = [
        r for r in every if r.record is not None and r.record.get("status") == INTERNAL_ERROR
    ]
    broken = [r for r in every if r.failed_to_start]
    for r in internal:
        message = r.record.get("message", "") if r.record else ""
        print(f"\nINTERNAL-ERROR: {r.mutant} {r.mode} -seed={r.seed}: {message}")
    for r in broken:
        print(f"\nERROR: {r.target} did not start for {r.mutant} ({r.mode}), exit {r.returncode}:")
        print("\n".join(f"    | {line}" for line in r.tail))
    found = sum(1 for row in data if row["match"] == "yes")
    print(
        f"\n{found} of {len(data)} (mutant, mode) rows found the expected ID; total {elapsed:.0f} s"
    )
    if args.json is not None:
        payload = {
            "budget": args.budget,
            "repeat": args.repeat,
            "jobs": args.jobs,
            "environment": {
                "python": sys.version.split()[0],
                "platform": platform.platform(),
                "cpus": os.cpu_count(),
                "load_before": load_before,
                "load_after": load_after,
            },
            "elapsed_s": elapsed,
            "rows": data,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 3 if internal or broken else 0


if __name__ == "__main__":
    sys.exit(main())
