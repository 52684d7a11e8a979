"""The OSS-Fuzz / ClusterFuzzLite packaging: wddm_conformance.fuzz.package and .clusterfuzzlite/."""

from __future__ import annotations

import os
import re
import shlex
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from wddm_conformance.cli import main as cli_main
from wddm_conformance.fuzz import HERE, TARGETS
from wddm_conformance.fuzz.package import build, main

ROOT = Path(__file__).resolve().parents[1]
CLUSTERFUZZLITE = ROOT / ".clusterfuzzlite"
EXAMPLE = ROOT / "docs" / "examples" / "clusterfuzzlite"
#: A driver other than the reference, and the rule the render seeds catch it breaking.
MUTANT, MUTANT_RULE = "tests.mutants:DoubleFetch", "REN-COPYFIRST"
#: The one target the fake corpora give a dictionary and a regression.
WITH_DICT = "render"


def expected_inputs(name: str) -> set[str]:
    """The zip entry names the fake corpora should give target ``name``."""
    names = {f"seed-{name}-0", f"seed-{name}-1"}
    if name == WITH_DICT:
        names.add("crash-0001")
    return names


@pytest.fixture
def corpora(tmp_path: Path) -> Path:
    """Two seeds per target, one regression (with its .json record), one dictionary."""
    root = tmp_path / "corpora"
    for name in TARGETS:
        seeds = root / name
        seeds.mkdir(parents=True)
        for i in range(2):
            (seeds / f"seed-{name}-{i}").write_bytes(bytes([i]) * (i + 3) + name.encode())
    regressions = root / "regressions" / WITH_DICT
    regressions.mkdir(parents=True)
    (regressions / "crash-0001").write_bytes(b"\x00\xff\x10boom")
    (regressions / "crash-0001.json").write_text('{"requirement": "R-1"}', encoding="utf-8")
    (root / f"{WITH_DICT}.dict").write_text('kw1="\\x00\\x01"\n', encoding="utf-8")
    return root


def test_layout(tmp_path: Path, corpora: Path) -> None:
    out = tmp_path / "out"
    written = build(out, corpora)
    assert all(p.parent == out and p.is_file() for p in written)
    for name in TARGETS:
        fuzzer = f"fuzz_{name}"

        exe = out / fuzzer
        assert exe in written
        assert stat.S_IMODE(exe.stat().st_mode) == 0o755
        assert os.access(exe, os.X_OK)
        text = exe.read_text(encoding="utf-8")
        assert text.startswith("#!/bin/sh\n")
        script = HERE / f"{fuzzer}.py"
        assert script.is_file()
        assert f'exec "{sys.executable}" "{script}" "$@"' in text

        with zipfile.ZipFile(out / f"{fuzzer}_seed_corpus.zip") as zf:
            assert set(zf.namelist()) == expected_inputs(name)
            assert all(i.date_time == (1980, 1, 1, 0, 0, 0) for i in zf.infolist())
            for entry in zf.namelist():
                source = corpora / name / entry
                if not source.exists():
                    source = corpora / "regressions" / name / entry
                assert zf.read(entry) == source.read_bytes()

        options = (out / f"{fuzzer}.options").read_text(encoding="utf-8").splitlines()
        assert options[:3] == ["[libfuzzer]", "max_len = 8192", "timeout = 25"]
        if name == WITH_DICT:
            assert options[3:] == [f"dict = {fuzzer}.dict"]
            copied = out / f"{fuzzer}.dict"
            assert copied.read_bytes() == (corpora / f"{name}.dict").read_bytes()
        else:
            assert options[3:] == []
            assert not (out / f"{fuzzer}.dict").exists()


def test_no_executables(tmp_path: Path, corpora: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    assert main(["--out", str(out), "--corpora", str(corpora), "--no-executables"]) == 0
    for name in TARGETS:
        assert not (out / f"fuzz_{name}").exists()
        assert (out / f"fuzz_{name}.options").is_file()
        assert (out / f"fuzz_{name}_seed_corpus.zip").is_file()


def test_zips_reproducible(tmp_path: Path, corpora: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    build(first, corpora, executables=False)
    # Different modification times must not change the bytes.
    for path in corpora.rglob("*"):
        os.utime(path, (1_700_000_000, 1_700_000_000))
    build(second, corpora, executables=False)
    for name in TARGETS:
        zip_name = f"fuzz_{name}_seed_corpus.zip"
        assert (first / zip_name).read_bytes() == (second / zip_name).read_bytes()


def test_partial_corpora(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever exists is packaged: no seeds, no regressions and no dicts are not errors."""
    monkeypatch.chdir(tmp_path)  # no ./wddm-regressions
    corpora = tmp_path / "corpora"
    (corpora / "regressions" / "patch").mkdir(parents=True)
    (corpora / "regressions" / "patch" / "bug").write_bytes(b"x")
    (corpora / "regressions" / "patch" / "bug.json").write_text("{}", encoding="utf-8")
    out = tmp_path / "out"
    assert main(["--out", str(out), "--corpora", str(corpora)]) == 0
    with zipfile.ZipFile(out / "fuzz_patch_seed_corpus.zip") as zf:
        assert zf.namelist() == ["bug"]
    assert not (out / "fuzz_render_seed_corpus.zip").exists()
    assert all((out / f"fuzz_{name}.options").is_file() for name in TARGETS)


def test_missing_corpora(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere"
    out = tmp_path / "out"
    assert main(["--out", str(out), "--corpora", str(missing)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"error: corpora directory {missing} does not exist\n"
    assert not out.exists()


def test_build_sh_compiles_every_target() -> None:
    build_sh = CLUSTERFUZZLITE / "build.sh"
    text = build_sh.read_text(encoding="utf-8")
    assert "set -euo pipefail" in text
    assert "compile_python_fuzzer" in text
    assert "wddm_conformance.fuzz.package" in text
    loop = re.search(r"^for name in (.+); do$", text, re.MULTILINE)
    assert loop is not None
    assert loop.group(1).split() == list(TARGETS)
    assert 'compile_python_fuzzer "wddm_conformance/fuzz/fuzz_${name}.py"' in text
    for name in TARGETS:
        assert (ROOT / "wddm_conformance" / "fuzz" / f"fuzz_{name}.py").is_file()


def test_dockerfile_and_project() -> None:
    dockerfile = (CLUSTERFUZZLITE / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM gcr\.io/oss-fuzz-base/base-builder-python\b", dockerfile, re.M)
    assert "WORKDIR $SRC/wddm-conformance" in dockerfile
    assert "COPY .clusterfuzzlite/build.sh $SRC/" in dockerfile
    project = (CLUSTERFUZZLITE / "project.yaml").read_text(encoding="utf-8")
    assert re.search(r"^language:\s*python\s*$", project, re.M)


# ------------------------------------------------------------------ a driver repository's layout


def test_driver_is_baked_into_stand_ins_and_scripts(tmp_path: Path, corpora: Path) -> None:
    out, scripts = tmp_path / "out", tmp_path / "scripts"
    driver = "native:/opt/my $lib/libdrv.so"  # quoted for sh and for Python alike
    written = build(out, corpora, driver=driver, scripts=scripts)
    for name in TARGETS:
        fuzzer = f"fuzz_{name}"
        text = (out / fuzzer).read_text(encoding="utf-8")
        script = HERE / f"{fuzzer}.py"
        assert (
            f'exec "{sys.executable}" "{script}" "--driver=native:/opt/my \\$lib/libdrv.so" "$@"'
            in text
        )
        source = (scripts / f"{fuzzer}.py").read_text(encoding="utf-8")
        assert scripts / f"{fuzzer}.py" in written
        assert f"from wddm_conformance.fuzz.{fuzzer} import main\n" in source
        assert f"    sys.argv[1:1] = {[f'--driver={driver}']!r}\n" in source
        compile(source, fuzzer, "exec")


def test_scripts_without_a_driver_leave_the_choice_to_run_time(
    tmp_path: Path, corpora: Path
) -> None:
    build(tmp_path / "out", corpora, executables=False, scripts=tmp_path / "scripts")
    source = (tmp_path / "scripts" / "fuzz_render.py").read_text(encoding="utf-8")
    assert "--driver" not in source
    assert "from wddm_conformance.fuzz.fuzz_render import main\n" in source


def test_driver_repository_regressions_join_the_seed_zips(
    tmp_path: Path, corpora: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``fuzz promote`` keeps a driver's bugs in ./wddm-regressions; its fuzzers start from them."""
    monkeypatch.chdir(tmp_path)
    ours = tmp_path / "wddm-regressions" / "patch"
    ours.mkdir(parents=True)
    (ours / "patch-PAT-RANGE-0123").write_bytes(b"ours")
    (ours / "patch-PAT-RANGE-0123.json").write_text("{}", encoding="utf-8")
    assert main(["--out", "out", "--corpora", str(corpora)]) == 0
    with zipfile.ZipFile(tmp_path / "out" / "fuzz_patch_seed_corpus.zip") as zf:
        assert set(zf.namelist()) == expected_inputs("patch") | {"patch-PAT-RANGE-0123"}
    other = tmp_path / "elsewhere"
    assert main(["--out", "out2", "--corpora", str(corpora), "--regressions", str(other)]) == 0
    with zipfile.ZipFile(tmp_path / "out2" / "fuzz_patch_seed_corpus.zip") as zf:
        assert set(zf.namelist()) == expected_inputs("patch")


def test_a_driver_that_does_not_load_is_one_line(
    tmp_path: Path, corpora: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main(["--out", str(out), "--corpora", str(corpora), "--driver", "nosuchdrv:X"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: invalid --driver 'nosuchdrv:X': cannot import module 'nosuchdrv'")
    assert err.count("\n") == 1
    assert not out.exists()


def test_fuzz_package_command_builds_the_same_layout(
    tmp_path: Path, corpora: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    common = ["--corpora", str(corpora), "--driver", MUTANT, "--scripts"]
    assert cli_main(["fuzz", "package", "--out", "a", *common, "sa"]) == 0
    assert main(["--out", "b", *common, "sb"]) == 0
    for first, second in (("a", "b"), ("sa", "sb")):
        names = sorted(p.name for p in (tmp_path / first).iterdir())
        assert names == sorted(p.name for p in (tmp_path / second).iterdir())
        for name in names:
            assert (tmp_path / first / name).read_bytes() == (tmp_path / second / name).read_bytes()


def _seeds(zip_path: Path, into: Path) -> Path:
    into.mkdir()
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(into)
    return into


def _run_fuzzer(command: list[str], cwd: Path, findings: Path) -> subprocess.CompletedProcess[str]:
    """One libFuzzer pass over the seeds (-runs=0): a verdict that no machine speed changes.

    ``WDDM_DRIVER=reference`` in the environment: the driver baked into the build must win.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("WDDM_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env["WDDM_DRIVER"] = "reference"
    return subprocess.run(
        [*command, f"--findings={findings}", "-runs=0", "seeds"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_layout_built_for_a_driver_runs_that_driver(tmp_path: Path) -> None:
    """The stand-in and the compile_python_fuzzer script both fuzz the driver they were built for."""
    pytest.importorskip("atheris")
    for name, driver in (("mutant", MUTANT), ("reference", None)):
        argv = ["--out", str(tmp_path / name), "--scripts", str(tmp_path / f"{name}-scripts")]
        assert main(argv + (["--driver", driver] if driver else [])) == 0
    _seeds(tmp_path / "mutant" / "fuzz_render_seed_corpus.zip", tmp_path / "seeds")

    runs = {
        "stand-in": [str(tmp_path / "mutant" / "fuzz_render")],
        "script": [sys.executable, str(tmp_path / "mutant-scripts" / "fuzz_render.py")],
    }
    for how, command in runs.items():
        findings = tmp_path / f"findings-{how}"
        proc = _run_fuzzer(command, tmp_path, findings)
        assert proc.returncode != 0, (how, proc.stdout, proc.stderr)
        assert f"[{MUTANT_RULE}]" in proc.stdout + proc.stderr, how
        found = sorted(p.name for p in findings.iterdir() if p.suffix != ".json")
        assert found and all(f.startswith(f"render-{MUTANT_RULE}-") for f in found), (how, found)

    # The same seeds through a layout built without --driver: the reference, nothing found.
    clean = _run_fuzzer([str(tmp_path / "reference" / "fuzz_render")], tmp_path, tmp_path / "f")
    assert clean.returncode == 0, clean.stderr
    assert not (tmp_path / "f").exists() or not any((tmp_path / "f").iterdir())


# ------------------------------------------------------------------ the example for a driver repository


#: Stand-in for compile_python_fuzzer: records its arguments, and writes $OUT/<name> that runs
#: the script with this interpreter where the real one bundles it with pyinstaller.
COMPILE_STUB = """\
import os, shlex, sys
from pathlib import Path
with open(os.environ["CALLS"], "a") as f:
    f.write(shlex.join(["compile_python_fuzzer", *sys.argv[1:]]) + "\\n")
script = Path(sys.argv[1])
exe = Path(os.environ["OUT"]) / script.stem
exe.write_text(f"#!/bin/sh\\nexec {shlex.quote(sys.executable)} {shlex.quote(str(script))} \\"$@\\"\\n")
exe.chmod(0o755)
"""


def _tools(directory: Path) -> Path:
    """``pip3`` (records its arguments: the harness is installed here already), ``python3``
    (this interpreter) and ``compile_python_fuzzer`` (:data:`COMPILE_STUB`)."""
    directory.mkdir()
    py = shlex.quote(sys.executable)
    (directory / "compile_python_fuzzer.py").write_text(COMPILE_STUB, encoding="utf-8")
    stubs = {
        "pip3": 'echo "pip3 $*" >> "$CALLS"',
        "python3": f'exec {py} "$@"',
        "compile_python_fuzzer": f'exec {py} {shlex.quote(str(directory))}/compile_python_fuzzer.py "$@"',
    }
    for name, body in stubs.items():
        (directory / name).write_text(f"#!/bin/sh\n{body}\n", encoding="utf-8")
        (directory / name).chmod(0o755)
    return directory


def _example_build(repo: Path, tools: Path, calls: Path) -> subprocess.CompletedProcess[str]:
    """Run ``$SRC/build.sh`` from ``repo`` as ClusterFuzzLite would (``$SRC`` is its parent).

    PATH holds only ``tools`` and the system's /usr/bin:/bin, so no other python3 is used.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WDDM_", "PYTHON"))}
    env.update(
        PATH=f"{tools}:/usr/bin:/bin",
        SRC=str(repo.parent),
        OUT=str(repo.parent.parent / "out"),
        CALLS=str(calls),
        PYTHONPATH=str(ROOT),  # for tests.mutants, which the example driver extends
    )
    return subprocess.run(
        ["bash", "-eu", str(repo.parent / "build.sh")],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _flag_values(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == flag]


def test_example_clusterfuzzlite_build_runs_the_driver_repositorys_driver(tmp_path: Path) -> None:
    """docs/examples/clusterfuzzlite/build.sh as written, in a driver repository.

    The repository's driver is ``mydrv.miniport:Miniport`` (the names the example uses),
    here the DoubleFetch mutant; the built render fuzzer must find its REN-COPYFIRST.
    """
    pytest.importorskip("atheris")
    src, out = tmp_path / "src", tmp_path / "out"
    repo = src / "mydriver"
    (repo / "mydrv").mkdir(parents=True)
    (repo / "mydrv" / "__init__.py").write_text("", encoding="utf-8")
    (repo / "mydrv" / "miniport.py").write_text(
        "from tests.mutants import DoubleFetch\n\n\nclass Miniport(DoubleFetch):\n    pass\n",
        encoding="utf-8",
    )
    cfl = repo / ".clusterfuzzlite"
    cfl.mkdir()
    for name in ("project.yaml", "Dockerfile", "build.sh", "requirements.txt"):
        (cfl / name).write_bytes((EXAMPLE / name).read_bytes())
    (src / "build.sh").write_bytes((EXAMPLE / "build.sh").read_bytes())  # the Dockerfile's COPY
    out.mkdir()
    tools, calls = _tools(tmp_path / "tools"), tmp_path / "calls"

    # As copied, the placeholder stops the build with one line saying what to fill in.
    unfilled = _example_build(repo, tools, calls)
    assert (unfilled.returncode, unfilled.stderr) == (
        1,
        "build.sh: say where the harness comes from in .clusterfuzzlite/requirements.txt\n",
    )
    assert not calls.exists()

    requirements = cfl / "requirements.txt"
    requirements.write_text(
        requirements.read_text(encoding="utf-8").replace("YOUR-ORG", "example"), encoding="utf-8"
    )
    built = _example_build(repo, tools, calls)
    assert built.returncode == 0, built.stderr
    recorded = [shlex.split(line) for line in calls.read_text(encoding="utf-8").splitlines()]
    assert recorded[0] == ["pip3", "install", "-r", ".clusterfuzzlite/requirements.txt"]
    compiled = recorded[1:]
    assert sorted(Path(c[1]).name for c in compiled) == sorted(f"fuzz_{n}.py" for n in TARGETS)
    for argv in compiled:
        assert _flag_values(argv, "--hidden-import") == ["mydrv.miniport"]
        assert _flag_values(argv, "--collect-submodules") == ["wddm_conformance", "mydrv"]
        assert _flag_values(argv, "--collect-data") == ["wddm_conformance"]
        assert _flag_values(argv, "--paths") == [str(repo)]
    for name in TARGETS:
        assert (out / f"fuzz_{name}.options").is_file()
        assert (out / f"fuzz_{name}_seed_corpus.zip").is_file()

    _seeds(out / "fuzz_render_seed_corpus.zip", tmp_path / "seeds")
    findings = tmp_path / "findings"
    proc = subprocess.run(
        [str(out / "fuzz_render"), f"--findings={findings}", "-runs=0", "seeds"],
        cwd=tmp_path,
        env={
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": os.pathsep.join([str(repo), str(ROOT)]),
            "WDDM_DRIVER": "reference",
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert f"[{MUTANT_RULE}]" in proc.stdout + proc.stderr, proc.stderr
    assert any(p.name.startswith(f"render-{MUTANT_RULE}-") for p in findings.iterdir())
