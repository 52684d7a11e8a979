"""The fuzzing half: input formats, targets, the libFuzzer scripts, campaigns and triage."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests import mutants as m
from wddm_conformance.driver import load_driver
from wddm_conformance.errors import DriverViolation
from wddm_conformance.fuzz import CORPORA, TARGETS, script, target_class
from wddm_conformance.fuzz.data import Reader, Writer
from wddm_conformance.fuzz.runner import Findings, driver_modules, instrument_driver, take_options
from wddm_conformance.fuzz.seeds import differences, generate
from wddm_conformance.fuzz.triage import infer_target, replay

pytest.importorskip("atheris")

ROOT = Path(__file__).resolve().parent.parent
DECODED = ["render", "patch", "build_paging_buffer", "create_allocation", "lifecycle"]
#: Inputs per target in the smoke run: a few seconds each on the reference driver.
SMOKE_RUNS = {
    "render": 3000,
    "patch": 800,
    "build_paging_buffer": 2000,
    "create_allocation": 5000,
    "lifecycle": 800,
    "statemachine": 150,
}
FUZZABLE = m.FUZZABLE


def _without_other_pythons(path: str) -> str:
    """PATH less every directory holding a python: a system python3 with atheris cannot
    stand in for the campaign's own interpreter."""
    names = ("python", "python3", f"python3.{sys.version_info.minor}")
    return os.pathsep.join(
        d for d in path.split(os.pathsep) if d and not any((Path(d) / n).exists() for n in names)
    )


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WDDM_")}
    env["PATH"] = _without_other_pythons(env.get("PATH", ""))
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env.update(extra)
    return env


def _fuzz(target: str, *args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(script(target)), *args],
        cwd=cwd,
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=300,
    )


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wddm_conformance", *args],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


# ------------------------------------------------------------------ formats and targets


def test_reader_pads_with_zeros_and_writer_is_its_inverse() -> None:
    data = Writer().u8(7).u16(0xBEEF).u32(0xDEADBEEF).blob(b"abc").bytes()
    r = Reader(data)
    assert (r.u8(), r.u16(), r.u32(), r.blob(100)) == (7, 0xBEEF, 0xDEADBEEF, b"abc")
    assert (r.u8(), r.u16(), r.u32(), r.take(4), r.exhausted) == (0, 0, 0, b"", True)


@pytest.mark.parametrize("name", DECODED)
def test_seeds_decode_back_to_themselves(name: str) -> None:
    target = target_class(name)(load_driver("reference"))  # type: ignore[call-arg]
    for seed, data in target.seeds():
        assert target.decode(data).encode() == data, seed  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", DECODED)
def test_any_bytes_decode_and_describe(name: str) -> None:
    target = target_class(name)(load_driver("reference"))  # type: ignore[call-arg]

    @settings(max_examples=200, deadline=None, database=None)
    @given(st.binary(max_size=300))
    def decodes(data: bytes) -> None:
        target.decode(data)  # type: ignore[attr-defined]
        assert target.describe(data)

    decodes()


@pytest.mark.parametrize("name", DECODED)
def test_random_inputs_find_nothing_on_the_reference_driver(name: str) -> None:
    """No false positives: the reference driver follows every rule, whatever the input."""
    target = target_class(name)(load_driver("reference"))  # type: ignore[call-arg]

    @settings(max_examples=60, deadline=None, database=None, derandomize=True)
    @given(st.binary(max_size=200))
    def clean(data: bytes) -> None:
        target.run(data)

    clean()


def test_committed_corpora_are_what_the_encoder_generates() -> None:
    assert differences(CORPORA, generate("reference")) == []


def test_only_the_drivers_own_modules_are_instrumented() -> None:
    spec = load_driver("tests.mutants:DoubleFetch")
    names = [mod.__name__ for mod in driver_modules(spec)]
    assert names == ["tests.mutants", "wddm_conformance.reference.miniport"]
    seen: list[str] = []
    count = instrument_driver(spec, lambda fn: seen.append(fn.__module__))
    assert count == len(seen) > 20
    assert set(seen) <= set(names)


def test_harness_options_move_into_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WDDM_DRIVER", raising=False)
    rest = take_options(["fuzz.py", "--driver=x:Y", "-runs=5", "corpus"])
    assert rest == ["fuzz.py", "-runs=5", "corpus"]
    assert os.environ["WDDM_DRIVER"] == "x:Y"


def test_a_finding_is_written_with_its_requirement(tmp_path: Path) -> None:
    findings = Findings(str(tmp_path), "render", "mydrv:Miniport")
    stem = findings.record(b"\x01\x02", DriverViolation("REN-CURSORS", "DxgkDdiRender", "boom"))
    assert stem is not None and stem.read_bytes() == b"\x01\x02"
    record = json.loads(stem.with_suffix(".json").read_text())
    assert (record["requirement"], record["status"], record["driver"]) == (
        "REN-CURSORS",
        "FAIL",
        "mydrv:Miniport",
    )
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind


# ------------------------------------------------------------------ the libFuzzer scripts


@pytest.mark.parametrize("name", list(TARGETS))
def test_smoke_each_target_runs_thousands_of_inputs_clean(name: str, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    out = _fuzz(
        name,
        str(corpus),
        str(CORPORA / name),
        f"-runs={SMOKE_RUNS[name]}",
        "-print_final_stats=1",
        f"-artifact_prefix={tmp_path}/",
        cwd=tmp_path,
        WDDM_FINDINGS=str(tmp_path / "findings"),
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "stat::number_of_executed_units" in out.stderr
    assert not (tmp_path / "findings").exists()


@pytest.mark.parametrize("mutant", list(FUZZABLE), ids=lambda c: c.__name__)
def test_fuzzing_finds_each_fuzzable_mutant(mutant: type, tmp_path: Path) -> None:
    target = FUZZABLE[mutant]
    (tmp_path / "corpus").mkdir()
    out = _fuzz(
        target,
        str(tmp_path / "corpus"),
        str(CORPORA / target),
        "-runs=20000",
        "-seed=1",  # libFuzzer picks a random seed otherwise: the first finding must not vary
        f"-artifact_prefix={tmp_path}/",
        cwd=tmp_path,
        WDDM_DRIVER=f"tests.mutants:{mutant.__name__}",
        WDDM_FINDINGS=str(tmp_path / "findings"),
    )
    records = [json.loads(p.read_text()) for p in (tmp_path / "findings").glob("*.json")]
    assert records, out.stderr[-2000:]
    assert records[0]["requirement"] == m.BREAKS[mutant]
    # Found by an input, libFuzzer keeps its own artifact too; a rule broken while the
    # target was set up is found before libFuzzer runs anything.
    at_setup = f"while the {target} target was set up" in out.stderr
    assert at_setup or list(tmp_path.glob("crash-*"))


def test_a_driver_that_cannot_be_loaded_is_one_line(tmp_path: Path) -> None:
    out = _fuzz("render", "-runs=1", cwd=tmp_path, WDDM_DRIVER="no_such_module:Driver")
    assert out.returncode != 0
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("error:") and "no_such_module" in lines[-1]
    assert "Traceback" not in out.stderr


# ------------------------------------------------------------------ campaigns and triage


def test_a_campaign_keeps_its_finding_and_resumes(tmp_path: Path) -> None:
    work = tmp_path / "work"
    args = ("fuzz", "run", "build_paging_buffer", "--driver=tests.mutants:UnmapLeavesOldPage")
    out = _cli(*args, "--time", "30", "--work", str(work), cwd=tmp_path)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "PGB-UNMAP" in out.stdout
    finding = next((work / "findings").glob("*.json"))
    assert json.loads(finding.read_text())["requirement"] == "PGB-UNMAP"
    assert (work / "progress.png").read_bytes()[:4] == b"\x89PNG"
    assert (work / "stats.csv").is_file() and (work / "summary.txt").is_file()
    again = _cli(*args, "--time", "5", "--work", str(work), cwd=tmp_path)
    assert "resuming" in again.stdout
    assert json.loads((work / "campaign.json").read_text())["sessions"] == 2


def test_a_killed_campaign_loses_no_finding(tmp_path: Path) -> None:
    work = tmp_path / "work"
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "wddm_conformance", "fuzz", "run", "render"),
            *("--driver=tests.mutants:DoubleFetch", "--keep-going", "--time", "120"),
            *("--work", str(work)),
        ],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not list((work / "findings").glob("*.json")):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=60)
    records = list((work / "findings").glob("*.json"))
    assert records, output[-2000:]
    assert "REN-COPYFIRST" in (work / "summary.txt").read_text()
    assert "interrupted" in output


def test_repro_of_a_findings_record_replays_the_input_beside_it(tmp_path: Path) -> None:
    """``fuzz repro X.json`` (the record, where the input was meant): the input ``X`` on the
    record's driver, not the JSON text as an input on the reference driver."""
    seed = (CORPORA / "render" / "fault-toctou").read_bytes()
    finding = tmp_path / "render-REN-COPYFIRST-0000"
    finding.write_bytes(seed)
    record = finding.with_name(finding.name + ".json")
    record.write_text(json.dumps({"target": "render", "driver": "tests.mutants:DoubleFetch"}))
    shown = _cli("fuzz", "repro", str(record), cwd=tmp_path)
    assert shown.returncode == 1, shown.stdout + shown.stderr
    assert "driver tests.mutants:DoubleFetch" in shown.stdout and "REN-COPYFIRST" in shown.stdout
    finding.unlink()
    alone = _cli("fuzz", "repro", str(record), cwd=tmp_path)
    assert alone.returncode == 2
    (line,) = alone.stderr.strip().splitlines()
    assert "is a finding's record, not an input" in line and finding.name in line


def test_repro_promote_and_minimize(tmp_path: Path) -> None:
    spec = load_driver("tests.mutants:DoubleFetch")
    seed = (CORPORA / "render" / "fault-toctou").read_bytes()
    r = replay(spec, "render", seed)
    assert r.outcome.requirement == "REN-COPYFIRST"
    finding = tmp_path / "render-REN-COPYFIRST-0000"
    finding.write_bytes(seed)
    shown = _cli("fuzz", "repro", str(finding), "--driver=tests.mutants:DoubleFetch", cwd=tmp_path)
    assert shown.returncode == 1
    for part in ("REN-COPYFIRST", "User-mode content is validated", "DxgkDdiRender ->", "FENCE"):
        assert part in shown.stdout, part
    clean = _cli("fuzz", "repro", str(finding), cwd=tmp_path)  # the reference driver
    assert clean.returncode == 0 and "PASS" in clean.stdout
    promoted = _cli(
        "fuzz", "promote", str(finding), "--driver=tests.mutants:DoubleFetch", cwd=tmp_path
    )  # fmt: skip
    assert promoted.returncode == 0, promoted.stderr
    mine = tmp_path / "wddm-regressions" / "render"  # the driver repository's, not the package's
    (kept,) = [p for p in mine.iterdir() if p.suffix != ".json"]
    assert kept.name.startswith("REN-COPYFIRST-") and kept.read_bytes() == seed
    assert infer_target(kept, None) == "render"
    small = tmp_path / "small"
    out = _cli(
        "fuzz", "minimize", str(finding), "--driver=tests.mutants:DoubleFetch",
        "--runs", "300", "--output", str(small), cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert len(small.read_bytes()) <= len(seed)
    assert replay(spec, "render", small.read_bytes()).outcome.requirement == "REN-COPYFIRST"


def test_coverage_report_of_the_driver(tmp_path: Path) -> None:
    pytest.importorskip("coverage")
    out = _cli("fuzz", "coverage", "render", "--html", str(tmp_path / "html"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "miniport.py" in out.stdout
    assert (tmp_path / "html" / "index.html").is_file()


def test_coverage_names_each_file_of_an_installed_subclass_once_and_measures_it(
    tmp_path: Path,
) -> None:
    """A newcomer's report said "cover 100.0% of miniport.py, miniport.py": their
    ``mydriver/miniport.py`` subclassing the reference's ``miniport.py``, named by file name
    alone, and only theirs measured: coverage.py skips an installed package (the wheel's
    reference; here the driver, in a directory of a venv) unless told to measure it."""
    pytest.importorskip("coverage")
    site = tmp_path / "env" / "lib" / "site-packages"
    (site / "drvpkg").mkdir(parents=True)
    (tmp_path / "env" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (site / "drvpkg" / "__init__.py").write_text("")
    (site / "drvpkg" / "miniport.py").write_text(
        "from wddm_conformance.reference.miniport import ReferenceMiniport\n\n\n"
        "class Miniport(ReferenceMiniport):\n"
        "    def patch(self, args):  # type: ignore[no-untyped-def]\n"
        "        return super().patch(args)\n"
    )
    env = _env()
    env["PYTHONPATH"] = os.pathsep.join([str(site), env["PYTHONPATH"]])
    html = tmp_path / "html"
    command = [
        "fuzz",
        "coverage",
        "patch",
        "--driver=drvpkg.miniport:Miniport",
        "--html",
        str(html),
    ]
    out = subprocess.run(
        [sys.executable, "-m", "wddm_conformance", *command],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert " of drvpkg/miniport.py, wddm_conformance/reference/miniport.py; " in out.stdout
    pages = [p.read_text() for p in html.glob("z_*_miniport_py.html")]
    assert len(pages) == 2
    theirs = next(p for p in pages if "drvpkg" in p)
    assert '<span class="pc_cov">100%</span>' in theirs  # every line of it, module level too


def test_coverage_of_a_native_driver_is_refused_in_one_line(tmp_path: Path) -> None:
    """It reported the harness's own lines (``include=[]`` is no filter) as the driver's."""
    out = _cli("fuzz", "coverage", "patch", "--driver=reference-c", cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines() == [
        "wddm-conformance: error: fuzz coverage measures a Python driver's lines; "
        "'reference-c' is a native library"
    ]


def test_bad_triage_input_is_one_line(tmp_path: Path) -> None:
    odd = tmp_path / "mystery"
    odd.write_bytes(b"\x00")
    out = _cli("fuzz", "repro", str(odd), cwd=tmp_path)
    assert out.returncode == 2 and "--target" in out.stderr and "Traceback" not in out.stderr
    (tmp_path / "render-X-1").write_bytes(b"\x00")
    (tmp_path / "render-X-1.json").write_text("{not json")
    out = _cli("fuzz", "repro", str(tmp_path / "render-X-1"), cwd=tmp_path)
    assert out.returncode == 2 and "corrupt finding record" in out.stderr
    out = _cli("fuzz", "run", "nope", cwd=tmp_path)
    assert out.returncode == 2 and "unknown fuzz target 'nope'" in out.stderr


def test_a_request_combining_special_kinds_may_be_refused() -> None:
    """INTERPRETING §3 "Allocation requests": the reference refuses a swizzled aperture-only
    surface with INVALID_PARAMETER, and the create_allocation target accepts that."""
    target = target_class("create_allocation")(load_driver("reference"))
    data = bytes.fromhex("000900ff8f00")  # cpu_visible, swizzled, aperture, aperture_only
    (request,) = [s.request for b in target.decode(data).batches for s in b.specs]
    assert request is not None and request.swizzled and request.aperture_only
    assert not request.must_be_granted
    target.run(data)


def test_a_request_every_driver_must_grant_is_still_demanded() -> None:
    target = target_class("create_allocation")(load_driver("tests.mutants:RejectsValidPrivateData"))
    with pytest.raises(DriverViolation) as caught:
        target.run(bytes.fromhex("000100ff0f00"))  # one plain cpu_visible request
    assert caught.value.requirement == "ALC-PRIVDATA"
