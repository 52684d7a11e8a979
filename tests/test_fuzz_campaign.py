"""Campaigns on a real install: their own interpreter, fast failure, budgets, whole-tree stops.

Every campaign here runs with a PATH from which every other python is removed (see
``tests.test_fuzz._env``), so a system python3 that happens to have atheris cannot hide a
job that runs the wrong interpreter.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.test_fuzz import ROOT, _env
from wddm_conformance.fuzz import campaign
from wddm_conformance.fuzz.campaign import Campaign, CampaignError, check_runnable, run
from wddm_conformance.fuzz.runner import relaunchable
from wddm_conformance.fuzz.triage import replay

pytest.importorskip("atheris")

#: A generous bound for what must take seconds: only a stall reaches it.
STALL = 120


def _campaign_cli(work: Path, *args: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "wddm_conformance", "fuzz", "run", "--work", str(work), *args],
        cwd=work.parent,
        env=_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _processes_of(work: Path) -> list[int]:
    """Live processes of the campaign in ``work`` (libFuzzer and its jobs), by environment."""
    mark = f"WDDM_FINDINGS={work / 'findings'}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if mark in (entry / "environ").read_bytes().split(b"\0"):
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z":
                    found.append(int(entry.name))
        except OSError:
            continue
    return found


def _until(condition: Any, seconds: float = STALL) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


@pytest.fixture
def driver_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory for test drivers, importable by the campaign's processes."""
    folder = tmp_path / "drivers"
    folder.mkdir()
    yield folder


def _driver(folder: Path, name: str, body: str) -> str:
    (folder / f"{name}.py").write_text(textwrap.dedent(body))
    return f"{name}:Miniport"


# ------------------------------------------------------------------ the right interpreter


def test_relaunched_jobs_run_this_interpreter_and_script() -> None:
    argv = relaunchable(["/some where/fuzz_render.py", "-fork=2", "corpus"])
    assert argv[1:] == ["-fork=2", "corpus"]
    assert argv[0] == f"{sys.executable} '/some where/fuzz_render.py'"


def test_a_forked_campaign_runs_with_no_python_on_path(tmp_path: Path) -> None:
    work = tmp_path / "work"
    proc = _campaign_cli(
        work, "render", "--driver=tests.mutants:DoubleFetch", "--jobs", "2", "--time", "15"
    )
    output, _ = proc.communicate(timeout=STALL)
    assert proc.returncode == 1, output
    assert "REN-COPYFIRST" in (work / "summary.txt").read_text()
    executions = [line for line in output.splitlines() if line.startswith("executions:")]
    assert executions and executions[0].split()[1] != "0", output


# ------------------------------------------------------------------ campaigns that cannot run


def test_a_driver_that_does_not_load_stops_the_campaign_at_once(tmp_path: Path) -> None:
    work = tmp_path / "work"
    proc = _campaign_cli(work, "render", "--driver=nonexistent:X", "--jobs", "2", "--time", "600")
    output, _ = proc.communicate(timeout=STALL)
    assert proc.returncode == 2, output  # bad usage, as `check` says it
    (line,) = [line for line in output.splitlines() if "error:" in line]
    assert "invalid --driver 'nonexistent:X': cannot import module 'nonexistent'" in line
    assert output.strip() == line  # one line, no summary of a campaign that never ran


def test_a_driver_that_does_not_load_is_named_when_resuming_too(tmp_path: Path) -> None:
    work = tmp_path / "work"
    first = _campaign_cli(work, "render", "--driver=tests.mutants:DoubleFetch", "--runs", "300")
    assert first.wait(timeout=STALL) == 1  # a finding, kept in the work directory
    stale = _campaign_cli(work, "render", "--driver=tests.mutants:Nope", "--runs", "300")
    output, _ = stale.communicate(timeout=STALL)
    assert stale.returncode == 2, output  # another driver's campaign is not resumed
    assert "holds a campaign of render on tests.mutants:DoubleFetch" in output
    (work / "campaign.json").unlink()  # the same driver name, now broken: still named
    again = _campaign_cli(work, "render", "--driver=tests.mutants:Nope", "--runs", "300")
    output, _ = again.communicate(timeout=STALL)
    assert again.returncode == 2, output
    assert "has no attribute 'Nope'" in output


def test_a_misspelled_driver_is_named_before_the_work_directory_is_looked_at(
    tmp_path: Path,
) -> None:
    """``--driver=referense`` in a directory holding a campaign of ``reference``: the typo is
    the error (with the name it was close to), not "holds a campaign of ...", and a fresh
    ``--work`` is not made for a driver that can never run."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "campaign.json").write_text('{"target": "render", "driver": "reference"}')
    typo = _campaign_cli(work, "render", "--driver=referense", "--time", "5")
    output, _ = typo.communicate(timeout=STALL)
    assert typo.returncode == 2, output
    (line,) = output.strip().splitlines()
    assert "invalid --driver 'referense'" in line and "did you mean 'reference'?" in line
    fresh = tmp_path / "fresh"
    _campaign_cli(fresh, "render", "--driver=referense", "--time", "5").wait(timeout=STALL)
    assert not fresh.exists()


def test_jobs_that_all_die_at_start_stop_the_campaign(tmp_path: Path, driver_dir: Path) -> None:
    # The first two processes to import it (the one that builds its seeds and libFuzzer's
    # -fork parent) load; every job then fails.
    spec = _driver(
        driver_dir,
        "parentonly",
        f"""
        from pathlib import Path
        marker = Path({str(driver_dir / "loaded")!r})
        loads = len(marker.read_text()) if marker.exists() else 0
        if loads >= 2:
            raise ImportError("this driver loads in two processes only")
        marker.write_text("x" * (loads + 1))
        from wddm_conformance.reference import ReferenceMiniport as Miniport
        """,
    )
    work = tmp_path / "work"
    proc = _campaign_cli(
        work, "render", f"--driver={spec}", "--jobs", "2", "--time", "600",
        PYTHONPATH=os.pathsep.join([str(driver_dir), _env()["PYTHONPATH"]]),
    )  # fmt: skip
    output, _ = proc.communicate(timeout=STALL)
    assert proc.returncode == 3, output
    (line,) = [line for line in output.splitlines() if line.startswith("error:")]
    assert "every fuzzing job died at start" in line
    assert "this driver loads in two processes only" in line


def test_no_atheris_is_one_line_and_exit_3(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, package: str | None = None) -> Any:
        return None if name == "atheris" else real(name, package)

    monkeypatch.setattr(campaign.importlib.util, "find_spec", find_spec)
    with pytest.raises(CampaignError, match=r"atheris is not installed for .*pip install"):
        check_runnable()
    from wddm_conformance.cli import main

    assert main(["fuzz", "run", "render", "--time", "5", "--work", "unused"]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "atheris is not installed" in err


# ------------------------------------------------------------------ set-up and budgets

HANGS_IN_SETUP = """
    import time
    from wddm_conformance.reference import ReferenceMiniport

    class Miniport(ReferenceMiniport):
        def create_allocation(self, args):
            while True:
                time.sleep(0.01)
    """


def test_a_hang_while_the_target_is_set_up_is_a_finding(tmp_path: Path, driver_dir: Path) -> None:
    spec = _driver(driver_dir, "setuphang", HANGS_IN_SETUP)
    work = tmp_path / "work"
    proc = _campaign_cli(
        work, "render", f"--driver={spec}", "--time", "600",
        PYTHONPATH=os.pathsep.join([str(driver_dir), _env()["PYTHONPATH"]]),
    )  # fmt: skip
    output, _ = proc.communicate(timeout=STALL)
    assert proc.returncode == 1, output
    summary = (work / "summary.txt").read_text()
    assert "ALL-BOUNDED" in summary and "DxgkDdiCreateAllocation" in summary
    (finding,) = [p for p in (work / "findings").iterdir() if p.suffix != ".json"]
    assert finding.read_bytes() == b""
    sys.path.insert(0, str(driver_dir))
    try:
        from wddm_conformance.driver import load_driver

        again = replay(load_driver(spec), "render", b"", timeout=0.5)
    finally:
        sys.path.remove(str(driver_dir))
    assert again.outcome.requirement == "ALL-BOUNDED"


def test_the_time_budget_holds_when_the_driver_swallows_the_watchdog(
    tmp_path: Path, driver_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = _driver(
        driver_dir,
        "swallows",
        """
        import time
        from wddm_conformance.reference import ReferenceMiniport

        class Miniport(ReferenceMiniport):
            def create_allocation(self, args):
                while True:
                    try:
                        time.sleep(0.01)
                    except BaseException:
                        pass
        """,
    )
    for name, value in _env(
        PYTHONPATH=os.pathsep.join([str(driver_dir), _env()["PYTHONPATH"]])
    ).items():
        monkeypatch.setenv(name, value)
    work = tmp_path / "work"
    c = Campaign("render", spec, work, seconds=2, grace=2)
    with open(os.devnull, "w") as quiet:
        outcome = run(c, out=quiet, tty=False)
    assert "past the time budget" in outcome.summary
    assert _until(lambda: not _processes_of(work), 30), _processes_of(work)


# ------------------------------------------------------------------ stopping the whole tree


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_stopped_campaign_leaves_no_fuzzing_process(tmp_path: Path, sig: signal.Signals) -> None:
    work = tmp_path / "work"
    proc = _campaign_cli(work, "render", "--jobs", "2", "--time", "600")
    assert _until(lambda: len(_processes_of(work)) >= 2), "the campaign never started its jobs"
    assert _until(lambda: (work / "corpus").is_dir() and any((work / "corpus").iterdir()))
    proc.send_signal(sig)
    output, _ = proc.communicate(timeout=STALL)
    assert _until(lambda: not _processes_of(work), 30), _processes_of(work)
    if sig == signal.SIGTERM:
        assert proc.returncode == 0, output
        assert "stopped by SIGTERM" in (work / "summary.txt").read_text()


@pytest.mark.parametrize("command", ["repro", "minimize", "promote"])
def test_a_missing_input_file_is_named(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from wddm_conformance.cli import main

    missing = tmp_path / "render-REN-VALIDATE-0123"
    assert main(["fuzz", command, str(missing)]) == 2
    assert capsys.readouterr().err == f"wddm-conformance: error: {missing} does not exist\n"


def test_an_input_that_hangs_is_a_finding_with_its_input(tmp_path: Path, driver_dir: Path) -> None:
    spec = _driver(
        driver_dir,
        "rendershang",
        """
        import time
        from wddm_conformance.reference import ReferenceMiniport

        class Miniport(ReferenceMiniport):
            def render(self, hContext, args):
                while True:
                    time.sleep(0.01)
        """,
    )
    work = tmp_path / "work"
    proc = _campaign_cli(
        work, "render", f"--driver={spec}", "--time", "600", "--", "-timeout=1",
        PYTHONPATH=os.pathsep.join([str(driver_dir), _env()["PYTHONPATH"]]),
    )  # fmt: skip
    output, _ = proc.communicate(timeout=STALL)
    assert proc.returncode == 1, output
    assert "ALL-BOUNDED" in (work / "summary.txt").read_text()
    (record,) = (work / "findings").glob("*.json")
    assert '"status": "TIMEOUT"' in record.read_text()
    (timeout,) = (work / "artifacts").glob("timeout-*")
    assert record.with_suffix("").read_bytes() == timeout.read_bytes()
    repro = subprocess.run(
        [sys.executable, "-m", "wddm_conformance", "fuzz", "repro", str(record.with_suffix(""))],
        cwd=tmp_path,
        env=_env(PYTHONPATH=os.pathsep.join([str(driver_dir), _env()["PYTHONPATH"]])),
        capture_output=True,
        text=True,
        timeout=STALL,
    )
    assert repro.returncode == 1 and "TIMEOUT  ALL-BOUNDED" in repro.stdout, repro.stdout


# ------------------------------------------------------------------ whose seeds


SECOND = "tests.second_driver:Miniport"


def test_a_driver_with_its_own_encoder_starts_from_its_own_seeds(tmp_path: Path) -> None:
    c = Campaign("render", SECOND, tmp_path / "work")
    line = campaign.own_seeds(c, _env())
    assert c.seeds == tmp_path / "work" / "seeds"
    assert line.startswith("seeds: ") and f"built by {SECOND}'s own encoder" in line
    command = c.command()
    assert str(c.seeds / "render") in command
    assert f"-dict={c.seeds / 'render.dict'}" in command
    assert str(campaign.CORPORA / "render") not in command


@pytest.mark.parametrize(
    ("driver", "says"),
    [
        ("reference", "the packaged ones, built by the reference driver's encoder"),
        ("tests.mutants:DoubleFetch", "the packaged ones (tests.mutants:DoubleFetch's encoder"),
    ],
)
def test_a_driver_with_the_reference_encoder_starts_from_the_packaged_seeds(
    tmp_path: Path, driver: str, says: str
) -> None:
    c = Campaign("render", driver, tmp_path / "work")
    assert says in campaign.own_seeds(c, _env())
    assert c.seeds is None
    assert str(campaign.CORPORA / "render") in c.command()


def test_a_driver_that_dies_building_its_seeds_is_named_and_the_campaign_goes_on(
    tmp_path: Path, driver_dir: Path
) -> None:
    spec = _driver(
        driver_dir,
        "dies_in_setup",
        """
        import os
        from wddm_conformance.reference.miniport import ReferenceMiniport

        class Miniport(ReferenceMiniport):
            def create_allocation(self, args):
                os._exit(9)
        """,
    )
    c = Campaign("render", spec, tmp_path / "work")
    line = campaign.own_seeds(c, _env(PYTHONPATH=f"{driver_dir}{os.pathsep}{ROOT}"))
    assert c.seeds is None
    assert line.startswith("seeds: the packaged ones, built by the reference driver's encoder")
    assert f"building {spec}'s own failed: exit status 9" in line


def test_a_native_driver_built_without_coverage_is_said_at_the_start(tmp_path: Path) -> None:
    from io import StringIO

    from wddm_conformance.native.build import build

    library = build([ROOT / "tests" / "wdk_driver" / "wdkdisp.c"], name="wdkdisp", wdk=True)
    out = StringIO()
    run(Campaign("create_allocation", f"native:{library}", tmp_path / "work", seconds=1), out)
    (line,) = [x for x in out.getvalue().splitlines() if x.startswith("note: ")]
    assert f"{library.name} is not built for coverage" in line and "--sanitize" in line
    out = StringIO()
    run(Campaign("create_allocation", "reference", tmp_path / "python", seconds=1), out)
    assert "not built for coverage" not in out.getvalue()
