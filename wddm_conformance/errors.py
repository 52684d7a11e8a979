"""The three kinds of bad outcome, kept apart so a harness fault is never blamed on a driver.

* :class:`DriverViolation` -- the driver broke a rule; carries the requirement ID (FAIL).
* :class:`BugCheck` -- the simulated system crashed because of the driver (CRASH);
  :class:`Tdr` is the bug check for a DDI that did not return in time (TIMEOUT).
* :class:`HarnessError` -- the harness itself is wrong or was misused (INTERNAL-ERROR).

Every message says who broke which rule in which state, h11 style.
"""

from __future__ import annotations

import unittest
from dataclasses import dataclass
from typing import Any

# Bug check codes (DDI_FACTS.md, REQUIREMENTS.md ALL-NORAISE).
KMODE_EXCEPTION_NOT_HANDLED = 0x1E
VIDEO_MEMORY_MANAGEMENT_INTERNAL = 0x10E
VIDEO_TDR_FAILURE = 0x116
VIDEO_SCHEDULER_INTERNAL_ERROR = 0x119

BUGCHECK_NAMES = {
    KMODE_EXCEPTION_NOT_HANDLED: "KMODE_EXCEPTION_NOT_HANDLED",
    VIDEO_MEMORY_MANAGEMENT_INTERNAL: "VIDEO_MEMORY_MANAGEMENT_INTERNAL",
    VIDEO_TDR_FAILURE: "VIDEO_TDR_FAILURE",
    VIDEO_SCHEDULER_INTERNAL_ERROR: "VIDEO_SCHEDULER_INTERNAL_ERROR",
}

# First parameters with a documented meaning.
SCHEDULER_INVALID_FENCE_ID = 0x1
SCHEDULER_SUBMIT_FAILED = 0x2
SCHEDULER_PATCH_FAILED = 0x3
SCHEDULER_PAGING_COMMAND_FAILED = 0x5
VIDMM_INVALID_BUILDPAGINGBUFFER_STATUS = 0xB
#: Exception code of an access violation, the first parameter of 0x1E for a faulting access.
STATUS_ACCESS_VIOLATION = 0xC0000005


class HarnessError(Exception):
    """The harness is wrong or was used wrongly: reported as INTERNAL-ERROR, never as a driver failure."""


class NotJudged(unittest.SkipTest):
    """The check cannot judge this driver in this kernel mode: a SKIP with the reason
    (a ``unittest.SkipTest``, which pytest and hypothesis both report as a skip)."""


class DriverLoadError(Exception):
    """A ``--driver`` spec could not be turned into a driver: the message is one line naming the culprit."""


class CommandLineError(ValueError):
    """Options of a ``wddm-conformance`` sub-command that argparse accepts one by one but not
    together (``native build a.c --mutant ...``): reported as argparse reports its own
    errors, with that sub-command's usage and one line."""


class DriverFailure(Exception):
    """Base of the outcomes that blame the driver under test."""

    requirement: str
    ddi: str
    #: A command that reproduces this failure outside pytest, else "": the suite's
    #: fuzz-input replay sets ``wddm-conformance fuzz repro FILE --target=T --driver=D``.
    reproduce: str = ""

    def __init__(self, requirement: str, ddi: str, message: str) -> None:
        super().__init__(message)
        self.requirement = requirement
        self.ddi = ddi


class DriverViolation(DriverFailure):
    """The driver broke a contract rule; the system survives (status FAIL).

    ``details`` are kept as plain data: strings, numbers, bytes and lists, tuples and
    dicts of them; anything else becomes its ``str()``, so a failure holds no kernel,
    driver or memory object alive (hypothesis keeps the failure of every failing example).
    """

    def __init__(
        self, requirement: str, ddi: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(requirement, ddi, f"[{requirement}] {ddi}: {message}")
        self.details: dict[str, Any] = {str(k): _plain(v) for k, v in (details or {}).items()}


def _plain(value: Any) -> Any:
    """``value`` as plain data (see :class:`DriverViolation`)."""
    kind = type(value)
    if value is None or kind in (str, int, float, bool, bytes):
        return value
    if kind in (list, tuple):
        return kind(_plain(v) for v in value)
    if kind is dict:
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


@dataclass(frozen=True)
class BugCheckData:
    """A bug check as a crash dump would show it: code and four parameters."""

    code: int
    parameters: tuple[int, int, int, int]

    def __str__(self) -> str:
        name = BUGCHECK_NAMES.get(self.code, "BUGCHECK")
        # ULONG_PTR parameters: a negative value shows as its 64-bit two's complement.
        params = ", ".join(f"0x{p % (1 << 64):X}" for p in self.parameters)
        return f"BugCheck 0x{self.code:X} ({name}) ({params})"


class BugCheck(DriverFailure):
    """The simulated machine bug-checked because of the driver (status CRASH)."""

    def __init__(
        self,
        code: int,
        parameters: tuple[int, int, int, int],
        requirement: str,
        ddi: str,
        message: str,
    ) -> None:
        self.data = BugCheckData(code, parameters)
        rule = f" [{requirement}]" if requirement else ""
        super().__init__(requirement, ddi, f"{self.data}{rule} {ddi}: {message}")

    @property
    def code(self) -> int:
        return self.data.code

    @property
    def parameters(self) -> tuple[int, int, int, int]:
        return self.data.parameters


class Tdr(BugCheck):
    """A DDI call did not return in time: the timeout detection and recovery bug check (TIMEOUT)."""


class ProcessDied(DriverFailure):
    """The process running the driver died where Windows names no bug check: the driver
    exited it, or it ran out of memory (status CRASH)."""


class DdiTimeout(BaseException):
    """Raised inside a hung DDI call by the watchdog; a BaseException so driver ``except Exception`` cannot swallow it."""

    def __init__(self, seconds: float, ddi: str = "") -> None:
        super().__init__(f"{ddi} did not return within {seconds:g} s")
        self.seconds = seconds
        self.ddi = ddi


class CheckAbandoned(BaseException):
    """A suite check ends at its first TDR: raised in place of the :class:`Tdr` (kept in
    ``tdr``) so that hypothesis, which catches Exceptions, does not re-run the hanging
    example while it shrinks, paying a DDI timeout per re-run. ``example``: what the check
    was running, when known. Reported as the Tdr (TIMEOUT, ALL-BOUNDED; INTERPRETING §5).
    """

    def __init__(self, tdr: Tdr, example: str = "") -> None:
        super().__init__(str(tdr))
        self.tdr = tdr
        self.example = example
