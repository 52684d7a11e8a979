"""``wddm-conformance``: run the end-to-end check on a driver, and small tools.

* ``wddm-conformance check --driver=module:Class`` runs the mixed end-to-end workload
  (create, render, evict, relocate, repatch, map/unmap, discard, special lock, shared
  allocations) in every kernel mode and compares GPU memory with what the commands
  meant. Exit status 0 when every mode passes, 1 otherwise, 2 for bad usage.
* ``wddm-conformance disasm FILE`` disassembles a DMA buffer dump with the driver's GPU model.
* ``wddm-conformance fuzz ...`` runs fuzz campaigns and triages findings (see docs/fuzzing.md).
* ``wddm-conformance native ...`` builds C drivers against ``wddm_native.h`` (see docs/native.md).
"""

from __future__ import annotations

import argparse
import difflib
import itertools
import marshal
import sys
from collections.abc import Callable, Sequence
from typing import Any, cast

from . import CONTRACT_VERSION, __version__, isolation
from .ddi import DXGK_START_INFO
from .defaults import (
    ALL_STRESS,
    EVERY_MODE,
    ISOLATED_MEMORY_MIB,
    ISOLATED_SECONDS,
    TDR_DDI_DELAY,
)
from .driver import DriverSpec, driver_forms, load_driver
from .errors import CommandLineError, DriverLoadError
from .kernel import ALL_MODES, Kernel, KernelConfig, KernelMode
from .results import Status, classify
from .sysmem import SystemMemory
from .watchdog import watch_interrupts
from .workload import Workload


def _modes(text: str) -> list[KernelMode]:
    """``check --mode``: one kernel mode, or ``all``: every mode in turn."""
    if text.strip() == EVERY_MODE:
        return list(ALL_MODES)
    try:
        return [KernelMode.parse(text)]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc}; or {EVERY_MODE!r}: every mode in turn") from None


def _at_least_0(kind: type[float] | type[int]) -> Callable[[str], float]:
    """An argparse type: a number of ``kind`` that is 0 or more (NaN is not)."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid value {text!r}: not a number") from None
        if not value >= 0:
            raise argparse.ArgumentTypeError(f"invalid value {text!r}: must be 0 or more")
        return value

    return parse


def _in_mode_terms(text: str) -> str:
    """An isolated check's words for an isolated mode of ``check``."""
    for check, mode in (
        ("the check's", "the mode's"),
        ("the check did not", "the mode did not"),
        ("--check-memory", "--mode-memory"),
    ):
        text = text.replace(check, mode)
    return text


#: Options as pytest, pytest-xdist or libFuzzer spell them, and ours that mean the same.
OPTION_ALIASES = {
    "--seconds": "--time",
    "-max_total_time": "--time",
    "-n": "--jobs",
    "--numprocesses": "--jobs",
    "-jobs": "--jobs",
    "-workers": "--jobs",
    "-runs": "--runs",
    "-seed": "--seed",
}


class CommandParser(argparse.ArgumentParser):
    """The parser of a sub-command (``check``, ``fuzz run``, ``native build`` ...).

    argparse hands the arguments a sub-command does not know up to the top-level parser,
    which reports them under ``wddm-conformance``'s usage; this one reports them itself,
    with its own usage and one error line, like every other mistake in its command line.
    Sub-commands of a sub-command are parsers of this class too (argparse's default).
    """

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: Any = None
    ) -> tuple[Any, list[str]]:
        if args is not None:
            # Before argparse takes the value after an unknown option for a positional
            # (``fuzz run --seconds 10``: "unknown fuzz target '10'"); in a parser of
            # sub-commands, only the options before the sub-command are its own.
            own = list(args)
            if self._subparsers is not None:
                own = list(itertools.takewhile(lambda arg: arg.startswith("-"), own))
            unknown = [arg for arg in own if self._unknown_option(arg)]
            if unknown:
                self.error(f"unrecognized arguments: {' '.join(unknown)}{self._hint(unknown[0])}")
        parsed, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras

    def _hint(self, arg: str) -> str:
        """``(did you mean --time?)`` for an option spelled as another tool spells it
        (:data:`OPTION_ALIASES`) or one letter or two away from one of ours; else ""."""
        name = arg.partition("=")[0]
        ours = [o for o in self._option_string_actions if o.startswith("--")]
        alias = OPTION_ALIASES.get(name)
        bare = {o.lstrip("-"): o for o in ours}
        typo = difflib.get_close_matches(name.lstrip("-"), bare, n=1, cutoff=0.75)
        close = [alias] if alias in ours else [bare[t] for t in typo]
        if close:
            return f" (did you mean {close[0]}?)"
        if self.prog.endswith(("fuzz run", "fuzz minimize")) and not name.startswith("--"):
            return f" (libFuzzer's own flags go after --: ... -- {arg})"
        return ""

    def _unknown_option(self, arg: str) -> bool:
        """Whether ``arg`` is spelled as an option that this parser does not have."""
        if not arg.startswith("-") or arg == "-" or self._negative_number_matcher.match(arg):
            return False
        name = arg.partition("=")[0]
        options = self._option_string_actions
        if name in options or (not arg.startswith("--") and arg[:2] in options):  # -DNAME
            return False
        return not (self.allow_abbrev and any(o.startswith(name) for o in options if o[1] == "-"))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wddm-conformance", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--version",
        action="version",
        version=f"%(prog)s {__version__} (contract {CONTRACT_VERSION})",
    )
    sub = cast(  # its parsers are CommandParsers; add_parser's callers need no more
        "argparse._SubParsersAction[argparse.ArgumentParser]",
        parser.add_subparsers(dest="command", required=True, parser_class=CommandParser),
    )
    check = sub.add_parser("check", help="run the end-to-end workload in every kernel mode")
    check.add_argument(
        "--driver", default="reference", help=f"the miniport: {driver_forms()} (default: reference)"
    )
    check.add_argument(
        "--mode",
        type=_modes,
        action="extend",
        help=(
            f"kernel mode (comma-separated stresses, 'default', '{ALL_STRESS}' for every stress "
            f"at once, or '{EVERY_MODE}' for every mode in turn); repeatable; default: every mode"
        ),
    )
    check.add_argument(
        "--seed", type=int, default=0, help="workload and placement seed (default 0)"
    )
    check.add_argument(
        "--ddi-timeout",
        type=float,
        default=TDR_DDI_DELAY,
        help=f"seconds before a DDI call is a TDR (default {TDR_DDI_DELAY:g})",
    )
    check.add_argument(
        "--isolate",
        choices=("mode", "none"),
        default="mode",
        help="run each mode in a process of its own that a crash, hang or memory flood of "
        "the driver ends without ending the run (default), or 'none': in this process",
    )
    check.add_argument(
        "--mode-timeout",
        type=_at_least_0(float),
        default=ISOLATED_SECONDS,
        metavar="SECONDS",
        help=f"wall-clock limit of one isolated mode (default {ISOLATED_SECONDS:g}; 0: none)",
    )
    check.add_argument(
        "--mode-memory",
        type=_at_least_0(int),
        default=ISOLATED_MEMORY_MIB,
        metavar="MIB",
        help=f"memory one isolated mode may allocate, in MiB (default {ISOLATED_MEMORY_MIB}; 0: no limit; "
        "not applied under AddressSanitizer)",
    )
    disasm = sub.add_parser("disasm", help="disassemble a DMA buffer dump")
    disasm.add_argument("file", help="binary file, or '-' for standard input")
    disasm.add_argument(
        "--driver", default="reference", help="driver whose GPU model decodes the buffer"
    )
    disasm.add_argument("--mark", type=lambda s: int(s, 0), help="byte offset to mark with =>")
    from .fuzz.cli import add_parser
    from .native.cli import add_parser as add_native_parser

    add_parser(sub)
    add_native_parser(sub)
    _name_sub_commands(parser)
    return parser


def _name_sub_commands(parser: argparse.ArgumentParser) -> None:
    """Spell a missing sub-command as its choices, ``{run,repro,...}``, not as its
    ``dest`` (Python 3.11's "the following arguments are required: fuzz_command"), and
    give each sub-command's parser to its arguments (``command_parser``: the deepest one
    parsed) for the errors of options that conflict (:class:`CommandLineError`)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            action.metavar = "{" + ",".join(action.choices) + "}"
            for sub in action.choices.values():
                sub.set_defaults(command_parser=sub)
                _name_sub_commands(sub)


def _check(args: argparse.Namespace) -> int:
    spec = load_driver(args.driver)
    modes: list[KernelMode] = args.mode or list(ALL_MODES)
    print(
        f"wddm-conformance {__version__} (contract {CONTRACT_VERSION}) driver={args.driver} seed={args.seed}"
    )
    watch_interrupts()
    isolated = args.isolate == "mode" and isolation.available()
    limits = isolation.Limits(
        seconds=args.mode_timeout or None,
        memory=args.mode_memory << 20 if args.mode_memory else None,
    )
    failures = skipped = 0
    for mode in modes:

        def job(mode: KernelMode = mode) -> bytes:
            return marshal.dumps(_check_mode(spec, mode, args))

        ended = isolation.run(job, limits) if isolated else job()
        if isinstance(ended, isolation.Death):
            status = Status.TIMEOUT if ended.timed_out else Status.CRASH
            if ended.kind == isolation.DeathKind.RAISED:
                status = Status.INTERNAL_ERROR
            bugcheck, rule = ended.bugcheck, ended.rule
            detail = " ".join(
                part
                for part in (
                    str(bugcheck or ""),
                    f"[{rule}]" if rule else "",
                    _in_mode_terms(ended.describe()),
                )
                if part
            )
        else:
            status_text, detail = marshal.loads(ended)
            status = Status(status_text)
        if status is Status.SKIP:
            skipped += 1
        elif status is not Status.PASS:
            failures += 1
        print(f"{status.value:<14} mode={mode}: {detail}", flush=True)
    passed = len(modes) - failures - skipped
    print(f"{passed} passed, {failures} failed" + (f", {skipped} skipped" if skipped else ""))
    return 0 if failures == 0 else 1


def _check_mode(spec: DriverSpec, mode: KernelMode, args: argparse.Namespace) -> tuple[str, str]:
    """``(status, detail)`` of the workload in one kernel mode."""
    error: BaseException | None = None
    try:
        kernel = Kernel(spec, mode, KernelConfig(seed=args.seed, ddi_timeout=args.ddi_timeout))
        if kernel.rejects_oversized:
            return str(Status.SKIP), kernel.rejects_oversized
        report = Workload(kernel, args.seed).run()
        detail = f"{len(report.steps)} steps, {report.submissions} submissions, {report.ddi_calls} DDI calls"
    except Exception as exc:
        error = exc
    outcome = classify(error)
    if outcome.status is Status.PASS:
        return str(outcome.status), detail
    message = _in_mode_terms(outcome.message) if isinstance(error, MemoryError) else outcome.message
    return str(outcome.status), message


def _disasm(args: argparse.Namespace) -> int:
    spec = load_driver(args.driver)
    data = sys.stdin.buffer.read() if args.file == "-" else open(args.file, "rb").read()  # noqa: SIM115
    gpu = spec.gpu(SystemMemory(), DXGK_START_INFO(1 << 20, 1 << 16))
    print(gpu.disassemble(data, mark=args.mark))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    raw = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in raw:  # what follows goes to libFuzzer unchanged
        cut = raw.index("--")
        raw, extra = raw[:cut], raw[cut + 1 :]
    args = parser.parse_args(raw)
    args.argv = [*raw, *(["--", *extra] if extra else [])]  # to run the command again
    try:
        if args.command == "fuzz":
            from .fuzz.cli import dispatch

            return dispatch(args, extra)
        if args.command == "native":
            from .native.cli import dispatch as native_dispatch

            return native_dispatch(args)
        return _check(args) if args.command == "check" else _disasm(args)
    except CommandLineError as exc:
        command: argparse.ArgumentParser = args.command_parser
        command.error(str(exc))
    except (DriverLoadError, OSError, ValueError, RuntimeError) as exc:
        parser.exit(2, f"wddm-conformance: error: {exc}\n")


if __name__ == "__main__":
    sys.exit(main())
