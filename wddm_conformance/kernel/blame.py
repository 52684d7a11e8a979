"""Blame as data: which rule a GPU access outside its submission breaks.

The scheduler gathers the :class:`Facts` of one submission that went wrong (what the
GPU did, where, whether Patch ran, where allocations used to be, which references of
the program the harness knows are out of bounds) and :func:`decide` walks
:data:`RULES` in order: the first row whose condition holds names the requirement
and the sentence. Nothing here touches a kernel object or does I/O, so each row is
unit-tested with hand-made facts, and docs/INTERPRETING.md §5's blame list is
generated from the same table (:func:`markdown`; a test keeps the file up to date).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

#: (start, length) in bytes of GPU-physical (segment or system) address space.
Range = tuple[int, int]


class Event(Enum):
    """What was seen."""

    FAULT = "fault"  #: the GPU faulted running the submission
    BIND = "bind"  #: a binding slot holds an address outside the submission
    READ = "read"  #: a logged GPU read outside the submission's allocations
    WRITE = "write"  #: a logged GPU write outside the writable allocations
    EXCEPTION = "exception"  #: an exception escaped DxgkDdiRender (a bug check)


@dataclass(frozen=True)
class Facts:
    """The facts of one submission, as plain values.

    ``address``/``length``: the access (None: a fault without an address). ``patched``:
    DxgkDdiPatch ran on this submission (False: skipped, pre-patched addresses only).
    ``fault_kind``: the GPU fault's kind (``privileged-instruction``, ...).
    ``unmapped_aperture``: the address is on an aperture page the kernel unmapped.
    ``reaches_memory``: the address lies in a segment or an allocated system page.
    ``paged_out``: where the paged-out entries (SegmentId 0) last were. ``stale``: where
    allocations were before they moved. ``dummy``: the dummy page. ``submission``: the
    allocations of the submission (a write there lacked WriteOperation).
    ``out_of_bounds``: the program's references the harness knows reach outside their
    allocation (the program was built to be rejected). ``raised``: for
    :attr:`Event.EXCEPTION`, the rule the escaped exception named; ``read_past_buffer``:
    it was a read past a kernel buffer the driver was given (0x1E, 0xC0000005, a read).
    """

    event: Event
    address: int | None = None
    length: int = 1
    patched: bool = False
    fault_kind: str = ""
    unmapped_aperture: bool = False
    reaches_memory: bool = True
    paged_out: tuple[Range, ...] = ()
    stale: tuple[Range, ...] = ()
    dummy: Range | None = None
    submission: tuple[Range, ...] = ()
    out_of_bounds: tuple[str, ...] = ()
    raised: str = ""
    read_past_buffer: bool = False


@dataclass(frozen=True)
class Verdict:
    """The rule broken and why, in one sentence."""

    requirement: str
    sentence: str


@dataclass(frozen=True)
class Rule:
    """One row of the blame table: when ``holds``, ``requirement`` is broken.

    ``doc`` is the row's line in INTERPRETING.md §5; ``sentence`` is formatted with
    ``out_of_bounds`` (the first known bad reference) and ``raised``.
    """

    holds: Callable[[Facts], bool]
    requirement: str
    doc: str
    sentence: str


def inside(address: int | None, length: int, ranges: tuple[Range, ...]) -> bool:
    """True when ``[address, address + length)`` lies within one of ``ranges``."""
    if address is None:
        return False
    return any(start <= address and address + length <= start + n for start, n in ranges)


def _moved_or_unmapped(f: Facts) -> tuple[Range, ...]:
    return (*f.stale, *((f.dummy,) if f.dummy is not None else ()))


def _accepted(f: Facts) -> bool:
    if f.event == Event.EXCEPTION:  # a driver that raises on everything is ALL-NORAISE's
        return bool(f.out_of_bounds) and f.raised == "ALL-NORAISE" and f.read_past_buffer
    return bool(f.out_of_bounds)


def _gpu(f: Facts) -> bool:
    return f.event != Event.EXCEPTION


def _no_memory(f: Facts) -> bool:
    return _gpu(f) and not f.reaches_memory


RULES: tuple[Rule, ...] = (
    Rule(
        _accepted,
        "REN-VALIDATE",
        "a program the harness knows reaches outside an allocation (an offset past its end "
        "or wrapping at 2^32, an allocation index past the list or with bit 31 set) that "
        "the driver accepted, wherever it shows up (a GPU fault, an access outside the "
        "submission, a read past a kernel buffer escaping Render): REN-VALIDATE;",
        "the driver accepted {out_of_bounds}, which it had to reject",
    ),
    Rule(
        lambda f: f.event == Event.EXCEPTION,
        "",
        "any other exception keeps the rule it names (§5's bug check table);",
        "{raised}",
    ),
    Rule(
        lambda f: (
            f.event == Event.FAULT
            and f.fault_kind in ("privileged-instruction", "illegal-instruction")
        ),
        "REN-VALIDATE",
        "a privileged or illegal instruction in a render submission: REN-VALIDATE;",
        "Render let through a command the GPU refuses",
    ),
    Rule(
        lambda f: f.event == Event.FAULT and f.unmapped_aperture,
        "PGB-UNMAP",
        "a fault on an aperture page the kernel unmapped: PGB-UNMAP;",
        "the aperture page was unmapped, and unmapping must point it at the dummy page",
    ),
    Rule(
        lambda f: _gpu(f) and inside(f.address, f.length, f.paged_out),
        "REN-PAGEDOUT",
        "where a paged-out entry (SegmentId 0) last was: REN-PAGEDOUT (it was trusted);",
        "the address is where a paged-out allocation (SegmentId 0) last was: its "
        "PhysicalAddress was trusted",
    ),
    Rule(
        lambda f: _no_memory(f) and not f.patched,
        "REN-PREPATCH",
        "an address that reaches no memory at all, Patch skipped: REN-PREPATCH (the "
        "pre-patch missed it);",
        "the address reaches no memory and Patch was skipped: the pre-patched address is wrong",
    ),
    Rule(
        lambda f: _no_memory(f) and f.event == Event.BIND,
        "REN-NULLALLOC",
        "a binding slot at an address that reaches no memory after Patch: REN-NULLALLOC;",
        "only the NULL allocation may be bound outside the submission's allocations",
    ),
    Rule(
        _no_memory,
        "REN-FULLPATCH",
        "an address that reaches no memory at all after Patch: REN-FULLPATCH (the patch "
        "list missed it);",
        "the address reaches no memory after Patch: the patch list missed a reference",
    ),
    Rule(
        lambda f: (
            f.event == Event.WRITE
            and inside(f.address, f.length, f.submission)
            and not inside(f.address, f.length, _moved_or_unmapped(f))
        ),
        "REN-ALLOCINDEX",
        "a write to an allocation of the submission without WriteOperation: REN-ALLOCINDEX;",
        "the allocation-list entry it wrote lacks WriteOperation",
    ),
    Rule(
        lambda f: not f.patched and f.event != Event.BIND,
        "ALL-ISOLATION",
        "memory that belongs to someone else, Patch skipped: ALL-ISOLATION;",
        "the memory belongs to someone else",
    ),
    Rule(
        lambda f: f.patched and inside(f.address, f.length, _moved_or_unmapped(f)),
        "REN-FULLPATCH",
        "after Patch, where an allocation was before it moved, or the dummy page: "
        "REN-FULLPATCH (an old address survived Patch);",
        "an address from before the allocation moved (or was unmapped) survived Patch",
    ),
    Rule(
        lambda f: f.event == Event.BIND,
        "REN-NULLALLOC",
        "any other binding slot outside the submission: REN-NULLALLOC (only the NULL "
        "allocation may be bound outside it);",
        "only the NULL allocation may be bound outside the submission's allocations",
    ),
    Rule(
        lambda f: True,
        "ALL-ISOLATION",
        "anything else (memory that belongs to someone else): ALL-ISOLATION.",
        "the memory belongs to someone else",
    ),
)


def match(facts: Facts) -> Rule:
    """The first row of :data:`RULES` that holds for ``facts`` (the last always holds)."""
    return next(rule for rule in RULES if rule.holds(facts))


def decide(facts: Facts) -> Verdict:
    """The requirement ID and sentence of the first row that holds for ``facts``.

    The exception row keeps ``facts.raised`` as the requirement.
    """
    rule = match(facts)
    bad = facts.out_of_bounds[0] if facts.out_of_bounds else ""
    sentence = rule.sentence.format(out_of_bounds=bad, raised=facts.raised)
    return Verdict(rule.requirement or facts.raised, sentence)


def markdown() -> str:
    """The blame order as INTERPRETING.md §5 lists it (one numbered line per row)."""
    return "\n".join(f"{i}. {rule.doc}" for i, rule in enumerate(RULES, 1)) + "\n"
