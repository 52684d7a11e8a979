"""Calling the driver: exceptions become bug checks, hangs become TDRs, junk is named.

Every DDI call goes through :meth:`DdiCaller.call`. It keeps a short trace of the
calls (the "DDI call sequence" of a failure report) and turns what escapes the
driver into the outcome a real system would have:

* :class:`~wddm_conformance.errors.DdiTimeout` -> :class:`~wddm_conformance.errors.Tdr` (0x116, ALL-BOUNDED);
* an unhandled user-mode access fault -> 0x1E with STATUS_ACCESS_VIOLATION (REN-USERFAULT);
* a write past a kernel buffer's guard zone -> 0x1E (the buffer's cursor rule);
* a read or write through a buffer of a call that has returned -> 0x1E with
  STATUS_ACCESS_VIOLATION (ALL-READONLY for a write, ALL-NORAISE for a read), also
  when the driver caught it or made it from its own thread between calls;
* any other exception -> 0x1E (ALL-NORAISE), KeyboardInterrupt and SystemExit included
  (only a real Ctrl-C, :func:`~wddm_conformance.watchdog.real_interrupt`, stops the run);
* :class:`~wddm_conformance.errors.HarnessError` passes through: it is the harness's fault.

It also lends each call its memory: every ``Ptr`` in the argument blocks (and its
region) is put under a :class:`~wddm_conformance.memory.Lease` retired when the call
returns (a pointer lent to an earlier call is replaced by a fresh one), and the
kernel-owned arrays (``KERNEL_ARRAYS``) are checked to still be the same objects of the
same length (ALL-READONLY).
"""

from __future__ import annotations

import dataclasses
import operator
import typing
from collections import deque
from collections.abc import Iterable
from typing import Any

from ..driver import DDI_METHODS, Miniport
from ..errors import (
    KMODE_EXCEPTION_NOT_HANDLED,
    STATUS_ACCESS_VIOLATION,
    VIDEO_TDR_FAILURE,
    BugCheck,
    CheckAbandoned,
    DdiTimeout,
    DriverFailure,
    DriverViolation,
    HarnessError,
    Tdr,
)
from ..memory import (
    UNLEASED,
    KernelAccessViolation,
    LateAccess,
    Lease,
    LeaseBook,
    MemoryViolation,
    Ptr,
    Region,
    RetiredBufferAccess,
    UserAccessFault,
    ViolationKind,
)
from ..status import status_name
from ..watchdog import Invoker, current_example, real_interrupt

#: Which rule a write outside a kernel buffer's window breaks, per DDI.
CURSOR_RULE = {
    "render": "REN-CURSORS",
    "build_paging_buffer": "PGB-CURSOR",
    "patch": "PAT-RANGE",
}


#: Per argument type: its Ptr fields, and its KERNEL_ARRAYS with the Ptr fields of their
#: elements (None: it has neither).
_Plan = tuple[tuple[str, ...], tuple[tuple[str, str, tuple[str, ...]], ...]]
_PLANS: dict[type, _Plan | None] = {int: None, type(None): None}

#: A kernel-owned array as handed over: owner, field, count field, the list, its elements, the count.
_Handed = tuple[Any, str, str, list[Any], tuple[Any, ...], Any]


def _pointer_fields(cls: type) -> tuple[str, ...]:
    if not dataclasses.is_dataclass(cls):
        return ()
    hints = typing.get_type_hints(cls)
    return tuple(
        f.name
        for f in dataclasses.fields(cls)
        if Ptr in (hints[f.name], *typing.get_args(hints[f.name]))
    )


def _plan(cls: type) -> _Plan | None:
    """What an argument type carries that the caller lends and checks (computed once per type)."""
    plan = None
    if dataclasses.is_dataclass(cls):
        hints = typing.get_type_hints(cls)
        arrays = tuple(
            (name, count, _pointer_fields(typing.get_args(hints[name])[0]))
            for name, count in getattr(cls, "KERNEL_ARRAYS", ())
        )
        pointers = _pointer_fields(cls)
        if pointers or arrays:
            plan = (pointers, arrays)
    _PLANS[cls] = plan
    return plan


def _lend(args: tuple[Any, ...], lease: Lease) -> list[_Handed]:
    """Give every Ptr in ``args`` to ``lease`` and note the kernel arrays (a hot path)."""
    handed: list[_Handed] = []
    for arg in args:
        cls = type(arg)
        plan = _PLANS[cls] if cls in _PLANS else _plan(cls)
        if plan is None:
            continue
        pointers, arrays = plan
        for name in pointers:
            p = getattr(arg, name)
            if isinstance(p, Ptr):
                if p.lease is UNLEASED:  # what the kernel made for this call: lent as it is
                    p.lease = p.region.lease = lease
                else:
                    setattr(arg, name, p.lend(lease))
        for name, count_name, inner in arrays:
            items = getattr(arg, name)
            for field in inner:
                for item in items:
                    p = getattr(item, field)
                    if isinstance(p, Ptr):
                        if p.lease is UNLEASED:
                            p.lease = p.region.lease = lease
                        else:
                            setattr(item, field, p.lend(lease))
            handed.append((arg, name, count_name, items, tuple(items), getattr(arg, count_name)))
    return handed


def _array_changed(h: _Handed) -> str:
    """How the driver changed a kernel array, or "" if it did not."""
    owner, name, count_name, items, elements, count = h
    now = getattr(owner, name)
    if now is not items:
        return (
            f"replaced the [in] pointer {name} (the kernel's {len(elements)}-element array) "
            f"with {_short(now)}"
        )
    if len(now) != len(elements):
        return f"changed the length of {name} ({count_name} {count}, now {len(now)})"
    for i, (mine, theirs) in enumerate(zip(elements, now, strict=True)):
        if theirs is mine:
            continue
        if type(mine) is int:
            if theirs != mine or type(theirs) is not int:
                return (
                    f"wrote element {i} of {name}, a const array of handles "
                    f"(0x{mine:X}, now {_short(theirs)})"
                )
            continue
        other = (
            f"another {type(mine).__name__} object"
            if type(theirs) is type(mine)
            else _short(theirs)
        )
        return (
            f"replaced element {i} of {name} (the kernel's {type(mine).__name__}) with "
            f"{other}: the driver may only fill in the fields of the element it was given"
        )
    now_count = getattr(owner, count_name)
    if now_count != count or type(now_count) is not type(count):
        return f"changed {count_name}, an [in] field, from {count} to {_short(now_count)}"
    return ""


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"a {type(value).__name__} ({text[:40]}...)"


def _late(access: list[LateAccess], ddi: str) -> BugCheck:
    """The bug check for the first late access in ``access`` (which it empties)."""
    first = access[0]
    more = f" (+{len(access) - 1} more)" if len(access) > 1 else ""
    access.clear()
    return BugCheck(
        KMODE_EXCEPTION_NOT_HANDLED,
        (STATUS_ACCESS_VIOLATION, 0, 1 if first.write else 0, first.offset),
        "ALL-READONLY" if first.write else "ALL-NORAISE",
        first.during or first.given_to,
        f"{'memory corruption' if first.write else 'access violation'}: {first}{more}",
    )


class DdiCaller:
    """Invokes driver DDIs through an invoker and records the call sequence."""

    def __init__(
        self,
        driver: Miniport,
        invoker: Invoker,
        trace_length: int = 32,
        abandon_on_tdr: bool = False,
    ) -> None:
        self.driver = driver
        self.invoker = invoker
        #: A TDR raises :class:`~wddm_conformance.errors.CheckAbandoned`, not Tdr.
        self.abandon_on_tdr = abandon_on_tdr
        self.trace: deque[str | tuple[str, Any]] = deque(maxlen=trace_length)
        self.calls = 0
        #: What the last call returned (a status, or whatever junk the driver returned).
        self.last_status: Any = None
        #: The DDI running now and the late accesses through retired buffers not yet reported.
        self.book = LeaseBook()

    def call(self, method: str, *args: Any) -> Any:
        """Call DDI ``method`` with ``args``; return what it returned, or raise what it broke.

        Raises :class:`~wddm_conformance.errors.BugCheck` (CRASH), :class:`~wddm_conformance.errors.Tdr`
        (TIMEOUT), :class:`~wddm_conformance.errors.DriverViolation` for a changed kernel
        array (ALL-READONLY), and lets :class:`~wddm_conformance.errors.HarnessError` through.
        """
        ddi = DDI_METHODS[method]
        fn = getattr(self.driver, method)
        self.calls += 1
        book = self.book
        lease = Lease(ddi, self.calls, book)
        handed = _lend(args, lease)
        book.current = lease
        try:
            result = self._invoke(method, ddi, fn, args)
        except DriverFailure:
            if book.late:  # what happened first: the access through a retired buffer
                raise _late(book.late, ddi) from None
            raise
        finally:
            book.current = None
            lease.retired = True
        if book.late:
            self.trace.append(f"{ddi} -> access through a retired buffer")
            raise _late(book.late, ddi)
        for h in handed:
            owner, name, count_name, items, elements, count = h
            if (
                getattr(owner, name) is not items
                or len(items) != len(elements)
                or getattr(owner, count_name) is not count
                or not all(map(operator.is_, items, elements))
            ) and (problem := _array_changed(h)):
                self.trace.append(f"{ddi} -> changed {name}")
                raise DriverViolation("ALL-READONLY", ddi, problem)
        self.trace.append((ddi, result))  # formatted only when a report asks (hot path)
        self.last_status = result
        return result

    def _invoke(self, method: str, ddi: str, fn: Any, args: tuple[Any, ...]) -> Any:
        try:
            result = self.invoker(ddi, fn, args)
        except DdiTimeout as exc:
            self.trace.append(f"{ddi} -> did not return")
            tdr = Tdr(
                VIDEO_TDR_FAILURE,
                (0, 0, 0, 0),
                "ALL-BOUNDED",
                ddi,
                f"did not return within {exc.seconds:g} s",
            )
            if self.abandon_on_tdr:
                raise CheckAbandoned(tdr, current_example()) from None
            raise tdr from None
        except HarnessError:
            raise
        except RetiredBufferAccess as exc:
            self.trace.append(f"{ddi} -> access through a retired buffer")
            raise _late(self.book.late or [exc.access], ddi) from None
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
            if isinstance(exc, DriverFailure) and getattr(self.driver, "KERNEL_FINDINGS", False):
                # A native driver's runtime judged the call (a bug check, a pool leak): the
                # finding is the kernel's, already named.
                self.trace.append(f"{ddi} -> {type(exc).__name__} [{exc.requirement}]")
                raise
            if real_interrupt(exc):
                raise
            self.trace.append(f"{ddi} -> raised {type(exc).__name__}")
            raise BugCheck(
                KMODE_EXCEPTION_NOT_HANDLED,
                (0, 0, 0, 0),
                "ALL-NORAISE",
                ddi,
                f"an exception escaped the DDI: {type(exc).__name__}: {exc}",
            ) from exc
        return result

    def sequence(self) -> str:
        """The last DDI calls, oldest first."""
        lines = [entry if isinstance(entry, str) else _returned(*entry) for entry in self.trace]
        return "\n".join(f"  {i + 1}. {line}" for i, line in enumerate(lines))


def _returned(ddi: str, result: Any) -> str:
    return f"{ddi} -> {status_name(result) if isinstance(result, int) else type(result).__name__}"


#: Rules fixed by the kind of memory violation, whatever the buffer.
KIND_RULE = {
    ViolationKind.WRITE_READONLY: "ALL-READONLY",
    ViolationKind.READ_PAST_END: "REN-UNDERRUN",
}


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


def _plan_every_argument_type() -> None:
    """Plan the DDI argument types at import: an isolated check's process then inherits the
    plans instead of evaluating type hints again in every check."""
    from .. import ddi

    for value in vars(ddi).values():
        if isinstance(value, type) and dataclasses.is_dataclass(value) and value not in _PLANS:
            _plan(value)


_plan_every_argument_type()
