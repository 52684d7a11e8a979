"""Defaults and names shared by the command line, the pytest plugin, the kernel, the
isolation of checks and the fuzzers: each is defined here, once.

It imports nothing: the pytest plugin reads it in every pytest run of the environment.
"""

from __future__ import annotations

from typing import Final

#: Seconds a DDI call may run before the watchdog declares a TDR (bug check 0x116):
#: TdrDdiDelay's default in Windows.
TDR_DDI_DELAY: Final = 5.0

#: Wall-clock seconds one isolated check (``--check-timeout``) or mode (``--mode-timeout``)
#: may run by default.
ISOLATED_SECONDS: Final = 300.0
#: MiB one isolated check (``--check-memory``) or mode (``--mode-memory``) may allocate
#: above what it inherits, by default.
ISOLATED_MEMORY_MIB: Final = 2048
#: Seconds a DDI may run past its watchdog's deadline before its isolated process is killed.
ISOLATED_GRACE: Final = 2.0

#: The kernel's stresses by their command-line names (``--kernel-mode``, ``--mode``): each
#: is the :class:`~wddm_conformance.kernel.KernelMode` field of that name, ``-`` for ``_``.
KERNEL_MODES: Final = (
    "always-repatch",
    "no-prepatching",
    "forced-eviction",
    "forced-relocation",
    "tiny-buffers",
    "split-submissions",
)

#: Every stress at once, as one kernel mode (``--kernel-mode``, ``check --mode``, a fuzz variant).
ALL_STRESS: Final = "all-stress"
#: ``check --mode``'s word for every mode in turn (the default, each stress, all-stress).
EVERY_MODE: Final = "all"
