"""Memory soak: a real fuzz campaign per target, RSS at its start and at its end.

Each target runs as ``wddm-conformance fuzz run`` would run it (the same libFuzzer command
line, from :class:`wddm_conformance.fuzz.campaign.Campaign`, in a fresh temporary work
directory) for ``--minutes`` minutes, one target at a time. Two measures of memory are
kept for the fuzzing process:

* libFuzzer's own ``rss: NMb`` field of its status lines: the process's *peak* resident
  set so far (``getrusage``), the figure ``-rss_limit_mb`` is judged against. "Start" is
  the ``INITED`` line (seed corpus loaded), "end" the ``DONE`` line.
* ``VmRSS`` from ``/proc/<pid>/status``, sampled every ``--interval`` seconds: the
  *current* resident set. "Start" is the first sample after ``INITED``, "end" the last
  one before the process ended; the growth rate is a least-squares slope over the
  samples after the first minute (start-up and the first corpus growth excluded).

A flat campaign has a libFuzzer rss that stops rising after the first minute and a slope
near 0 MB/min; before the fixes of issue 11 the slope was 25-35 MB/min on ``render`` and
``build_paging_buffer``. The reference driver has no findings: a finding ends a
campaign early and is reported instead of a clean row (exit status 3).

Usage: ``python bench/soak.py [--targets NAME...] [--minutes M] [--interval S]
[--driver SPEC] [--json PATH]``; ``--minutes`` defaults to 60 (an hour per target, six
hours for all six). Progress goes to stderr, the markdown table to stdout. Exit status
0 when every campaign ran its time without a finding, 3 otherwise, 2 on bad arguments.
Linux only (``/proc``).
"""

from __future__ import annotations

import argparse
import datetime
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
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from wddm_conformance.fuzz import TARGETS, sanitizer
from wddm_conformance.fuzz.campaign import Campaign, load_findings
from wddm_conformance.fuzz.progress import ProgressParser, Sample
from wddm_conformance.fuzz.runner import ENV_DRIVER, ENV_FINDINGS

DEFAULT_MINUTES = 60.0
DEFAULT_INTERVAL_S = 10.0
#: Seconds a campaign may take beyond its budget (start-up, seeds) before it is killed.
GRACE_S = 120.0
#: Samples before this many seconds after INITED are left out of the growth rate.
WARMUP_S = 60.0
PAGE_KB = 1024


@dataclass
class Soak:
    """One target's campaign and the memory of its process."""

    target: str
    minutes_asked: float
    #: Seconds from INITED to the end of the process (None: never got going).
    fuzzed_s: float | None = None
    execs: int = 0
    #: libFuzzer's rss field (peak RSS so far, MB) at INITED and at DONE.
    fuzzer_rss_start: int | None = None
    fuzzer_rss_end: int | None = None
    #: (seconds since INITED, VmRSS MB) of the process, every --interval seconds.
    vmrss: list[tuple[float, float]] = field(default_factory=list)
    returncode: int | None = None
    findings: list[dict[str, Any]] = field(default_factory=list)
    problem: str | None = None

    @property
    def vmrss_start(self) -> float | None:
        return self.vmrss[0][1] if self.vmrss else None

    @property
    def vmrss_end(self) -> float | None:
        return self.vmrss[-1][1] if self.vmrss else None

    @property
    def vmrss_peak(self) -> float | None:
        return max(mb for _, mb in self.vmrss) if self.vmrss else None

    @property
    def slope_mb_per_min(self) -> float | None:
        """Least-squares growth of VmRSS after the first minute, MB per minute."""
        late = [(t, mb) for t, mb in self.vmrss if t >= WARMUP_S]
        if len(late) < 3:
            return None
        fit = statistics.linear_regression([t for t, _ in late], [mb for _, mb in late])
        return fit.slope * 60.0


def vmrss_mb(pid: int) -> float | None:
    """Current resident set of process ``pid`` in MB, from /proc (None once it has gone)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / PAGE_KB
    except (OSError, ValueError):
        return None
    return None


def _stop_group(proc: subprocess.Popen[str]) -> None:
    """End the process group this script started for ``proc``."""
    for sig in (signal.SIGINT, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=10)
            return
        except subprocess.TimeoutExpired:
            continue


def soak(target: str, minutes: float, driver: str, interval: float) -> Soak:
    """Run ``target``'s campaign for ``minutes`` and record its memory."""
    result = Soak(target, minutes)
    seconds = max(1, round(minutes * 60))
    with tempfile.TemporaryDirectory(prefix=f"soak-{target}-") as tmp:
        campaign = Campaign(target, driver=driver, work=Path(tmp), seconds=seconds)
        for d in (campaign.corpus, campaign.artifacts, campaign.findings):
            d.mkdir(parents=True)
        env = sanitizer.environment(
            driver, dict(os.environ, **{ENV_DRIVER: driver, ENV_FINDINGS: str(campaign.findings)})
        )
        proc = subprocess.Popen(
            campaign.command(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            text=True,
            errors="replace",
            start_new_session=True,
        )
        parser = ProgressParser()
        inited = threading.Event()
        started = time.monotonic()
        t0 = [started]
        done = threading.Event()

        def sample() -> None:
            mb = vmrss_mb(proc.pid)
            if mb is not None and proc.poll() is None:
                result.vmrss.append((time.monotonic() - t0[0], mb))

        def sampler_loop() -> None:
            inited.wait()
            while not done.wait(interval):
                sample()

        sampler = threading.Thread(target=sampler_loop, daemon=True)
        sampler.start()
        killer = threading.Timer(seconds + GRACE_S, _stop_group, (proc,))
        killer.start()
        last_report = started
        last: Sample | None = None
        tail: list[str] = []
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                tail = [*tail[-7:], line.rstrip()]
                now = time.monotonic()
                s = parser.feed(line, now - started)
                if s is None:
                    continue
                last = s
                event = line.split()[1]
                if event == "INITED" and not inited.is_set():
                    t0[0] = now
                    result.fuzzer_rss_start = s.rss_mb
                    sample()  # the process is alive: it just wrote this line
                    inited.set()
                if event == "DONE":
                    result.fuzzer_rss_end = s.rss_mb
                    sample()
                if now - last_report >= 60:
                    last_report = now
                    print(
                        f"  [{target}] {(now - started) / 60:5.1f} min  #{s.execs}  "
                        f"rss {s.rss_mb} MB (peak)  VmRSS {result.vmrss_end or 0:.0f} MB",
                        file=sys.stderr,
                        flush=True,
                    )
            proc.wait()
        finally:
            killer.cancel()
            if proc.poll() is None:
                _stop_group(proc)
            done.set()
            inited.set()
            sampler.join()
        end = time.monotonic()
        result.vmrss.sort()
        result.returncode = proc.returncode
        result.execs = last.execs if last is not None else 0
        if inited.is_set() and result.fuzzer_rss_start is not None:
            result.fuzzed_s = end - t0[0]
        if result.fuzzer_rss_end is None and last is not None and last.rss_mb:
            result.fuzzer_rss_end = last.rss_mb
        result.findings = load_findings(campaign.findings)
    if result.findings:
        f = result.findings[0]
        result.problem = f"finding {f.get('requirement') or f.get('status')}: {f.get('message')}"
    elif result.fuzzer_rss_start is None:
        result.problem = f"never started fuzzing (exit {result.returncode}): " + " | ".join(tail)
    elif proc.returncode != 0:
        result.problem = f"libFuzzer exited with status {proc.returncode}: " + " | ".join(tail)
    return result


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def table(soaks: Sequence[Soak]) -> str:
    """The markdown table of the soaks."""
    rows = [
        "| target | fuzzed | execs | libFuzzer rss start -> end (MB) | VmRSS start -> end "
        "(peak) MB | VmRSS growth after 1st min |",
        "|---|---|---|---|---|---|",
    ]
    for s in soaks:
        fuzzed = "-" if s.fuzzed_s is None else f"{s.fuzzed_s / 60:.1f} min"
        slope = s.slope_mb_per_min
        growth = "-" if slope is None else f"{slope:+.2f} MB/min"
        if s.problem:
            growth += f" ({s.problem[:80]})"
        rows.append(
            f"| {s.target} | {fuzzed} | {s.execs:,} | "
            f"{_mb(s.fuzzer_rss_start)} -> {_mb(s.fuzzer_rss_end)} | "
            f"{_mb(s.vmrss_start)} -> {_mb(s.vmrss_end)} ({_mb(s.vmrss_peak)}) | {growth} |"
        )
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--targets", nargs="+", default=list(TARGETS), metavar="NAME")
    ap.add_argument("--minutes", type=float, default=DEFAULT_MINUTES)
    ap.add_argument("--interval", type=float, default=DEFAULT_INTERVAL_S, metavar="S")
    ap.add_argument("--driver", default="reference")
    ap.add_argument("--json", type=Path, default=None, metavar="PATH")
    args = ap.parse_args(argv)
    unknown = [t for t in args.targets if t not in TARGETS]
    if unknown:
        ap.error(f"unknown target {unknown[0]!r} (known: {', '.join(TARGETS)})")
    if args.minutes <= 0 or args.interval <= 0:
        ap.error("--minutes and --interval must be positive")
    if not Path("/proc/self/status").is_file():
        ap.error("this soak reads /proc/<pid>/status: Linux only")
    load_before = os.getloadavg()
    began = datetime.datetime.now(datetime.UTC)
    soaks: list[Soak] = []
    for target in args.targets:
        print(f"soaking {target} for {args.minutes:g} min ...", file=sys.stderr, flush=True)
        soaks.append(soak(target, args.minutes, args.driver, args.interval))
    load_after = os.getloadavg()
    print(
        f"{began:%Y-%m-%d}, {platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, driver {args.driver}, {args.minutes:g} min per target; "
        f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after\n"
    )
    print(table(soaks))
    if args.json is not None:
        records = [
            {
                **asdict(s),
                "vmrss_start": s.vmrss_start,
                "vmrss_end": s.vmrss_end,
                "vmrss_peak": s.vmrss_peak,
                "slope_mb_per_min": s.slope_mb_per_min,
            }
            for s in soaks
        ]
        args.json.write_text(json.dumps(records, indent=2) + "\n")
    return 3 if any(s.problem for s in soaks) else 0


if __name__ == "__main__":
    sys.exit(main())
