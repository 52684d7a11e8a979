"""Coverage-guided fuzzing of display miniports with atheris (libFuzzer for Python).

Each target is a standalone script, ``fuzz_<name>.py`` in this package, that libFuzzer
can restart by its path (``-fork``, ``-jobs``, ``-merge``, ``-minimize_crash``) and
OSS-Fuzz can package. The scripts share :mod:`.runner`, which loads the driver named
by ``--driver`` (or ``$WDDM_DRIVER``), instruments only that driver's code for
coverage, and writes every finding -- input and requirement ID -- before libFuzzer
reports it. Findings name the same requirement IDs as the conformance suite, because
the targets use the same kernel and oracles.
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .base import Target

#: Target name -> "module:Class" of its implementation (imported on first use).
TARGETS: dict[str, str] = {
    "render": "wddm_conformance.fuzz.render:RenderTarget",
    "patch": "wddm_conformance.fuzz.patch:PatchTarget",
    "build_paging_buffer": "wddm_conformance.fuzz.paging:PagingTarget",
    "create_allocation": "wddm_conformance.fuzz.create_allocation:CreateAllocationTarget",
    "lifecycle": "wddm_conformance.fuzz.lifecycle:LifecycleTarget",
    "statemachine": "wddm_conformance.fuzz.statemachine:StateMachineTarget",
}

HERE = Path(__file__).resolve().parent
#: Seed corpora (``<target>/``), dictionaries (``<target>.dict``) and the project's own
#: regression inputs (``regressions/<target>/``), shipped as package data.
CORPORA = HERE / "corpora"
#: Where ``fuzz promote`` keeps a driver repository's own regression inputs
#: (``<dir>/<target>/``), relative to the current directory; campaigns and the suite
#: replay it too.
REGRESSIONS = Path("wddm-regressions")


def target_class(name: str) -> type[Target]:
    """The class of target ``name``; ValueError lists the known ones."""
    if name not in TARGETS:
        raise ValueError(f"unknown fuzz target {name!r} (known: {', '.join(TARGETS)})")
    module, _, cls = TARGETS[name].partition(":")
    found: type[Target] = getattr(import_module(module), cls)
    return found


def script(name: str) -> Path:
    """The standalone executable script of target ``name``."""
    target_class(name)
    return HERE / f"fuzz_{name}.py"
