"""The suite's own contract: every requirement ID has a check, every check names known IDs,
the shipped catalogue is the project's REQUIREMENTS.md, and bad input is a usage error."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import wddm_conformance.suite as suite
from wddm_conformance.requirements import catalogue, checkable, documented_only, parse

ROOT = Path(__file__).resolve().parent.parent


def _checks() -> dict[str, list[str]]:
    """Suite check name -> the requirement IDs its markers name."""
    out: dict[str, list[str]] = {}
    for info in pkgutil.iter_modules(suite.__path__):
        if not info.name.startswith("test_"):
            continue
        module = importlib.import_module(f"{suite.__name__}.{info.name}")
        for name, fn in vars(module).items():
            if name.startswith("test_") and callable(fn):
                marks = list(getattr(fn, "pytestmark", []))
                for mark in list(marks):  # marks given per parameter (pytest.param(..., marks=))
                    if mark.name == "parametrize":
                        for param in mark.args[1]:
                            marks += getattr(param, "marks", ())
                out[f"{info.name}::{name}"] = [
                    i for mark in marks if mark.name == "requirement" for i in mark.args
                ]
    return out


def test_every_check_names_at_least_one_known_requirement() -> None:
    known = catalogue()
    for name, ids in _checks().items():
        assert ids, f"{name} names no requirement"
        assert set(ids) <= set(known), f"{name} names unknown IDs {set(ids) - set(known)}"


def test_every_testable_requirement_has_a_check() -> None:
    covered = {i for ids in _checks().values() for i in ids}
    assert sorted(set(checkable()) - covered) == []
    assert documented_only() == ["REN-IRQL"]


def test_the_shipped_catalogue_is_the_projects_requirements() -> None:
    shared = ROOT.parent / "shared" / "REQUIREMENTS.md"
    if not shared.exists():
        pytest.skip("../shared/REQUIREMENTS.md is not beside this checkout")
    assert parse(shared.read_text(encoding="utf-8")) == catalogue()


def _pytest(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize(
    ("args", "culprit"),
    [
        (["--driver=nocolon"], "expected 'module:Class'"),
        (["--driver=referense"], "or one of: reference, reference-c; did you mean 'reference'?"),
        (["--driver=no_such_module:Miniport"], "cannot import module 'no_such_module'"),
        (
            ["--driver=wddm_conformance.reference.miniport:NoSuchClass"],
            "has no attribute 'NoSuchClass'",
        ),
        (["--driver=wddm_conformance.reference.miniport:PAGE_SIZE"], "is not a class"),
        (["--driver=wddm_conformance.errors:HarnessError"], "invalid --driver"),
        (["--kernel-mode=sideways"], "unknown kernel mode 'sideways'"),
        (["--baseline=does/not/exist.csv"], "no such file"),
        (["--update-baseline"], "give the file with --baseline"),
    ],
)
def test_bad_input_is_one_line_and_a_usage_error(
    args: list[str], culprit: str, tmp_path: Path
) -> None:
    result = _pytest("--pyargs", "wddm_conformance.suite", *args, cwd=tmp_path)
    assert result.returncode == 4, result.stdout + result.stderr
    assert culprit in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1, result.stderr


def test_a_malformed_baseline_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "baseline.csv"
    bad.write_text("# ok\ntest_render.py::test_x,FAIL\nnot a line\n")
    result = _pytest("--pyargs", "wddm_conformance.suite", f"--baseline={bad}", cwd=tmp_path)
    assert result.returncode == 4
    assert f"invalid baseline line 3 of {bad}" in result.stderr
