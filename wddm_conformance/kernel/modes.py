"""Kernel modes (the HLK scheduler-stress variants) and buffer sizes."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, ClassVar

from ..defaults import ALL_STRESS, EVERY_MODE, KERNEL_MODES, TDR_DDI_DELAY


@dataclass(frozen=True)
class KernelMode:
    """How the simulated dxgkrnl stresses the driver. Modes combine freely.

    * ``always_repatch`` -- "WDDM Scheduler Stress (AlwaysRepatch)": Patch every submission.
    * ``no_prepatching`` -- "WDDM Scheduler Stress (No PrePatching)": SegmentId is always 0 in Render.
    * ``forced_eviction`` -- "WDDM Eviction": evict every allocation between Render and submission.
    * ``forced_relocation`` -- move every allocation to a new address between Render and submission.
    * ``tiny_buffers`` -- tiny DMA, patch-list and paging buffers, and split transfers (multipass).
    * ``split_submissions`` -- submit each DMA buffer in two ranges, patching each range separately.
    """

    always_repatch: bool = False
    no_prepatching: bool = False
    forced_eviction: bool = False
    forced_relocation: bool = False
    tiny_buffers: bool = False
    split_submissions: bool = False

    #: Command-line name -> field (:data:`~wddm_conformance.defaults.KERNEL_MODES`).
    NAMES: ClassVar[dict[str, str]] = {name: name.replace("-", "_") for name in KERNEL_MODES}

    @classmethod
    def parse(cls, text: str) -> KernelMode:
        """``"default"``, ``"all-stress"`` (every stress at once) or a comma-separated list
        of stress names; ValueError names the unknown one. ``"all"`` (every mode in turn)
        is not one mode: ValueError says so."""
        mode = cls()
        for raw in text.split(","):
            name = raw.strip()
            if name in ("", "default"):
                continue
            if name == ALL_STRESS:
                mode = cls(**{f.name: True for f in fields(cls)})
                continue
            if name == EVERY_MODE:
                raise ValueError(
                    f"{EVERY_MODE!r} means every mode in turn (`check --mode {EVERY_MODE}`), not one "
                    f"mode; every stress at once is {ALL_STRESS!r}"
                )
            attr = cls.NAMES.get(name)
            if attr is None:
                known = ", ".join(["default", ALL_STRESS, *cls.NAMES])
                raise ValueError(f"unknown kernel mode {name!r} (known: {known})")
            mode = replace(mode, **{attr: True})
        return mode

    @property
    def patches_every_submission(self) -> bool:
        """Every render submission goes through DxgkDdiPatch: the pre-patched addresses
        alone never reach the GPU (REN-PREPATCH cannot be judged in this mode)."""
        return (
            self.always_repatch
            or self.no_prepatching
            or self.forced_eviction
            or self.forced_relocation
            or self.split_submissions
        )

    def __str__(self) -> str:
        names = [name for name, attr in self.NAMES.items() if getattr(self, attr)]
        if len(names) == len(self.NAMES):
            return ALL_STRESS
        return ",".join(names) or "default"

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        """hypothesis' pretty-printer hook: ``KernelMode.parse('tiny-buffers')``, not every
        field (and the class's name table) in a falsifying example."""
        p.text(f"KernelMode.parse({str(self)!r})")


#: Every mode the end-to-end workload runs under: the default, each stress alone, and all together.
ALL_MODES: tuple[KernelMode, ...] = (
    KernelMode(),
    *(KernelMode(**{attr: True}) for attr in KernelMode.NAMES.values()),
    KernelMode.parse(ALL_STRESS),
)


@dataclass(frozen=True)
class KernelConfig:
    """Sizes and limits of the simulated adapter and kernel; deterministic given ``seed``."""

    memory_segment_size: int = 16 << 20
    aperture_segment_size: int = 4 << 20
    dma_buffer_size: int = 64 << 10
    patch_list_entries: int = 4096
    paging_buffer_size: int = 64 << 10
    #: Transfers longer than this are split into sub-transfers (None: never).
    subtransfer_size: int | None = None
    #: Seconds a DDI call may take before the watchdog declares a TDR (TdrDdiDelay).
    ddi_timeout: float = TDR_DDI_DELAY
    #: A TDR ends the whole check (errors.CheckAbandoned, past hypothesis) instead of
    #: raising Tdr: suite checks set it, so a hung driver costs one DDI timeout per check.
    abandon_on_tdr: bool = False
    #: Cap on BuildPagingBuffer calls for one operation (livelock guard of last resort).
    max_paging_passes: int = 1 << 16
    #: Cap on Render calls for one command buffer.
    max_render_passes: int = 1 << 20
    #: Compare content after every paging operation (PGB-TRANSFER, PGB-UNSWIZZLE, PGB-FILL).
    verify_paging: bool = True
    #: Check every GPU access of a render submission against its allocation list (ALL-ISOLATION).
    check_isolation: bool = True
    #: The moves forced eviction and forced relocation make between Render and submission go
    #: through DxgkDdiBuildPagingBuffer. False (a fuzz campaign's lean path): the kernel
    #: copies a memory-segment allocation to its new address itself; the driver's Patch
    #: still sees every move, and aperture allocations still move through the driver.
    forced_moves_by_driver: bool = True
    seed: int = 0

    TINY: ClassVar[dict[str, int]] = {
        "dma_buffer_size": 64,
        "patch_list_entries": 4,
        "paging_buffer_size": 64,
        "subtransfer_size": 16 << 10,
    }

    def for_mode(self, mode: KernelMode) -> KernelConfig:
        """This config with the tiny sizes applied when the mode asks for them."""
        if not mode.tiny_buffers:
            return self
        return replace(self, **self.TINY)  # type: ignore[arg-type]
