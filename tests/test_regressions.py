"""A driver repository's own regression inputs: the suite replays them, the summary says why not.

``fuzz promote`` writes to ``./wddm-regressions/<target>/`` (never into the installed
package); the suite's replay check reads that directory from ``--fuzz-regressions``, the
``wddm_fuzz_regressions`` ini value, or ``wddm-regressions/`` under the rootdir.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from wddm_conformance.fuzz import CORPORA

ROOT = Path(__file__).resolve().parent.parent
#: A render input that finds REN-COPYFIRST on tests.mutants:DoubleFetch.
DOUBLE_FETCH = CORPORA / "render" / "fault-toctou"


def _suite(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "HYPOTHESIS_PROFILE")}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "--pyargs", "wddm_conformance.suite"),
            *("-k", "fuzz_inputs_replay and render", "-p", "no:cacheprovider"),
            *args,
        ],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A driver repository with no seeds of its own (empty --fuzz-corpora) and one regression."""
    (tmp_path / "no-seeds").mkdir()
    mine = tmp_path / "wddm-regressions" / "render"
    mine.mkdir(parents=True)
    shutil.copyfile(DOUBLE_FETCH, mine / "REN-COPYFIRST-0123456789ab")
    return tmp_path


@pytest.mark.parametrize("how", ["default directory", "option", "ini"])
def test_the_suite_replays_the_driver_repositorys_regressions(repo: Path, how: str) -> None:
    args = ["--driver=tests.mutants:DoubleFetch"]  # the packaged seeds find it too
    if how == "option":
        (repo / "wddm-regressions").rename(repo / "kept")
        args.append(f"--fuzz-regressions={repo / 'kept'}")
    elif how == "ini":
        (repo / "wddm-regressions").rename(repo / "kept")
        (repo / "pytest.ini").write_text("[pytest]\nwddm_fuzz_regressions = kept\n")
    out = _suite(repo, *args)
    assert out.returncode == 1, out.stdout[-3000:]
    assert "REN-COPYFIRST" in out.stdout
    assert "REN-COPYFIRST-0123456789ab" in out.stdout  # the repository's own input is named


def test_a_replay_with_nothing_to_replay_says_why_in_the_summary(repo: Path) -> None:
    shutil.rmtree(repo / "wddm-regressions")
    out = _suite(repo, f"--fuzz-corpora={repo / 'no-seeds'}")
    assert out.returncode == 0, out.stdout[-3000:]
    summary = out.stdout.split("wddm-conformance =")[-1]
    assert "SKIP" in summary and "no render inputs to replay" in summary


def test_a_missing_regressions_directory_is_a_usage_error(repo: Path) -> None:
    out = _suite(repo, f"--fuzz-regressions={repo / 'nope'}")
    assert out.returncode == 4
    assert "invalid --fuzz-regressions" in out.stderr and "not a directory" in out.stderr
