"""The ``wddm-conformance`` command: results, exit codes, and one-line errors for bad input."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from wddm_conformance.cli import _parser, main
from wddm_conformance.kernel import ALL_MODES, KernelMode


def test_check_passes_the_reference_driver(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--mode", "default", "--mode", "tiny-buffers"]) == 0
    out = capsys.readouterr().out
    assert "driver=reference seed=0" in out
    assert "2 passed, 0 failed" in out


def test_check_skips_tiny_buffers_for_a_guaranteed_contract_driver(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Its user-mode driver never submits more than the DMA buffer holds: rejecting the
    workload's oversized buffers is right, so the mode is SKIP with the reason, not FAIL."""
    driver = "wddm_conformance.reference.miniport:ContractReferenceMiniport"
    assert main(["check", "--driver", driver, "--mode", "default", "--mode", "tiny-buffers"]) == 0
    out = capsys.readouterr().out
    assert "SKIP           mode=tiny-buffers: guaranteed-contract DMA" in out
    assert "1 passed, 0 failed, 1 skipped" in out


def test_a_mode_timeout_of_0_is_no_limit(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--mode", "default", "--mode-timeout=0", "--mode-memory=0"]) == 0
    assert "1 passed, 0 failed" in capsys.readouterr().out


def test_check_names_the_broken_requirement_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--driver", "tests.mutants:UnmapToNothing", "--mode", "default"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "[PGB-UNMAP]" in out


def test_check_reports_a_crash_as_crash(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--driver", "tests.mutants:PatchFails", "--mode", "always-repatch"]) == 1
    assert "CRASH" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "culprit"),
    [
        (["check", "--driver", "nocolon"], "expected 'module:Class'"),
        (["check", "--driver", "nocolon"], "or one of: reference, reference-c"),
        (["fuzz", "run", "render", "--driver=lib.so"], "did you mean 'native:lib.so'?"),
        (
            ["check", "--driver", "no_such_module_xyz:Driver"],
            "cannot import module 'no_such_module_xyz'",
        ),
        (["check", "--driver", "wddm_conformance.reference:Nope"], "has no attribute 'Nope'"),
        (["check", "--driver", "wddm_conformance.ddi:MDL"], "missing DDI method(s): start_device"),
        (["check", "--mode", "warp-speed"], "unknown kernel mode 'warp-speed'"),
        (["check", "--mode-timeout=-1"], "--mode-timeout: invalid value '-1': must be 0 or more"),
        (["check", "--mode-timeout=nan"], "--mode-timeout: invalid value 'nan': must be 0 or more"),
        (["check", "--mode-memory=lots"], "--mode-memory: invalid value 'lots': not a number"),
    ],
)
def test_bad_input_is_one_line_usage_error_without_traceback(argv: list[str], culprit: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "wddm_conformance", *argv],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert culprit in proc.stderr
    assert "Traceback" not in proc.stderr
    error_lines = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(error_lines) == 1


def _commands(
    parser: argparse.ArgumentParser, words: tuple[str, ...] = ()
) -> list[tuple[str, ...]]:
    """Every sub-command of ``parser`` (``("fuzz",)``, ``("fuzz", "run")`` ...), depth first."""
    found: list[tuple[str, ...]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += [(*words, name), *_commands(sub, (*words, name))]
    return found


COMMANDS = _commands(_parser())


def test_every_sub_command_is_checked() -> None:
    assert {("check",), ("fuzz", "run"), ("fuzz", "coverage"), ("native", "build")} <= set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
@pytest.mark.parametrize("bad", [["--seconds", "10"], ["--bogus=1"]], ids=["value", "inline"])
def test_a_sub_command_reports_an_unknown_option_with_its_own_usage(
    command: tuple[str, ...], bad: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """``fuzz run --seconds 10`` printed the top-level usage (argparse hands a sub-command's
    unknown arguments up); then, with the target checked, "unknown fuzz target '10'"."""
    with pytest.raises(SystemExit) as ended:
        main([*command, *bad])
    assert ended.value.code == 2
    err = capsys.readouterr().err
    prog = " ".join(("wddm-conformance", *command))
    assert err.startswith(f"usage: {prog} ")
    # ... and, where one is close, "(did you mean --time?)"
    assert err.splitlines()[-1].startswith(f"{prog}: error: unrecognized arguments: {bad[0]}")
    assert sum("error:" in line for line in err.splitlines()) == 1


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (
            ["fuzz", "run", "nosuch"],
            "fuzz run: error: argument target: unknown fuzz target 'nosuch'",
        ),
        (
            ["fuzz", "coverage"],
            "fuzz coverage: error: the following arguments are required: target",
        ),
        (
            ["fuzz", "repro", "f", "--target=x"],
            "fuzz repro: error: argument --target: unknown fuzz",
        ),
        (
            ["fuzz", "run", "render", "--jobs=x"],
            "fuzz run: error: argument --jobs: invalid value 'x': not a whole number",
        ),
        (
            ["fuzz", "run", "render", "--jobs=0"],
            "fuzz run: error: argument --jobs: invalid value '0': must be at least 1",
        ),
        (["native"], "native: error: the following arguments are required: {build,header,cflags}"),
        (
            ["fuzz", "run", "render", "-max_len=9"],
            "fuzz run: error: unrecognized arguments: -max_len",
        ),
        (["native", "header", "extra"], "native header: error: unrecognized arguments: extra"),
        (["native", "build", "--wdk"], "native build: error: --wdk builds your own sources"),
        (["native", "build", "a.c", "--mutant=NO_PREPATCH"], "native build: error: --mutant and"),
        (["native", "build", "-DX"], "native build: error: -D and -I apply to your own sources"),
        (
            ["fuzz", "run", "--runs=-5", "nosuch"],
            "fuzz run: error: argument --runs: invalid value '-5': must be at least 1",
        ),
        (
            ["fuzz", "minimize", "f", "--runs=0"],
            "fuzz minimize: error: argument --runs: invalid value '0': must be at least 1",
        ),
        (["fuzz", "--bogus", "run", "render"], "fuzz: error: unrecognized arguments: --bogus"),
        (
            ["fuzz", "run", "render", "--seconds", "20"],
            "fuzz run: error: unrecognized arguments: --seconds (did you mean --time?)",
        ),
        (
            ["fuzz", "run", "render", "-n", "2"],
            "fuzz run: error: unrecognized arguments: -n (did you mean --jobs?)",
        ),
        (
            ["check", "--mdoe", "default"],
            "check: error: unrecognized arguments: --mdoe (did you mean --mode?)",
        ),
        (
            ["fuzz", "run", "render", "-dict=x"],
            "fuzz run: error: unrecognized arguments: -dict=x (libFuzzer's own flags go after "
            "--: ... -- -dict=x)",
        ),
    ],
)
def test_a_sub_command_s_bad_command_line_is_its_usage_and_one_line(
    argv: list[str], error: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as ended:
        main(argv)
    assert ended.value.code == 2
    err = capsys.readouterr().err
    last = err.splitlines()[-1]
    assert err.startswith(f"usage: {last.partition(': error:')[0]} ")
    assert f"wddm-conformance {error}" in last
    assert sum("error:" in line for line in err.splitlines()) == 1


def test_options_spelled_as_argparse_accepts_them_are_not_unknown(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Abbreviations, ``--opt=value``, ``-DNAME`` and negative numbers still reach argparse."""
    parser = _parser()
    args = parser.parse_args(["check", "--mode-t=0", "--se", "-3", "--driver=x:Y"])
    assert (args.mode_timeout, args.seed, args.driver) == (0, -3, "x:Y")
    args = parser.parse_args(["native", "build", "a.c", "-DFOO", "-I", "inc"])
    assert args.defines == ["FOO"]


def test_disasm_marks_the_offset(
    tmp_path: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    from wddm_conformance.reference import isa

    dump = tmp_path / "dma.bin"  # type: ignore[operator]
    dump.write_bytes(
        isa.encode("NOP")
        + isa.encode("COPY", 0x100000000, 0x100001000, 16)
        + isa.encode("FENCE", 3)
    )
    assert main(["disasm", str(dump), "--mark", "4"]) == 0
    out = capsys.readouterr().out
    assert "=> +0x0004  COPY" in out and "FENCE" in out


def test_check_mode_all_runs_every_mode_and_all_stress_is_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`all` promises every mode; every stress at once has its own name (issue 13)."""
    assert main(["check", "--mode", "all"]) == 0
    out = capsys.readouterr().out
    assert out.count("PASS           mode=") == len(ALL_MODES)
    assert main(["check", "--mode", "all-stress"]) == 0
    assert "1 passed, 0 failed" in capsys.readouterr().out


def test_all_is_not_one_kernel_mode() -> None:
    with pytest.raises(ValueError, match="every mode in turn"):
        KernelMode.parse("all")
