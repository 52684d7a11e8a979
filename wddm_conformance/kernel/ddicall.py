"""Calling the driver: exceptions become bug checks, hangs become TDRs, junk is named.

Every DDI call goes through :meth:`DdiCaller.call`. It keeps a short trace of the
calls (the "DDI call sequence" of a failure report) and turns what escapes the
driver into the outcome a real system would have:

* :class:`~wddm_conformance.errors.DdiTimeout` -> :class:`~wddm_conformance.errors.Tdr` (0x116, ALL-BOUNDED);
* an unhandled user-mode access fault -> 0x1E with STATUS_ACCESS_VIOLATION (REN-USERFAULT);
* a write past a kernel buffer's guard zone -> 0x1E (the buffer's cursor rule);
* any other exception -> 0x1E (ALL-NORAISE), KeyboardInterrupt and SystemExit included
  (only a real Ctrl-C, :func:`~wddm_conformance.watchdog.real_interrupt`, stops the run);
* :class:`~wddm_conformance.errors.HarnessError` passes through: it is the harness's fault.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any

from ..driver import DDI_METHODS, Miniport
from ..errors import (
    KMODE_EXCEPTION_NOT_HANDLED,
    STATUS_ACCESS_VIOLATION,
    VIDEO_TDR_FAILURE,
    BugCheck,
    DdiTimeout,
    DriverViolation,
    HarnessError,
    Tdr,
)
from ..memory import KernelAccessViolation, MemoryViolation, Region, UserAccessFault
from ..status import status_name
from ..watchdog import Invoker, real_interrupt

#: Which rule a write outside a kernel buffer's window breaks, per DDI.
CURSOR_RULE = {
    "render": "REN-CURSORS",
    "build_paging_buffer": "PGB-CURSOR",
    "patch": "PAT-RANGE",
}


class DdiCaller:
    """Invokes driver DDIs through an invoker and records the call sequence."""

    def __init__(self, driver: Miniport, invoker: Invoker, trace_length: int = 32) -> None:
        self.driver = driver
        self.invoker = invoker
        self.trace: deque[str | tuple[str, Any]] = deque(maxlen=trace_length)
        self.calls = 0
        #: What the last call returned (a status, or whatever junk the driver returned).
        self.last_status: Any = None

    def call(self, method: str, *args: Any) -> Any:
        ddi = DDI_METHODS[method]
        fn = getattr(self.driver, method)
        self.calls += 1
        try:
            result = self.invoker(ddi, fn, args)
        except DdiTimeout as exc:
            self.trace.append(f"{ddi} -> did not return")
            raise Tdr(
                VIDEO_TDR_FAILURE,
                (0, 0, 0, 0),
                "ALL-BOUNDED",
                ddi,
                f"did not return within {exc.seconds:g} s",
            ) from None
        except HarnessError:
            raise
        except UserAccessFault as exc:
            self.trace.append(f"{ddi} -> unhandled user-mode access fault")
            raise BugCheck(
                KMODE_EXCEPTION_NOT_HANDLED,
                (STATUS_ACCESS_VIOLATION, 0, 0, exc.offset),  # parameter 3: 0 = read
                "REN-USERFAULT",
                ddi,
                f"the user-mode access fault escaped the DDI instead of being caught (__try/__except): {exc}",
            ) from exc
        except KernelAccessViolation as exc:
            self.trace.append(f"{ddi} -> kernel access violation")
            raise BugCheck(
                KMODE_EXCEPTION_NOT_HANDLED,
                (STATUS_ACCESS_VIOLATION, 0, 1 if exc.write else 0, exc.offset),
                CURSOR_RULE.get(method, "ALL-NORAISE") if exc.write else "ALL-NORAISE",
                ddi,
                f"memory corruption: {exc}",
            ) from exc
        except BaseException as exc:  # SystemExit, KeyboardInterrupt...: a driver raises nothing
            if isinstance(exc, KeyboardInterrupt) and real_interrupt():
                raise
            self.trace.append(f"{ddi} -> raised {type(exc).__name__}")
            raise BugCheck(
                KMODE_EXCEPTION_NOT_HANDLED,
                (0, 0, 0, 0),
                "ALL-NORAISE",
                ddi,
                f"an exception escaped the DDI: {type(exc).__name__}: {exc}",
            ) from exc
        self.trace.append((ddi, result))  # formatted only when a report asks (hot path)
        self.last_status = result
        return result

    def sequence(self) -> str:
        """The last DDI calls, oldest first."""
        lines = [entry if isinstance(entry, str) else _returned(*entry) for entry in self.trace]
        return "\n".join(f"  {i + 1}. {line}" for i, line in enumerate(lines))


def _returned(ddi: str, result: Any) -> str:
    return f"{ddi} -> {status_name(result) if isinstance(result, int) else type(result).__name__}"


#: Rules fixed by the kind of memory violation, whatever the buffer.
KIND_RULE = {"write-readonly": "ALL-READONLY", "read-past-end": "REN-UNDERRUN"}


def memory_violations(ddi: str, checks: Iterable[tuple[Region, str]], context: str = "") -> None:
    """Raise a DriverViolation for the first rule broken in any region.

    A write to a read-only input is ALL-READONLY and a read past the end of a user
    buffer is REN-UNDERRUN; anything else outside a buffer's window breaks the rule
    given for that buffer.
    """
    for region, buffer_rule in checks:
        if region.violations:
            first: MemoryViolation = region.violations[0]
            requirement = KIND_RULE.get(first.kind, buffer_rule)
            more = f" (+{len(region.violations) - 1} more)" if len(region.violations) > 1 else ""
            raise DriverViolation(
                requirement,
                ddi,
                f"{first}{more}{context}",
                {"violations": [str(v) for v in region.violations]},
            )


def require_status(ddi: str, status: object, allowed: frozenset[int], requirement: str) -> int:
    """Return ``status`` if it is an allowed NTSTATUS, else raise a DriverViolation naming it."""
    if isinstance(status, int) and not isinstance(status, bool) and status in allowed:
        return status
    raise DriverViolation(
        requirement,
        ddi,
        f"returned {status_name(status)}; allowed: {', '.join(sorted(status_name(s) for s in allowed))}",
    )
