"""``wddm-conformance fuzz ...``: campaigns and triage from one command line.

* ``fuzz run TARGET --driver=module:Class --time 300 --jobs 2 --work DIR [-- libFuzzer flags]``
* ``fuzz repro FILE``, ``fuzz minimize FILE``, ``fuzz promote FILE``
* ``fuzz coverage TARGET --driver=... [PATH...] --html DIR``
* ``fuzz seeds [--check]``, ``fuzz list``
* ``fuzz package --out DIR [--driver=module:Class] [--scripts DIR]``: the OSS-Fuzz /
  ClusterFuzzLite layout for a driver (see :mod:`wddm_conformance.fuzz.package`)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ..driver import driver_forms
from . import CORPORA, REGRESSIONS, TARGETS, sanitizer, target_class
from .campaign import Campaign, CampaignError, run
from .package import add_arguments as add_package_arguments
from .package import run as package_run
from .seeds import main as seeds_main
from .triage import coverage_report, minimize, promote, repro, sidecar


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {text}")
    return value


def _at_least_1(text: str) -> int:
    """An argparse type: a whole number of 1 or more (``--jobs``, ``--runs``: libFuzzer's
    ``-runs`` of 0 or less is no limit, and ``--runs`` overrides ``--time``)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: must be at least 1")
    return value


def _target(text: str) -> str:
    """A fuzz target's name, checked while parsing so a wrong one gets its command's usage."""
    if text not in TARGETS:
        raise argparse.ArgumentTypeError(
            f"unknown fuzz target {text!r} (known: {', '.join(TARGETS)})"
        )
    return text


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    fuzz = sub.add_parser("fuzz", help="coverage-guided fuzzing: campaigns and triage")
    fsub = fuzz.add_subparsers(dest="fuzz_command", required=True)
    names = ", ".join(TARGETS)

    r = fsub.add_parser("run", help="run or resume a campaign")
    r.add_argument("target", type=_target, help=f"one of {names}")
    r.add_argument(
        "--driver", default="reference", help=f"the miniport: {driver_forms()} (default: reference)"
    )
    r.add_argument("--time", type=_positive, default=60.0, help="seconds of fuzzing (default 60)")
    r.add_argument("--runs", type=_at_least_1, help="stop after this many inputs instead")
    r.add_argument(
        "--jobs", type=_at_least_1, default=1, help="parallel fuzzing processes (libFuzzer -fork)"
    )
    r.add_argument("--keep-going", action="store_true", help="go on after a finding (-fork=1)")
    r.add_argument(
        "--full-checks",
        action="store_true",
        help="every check on every input (default: the lean path; a failing input is run "
        "again with every check, which names the finding)",
    )
    r.add_argument("--work", type=Path, help="work directory (default fuzz-work/TARGET)")
    r.add_argument(
        "--corpora",
        type=Path,
        default=CORPORA,
        help="seed corpora, dictionaries and regressions/ (default: the packaged ones)",
    )
    r.add_argument(
        "--regressions",
        type=Path,
        default=REGRESSIONS,
        help=f"your regression inputs, also replayed as seeds (default: ./{REGRESSIONS})",
    )

    for name, what in (
        ("repro", "replay one input as a DDI story"),
        ("minimize", "shrink a finding"),
        ("promote", "keep a finding as a regression input"),
    ):
        t = fsub.add_parser(name, help=what)
        t.add_argument("file", type=Path)
        t.add_argument(
            "--target", type=_target, help="target (default: from the finding's record or name)"
        )
        t.add_argument("--driver", help="driver (default: the one that found it)")
        if name == "minimize":
            t.add_argument("--runs", type=_at_least_1, default=2000, help="minimization attempts")
            t.add_argument("--output", type=Path, help="where to write it (default FILE.min)")
        if name == "promote":
            t.add_argument(
                "--regressions",
                type=Path,
                default=REGRESSIONS,
                help=f"keep it in DIR/TARGET/ (default: ./{REGRESSIONS})",
            )

    c = fsub.add_parser("coverage", help="HTML coverage of the driver over corpora")
    c.add_argument("target", type=_target, help=f"one of {names}")
    c.add_argument(
        "paths",
        nargs="*",
        type=Path,
        default=[],  # not a required argument in argparse's "the following ... are required"
        help="inputs or directories (default: the target's corpora)",
    )
    c.add_argument("--driver", default="reference")
    c.add_argument("--html", type=Path, default=Path("fuzz-coverage"))

    s = fsub.add_parser("seeds", help="regenerate (or --check) the seed corpora")
    s.add_argument("--driver", default="reference")
    s.add_argument("--out", help="corpora directory (default: the packaged ones, for reference)")
    s.add_argument("--check", action="store_true")
    s.add_argument("--target", choices=TARGETS, help="only this target (default: every target)")
    fsub.add_parser("list", help="list the targets")
    p = fsub.add_parser(
        "package", help="the OSS-Fuzz / ClusterFuzzLite $OUT layout, with --driver baked in"
    )
    add_package_arguments(p)


def _take_input_of_record(args: argparse.Namespace) -> str:
    """A finding's JSON record given where its input belongs: use the input beside it
    (``X.json`` -> ``X``); the problem in one line when there is none, else ""."""
    path: Path = args.file
    if path.suffix != ".json" or not path.is_file():
        return ""
    try:
        record = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError):
        return ""
    if not isinstance(record, dict) or "target" not in record:
        return ""
    beside = path.with_suffix("")
    if not beside.is_file():
        return (
            f"{path} is a finding's record, not an input, and its input {beside.name} is not "
            "beside it (a finding found while the target was set up has none: the record "
            "says so in its message)"
        )
    args.file = beside
    return ""


def dispatch(args: argparse.Namespace, extra: list[str]) -> int:
    cmd = args.fuzz_command
    if cmd == "list":
        for name in TARGETS:
            print(f"{name:20} {target_class(name).summary}")
        return 0
    if cmd == "run":
        target_class(args.target)
        campaign = Campaign(
            args.target,
            args.driver,
            args.work or Path("fuzz-work") / args.target,
            None if args.runs is not None else args.time,
            args.runs,
            args.jobs,
            args.keep_going,
            args.corpora,
            extra,
            args.regressions,
            lean=not args.full_checks,
        )
        try:
            return run(campaign).exit_code
        except CampaignError as exc:
            print(f"wddm-conformance: error: {exc}", file=sys.stderr)
            return 3
    if cmd == "package":
        return package_run(args)
    if cmd in ("repro", "minimize", "promote"):
        problem = _take_input_of_record(args)
        if problem:
            print(f"wddm-conformance: error: {problem}", file=sys.stderr)
            return 2
    if cmd in ("repro", "minimize", "promote") and not args.file.is_file():
        what = "is a directory, not an input file" if args.file.is_dir() else "does not exist"
        print(f"wddm-conformance: error: {args.file} {what}", file=sys.stderr)
        return 2
    if cmd in ("repro", "minimize", "promote"):
        _with_sanitizer_runtime(args.driver or str(sidecar(args.file).get("driver") or ""), args)
    if cmd == "repro":
        return repro(args.file, args.target, args.driver)
    if cmd == "minimize":
        return minimize(args.file, args.target, args.driver, args.runs, args.output)
    if cmd == "promote":
        promote(args.file, args.target, args.driver, args.regressions)
        return 0
    if cmd == "coverage":
        target_class(args.target)
        paths = args.paths or [
            CORPORA / args.target,
            CORPORA / "regressions" / args.target,
            REGRESSIONS / args.target,
        ]
        coverage_report(args.target, args.driver, [p for p in paths if p.exists()], args.html)
        return 0
    argv = ["--driver", args.driver] + (["--out", args.out] if args.out else [])
    argv += ["--check"] if args.check else []
    argv += ["--target", args.target] if args.target else []
    return seeds_main(argv)


def _with_sanitizer_runtime(driver: str, args: argparse.Namespace) -> None:
    """Run this command again with the sanitizer runtime preloaded when ``driver`` is a
    sanitizer build (a campaign's finding on one is replayed as the campaign ran it)."""
    argv = getattr(args, "argv", None)
    if not driver or argv is None or sanitizer.preloaded(driver):
        return
    env = sanitizer.environment(driver, dict(os.environ))
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, "-m", "wddm_conformance", *argv], env)


__all__ = ["add_parser", "dispatch", "sys"]
