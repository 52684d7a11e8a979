"""wddm-conformance: a conformance suite and fuzzing harness for WDDM display miniport drivers.

The harness plays dxgkrnl: a simulated video memory manager and GPU scheduler
(:mod:`wddm_conformance.kernel`) drive a display miniport through its DDIs, an
emulated GPU executes what the driver emits, and oracles judge the result
against the requirement IDs of ``REQUIREMENTS.md``.
"""

__version__ = "0.1.0"

#: Version of the written contract between the harness and a driver (docs/INTERPRETING.md).
CONTRACT_VERSION = "2.1"
