"""The lean path of a fuzz campaign never loses or renames a finding.

A campaign runs each input lean (no snapshots for the differential attribution, the
CPU view for the allocations no entry may write) and a failing input again on a fresh
target with every check on; the finding is what that run says (``runner.confirm``). Every
committed regression input (``corpora/regressions/``) and the input that finds each
fuzzable mutant (``tests/data/fuzz_findings/<target>/<Mutant>``, found by the libFuzzer
scripts with every check on) is run both ways here.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from tests import mutants as m
from wddm_conformance import attribution
from wddm_conformance.ddi import DXGKARG_PATCH
from wddm_conformance.driver import load_driver
from wddm_conformance.errors import DriverFailure, DriverViolation
from wddm_conformance.fuzz import CORPORA, TARGETS, target_class
from wddm_conformance.fuzz.base import POOL, VARIANTS
from wddm_conformance.fuzz.campaign import Campaign
from wddm_conformance.fuzz.render import Entry as RenderEntry
from wddm_conformance.fuzz.render import RenderInput, RenderTarget
from wddm_conformance.fuzz.runner import (
    ENV_LEAN,
    Findings,
    confirm,
    lean_from_environment,
    one_input,
    set_up,
)
from wddm_conformance.program import AllocRef, Fill, Write
from wddm_conformance.reference import ReferenceMiniport
from wddm_conformance.results import classify

FINDINGS = Path(__file__).resolve().parent / "data" / "fuzz_findings"
MUTANTS = {cls.__name__: cls for cls in m.FUZZABLE}


def _cases() -> list[tuple[str, str, Path]]:
    """(driver, target, input): each fuzzable mutant's finding, then every committed regression."""
    cases = []
    for cls, target in m.FUZZABLE.items():
        cases.append((f"tests.mutants:{cls.__name__}", target, FINDINGS / target / cls.__name__))
    regressions = CORPORA / "regressions"
    for target in TARGETS:
        for path in sorted((regressions / target).glob("*")) if regressions.is_dir() else []:
            if path.suffix == ".json" or path.name.startswith("."):
                continue
            record = path.with_name(path.name + ".json")
            driver = "reference"
            if record.is_file():
                driver = json.loads(record.read_text()).get("driver") or driver
            cases.append((driver, target, path))
    return cases


def _outcome(exc: BaseException | None) -> tuple[str, str | None, str]:
    outcome = classify(exc)
    return outcome.status.value, outcome.requirement, outcome.message


def _full(driver: str, target: str, data: bytes) -> BaseException | None:
    """The run of ``data`` on a fresh target with every check on (what ``fuzz repro`` does)."""
    try:
        target_class(target)(load_driver(driver)).run(data)  # type: ignore[call-arg]
    except Exception as exc:
        return exc
    return None


def test_every_fuzzable_mutant_has_its_finding_here() -> None:
    for cls, target in m.FUZZABLE.items():
        assert (FINDINGS / target / cls.__name__).is_file(), cls.__name__


@pytest.mark.parametrize(
    ("driver", "target", "path"),
    _cases(),
    ids=lambda v: v.name if isinstance(v, Path) else "",
)
def test_the_lean_path_finds_what_every_check_finds_under_the_same_name(
    driver: str, target: str, path: Path, tmp_path: Path
) -> None:
    data = path.read_bytes()
    full = _full(driver, target, data)
    assert isinstance(full, DriverFailure), f"{path.name}: the full run found {full!r}"
    spec = load_driver(driver)
    if mutant := MUTANTS.get(path.name):
        assert full.requirement == m.BREAKS[mutant]

    try:
        lean = set_up(target, spec, lean=True)
    except DriverFailure as exc:  # found while the target is set up: no input ran, lean or not
        assert _outcome(exc) == _outcome(full)
        return
    # Lean alone, on a fresh target: it fails too (the lean path loses nothing) ...
    lean_target = target_class(target)
    if hasattr(lean, "lean"):
        assert lean.lean
    with pytest.raises(Exception) as lean_failure:
        lean.run(data)

    # ... and the campaign's callback records and raises what the full run says.
    callback = one_input(
        set_up(target, spec, lean=True),
        Findings(str(tmp_path), target, driver),
        None,
        lambda: lean_target(spec),  # type: ignore[call-arg]
    )
    with pytest.raises(Exception) as raised:
        callback(data)
    assert _outcome(raised.value) == _outcome(full)
    (record,) = [json.loads(p.read_text()) for p in tmp_path.glob("*.json")]
    assert record["checks"] == "full"
    status, requirement, message = _outcome(full)
    assert (record["status"], record["requirement"], record["message"]) == (
        status,
        requirement,
        message,
    )
    assert isinstance(lean_failure.value, Exception)


def test_a_lean_failure_is_named_by_the_replay_with_every_check() -> None:
    """PatchListLosesOffset: the lean run names what it saw (REN-TRANSLATE, no attribution
    replays); every check names the step that broke it (REN-FULLPATCH)."""
    data = (FINDINGS / "patch" / "PatchListLosesOffset").read_bytes()
    spec = load_driver("tests.mutants:PatchListLosesOffset")
    lean = set_up("patch", spec, lean=True)
    with pytest.raises(DriverFailure) as lean_failure:
        lean.run(data)
    assert lean_failure.value.requirement != "REN-FULLPATCH"
    found = confirm(data, lean_failure.value, lambda: target_class("patch")(spec))  # type: ignore[call-arg]
    assert isinstance(found, DriverFailure) and found.requirement == "REN-FULLPATCH"


def test_a_failure_the_full_run_does_not_repeat_is_kept() -> None:
    """A lean failure that depended on inputs run before (the fresh full run passes) is
    still the finding."""
    spec = load_driver("reference")
    failure = RuntimeError("seen only after other inputs")
    kept = confirm(b"", failure, lambda: target_class("render")(spec))  # type: ignore[call-arg]
    assert kept is failure


def test_a_kept_lean_failure_says_so_in_its_record(tmp_path: Path) -> None:
    class FailsOnce:
        lean = True

        def run(self, data: bytes) -> None:
            raise DriverViolation("REN-TRANSLATE", "DxgkDdiRender", "seen after other inputs")

    spec = load_driver("reference")
    callback = one_input(
        FailsOnce(),  # type: ignore[arg-type]
        Findings(str(tmp_path), "render", "reference"),
        None,
        lambda: target_class("render")(spec),  # type: ignore[call-arg]
    )
    with pytest.raises(DriverViolation):
        callback(b"")  # the empty render input passes with every check
    (record,) = [json.loads(p.read_text()) for p in tmp_path.glob("*.json")]
    assert (record["requirement"], record["checks"]) == ("REN-TRANSLATE", "lean")


def test_the_lean_path_is_a_campaign_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_LEAN, raising=False)
    assert lean_from_environment()
    monkeypatch.setenv(ENV_LEAN, "0")
    assert not lean_from_environment()
    assert Campaign("render").lean
    assert not set_up("render", load_driver("reference")).lean  # type: ignore[attr-defined]
    # the suite's replay and ``fuzz repro`` build their targets as the class makes them: full
    assert not target_class("render")(load_driver("reference")).lean  # type: ignore[call-arg,attr-defined]


class _PatchKeepsRenderAddresses(ReferenceMiniport):
    """Patch stamps the fence but patches no address: the addresses Render pre-patched
    stay, so an allocation moved between Render and submission is reached at its old place."""

    def patch(self, args: DXGKARG_PATCH) -> int:
        return super().patch(replace(args, PatchLocationListSubmissionLength=0))


def _forced_relocation_input(target: RenderTarget) -> bytes:
    variant = next(i for i, v in enumerate(VARIANTS) if v.name == "forced-relocation")
    memory = 1 + next(i for i, (name, _) in enumerate(POOL) if name == "memory")
    size = target.rig.pool[memory - 1].size
    entry = RenderEntry(memory, write=True)
    program = (Write(AllocRef(1, 8), 0x1234), Fill(AllocRef(1, 64), 32, 0xA5))
    return RenderInput(variant, (entry,), program, sizes=(0, size)).encode()


@pytest.mark.parametrize("lean", [True, False])
def test_lean_forced_moves_are_the_kernels_copies_and_patch_still_sees_them(lean: bool) -> None:
    """On the lean path a stress variant's forced moves of a memory-segment allocation cost
    no paging buffer; the driver still has to patch the new address."""
    target = RenderTarget(load_driver("reference"), lean=lean)
    data = _forced_relocation_input(target)
    target.run(data)  # place the pool as the input wants, then count the next run
    driver = target.rig.kernel.driver
    calls: list[int] = []
    build = driver.build_paging_buffer
    driver.build_paging_buffer = lambda args: calls.append(args.Operation) or build(args)  # type: ignore[method-assign]
    moves = target.rig.kernel.scheduler.moved_repatches
    target.run(data)
    assert bool(calls) != lean
    assert target.rig.kernel.scheduler.moved_repatches == moves  # no always-repatch: no third Patch
    with pytest.raises(DriverFailure) as failure:
        RenderTarget(load_driver(f"{__name__}:_PatchKeepsRenderAddresses"), lean=lean).run(data)
    assert failure.value.requirement == "REN-FULLPATCH"  # the stale address, either way


def test_the_statemachine_target_renders_without_snapshots_when_lean(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seeds = [data for _, data in target_class("statemachine")(load_driver("reference")).seeds()]  # type: ignore[call-arg]
    lean = set_up("statemachine", load_driver("reference"), lean=True)
    assert lean.lean  # type: ignore[attr-defined]

    def no_snapshot(*args: object, **kwargs: object) -> None:
        raise AssertionError("a lean render took an attribution snapshot")

    monkeypatch.setattr(attribution.Submitted, "snapshot", no_snapshot)
    for data in seeds:
        lean.run(data)
    full = set_up("statemachine", load_driver("reference"))
    with pytest.raises(AssertionError, match="snapshot"):
        for data in seeds:
            full.run(data)


def test_a_record_counts_the_inputs_its_process_ran(tmp_path: Path) -> None:
    class FailsOnFourth:
        def run(self, data: bytes) -> None:
            if data == b"4":
                raise DriverViolation("REN-TRANSLATE", "DxgkDdiRender", "the fourth input")

    callback = one_input(
        FailsOnFourth(),  # type: ignore[arg-type]
        Findings(str(tmp_path), "render", "reference"),
        None,
    )
    for data in (b"1", b"2", b"3"):
        callback(data)
    with pytest.raises(DriverViolation):
        callback(b"4")
    (record,) = [json.loads(p.read_text()) for p in tmp_path.glob("*.json")]
    assert record["executions"] == 4
