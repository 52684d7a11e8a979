"""Simulated memory the driver reads and writes through DDI pointers.

A DDI hands the driver pointers (``pCommand``, ``pDmaBuffer``, ``pPatchLocationListOut``...).
Here a pointer is a :class:`Ptr`: a :class:`Region` plus a byte offset, which the
driver advances exactly as C code advances a pointer (``args.pDmaBuffer += n``).

Regions record every rule the driver breaks while it touches them, at the moment
it happens, so a failure names the buffer and the offset:

* :class:`KernelBuffer` -- kernel-owned memory. Writable buffers have a writable
  window (``[0, DmaSize)`` for a DMA buffer) followed by a guard zone; a write
  outside the window lands in the guard and is recorded. Read-only buffers (the
  allocation list given to Render, the patch list given to Patch) record writes.
  Reads outside an optional read window are recorded too (PAT-RANGE).
* :class:`UserBuffer` -- user-mode memory (``pCommand``, ``pPatchLocationListIn``).
  The harness can make a read fault at a chosen offset (the driver must catch
  :class:`UserAccessFault`, its ``__try/__except``), logs every read so bytes
  fetched twice can be found (double fetch), and can change bytes right after the
  first read that covers them (TOCTOU). A read past the end is recorded and faults,
  as if the next page were unmapped.

Every region and pointer the kernel hands to a DDI call carries that call's
:class:`Lease`, which is retired when the call returns. A later read or write through
it (the driver kept the pointer, or the region) is a :class:`RetiredBufferAccess`,
recorded on the kernel's :class:`LeaseBook` and raised at the access, as a stale
pointer into memory the kernel has freed or reused faults under Driver Verifier.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from itertools import pairwise
from typing import Final

from .errors import HarnessError

GUARD_BYTES: Final = 256
GUARD_FILL: Final = 0xCD
#: What an output buffer (DMA, patch list, paging buffer) holds before the driver writes it:
#: not zero, so even a zero written past the driver's cursor is seen.
UNWRITTEN: Final = 0xCB
_UNWRITTEN_RUN: Final = bytes([UNWRITTEN]) * (64 << 10)


def unwritten(data: bytearray, start: int, end: int) -> bool:
    """Whether ``data[start:end]`` all still holds :data:`UNWRITTEN` (nothing written there)."""
    view = memoryview(data)
    run = len(_UNWRITTEN_RUN)
    for at in range(start, end, run):
        if not _UNWRITTEN_RUN.startswith(view[at : min(at + run, end)]):
            return False
    return True


_GUARD: Final = bytes((GUARD_FILL,)) * GUARD_BYTES


class UserAccessFault(Exception):
    """An access fault while reading user-mode memory.

    This is what ``__try/__except(EXCEPTION_EXECUTE_HANDLER)`` catches in a C driver:
    a driver must catch it and return an error status (REN-USERFAULT). Letting it
    escape the DDI is the KMODE_EXCEPTION_NOT_HANDLED bug check.
    """

    def __init__(self, region: str, offset: int, length: int, reason: str) -> None:
        super().__init__(
            f"access fault reading {length} byte(s) of user buffer {region} at +{offset}: {reason}"
        )
        self.region = region
        self.offset = offset
        self.length = length


class KernelAccessViolation(Exception):
    """The driver touched kernel memory outside any buffer it was given (past the guard zone)."""

    def __init__(self, message: str, *, offset: int, write: bool) -> None:
        super().__init__(message)
        self.offset = offset
        self.write = write


@dataclass(frozen=True, slots=True)
class LateAccess:
    """One read or write through a buffer after the DDI call it was given to returned.

    ``given_to``/``call`` name that call (DDI, and the kernel's count of DDI calls from
    1); ``during``/``during_call`` the call running when the access happened ("" and 0
    when none was: a driver thread).
    """

    region: str
    offset: int
    length: int
    write: bool
    given_to: str
    call: int
    during: str
    during_call: int

    def __str__(self) -> str:
        verb = "wrote" if self.write else "read"
        when = (
            f"during {self.during} (DDI call {self.during_call})"
            if self.during
            else "outside any DDI call (from a driver thread)"
        )
        return (
            f"{verb} {self.length} byte(s) at +{self.offset} of {self.region} {when}, through a "
            f"pointer given to {self.given_to} (DDI call {self.call}) after that call had "
            f"returned: the kernel frees or reuses a buffer once the call it was given to returns"
        )


class RetiredBufferAccess(KernelAccessViolation):
    """Raised at a read or write through a retired buffer (see :class:`LateAccess`)."""

    def __init__(self, access: LateAccess) -> None:
        super().__init__(str(access), offset=access.offset, write=access.write)
        self.access = access


class LeaseBook:
    """One kernel's record of lending: the lease of the running call, and the late accesses seen.

    The kernel's DDI caller sets ``current`` around each call and reports ``late``
    (oldest first) when a call ends; a driver that catches the
    :class:`RetiredBufferAccess` it got, or touched a buffer from its own thread
    between calls, is still caught there.
    """

    __slots__ = ("current", "late")

    def __init__(self) -> None:
        #: The lease of the DDI call running now (None between calls).
        self.current: Lease | None = None
        self.late: list[LateAccess] = []


class Lease:
    """The DDI call a region or pointer was handed to; ``retired`` once that call returned."""

    __slots__ = ("book", "call", "ddi", "retired")

    def __init__(self, ddi: str, call: int, book: LeaseBook | None) -> None:
        self.ddi = ddi
        self.call = call
        self.book = book
        self.retired = False

    def late(self, region: Region, offset: int, length: int, write: bool) -> RetiredBufferAccess:
        """Record an access through this retired lease; the exception to raise at the access."""
        book = self.book
        running = book.current if book is not None else None
        access = LateAccess(
            region.name,
            offset,
            length,
            write,
            self.ddi,
            self.call,
            running.ddi if running is not None else "",
            running.call if running is not None else 0,
        )
        if book is not None:
            book.late.append(access)
        return RetiredBufferAccess(access)


#: The lease of memory no DDI call was given (the driver's own regions, the harness's): never retired.
UNLEASED: Final = Lease("", 0, None)


class ViolationKind(StrEnum):
    """What a driver did wrong touching a region (:class:`MemoryViolation`)."""

    #: A write outside the part of a buffer the driver may write (its guard zone, say).
    WRITE_OUTSIDE_WINDOW = "write-outside-window"
    #: A write to an input the driver may only read.
    WRITE_READONLY = "write-readonly"
    #: A read outside the part of a buffer the driver may read.
    READ_OUTSIDE_WINDOW = "read-outside-window"
    #: A read past the end of a buffer.
    READ_PAST_END = "read-past-end"


@dataclass(frozen=True)
class MemoryViolation:
    """One rule broken while touching a region: what, where, how much."""

    kind: ViolationKind
    region: str
    offset: int
    length: int

    def __str__(self) -> str:
        return f"{self.kind} in {self.region} at +{self.offset} ({self.length} byte(s))"


class Region(ABC):
    """A named span of simulated memory. Subclasses decide what each access means."""

    __slots__ = ("data", "lease", "name", "violations")

    def __init__(self, name: str, data: bytearray) -> None:
        self.name = name
        self.data = data
        self.violations: list[MemoryViolation] = []
        #: The DDI call this region was last handed to (see :class:`Lease`).
        self.lease: Lease = UNLEASED

    @abstractmethod
    def read(self, offset: int, length: int) -> bytes:
        """Read ``length`` bytes at ``offset``, applying this region's rules."""

    @abstractmethod
    def write(self, offset: int, payload: bytes | bytearray | memoryview) -> None:
        """Write ``payload`` at ``offset``, applying this region's rules."""

    def ptr(self, offset: int = 0, stride: int = 1) -> Ptr:
        """A pointer to byte ``offset`` in this region, to elements of ``stride`` bytes."""
        return Ptr(self, offset, stride)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {len(self.data)} bytes>"


class KernelBuffer(Region):
    """Kernel-owned memory with a writable window and a guard zone after it.

    ``size`` is the usable size (DmaSize, PatchLocationListOutSize * 24, ...). The
    backing store is ``size + GUARD_BYTES``, filled with ``GUARD_FILL`` past ``size``,
    so an overflow lands somewhere the harness can see instead of in another buffer.
    """

    __slots__ = ("read_hi", "read_lo", "size", "writable", "write_hi", "write_lo")

    def __init__(
        self,
        name: str,
        size: int,
        *,
        writable: bool = True,
        initial: bytes | bytearray | None = None,
        fill: int = 0,
    ) -> None:
        if size < 0:
            raise HarnessError(f"kernel buffer {name}: negative size {size}")
        data = bytearray(size) if fill == 0 else bytearray(bytes((fill,)) * size)
        if initial is not None:
            if len(initial) > size:
                raise HarnessError(
                    f"kernel buffer {name}: initial content larger than {size} bytes"
                )
            data[: len(initial)] = initial
        data += _GUARD
        super().__init__(name, data)
        self.size = size
        self.writable = writable
        self.write_lo = 0
        self.write_hi = size
        self.read_lo = 0
        self.read_hi = size

    def set_write_window(self, lo: int, hi: int) -> None:
        """Restrict where the driver may write (e.g. the submission range during Patch)."""
        self.write_lo, self.write_hi = lo, hi

    def set_read_window(self, lo: int, hi: int) -> None:
        """Restrict where the driver may read (e.g. the patch-list submission range during Patch)."""
        self.read_lo, self.read_hi = lo, hi

    def read(self, offset: int, length: int) -> bytes:
        if self.lease.retired:
            raise self.lease.late(self, offset, length, False)
        end = offset + length
        if offset < 0 or length < 0 or end > len(self.data):
            self.violations.append(
                MemoryViolation(ViolationKind.READ_PAST_END, self.name, offset, length)
            )
            raise KernelAccessViolation(
                f"read of {length} byte(s) at +{offset} outside kernel buffer {self.name} ({self.size} bytes)",
                offset=offset,
                write=False,
            )
        if offset < self.read_lo or end > self.read_hi:
            self.violations.append(
                MemoryViolation(ViolationKind.READ_OUTSIDE_WINDOW, self.name, offset, length)
            )
        return bytes(self.data[offset:end])

    def write(self, offset: int, payload: bytes | bytearray | memoryview) -> None:
        length = len(payload)
        if self.lease.retired:
            raise self.lease.late(self, offset, length, True)
        end = offset + length
        if not self.writable:
            self.violations.append(
                MemoryViolation(ViolationKind.WRITE_READONLY, self.name, offset, length)
            )
        elif offset < self.write_lo or end > self.write_hi:
            self.violations.append(
                MemoryViolation(ViolationKind.WRITE_OUTSIDE_WINDOW, self.name, offset, length)
            )
        if offset < 0 or end > len(self.data):
            raise KernelAccessViolation(
                f"write of {length} byte(s) at +{offset} past the end of kernel buffer {self.name} "
                f"({self.size} bytes + {GUARD_BYTES} guard)",
                offset=offset,
                write=True,
            )
        self.data[offset:end] = payload

    def guard_intact(self) -> bool:
        """True while nothing has been written into the guard zone."""
        return self.data[self.size :] == bytes([GUARD_FILL]) * GUARD_BYTES

    def content(self, lo: int = 0, hi: int | None = None) -> bytes:
        """Harness-side view of the usable bytes (no access checks)."""
        return bytes(self.data[lo : self.size if hi is None else hi])


class UserBuffer(Region):
    """User-mode memory the harness controls: fault injection, read log, TOCTOU.

    * ``fault_at``: any read touching a byte at or past this offset faults.
    * ``toctou``: ``(offset, new_bytes)``; right after the first read that covers
      ``offset`` returns, the bytes there change, as if another user thread raced
      the driver between validating and using them.
    * ``reads``: every ``(offset, length)`` read, in order.
    * ``sites``: for reads whose instruction is known (a native driver's direct reads),
      read index -> instruction address; ``locate`` turns one into a source line.
    """

    __slots__ = (
        "_toctou",
        "epochs",
        "fault_at",
        "locate",
        "reads",
        "sites",
        "size",
        "toctou_fired",
    )

    def __init__(
        self,
        name: str,
        content: bytes | bytearray,
        *,
        fault_at: int | None = None,
        toctou: tuple[int, bytes] | None = None,
    ) -> None:
        super().__init__(name, bytearray(content))
        self.size = len(content)
        self.fault_at = fault_at
        self._toctou = toctou
        self.toctou_fired = False
        self.reads: list[tuple[int, int]] = []
        #: Index into ``reads`` where each DDI call began (a double fetch is two reads in one call).
        self.epochs: list[int] = [0]
        self.sites: dict[int, int] = {}
        #: Instruction address -> "wdkdisp.c:767 (Stage)", or None (not the driver's code).
        self.locate: Callable[[int], str | None] | None = None

    @property
    def pending_toctou(self) -> tuple[int, bytes] | None:
        """``toctou`` while it has not fired: ``(offset, new_bytes)``, else None."""
        return None if self.toctou_fired else self._toctou

    def new_epoch(self) -> None:
        """Mark the start of another DDI call: reads before it are not paired with reads after it."""
        self.epochs.append(len(self.reads))

    def read(self, offset: int, length: int) -> bytes:
        if self.lease.retired:
            raise self.lease.late(self, offset, length, False)
        end = offset + length
        if offset < 0 or length < 0 or end > self.size:
            self.violations.append(
                MemoryViolation(ViolationKind.READ_PAST_END, self.name, offset, length)
            )
            raise UserAccessFault(self.name, offset, length, f"outside the {self.size}-byte buffer")
        if self.fault_at is not None and end > self.fault_at and length > 0:
            raise UserAccessFault(
                self.name, offset, length, f"page not present at +{self.fault_at}"
            )
        self.reads.append((offset, length))
        out = bytes(self.data[offset:end])
        t = self._toctou
        if t is not None and not self.toctou_fired and offset <= t[0] < end:
            self.toctou_fired = True
            self.data[t[0] : t[0] + len(t[1])] = t[1]
        return out

    def write(self, offset: int, payload: bytes | bytearray | memoryview) -> None:
        if self.lease.retired:
            raise self.lease.late(self, offset, len(payload), True)
        self.violations.append(
            MemoryViolation(ViolationKind.WRITE_READONLY, self.name, offset, len(payload))
        )
        if offset >= 0 and offset + len(payload) <= self.size:
            self.data[offset : offset + len(payload)] = payload

    def double_fetched(self) -> list[tuple[int, int]]:
        """Byte ranges ``[lo, hi)`` read more than once within one DDI call, merged and sorted."""
        out: list[tuple[int, int]] = []
        bounds = [*self.epochs, len(self.reads)]
        for lo, hi in pairwise(bounds):
            out.extend(_doubled(self.reads[lo:hi]))
        out.sort()
        return out

    def fetch_sites(self, lo: int, hi: int) -> list[str]:
        """Source lines of the reads that fetched the double-fetched range ``[lo, hi)``
        (from :meth:`double_fetched`), in order; empty when none is known. A read whose
        instruction is not the driver's own (a copy routine) is ``"a copy"``."""
        bounds = [*self.epochs, len(self.reads)]
        for first, end in pairwise(bounds):
            if (lo, hi) not in _doubled(self.reads[first:end]):
                continue
            out: list[str] = []
            for i in range(first, end):
                offset, length = self.reads[i]
                if offset < hi and lo < offset + length:
                    site = self.sites.get(i)
                    line = self.locate(site) if site is not None and self.locate else None
                    out.append(line or "a copy")
            return out if any(x != "a copy" for x in out) else []
        return []


def _doubled(reads: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Ranges covered by two or more of ``reads``, merged and sorted."""
    events: list[tuple[int, int]] = []
    for off, n in reads:
        if n > 0:
            events.append((off, 1))
            events.append((off + n, -1))
    events.sort()
    out: list[tuple[int, int]] = []
    depth = 0
    start = 0
    for pos, delta in events:
        before = depth
        depth += delta
        if before < 2 <= depth:
            start = pos
        elif before >= 2 > depth and pos > start:
            if out and out[-1][1] == start:
                out[-1] = (out[-1][0], pos)
            else:
                out.append((start, pos))
    return out


class Ptr:
    """A typed pointer into a region: what a DDI field such as ``pDmaBuffer`` holds.

    Pointer arithmetic works as in C: ``p + n`` advances ``n`` elements of ``stride``
    bytes (1 for ``pDmaBuffer``, 24 for ``pPatchLocationListOut``), and ``p - q``
    counts elements. ``offset`` and the ``at`` of reads and writes are in bytes. Reads
    and writes go through the region, which enforces and records the rules.

    ``lease`` is the DDI call the pointer was given to; pointers computed from it share
    it, so all of them are retired together when that call returns, even if the region
    is handed to a later call again. A pointer no call was given (``UNLEASED``) is as
    good as its region: usable while the region is lent to the running call.
    """

    __slots__ = ("lease", "offset", "region", "stride")

    def __init__(
        self, region: Region, offset: int = 0, stride: int = 1, lease: Lease = UNLEASED
    ) -> None:
        self.region = region
        self.offset = offset
        self.stride = stride
        self.lease = lease

    def __add__(self, n: int) -> Ptr:
        return Ptr(self.region, self.offset + n * self.stride, self.stride, self.lease)

    def __sub__(self, other: Ptr) -> int:
        if other.region is not self.region:  # the driver's mistake, so not a HarnessError
            raise ValueError(
                f"subtracting pointers into different buffers ({self.region.name}, {other.region.name})"
            )
        return (self.offset - other.offset) // self.stride

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Ptr) and other.region is self.region and other.offset == self.offset
        )

    def __hash__(self) -> int:
        return hash((id(self.region), self.offset))

    def read(self, length: int, at: int = 0) -> bytes:
        """Read ``length`` bytes at ``self + at``; RetiredBufferAccess once its call returned."""
        if self.lease.retired:
            raise self.lease.late(self.region, self.offset + at, length, False)
        return self.region.read(self.offset + at, length)

    def write(self, payload: bytes | bytearray | memoryview, at: int = 0) -> None:
        """Write ``payload`` at ``self + at``; RetiredBufferAccess once its call returned."""
        if self.lease.retired:
            raise self.lease.late(self.region, self.offset + at, len(payload), True)
        self.region.write(self.offset + at, payload)

    def lend(self, lease: Lease) -> Ptr:
        """This pointer handed to the call of ``lease``, with its region.

        A pointer never lent before is lent itself (the kernel makes one per call); one
        already lent is copied, so the earlier call's pointer stays retired.
        """
        self.region.lease = lease
        if self.lease is UNLEASED:
            self.lease = lease
            return self
        return Ptr(self.region, self.offset, self.stride, lease)

    def __repr__(self) -> str:
        return f"Ptr({self.region.name}+{self.offset})"
