"""The OSS-Fuzz / ClusterFuzzLite packaging: wddm_conformance.fuzz.package and .clusterfuzzlite/."""

from __future__ import annotations

import os
import re
import stat
import sys
import zipfile
from pathlib import Path

import pytest

from wddm_conformance.fuzz import HERE, TARGETS
from wddm_conformance.fuzz.package import build, main

ROOT = Path(__file__).resolve().parents[1]
CLUSTERFUZZLITE = ROOT / ".clusterfuzzlite"
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


def test_no_executables(tmp_path: Path, corpora: Path) -> None:
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


def test_partial_corpora(tmp_path: Path) -> None:
    """Whatever exists is packaged: no seeds, no regressions and no dicts are not errors."""
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
