"""Outcome statuses and the one function that maps what happened to a status.

A harness fault is never reported as a driver failure: anything that is not a
:class:`~wddm_conformance.errors.DriverFailure` (or an explicit skip) is INTERNAL-ERROR.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from .errors import (
    BugCheck,
    CheckAbandoned,
    DriverFailure,
    DriverLoadError,
    NotJudged,
    ProcessDied,
    Tdr,
)


class Status(StrEnum):
    """Result of one check, as wptrunner and deqp-runner separate them."""

    PASS = "PASS"
    FAIL = "FAIL"  # a contract rule was broken
    CRASH = "CRASH"  # the simulated system bug-checked
    TIMEOUT = "TIMEOUT"  # a DDI did not return in time (TDR)
    SKIP = "SKIP"  # an optional feature the driver declares absent
    INTERNAL_ERROR = "INTERNAL-ERROR"  # the harness itself failed


@dataclass(frozen=True)
class Outcome:
    """A status with the requirement it concerns and a message for people."""

    status: Status
    requirement: str = ""
    message: str = ""


def classify(exc: BaseException | None) -> Outcome:
    """Map the exception a check ended with (None: it passed) to an outcome."""
    if exc is None:
        return Outcome(Status.PASS)
    if isinstance(exc, CheckAbandoned):
        where = f"; the check was running {exc.example}" if exc.example else ""
        return Outcome(Status.TIMEOUT, exc.tdr.requirement, f"{exc.tdr}{where}")
    if isinstance(exc, NotJudged):
        return Outcome(Status.SKIP, "", str(exc))
    if isinstance(exc, Tdr):
        return Outcome(Status.TIMEOUT, exc.requirement, str(exc))
    if isinstance(exc, BugCheck | ProcessDied):
        return Outcome(Status.CRASH, exc.requirement, str(exc))
    if isinstance(exc, DriverFailure):
        return Outcome(Status.FAIL, exc.requirement, str(exc))
    if isinstance(exc, MemoryError):
        # Isolated checks run under a memory limit; the driver under test holds the memory.
        return Outcome(Status.CRASH, "", "out of memory (the check's memory limit, --check-memory)")
    if isinstance(exc, DriverLoadError):
        return Outcome(Status.FAIL, "", str(exc))
    return Outcome(Status.INTERNAL_ERROR, "", f"harness error: {type(exc).__name__}: {exc}")
