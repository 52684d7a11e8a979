"""Installing the plugin changes nothing until it is asked (issue 11, sections 3 and 4).

Every test runs pytest in a subprocess from a temporary project, as a user would: an
unrelated project in the same environment, or a driver repository. The environment is
this interpreter's; nothing depends on PATH or on what else is installed (the plugins
that own ``--driver`` are stand-ins written here).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYTEST = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"]
#: The ``pytest`` console script: like ``python -m pytest`` but without the current
#: directory on sys.path (``-P``, which is what the script amounts to).
PLAIN_PYTEST = [sys.executable, "-P", "-m", "pytest", "-p", "no:cacheprovider"]
ONE_CHECK = "test_render_rejects_illegal_commands"
HEADER = "wddm-conformance 0.1.0 (contract"
PREPATCH = "test_pre_patched_buffer_reaches_resident_allocations_without_a_patch_call"

#: A hypothesis test that records the settings it ran with.
HYPOTHESIS_TEST = """
    import json
    from pathlib import Path

    from hypothesis import given, settings, strategies as st

    RAN = []

    @given(st.integers())
    def test_property(x):
        RAN.append(x)

    def test_record():
        s = settings()
        Path("settings.json").write_text(json.dumps({
            "examples_run": len(RAN),
            "max_examples": s.max_examples,
            "derandomize": s.derandomize,
            "deadline": str(s.deadline),
            "profile": settings.get_current_profile_name(),
            "all": repr(s),
        }))
"""

#: What pytest-selenium and pytest-base-url do: own ``--driver``.
OWNS_DRIVER = """
    def pytest_addoption(parser):
        parser.addoption("--driver", default="firefox", help="the browser")
"""


def run(
    cwd: Path,
    *args: str,
    env: dict[str, str] | None = None,
    plain: bool = False,
    checkout: bool = False,
) -> subprocess.CompletedProcess[str]:
    """pytest in ``cwd``; ``checkout`` puts this checkout (the mutants) on PYTHONPATH."""
    environ = {
        k: v
        for k, v in os.environ.items()
        if k not in ("CI", "HYPOTHESIS_PROFILE", "PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTHONPATH")
    }
    if checkout:
        environ["PYTHONPATH"] = str(ROOT)
    environ.update(env or {})
    return subprocess.run(
        [*(PLAIN_PYTEST if plain else PYTEST), *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=600,
    )


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def repeat_line(stdout: str) -> str:
    (line,) = [ln for ln in stdout.splitlines() if ln.startswith("repeat with: ")]
    return line.removeprefix("repeat with: ")


# ------------------------------------------------------------------------- 1. inert


@pytest.mark.parametrize("ci", [False, True], ids=["local", "CI=true"])
def test_an_unrelated_projects_hypothesis_settings_are_untouched(tmp_path: Path, ci: bool) -> None:
    """Locally the plugin used to load its 25-example profile for everyone. (Under CI the
    hypothesis in use already selects an equivalent built-in ``ci``; that case guards
    against the plugin loading or replacing a profile again.)"""
    write(tmp_path, "test_unrelated.py", HYPOTHESIS_TEST)
    env = {"CI": "true"} if ci else {}
    seen = []
    for disable in ([], ["-p", "no:wddm_conformance"]):  # installed, and as if it were not
        result = run(tmp_path, *disable, env=env)
        assert result.returncode == 0, result.stdout + result.stderr
        seen.append(json.loads((tmp_path / "settings.json").read_text()))
    installed, absent = seen
    assert installed == absent
    assert installed["examples_run"] == installed["max_examples"] == 100


@pytest.mark.parametrize("how", ["HYPOTHESIS_PROFILE=quick", "--hypothesis-profile=quick"])
def test_the_suites_profile_applies_to_the_suites_checks(tmp_path: Path, how: str) -> None:
    """A driver repository's own hypothesis tests, run beside the suite, keep their settings
    unless hypothesis' own option loads a profile for everyone."""
    write(tmp_path, "test_unrelated.py", HYPOTHESIS_TEST)
    env = {"HYPOTHESIS_PROFILE": "quick"} if how.startswith("HYPO") else {}
    args = [] if env else [how]
    result = run(
        tmp_path,
        "test_unrelated.py",
        "--pyargs",
        "wddm_conformance.suite",
        "-k",
        "test_unrelated or test_malformed_command_buffers",
        "--hypothesis-show-statistics",
        *args,
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "hypothesis profile quick" in result.stdout
    stats = result.stdout.split("test_malformed_command_buffers_are_rejected_or_stay_isolated:")[1]
    assert "Stopped because settings.max_examples=5\n" in stats, stats
    mine = json.loads((tmp_path / "settings.json").read_text())
    assert mine["examples_run"] == (100 if env else 5)


def test_an_unrelated_project_gets_no_header_marker_or_fixture(tmp_path: Path) -> None:
    write(tmp_path, "test_unrelated.py", "def test_nothing():\n    pass\n")
    result = run(tmp_path, "-v")
    assert result.returncode == 0, result.stdout + result.stderr
    assert HEADER not in result.stdout and "repeat with" not in result.stdout
    markers = run(tmp_path, "--markers").stdout
    assert "requirement(*ids)" not in markers
    fixtures = run(tmp_path, "--fixtures").stdout
    assert "make_kernel" not in fixtures and "wddm_run" not in fixtures


def test_a_suite_in_a_virtualenv_below_the_project_activates_only_when_collected(
    tmp_path: Path,
) -> None:
    """A wheel installed in ./env puts the suite below the project's directory: running the
    project's tests must not activate the plugin, but collecting the suite all the same
    (``--collect-in-virtualenv``) does, with the header after the collection line."""
    suite = tmp_path / "env" / "lib" / "wddm_conformance" / "suite"
    write(tmp_path, "env/pyvenv.cfg", "home = /usr/bin\n")
    write(
        suite,
        "test_fake_suite.py",
        """
        from wddm_conformance.plugin import RUN

        def test_the_run_is_active(request):
            assert RUN in request.config.stash
        """,
    )
    write(
        tmp_path,
        "conftest.py",
        f"""
        from pathlib import Path
        import wddm_conformance.plugin as plugin

        plugin.SUITE_DIR = Path({str(suite)!r})  # where a wheel would have put the suite
        """,
    )
    write(tmp_path, "test_project.py", "def test_nothing():\n    pass\n")
    result = run(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert HEADER not in result.stdout and "1 passed" in result.stdout
    result = run(tmp_path, "--collect-in-virtualenv")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout
    collected = result.stdout.index("collected 2 items")
    assert result.stdout.index(HEADER) > collected


# ------------------------------------------------------------------------- 2. --driver


@pytest.mark.parametrize("owner", ["plugin loaded before", "plugin loaded after", "conftest"])
def test_another_plugin_or_conftest_keeps_driver_and_wddm_driver_works(
    tmp_path: Path, owner: str
) -> None:
    args: list[str] = []
    env: dict[str, str] = {}
    if owner == "conftest":
        write(tmp_path, "conftest.py", OWNS_DRIVER)
    else:
        write(tmp_path, "browser_plugin.py", OWNS_DRIVER)
        if owner == "plugin loaded before":
            args = ["-p", "browser_plugin"]  # -p plugins load before entry points
        else:
            env = {"PYTEST_PLUGINS": "browser_plugin"}  # loaded after entry points
    write(
        tmp_path,
        "test_browser.py",
        """
        def test_the_driver_option_is_the_browser(request):
            assert request.config.getoption("driver") == "chrome"
        """,
    )
    result = run(tmp_path, *args, "test_browser.py", "--driver=chrome", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert HEADER not in result.stdout
    result = run(
        tmp_path,
        *args,
        "--pyargs",
        "wddm_conformance.suite",
        "--wddm-driver=tests.mutants:NoPrePatch",
        "-k",
        PREPATCH,
        env=env,
        checkout=True,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "driver tests.mutants:NoPrePatch" in result.stdout
    assert "FAIL: [REN-PREPATCH]" in result.stdout
    assert "--driver is not this plugin's option here" in result.stdout


def test_driver_is_the_short_form_of_wddm_driver(tmp_path: Path) -> None:
    for option in ("--driver", "--wddm-driver"):
        result = run(
            tmp_path,
            "--pyargs",
            "wddm_conformance.suite",
            f"{option}=tests.mutants:NoPrePatch",
            "-k",
            PREPATCH,
            checkout=True,
        )
        assert result.returncode == 1, result.stdout + result.stderr
        assert "FAIL: [REN-PREPATCH]" in result.stdout


# ------------------------------------------------------------------------- 3. cwd import

MYDRV = """
    from wddm_conformance.reference import ReferenceMiniport

    class Miniport(ReferenceMiniport):
        pass
"""


def test_plain_pytest_imports_the_driver_from_the_current_directory(tmp_path: Path) -> None:
    write(tmp_path, "mydrv.py", MYDRV)
    result = run(
        tmp_path,
        "--pyargs",
        "wddm_conformance.suite",
        "--driver=mydrv:Miniport",
        "-k",
        ONE_CHECK,
        plain=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "driver mydrv:Miniport, kernel mode" in result.stdout
    assert "1 passed" in result.stdout


def test_the_driver_import_leaves_sys_path_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wddm_conformance.driver import load_driver

    write(tmp_path, "mydrv_alone.py", MYDRV)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "mydrv_alone", raising=False)
    before = list(sys.path)
    try:
        spec = load_driver("mydrv_alone:Miniport")
    finally:
        sys.modules.pop("mydrv_alone", None)
    assert spec.cls.__name__ == "Miniport"
    assert sys.path == before


# ------------------------------------------------------------------------- 4. repeat with


@pytest.mark.parametrize("ci", [False, True], ids=["local", "CI=true"])
def test_repeat_with_and_the_report_command_reproduce_the_run(tmp_path: Path, ci: bool) -> None:
    write(tmp_path, "mydrv.py", MYDRV)
    env = {"CI": "true"} if ci else {}
    report = tmp_path / "out" / "report.json"
    result = run(
        tmp_path,
        "--pyargs",
        "wddm_conformance.suite",
        "--driver=mydrv:Miniport",
        "-k",
        f"{ONE_CHECK} or test_gpu_memory_matches_the_program_model and default",
        f"--report-json={report}",
        env=env,
        plain=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    command = repeat_line(result.stdout)
    assert command.startswith("pytest --pyargs wddm_conformance.suite -k ")
    assert f"--hypothesis-profile={'ci' if ci else 'wddm-default'}" in command
    data = json.loads(report.read_text())
    assert data["run"]["command"] == command
    assert data["run"]["hypothesis_profile"] == ("ci" if ci else "wddm-default")
    passed = re.search(r"(\d+) passed", result.stdout)
    assert passed and int(passed.group(1)) > 1
    argv = shlex.split(command)
    assert argv[0] == "pytest"
    again = run(tmp_path, *argv[1:], plain=True)  # from the same place, without CI
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"{passed.group(0)}," in again.stdout or f"{passed.group(0)} " in again.stdout
    assert repeat_line(again.stdout) == command


# ------------------------------------------------------------------------- 5. report paths


@pytest.mark.parametrize("option", ["--report-json", "--report-html"])
@pytest.mark.parametrize("where", ["below a file", "a directory", "where nobody writes"])
def test_an_unwritable_report_path_is_a_usage_error_before_any_check(
    tmp_path: Path, option: str, where: str
) -> None:
    blocker = write(tmp_path, "not-a-dir", "a file\n")
    # /proc refuses new entries even to root, for whom os.access says yes to everything.
    path = {
        "below a file": blocker / "out" / "report",
        "a directory": tmp_path,
        "where nobody writes": Path("/proc/wddm-conformance-test/report"),
    }[where]
    if where == "where nobody writes" and not Path("/proc/self").is_dir():
        pytest.skip("needs Linux /proc")
    result = run(tmp_path, "--pyargs", "wddm_conformance.suite", f"{option}={path}")
    assert result.returncode == 4, result.stdout + result.stderr
    errors = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith(f"ERROR: invalid {option} ")
    reason = {
        "below a file": "is a file, not a directory",
        "a directory": "is a directory",
        "where nobody writes": "cannot write there",
    }[where]
    assert reason in errors[0]
    assert "Traceback" not in result.stdout + result.stderr
    assert "collected" not in result.stdout and "passed" not in result.stdout


# ------------------------------------------------------------------------- 6. short failures


def test_a_failing_property_check_prints_the_example_and_the_rule_in_a_few_lines(
    tmp_path: Path,
) -> None:
    """Earlier checks fill the run's results; the falsifying example used to print them all."""
    result = run(
        tmp_path,
        "--pyargs",
        "wddm_conformance.suite",
        "--driver=tests.mutants:NoPrePatch",
        "-k",
        "test_patch_ or test_gpu_memory_matches_the_program_model and default",
        checkout=True,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    sections = re.split(r"\n_{3,} (\S+) _{3,}\n", result.stdout)
    bodies = dict(zip(sections[1::2], sections[2::2], strict=True))
    name = "test_gpu_memory_matches_the_program_model[default]"
    body = bodies[name].split("\n=====")[0]
    assert "FAIL: [REN-PREPATCH] DxgkDdiRender" in body
    assert "Failing test case: test_gpu_memory_matches_the_program_model(" in body
    assert "wddm_run=Run(driver='tests.mutants:NoPrePatch', mode='default', seed=0" in body
    assert "mode=KernelMode.parse('default')" in body
    assert re.search(r"Draw 1 \(program\): \[\w+\(", body)
    assert len(body.splitlines()) < 40, body
