"""Benchmark: the full conformance suite's wall time on the reference driver, serial and
-n 2, and what per-check process isolation costs.

Targets on the 2-core reference machine: serial under 60 s, ``-n 2`` at least 1.6x faster
than serial, and checks isolated in processes of their own (the default) at most 1.25x
the time of checks run in pytest's process (``--isolate=none``). The variants are
measured in the same run, interleaved (the order turns every round) so drift hits them
alike; medians are quoted, and the ratios are ratios of the medians. Each run is a fresh ``python -m pytest --pyargs
wddm_conformance.suite`` with the default hypothesis profile, as a driver team runs it.

Usage: ``python bench/suite.py [--repeat N] [--json PATH]``. Exit status 0 whether or not
the targets are met (a miss prints MISS), 3 when a run did not pass (the timing would be
meaningless).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

SERIAL_TARGET_S = 60.0
SPEEDUP_TARGET = 1.6
ISOLATION_TARGET = 1.25


def run_suite(extra: Sequence[str], profile: str) -> float:
    """Seconds for one suite run; raises SystemExit(3) when the run did not pass."""
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "HYPOTHESIS_PROFILE")}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--pyargs"]
    command += ["wddm_conformance.suite", f"--hypothesis-profile={profile}", *extra]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=Path.cwd())
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        print(done.stdout[-2000:], file=sys.stderr)
        raise SystemExit(3)
    return seconds


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs of each variant (default 3)")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    parser.add_argument(
        "--profile", default="wddm-default", help="hypothesis profile (default: wddm-default)"
    )
    args = parser.parse_args(argv)
    serial: list[float] = []
    parallel: list[float] = []
    inprocess: list[float] = []
    order = [(serial, ()), (parallel, ("-n", "2")), (inprocess, ("--isolate=none",))]
    for i in range(args.repeat):
        for samples, extra in order[i % 3 :] + order[: i % 3]:
            samples.append(run_suite(extra, args.profile))
    s, p, n = (statistics.median(x) for x in (serial, parallel, inprocess))
    speedup, cost = s / p, s / n
    ok_serial, ok_speedup = s < SERIAL_TARGET_S, speedup >= SPEEDUP_TARGET
    ok_cost = cost <= ISOLATION_TARGET
    print(
        f"suite, reference driver, {args.profile} profile, {os.cpu_count()} CPUs, {args.repeat} runs each"
    )
    print(
        f"  serial   median {s:6.2f} s  (samples {', '.join(f'{x:.2f}' for x in serial)})  "
        f"target < {SERIAL_TARGET_S:.0f} s  {'ok' if ok_serial else 'MISS'}"
    )
    print(f"  -n 2     median {p:6.2f} s  (samples {', '.join(f'{x:.2f}' for x in parallel)})")
    print(
        f"  speed-up serial/-n 2 = {speedup:.2f}x  target >= {SPEEDUP_TARGET}x  "
        f"{'ok' if ok_speedup else 'MISS'}"
    )
    print(f"  in-process median {n:6.2f} s  (samples {', '.join(f'{x:.2f}' for x in inprocess)})")
    print(
        f"  isolation cost serial/in-process = {cost:.2f}x  target <= {ISOLATION_TARGET}x  "
        f"{'ok' if ok_cost else 'MISS'}"
    )
    if args.json:
        figures = {"serial": serial, "parallel": parallel, "inprocess": inprocess}
        args.json.write_text(json.dumps({**figures, "speedup": speedup, "isolation": cost}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
