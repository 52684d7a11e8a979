"""Benchmark: render-target exec/s of the C reference driver against the Python one.

The same libFuzzer run as ``bench/fuzz.py`` (the campaign's flags, the seed corpus and
dictionary, libFuzzer's own ``average_exec_per_sec``) is made with ``--driver=reference``
(the Python miniport, the baseline) and ``--driver=reference-c`` (the C port through the
cffi adapter, built -O2 with the system compiler), and, when clang is present, the
AddressSanitizer build (``native build --sanitize``, atheris's ASan runtime preloaded).
Rounds are interleaved, the order rotating each round, so background load hits all
drivers alike; medians are quoted, with each native figure as a ratio to the Python one
measured in the same run.

Usage: ``python bench/native.py [--seconds S] [--repeat N] [--quick] [--json PATH]``.
Exit status 0 (figures are reported, not judged), 3 when a run failed or found something
on a conforming driver.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fuzz import _rotate, _table, base_env, run_fuzzer

from wddm_conformance.fuzz.runner import ENV_DRIVER
from wddm_conformance.fuzz.sanitizer import environment
from wddm_conformance.native.build import NativeBuildError, reference_library

TARGET = "render"


def drivers() -> dict[str, str]:
    """Label -> --driver spec; the sanitizer build only where clang is available."""
    out = {"python": "reference", "C (-O2)": f"native:{reference_library()}"}
    try:
        out["C (ASan+UBSan)"] = f"native:{reference_library(sanitize=True)}"
    except NativeBuildError as exc:
        print(f"no sanitizer build: {exc}", file=sys.stderr)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="seconds per run (default 10)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds (default 3)")
    parser.add_argument("--quick", action="store_true", help="3 s x 1 round (CI smoke)")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = parser.parse_args(argv)
    seconds, repeat = (3, 1) if args.quick else (args.seconds, args.repeat)
    specs = drivers()
    speeds: dict[str, list[float]] = {label: [] for label in specs}
    failed = False
    for r in range(repeat):
        for label in _rotate(list(specs), r):
            env = environment(specs[label], dict(base_env(False), **{ENV_DRIVER: specs[label]}))
            run = run_fuzzer(TARGET, seconds, env)
            if run.findings or run.exec_per_s is None:
                failed = True
                problem = run.findings[0].get("message") if run.findings else run.tail[-3:]
                print(f"{label}: no speed ({problem})", file=sys.stderr)
                continue
            speeds[label].append(float(run.exec_per_s))
    baseline = statistics.median(speeds["python"]) if speeds["python"] else None
    rows = []
    figures: dict[str, Any] = {"target": TARGET, "seconds": seconds, "rounds": repeat}
    for label, values in speeds.items():
        median = statistics.median(values) if values else None
        ratio = median / baseline if median is not None and baseline else None
        figures[label] = {"exec_per_s": values, "median": median, "ratio_to_python": ratio}
        rows.append(
            [
                label,
                f"{median:,.0f}" if median is not None else "-",
                f"{ratio:.2f}x" if ratio is not None else "-",
                ", ".join(f"{v:,.0f}" for v in values),
            ]
        )
    print(f"render target, {seconds} s x {repeat} round(s), medians")
    print(_table(["driver", "exec/s", "/ python", "runs"], rows))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 3 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
