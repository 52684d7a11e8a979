"""One source for each constant: defaults, entry sizes, DDI and companion names, mode names."""

from __future__ import annotations

import argparse
import ast
from collections import Counter
from dataclasses import fields
from pathlib import Path

import pytest

import wddm_conformance
from wddm_conformance import defaults, isolation, plugin
from wddm_conformance.cli import _parser
from wddm_conformance.ddi import D3DDDI_PATCHLOCATIONLIST, DXGK_ALLOCATIONLIST
from wddm_conformance.driver import DDI_METHODS, DEFAULT_COMMAND_ENCODER, DEFAULT_GPU_MODEL
from wddm_conformance.kernel import KernelConfig, KernelMode
from wddm_conformance.native.adapter import NativeMiniport
from wddm_conformance.reference import ReferenceMiniport

PACKAGE = Path(wddm_conformance.__file__).parent
SOURCES = sorted(p for p in PACKAGE.rglob("*.py") if "corpora" not in p.parts)


def _constants(path: Path) -> list[ast.Constant]:
    tree = ast.parse(path.read_text(), str(path))
    return [n for n in ast.walk(tree) if isinstance(n, ast.Constant)]


def test_defaults_are_written_once_in_defaults_py() -> None:
    """No float literal of defaults.py (5.0, 300.0, 2.0 s) is written again in the package."""
    values = {
        v for v in vars(defaults).values() if isinstance(v, float) and not isinstance(v, bool)
    }
    again = [
        f"{path.relative_to(PACKAGE.parent)}:{c.lineno}: {c.value!r}"
        for path in SOURCES
        if path.name != "defaults.py"
        for c in _constants(path)
        if isinstance(c.value, float) and c.value in values
    ]
    assert not again, "import it from wddm_conformance.defaults:\n" + "\n".join(again)


def _check_parser() -> argparse.ArgumentParser:
    """The ``check`` sub-command's parser of ``wddm-conformance``."""
    sub = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["check"]  # type: ignore[no-any-return]


def test_every_default_comes_from_defaults_py() -> None:
    assert KernelConfig().ddi_timeout == defaults.TDR_DDI_DELAY
    assert isolation.Limits() == isolation.Limits(
        defaults.ISOLATED_SECONDS, defaults.ISOLATED_MEMORY_MIB << 20, defaults.ISOLATED_GRACE
    )
    assert plugin.DEFAULTS["wddm_ddi_timeout"] == defaults.TDR_DDI_DELAY
    assert plugin.DEFAULTS["wddm_check_timeout"] == defaults.ISOLATED_SECONDS
    assert plugin.DEFAULTS["wddm_check_memory"] == defaults.ISOLATED_MEMORY_MIB
    cli = {a.dest: a.default for a in _check_parser()._actions}
    assert cli["ddi_timeout"] == defaults.TDR_DDI_DELAY
    assert cli["mode_timeout"] == defaults.ISOLATED_SECONDS
    assert cli["mode_memory"] == defaults.ISOLATED_MEMORY_MIB


def test_the_help_texts_say_the_defaults_and_every_mode(pytestconfig: pytest.Config) -> None:
    cli = " ".join(_check_parser().format_help().split())
    assert "TDR (default 5)" in cli and "(default 300; 0: none)" in cli
    assert "(default 2048; 0: no limit;" in cli
    group = pytestconfig._parser.getgroup(plugin.GROUP)
    options = {o.names()[0]: " ".join(o.attrs()["help"].split()) for o in group.options}
    assert "(default 5, as TdrDdiDelay)" in options["--ddi-timeout"]
    assert "(default 300; 0: none)" in options["--check-timeout"]
    assert "(default 2048; 0: no limit;" in options["--check-memory"]
    assert ", ".join(defaults.KERNEL_MODES) in options["--kernel-mode"]


def test_the_kernel_modes_are_the_fields_of_kernel_mode() -> None:
    assert list(KernelMode.NAMES) == list(defaults.KERNEL_MODES)
    assert list(KernelMode.NAMES.values()) == [f.name for f in fields(KernelMode)]
    every = KernelMode.parse(",".join(defaults.KERNEL_MODES))
    assert KernelMode.parse("all-stress") == every and str(every) == "all-stress"


def test_entry_sizes_are_their_structures_sizes() -> None:
    assert DXGK_ALLOCATIONLIST.SIZE == DXGK_ALLOCATIONLIST.STRUCT.size == 24
    assert D3DDDI_PATCHLOCATIONLIST.SIZE == D3DDDI_PATCHLOCATIONLIST.STRUCT.size == 24
    written = [
        f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {ast.unparse(node)}"
        for path in SOURCES
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.BinOp)
        and isinstance(node.op, ast.Mult | ast.FloorDiv | ast.Mod)
        and any(isinstance(s, ast.Constant) and s.value == 24 for s in (node.left, node.right))
    ]
    assert not written, "use DXGK_ALLOCATIONLIST.SIZE or D3DDDI_PATCHLOCATIONLIST.SIZE:\n" + (
        "\n".join(written)
    )


def test_ddi_and_companion_names_are_written_once() -> None:
    """A DDI's name (driver.DDI_METHODS) and the reference's companions are string literals
    in one place only; everything else imports them."""
    watched = {*DDI_METHODS.values(), DEFAULT_COMMAND_ENCODER, DEFAULT_GPU_MODEL}
    seen: Counter[str] = Counter()
    where: dict[str, list[str]] = {}
    for path in SOURCES:
        for c in _constants(path):
            if isinstance(c.value, str) and c.value in watched:
                seen[c.value] += 1
                where.setdefault(c.value, []).append(f"{path.relative_to(PACKAGE)}:{c.lineno}")
    twice = {name: where[name] for name, n in seen.items() if n > 1}
    assert not twice, twice
    assert ReferenceMiniport.COMMAND_ENCODER == NativeMiniport.COMMAND_ENCODER
    assert ReferenceMiniport.GPU_MODEL == NativeMiniport.GPU_MODEL == DEFAULT_GPU_MODEL
