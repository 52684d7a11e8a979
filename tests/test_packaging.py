"""Packaging and the documents a new user copies: metadata, extras, package data, examples.

The harness is on no package index, so what the README and the examples tell a driver
repository to run must work as written (with the one placeholder each names).
"""

from __future__ import annotations

import configparser
import glob
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from tests import yamlsubset
from wddm_conformance import __version__
from wddm_conformance.fuzz import TARGETS
from wddm_conformance.fuzz.package import add_arguments

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
PACKAGE = ROOT / "wddm_conformance"
EXAMPLES = ROOT / "docs" / "examples"
README = (ROOT / "README.md").read_text(encoding="utf-8")
LINTERS = {"mypy", "ruff", "types-cffi"}
#: The inputs of google/clusterfuzzlite's actions (actions/*/action.yml at v1).
CFLITE_INPUTS = {
    "build_fuzzers": {
        "language", "dry-run", "allowed-broken-targets-percentage", "sanitizer",
        "project-src-path", "bad-build-check", "keep-unaffected-fuzz-targets", "storage-repo",
        "storage-repo-branch", "storage-repo-branch-coverage", "upload-build", "github-token",
    },
    "run_fuzzers": {
        "language", "fuzz-seconds", "dry-run", "sanitizer", "mode", "github-token",
        "storage-repo", "storage-repo-branch", "storage-repo-branch-coverage",
        "report-unreproducible-crashes", "minimize-crashes", "parallel-fuzzing",
        "output-sarif", "report-timeouts", "report-ooms",
    },
}  # fmt: skip


# ------------------------------------------------------------------ metadata and the wheel


def test_license_metadata_is_an_spdx_string_with_its_file() -> None:
    """PEP 639 form: no SetuptoolsDeprecationWarning from setuptools >= 77."""
    project = PYPROJECT["project"]
    assert project["license"] == "MIT"
    assert project["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License\n")
    assert re.search(r"^Copyright \(c\) \d{4} the wddm-conformance authors$", text, re.M)
    (setuptools,) = [
        Requirement(r)
        for r in PYPROJECT["build-system"]["requires"]
        if Requirement(r).name == "setuptools"
    ]
    assert Version("77") in setuptools.specifier
    assert Version("76.9") not in setuptools.specifier


def _shipped(files: list[Path], package: Path) -> set[Path]:
    """The ``files`` setuptools' build_py takes as package data of ``package``.

    It expands each ``package-data`` pattern with ``glob(..., recursive=True)`` from the
    package's directory and keeps the regular files.
    """
    patterns = PYPROJECT["tool"]["setuptools"]["package-data"]["wddm_conformance"]
    matched = {
        Path(p).resolve()
        for pattern in patterns
        for p in glob.glob(os.path.join(package, pattern), recursive=True)
        if os.path.isfile(p)
    }
    return {f for f in files if f.resolve() in matched}


def _data_files(package: Path) -> list[Path]:
    """Every file of ``package`` that is not Python source or bytecode."""
    return sorted(
        p
        for p in package.rglob("*")
        if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts
    )


def test_package_data_ships_every_data_file() -> None:
    """Seeds, dictionaries, regressions, the header, the C reference, the catalogue: all in the wheel."""
    files = _data_files(PACKAGE)
    corpora = [f for f in files if "corpora" in f.parts]
    assert len(corpora) > len(TARGETS)
    for name in ("requirements.md", "py.typed", "native/wddm_native.h"):
        assert PACKAGE / name in files
    assert any(f.suffix == ".c" for f in files)
    assert set(files) - _shipped(files, PACKAGE) == set()


def test_package_data_ships_corpus_files_added_later(tmp_path: Path) -> None:
    """A new target, a nested regression and its record must not be left out of the wheel."""
    package = tmp_path / "wddm_conformance"
    added = [
        "fuzz/corpora/newtarget.dict",
        "fuzz/corpora/newtarget/seed-0",
        "fuzz/corpora/regressions/render/render-REN-VALIDATE-0123",
        "fuzz/corpora/regressions/render/render-REN-VALIDATE-0123.json",
        "fuzz/corpora/regressions/render/2027/render-REN-UNDERRUN-4567",
    ]
    for name in added:
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_bytes(b"x")
    files = _data_files(package)
    assert set(files) - _shipped(files, package) == set()


def _extra(name: str) -> set[str]:
    """The distributions extra ``name`` installs, through the extras it includes."""
    found: set[str] = set()
    for text in PYPROJECT["project"]["optional-dependencies"][name]:
        req = Requirement(text)
        if req.name == PYPROJECT["project"]["name"]:
            for extra in req.extras:
                found |= _extra(extra)
        else:
            found.add(req.name)
    return found


def test_the_extras_a_driver_repository_installs_bring_no_linters() -> None:
    assert _extra("fuzz") == {"atheris", "matplotlib", "coverage"}
    assert _extra("test") == _extra("fuzz") | {"pytest-xdist"}
    assert _extra("dev") == _extra("test") | LINTERS


def test_ci_and_tox_install_the_linters_where_they_lint() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    install = ci.index('.venv/bin/pip install -q -e ".[dev]"')
    assert install < ci.index(".venv/bin/ruff check .") < ci.index(".venv/bin/mypy")
    tox = configparser.ConfigParser()
    tox.read(ROOT / "tox.ini", encoding="utf-8")
    assert tox["testenv:lint"]["extras"].strip() == "dev"
    assert tox["testenv"]["extras"].strip() == "test"


def test_changelog_has_the_unreleased_changes_and_this_version() -> None:
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    headings = re.findall(r"^## (.+)$", text, re.M)
    assert headings[0] == "[Unreleased]"
    assert re.fullmatch(rf"\[{re.escape(__version__)}\] - \d{{4}}-\d{{2}}-\d{{2}}", headings[1])
    unreleased = text[text.index("## [Unreleased]") : text.index(f"## [{__version__}]")]
    for change in (
        "wddm_conformance.reference",
        "wddm_conformance/fuzz/corpora",
        "./wddm-regressions",
        "--fuzz-regressions",
        "wddm_fuzz_regressions",
        "fuzz package",
        "`dev`",
        "LICENSE",
    ):
        assert change in unreleased, change


# ------------------------------------------------------------------ README


def test_readme_installs_from_a_checkout_a_git_url_or_a_wheel() -> None:
    """Never `pip install wddm-conformance` from an index: it is on none."""
    from_index = re.compile(
        r"pip install (?:-\S+ )*[\"']?wddm-conformance(?:\[[^\]]*\])?[\"']?(?!\S| @)"
    )
    assert not from_index.search(README)
    assert 'pip install "wddm-conformance[test] @ git+${WDDM_CONFORMANCE_GIT}"' in README
    assert 'pip install -e "/path/to/wddm-conformance[test]"' in README
    assert 'pip install "/path/to/wddm_conformance-0.1.0-py3-none-any.whl[test]"' in README
    assert "pip wheel --no-deps . -w dist" in README
    assert "python -m build" in README


def test_no_message_tells_users_to_install_the_harness_from_an_index() -> None:
    advice = re.compile(r"pip install ['\"]?wddm-conformance(?!\S* @)")
    for path in sorted(PACKAGE.rglob("*.py")):
        assert not advice.search(path.read_text(encoding="utf-8")), path


def test_readme_box_table_paths_exist() -> None:
    table = README[README.index("## What is in the box") : README.index("## Development")]
    rows = re.findall(r"^\| (`[^|]*`) \|", table, re.M)
    assert len(rows) > 10
    for cell in rows:
        first, *rest = re.findall(r"`([^`]+)`", cell)
        assert (ROOT / first).exists(), first
        for name in rest:
            assert (ROOT / name).exists() or (ROOT / first).parent.joinpath(name).exists(), name


# ------------------------------------------------------------------ workflow examples


def _workflow(path: Path) -> dict[str, Any]:
    data = yamlsubset.load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    assert {"name", "on", "jobs"} <= set(data)
    for job in data["jobs"].values():
        assert job["runs-on"] == "ubuntu-latest"
        for step in job["steps"]:
            assert ("uses" in step) != ("run" in step), step
            if "run" in step:  # GitHub runs these with bash -e
                check = subprocess.run(
                    ["bash", "-n"], input=step["run"].encode(), capture_output=True
                )
                assert check.returncode == 0, (step["run"], check.stderr)
    return data


def _steps(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in data["jobs"].values() for step in job["steps"]]


def _command(script: str, start: str) -> list[str]:
    """The shell words of the command in ``script`` that begins with ``start``."""
    joined = script.replace("\\\n", " ")
    (line,) = [ln.strip() for ln in joined.splitlines() if ln.strip().startswith(start)]
    return shlex.split(line)


def test_github_actions_example_installs_the_harness_from_its_placeholder() -> None:
    data = _workflow(EXAMPLES / "github-actions.yml")
    (install,) = [s for s in _steps(data) if "pip install" in s.get("run", "")]
    assert install["env"] == {"WDDM_CONFORMANCE_GIT": "${{ vars.WDDM_CONFORMANCE_GIT }}"}
    assert 'if [ -z "$WDDM_CONFORMANCE_GIT" ]' in install["run"]
    words = _command(install["run"], 'python -m pip install "wddm-conformance')
    req = Requirement(words[-1])
    assert (req.name, req.extras, req.url) == (
        "wddm-conformance",
        {"test"},
        "git+${WDDM_CONFORMANCE_GIT}",
    )
    assert not _extra("test") & LINTERS


def test_github_actions_example_gives_pytest_only_options_it_knows(tmp_path: Path) -> None:
    """Its pytest command line, run where there is nothing to collect: not a usage error."""
    data = _workflow(EXAMPLES / "github-actions.yml")
    (suite,) = [s for s in _steps(data) if "pytest --pyargs" in s.get("run", "")]
    assert 'baseline=(--baseline="$BASELINE")' in suite["run"]
    words = _command(suite["run"], "python -m pytest")
    assert words[:5] == ["python", "-m", "pytest", "--pyargs", "wddm_conformance.suite"]
    options = [w for w in words[5:] if w != "${baseline[@]}"]
    assert {w.split("=")[0] for w in options if w.startswith("-")} == {
        "-n", "--wddm-driver", "--junitxml", "--report-json", "--report-html"
    }  # fmt: skip
    (tmp_path / "wddm-baseline.csv").write_text("", encoding="utf-8")
    argv = [w.replace("$DRIVER", "reference") for w in options]
    argv += ["--baseline=wddm-baseline.csv", "--collect-only", "-q", "-p", "no:cacheprovider"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "WDDM_"))}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", *argv],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == pytest.ExitCode.NO_TESTS_COLLECTED, proc.stdout + proc.stderr


def test_clusterfuzzlite_example_uses_the_actions_inputs_and_python() -> None:
    data = _workflow(EXAMPLES / "clusterfuzzlite" / "cflite_pr.yml")
    assert set(data["on"]) == {"pull_request"}
    used = [s for s in _steps(data) if "uses" in s]
    assert [s["uses"] for s in used] == [
        "google/clusterfuzzlite/actions/build_fuzzers@v1",
        "google/clusterfuzzlite/actions/run_fuzzers@v1",
    ]
    for step in used:
        action = step["uses"].split("/")[-1].split("@")[0]
        assert set(step["with"]) <= CFLITE_INPUTS[action], action
        assert step["with"]["language"] == "python"
        assert step["with"]["sanitizer"] in ("address", "undefined")  # Python's sanitizers
    assert used[1]["with"]["mode"] in ("code-change", "batch", "coverage", "prune")

    example = EXAMPLES / "clusterfuzzlite"
    assert yamlsubset.load((example / "project.yaml").read_text(encoding="utf-8")) == {
        "language": "python"
    }
    dockerfile = (example / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM gcr\.io/oss-fuzz-base/base-builder-python$", dockerfile, re.M)
    assert re.search(r"^COPY \.clusterfuzzlite/build\.sh \$SRC/$", dockerfile, re.M)
    requirements = (example / "requirements.txt").read_text(encoding="utf-8")
    (line,) = [ln for ln in requirements.splitlines() if ln and not ln.startswith("#")]
    assert Requirement(line).name == "wddm-conformance"
    assert "YOUR-ORG" in line  # the placeholder build.sh refuses to build with


def test_clusterfuzzlite_example_packages_with_real_options() -> None:
    import argparse

    build_sh = (EXAMPLES / "clusterfuzzlite" / "build.sh").read_text(encoding="utf-8")
    assert subprocess.run(["bash", "-n"], input=build_sh.encode()).returncode == 0
    words = _command(build_sh, "python3 -m wddm_conformance fuzz package")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(words[5:])
    assert (args.driver, args.out, args.executables) == ("$DRIVER", Path("$OUT"), False)
    assert args.scripts == Path("$SRC/wddm-fuzzers")
    assert 'for fuzzer in "$SRC"/wddm-fuzzers/fuzz_*.py; do' in build_sh
