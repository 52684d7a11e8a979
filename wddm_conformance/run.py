"""One conformance run: the driver under test, the kernel mode, seed and timeout, and what came out.

The pytest plugin makes one per run (from its options) and the suite's checks get it as
the ``wddm_run`` fixture; the fuzz targets that reuse a suite machine make their own. It
lives outside the plugin so that nothing but pytest imports the plugin.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .fuzz import CORPORA

if TYPE_CHECKING:
    from .driver import DriverSpec
    from .isolation import Limits
    from .kernel import Kernel, KernelMode


@dataclass
class Run:
    """One conformance run: what is tested, how, and what came out."""

    spec: DriverSpec
    mode: KernelMode
    seed: int
    ddi_timeout: float
    #: The command line that repeats the whole run (the report header's "repeat with").
    command: str
    #: The options of ``command`` without what selects checks (arguments, ``-k``, ``-m``):
    #: with a check's ID they make the command that runs that check alone.
    options: list[str] = field(default_factory=list)
    baseline_path: Path | None = None
    baseline: dict[str, str] = field(default_factory=dict)
    update_baseline: bool = False
    json_path: Path | None = None
    html_path: Path | None = None
    #: Seed corpora and the project's regression inputs the suite replays.
    corpora: Path = CORPORA
    #: The driver repository's own regression inputs (``<dir>/<target>/``), if it has any.
    regressions: Path | None = None
    #: The hypothesis profile of the suite's checks.
    profile: str = ""
    #: Where each check runs: in a process of its own under these limits, or (None) in
    #: the run's own process (``--isolate=none``).
    limits: Limits | None = None
    #: A TDR ends the check at once (errors.CheckAbandoned): hypothesis would re-run the
    #: hanging example, a DDI timeout each time, while it shrinks (suite checks only).
    abandon_on_tdr: bool = False
    #: Outcome records by test id, gathered from the reports (on the xdist controller too).
    results: dict[str, dict[str, Any]] = field(default_factory=dict)

    def kernel(self, mode: KernelMode | str | None = None, **config: Any) -> Kernel:
        """A fresh simulated kernel for this run's driver: the run's mode plus ``mode``."""
        from .kernel import Kernel, KernelConfig, KernelMode

        extra = KernelMode.parse(mode) if isinstance(mode, str) else mode or KernelMode()
        combined = KernelMode(
            **{f.name: getattr(self.mode, f.name) or getattr(extra, f.name) for f in fields(extra)}
        )
        cfg = replace(
            KernelConfig(
                seed=self.seed, ddi_timeout=self.ddi_timeout, abandon_on_tdr=self.abandon_on_tdr
            ),
            **config,
        )
        return Kernel(self.spec, combined, cfg)

    def __repr__(self) -> str:
        # Short: hypothesis prints it in every falsifying example of a suite check.
        return (
            f"Run(driver={self.spec.spec!r}, mode={str(self.mode)!r}, seed={self.seed}, "
            f"ddi_timeout={self.ddi_timeout:g})"
        )

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        """hypothesis' pretty-printer hook (it would otherwise list every field)."""
        p.text(repr(self))
