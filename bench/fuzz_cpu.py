"""Benchmark: inputs per CPU second of fuzz targets over a fixed corpus, in one process.

``bench/fuzz.py`` measures libFuzzer's exec/s, which also depends on the inputs libFuzzer
keeps and on what else the machine runs. This one takes a fixed set of inputs (a
directory: a campaign's kept corpus, or the seed corpus ``corpora/<target>/`` by default)
and runs each through the target as a campaign does: set up by
``runner.set_up(..., lean=True)`` (``--full-checks``: every check), the driver's modules
instrumented with ``atheris.instrument_func``. One untimed pass first, then ``--passes``
timed passes; the figure is inputs over the CPU seconds (``time.process_time``) of the
best pass, so other processes on the machine change it little. An input that fails is
counted and reported (a reference driver has none).

Usage: ``python bench/fuzz_cpu.py [--targets NAME...] [--corpus DIR] [--passes N]
[--driver SPEC] [--full-checks] [--json PATH]``. ``--corpus DIR`` holds one
subdirectory per target (``DIR/<target>/``), as ``wddm-conformance fuzz run --work``
leaves its ``corpus/`` for one. Exit status 0; 2 on bad arguments or an empty corpus.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import atheris

from wddm_conformance.driver import load_driver
from wddm_conformance.fuzz import CORPORA, TARGETS
from wddm_conformance.fuzz.runner import instrument_driver, set_up


def inputs_of(directory: Path) -> list[bytes]:
    """The inputs in ``directory`` (files, sorted by name; hidden and .json files left out)."""
    return [
        p.read_bytes()
        for p in sorted(directory.iterdir())
        if p.is_file() and not p.name.startswith(".") and p.suffix != ".json"
    ]


def measure(
    target: str, driver: str, inputs: list[bytes], passes: int, lean: bool
) -> dict[str, Any]:
    """Best-of-``passes`` inputs per CPU second of ``inputs`` through ``target``."""
    spec = load_driver(driver)
    fuzz_target = set_up(target, spec, lean=lean)
    instrument_driver(spec, atheris.instrument_func)

    def one_pass() -> int:
        failed = 0
        for data in inputs:
            try:
                fuzz_target.run(data)
            except Exception:
                failed += 1
        return failed

    failed = one_pass()
    seconds = []
    for _ in range(passes):
        start = time.process_time()
        one_pass()
        seconds.append(time.process_time() - start)
    best = min(seconds)
    return {
        "target": target,
        "inputs": len(inputs),
        "failed": failed,
        "cpu_seconds": seconds,
        "inputs_per_cpu_second": len(inputs) / best if best > 0 else float("inf"),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--targets", nargs="+", choices=TARGETS, default=list(TARGETS))
    parser.add_argument("--corpus", type=Path, help="DIR/<target>/ (default: the seed corpora)")
    parser.add_argument("--passes", type=int, default=3, help="timed passes (default 3)")
    parser.add_argument("--driver", default="reference", help="module:Class (default reference)")
    parser.add_argument("--full-checks", action="store_true", help="every check on every input")
    parser.add_argument("--json", type=Path, help="also write the results as JSON")
    args = parser.parse_args(argv)
    if args.passes < 1:
        parser.error("--passes must be at least 1")
    results = []
    for target in args.targets:
        directory = (args.corpus or CORPORA) / target
        inputs = inputs_of(directory) if directory.is_dir() else []
        if not inputs:
            print(f"error: no inputs in {directory}", file=sys.stderr)
            return 2
        result = measure(target, args.driver, inputs, args.passes, not args.full_checks)
        results.append(result)
        failed = f", {result['failed']} failed" if result["failed"] else ""
        print(
            f"{target}: {result['inputs_per_cpu_second']:,.0f} inputs per CPU second "
            f"({result['inputs']} inputs, best of {args.passes}{failed})",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
