"""The native adapter: a Python miniport whose DDIs are a C library's DxgkDdi* entry points.

:func:`native_driver_class` turns a checked library into a driver class the kernel
loads like any other, so every suite check and fuzz target runs on C code unchanged.
Each DDI call marshals its argument block both ways:

* Every buffer the call hands over (DMA buffer, patch lists, allocation list, private
  data, paging buffer) becomes real memory: a copy of the harness's region followed by
  its guard zone and a further hidden margin. After the call the copy is compared with
  the region: bytes changed outside the writable window are recorded on the region as
  the Python memory model would record them ("write-outside-window in DMA buffer at
  +4096 (12 byte(s))"), so the kernel's checks name the buffer and the offset; a change
  in the hidden margin is a write past the guard zone, the 0x1E bug check. Changes the
  driver was allowed to make are copied back.
* Cursors the C code advanced (``pDmaBuffer``, ``pPatchLocationListOut``, ``pCommand``)
  are read back as :class:`~wddm_conformance.memory.Ptr` offsets into the same region,
  wherever they point, as C pointer arithmetic would give them.
* User-mode buffers (``pCommand``, ``pPatchLocationListIn``) are real readable memory;
  the driver reads them through the kernel callback ``WddmCbCopyFromUser`` (its
  ``__try/__except``), which applies the region's fault injection, read log and TOCTOU.

Reads outside a kernel buffer's read window (the patch list given to Patch) are not
observed: real memory has no read log. docs/native.md lists what this changes.

A WDK-style driver (``native build --wdk``) is called through its runtime
(``WddmWdkInvoke``, wdk_runtime.c): the DDIs are the pointers its ``DriverEntry``
registered, user memory is read with ``RtlCopyMemory`` inside ``__try`` (the runtime
routes copies from the call's user buffers through the same callback) or directly. On
x86-64 Linux every user buffer is then inaccessible while the driver runs
(:class:`_TracedMapped`): the runtime logs each direct read and steps it, and
:class:`_Trace` replays the log into the buffer's read log and TOCTOU race. Elsewhere a
user buffer with an injected fault is real memory whose fault point starts an
inaccessible page (:class:`_GuardedMapped`). Either way the runtime turns the processor's
fault at the fault point into the driver's ``__except``. The runtime checks what Driver Verifier would. A bug check it raises (bad pool call, IRQL, a failed
``NT_ASSERT``, an unhandled exception) is a :class:`~wddm_conformance.errors.BugCheck`
naming its rule; pool still allocated when its owner is destroyed (a failed
CreateAllocation batch: ALC-ATOMIC; DestroyAllocation, DestroyDevice, DestroyContext,
RemoveDevice: ALC-ADAPTER) is a leak, named with tag and size (docs/INTERPRETING.md).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import mmap
import operator
import platform
import struct
import sys
import threading
import types
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, ClassVar, Final

from ..ddi import (
    DXGK_ALLOCATIONINFOFLAGS,
    DXGK_BUILDPAGINGBUFFER_OPERATION,
    DXGK_DRIVERCAPS,
    DXGK_SEGMENTDESCRIPTOR,
    DXGK_SEGMENTFLAGS,
    DXGK_START_INFO,
    DXGK_TRANSFER_LOCATION,
    DXGKARG_BUILDPAGINGBUFFER,
    DXGKARG_CLOSEALLOCATION,
    DXGKARG_CREATEALLOCATION,
    DXGKARG_CREATECONTEXT,
    DXGKARG_CREATEDEVICE,
    DXGKARG_DESTROYALLOCATION,
    DXGKARG_OPENALLOCATION,
    DXGKARG_PATCH,
    DXGKARG_RENDER,
    DXGKARG_SUBMITCOMMAND,
    MDL,
)
from ..driver import DDI_METHODS, DEFAULT_COMMAND_ENCODER, DEFAULT_GPU_MODEL
from ..errors import (
    VIDEO_TDR_FAILURE,
    BugCheck,
    DdiTimeout,
    DriverFailure,
    DriverViolation,
    HarnessError,
    Tdr,
)
from ..kernel.handles import HandleTable
from ..memory import (
    GUARD_BYTES,
    GUARD_FILL,
    KernelAccessViolation,
    KernelBuffer,
    MemoryViolation,
    Ptr,
    Region,
    UserAccessFault,
    UserBuffer,
    ViolationKind,
)
from ..status import status_name
from ..watchdog import armed
from .abi import (
    ABI_VERSION,
    WDK_HANDLE_CHILD,
    WDK_HANDLE_DATA,
    WDK_HANDLE_PARENT,
    WDK_KIND_ASSERT,
    WDK_KIND_DRIVER,
    WDK_KIND_EXCEPTION,
    WDK_KIND_HANG,
    WDK_KIND_IRQL,
    WDK_KIND_POOL,
    WDK_KIND_USERFAULT,
    NativeLibrary,
    drain_debug_output,
    ffi,
    runtime_stop_text,
)
from .symbolize import instruction_line

#: Hidden bytes after each buffer's guard zone: a write there is past the guard (0x1E).
MARGIN: Final = 4096
_MARGIN_FILL: Final = bytes([GUARD_FILL]) * MARGIN
#: How far before a user buffer a CopyFromUser address still counts as that buffer (an underrun).
_USER_SLACK: Final = 4096
#: Most segments a driver may report (DXGKQAITYPE_QUERYSEGMENT).
MAX_SEGMENTS: Final = 32
DXGKQAITYPE_DRIVERCAPS: Final = 1
DXGKQAITYPE_QUERYSEGMENT: Final = 2
HARNESSCAPS_SUPPORTSCONTEXTS: Final = 0x1
HARNESSCAPS_SUPPORTSALTERNATEVA: Final = 0x2
HARNESSCAPS_MAYREPORTALLOCATIONBUSY: Final = 0x4
HARNESSCAPS_GUARANTEEDCONTRACTDMA: Final = 0x8
#: DXGKRNL_INTERFACE.Version given to WDK-style drivers (d3dukmdt.h).
DXGKDDI_INTERFACE_VERSION_WIN7: Final = 0x2005

OP = DXGK_BUILDPAGINGBUFFER_OPERATION


def _new(ctype: str, init: Any = None) -> Any:
    """A new C object (typed Any: cdata attributes are the header's fields)."""
    return ffi().new(ctype, init)


def _cast(ctype: str, value: Any) -> Any:
    return ffi().cast(ctype, value)


def _status(value: int) -> int:
    """An NTSTATUS as the harness spells it (unsigned 32 bits)."""
    return value & 0xFFFFFFFF


def _address(cdata: Any) -> int:
    return int(ffi().cast("uintptr_t", cdata))


def _handle(value: int) -> Any:
    return ffi().cast("HANDLE", value & 0xFFFFFFFFFFFFFFFF)


def _first_difference(a: bytes | bytearray, b: bytes | bytearray) -> int:
    """Index of the first byte where two equal-length, unequal sequences differ."""
    lo, hi = 0, len(a)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid
    return lo


def _changed_span(new: bytes, old: bytes | bytearray, lo: int, hi: int) -> tuple[int, int] | None:
    """``(offset, length)`` from the first to the last changed byte in ``[lo, hi)``, or None."""
    if hi <= lo or new[lo:hi] == old[lo:hi]:
        return None
    first = lo + _first_difference(new[lo:hi], old[lo:hi])
    last = hi - 1 - _first_difference(new[lo:hi][::-1], old[lo:hi][::-1])
    return first, last - first + 1


class _Mapped:
    """One region's real-memory copy for the duration of a DDI call.

    ``view`` covers the copy and its hidden margin (``length + MARGIN`` bytes). The copy is
    a bytearray the C code gets a pointer into, so settling compares it with the region
    in one ``memcmp`` (a bytearray on the left of ``==`` compares any buffer that way; a
    memoryview on the left compares item by item, a hundred times slower).
    """

    __slots__ = ("base", "buf", "length", "region", "view")

    def __init__(self, region: Region) -> None:
        self.region = region
        data = region.data
        self.length = len(data)
        memory = data + _MARGIN_FILL
        self.buf = ffi().from_buffer("unsigned char[]", memory)
        self.view = memoryview(memory)
        self.base = _address(self.buf)

    def refresh(self) -> None:
        """Copy the region into the real memory again (after the harness changed it: TOCTOU)."""
        self.view[: self.length] = self.region.data

    def settle(self) -> KernelAccessViolation | None:
        """Judge and keep what the driver wrote; a write past the guard zone is returned."""
        region = self.region
        view = self.view
        old = region.data
        if old != view[: self.length]:
            body = bytes(view[: self.length])
            windows: tuple[tuple[int, int], ...]
            if isinstance(region, KernelBuffer) and region.writable:
                windows = ((0, region.write_lo), (region.write_hi, self.length))
                kind = ViolationKind.WRITE_OUTSIDE_WINDOW
            else:
                windows = ((0, self.length),)
                kind = ViolationKind.WRITE_READONLY
            for lo, hi in windows:
                span = _changed_span(body, old, max(lo, 0), min(hi, self.length))
                if span is not None:
                    region.violations.append(MemoryViolation(kind, region.name, *span))
            old[:] = body
        if bytes(view[self.length :]) == _MARGIN_FILL:
            return None
        raw = bytes(view)
        beyond = _changed_span(raw, raw[: self.length] + _MARGIN_FILL, self.length, len(raw))
        assert beyond is not None
        offset, length = beyond
        region.violations.append(
            MemoryViolation(ViolationKind.WRITE_OUTSIDE_WINDOW, region.name, offset, length)
        )
        size = getattr(region, "size", self.length)
        return KernelAccessViolation(
            f"write of {length} byte(s) at +{offset} past the end of buffer {region.name} "
            f"({size} bytes + {GUARD_BYTES} guard)",
            offset=offset,
            write=True,
        )


class _GuardedMapped(_Mapped):
    """A user buffer with an injected fault, in page-aligned real memory whose fault point
    starts an inaccessible page while a WDK-style driver runs (``protect``): a direct read
    reaching it faults for real, and the runtime raises STATUS_ACCESS_VIOLATION into the
    driver's ``__try``. The bytes before it are the buffer's; the harness reads the whole
    buffer only once the pages are accessible again."""

    __slots__ = ("guard", "memory", "runtime")

    def __init__(self, region: UserBuffer, runtime: Any) -> None:
        f = ffi()
        self.region = region
        self.length = len(region.data)
        self.runtime = runtime
        fault = region.fault_at or 0
        pad = -fault % mmap.PAGESIZE  # base + fault is a page boundary
        size = pad + self.length + MARGIN
        self.memory = mmap.mmap(-1, -(-size // mmap.PAGESIZE) * mmap.PAGESIZE)
        self.buf = f.from_buffer("unsigned char[]", self.memory)[pad:size]
        self.view = memoryview(self.memory)[pad:size]
        self.view[: self.length] = region.data
        self.view[self.length :] = _MARGIN_FILL
        self.base = _address(self.buf)
        self.guard = (self.base + fault, len(self.memory) - pad - fault)

    def protect(self, accessible: bool) -> None:
        start, length = self.guard
        if self.runtime.WddmWdkProtect(ffi().cast("void *", start), length, int(accessible)):
            raise HarnessError(f"mprotect of the guard page of {self.region.name} failed")

    def refresh(self) -> None:
        """Copy the readable part of the region again (the rest is behind the guard)."""
        fault = min(self.region.fault_at or 0, self.length)  # type: ignore[attr-defined]
        ffi().memmove(self.buf, bytes(self.region.data[:fault]), fault)


class _TracedMapped(_Mapped):
    """A user buffer given to a WDK-style driver on x86-64 Linux: page-aligned real memory
    that is inaccessible for the whole call (``WddmWdkTraceBegin``), so the runtime sees
    and logs every direct read of it (docs/native.md, "Direct reads of user memory").
    An injected fault point starts a page (``guard``): reads from there on are the
    access violation. While the call runs, the harness writes it only through the runtime
    (``refresh``: ``WddmWdkTracePoke``)."""

    __slots__ = ("end", "guard", "memory", "runtime", "start", "tracing")

    def __init__(self, region: UserBuffer, runtime: Any) -> None:
        f = ffi()
        self.region = region
        self.length = len(region.data)
        self.runtime = runtime
        fault = region.fault_at
        if fault is not None and not 0 <= fault < self.length:
            fault = None  # no read inside the buffer reaches it
        pad = -(fault or 0) % mmap.PAGESIZE  # base + fault is a page boundary
        size = pad + self.length + MARGIN
        self.memory = mmap.mmap(-1, -(-size // mmap.PAGESIZE) * mmap.PAGESIZE)
        whole = f.from_buffer("unsigned char[]", self.memory)
        self.buf = whole[pad:size]
        self.view = memoryview(self.memory)[pad:size]
        self.view[: self.length] = region.data
        self.view[self.length :] = _MARGIN_FILL
        self.base = _address(self.buf)
        self.start = _address(whole)
        self.end = self.start + len(self.memory)
        self.guard = self.end if fault is None else self.base + fault
        #: True while the pages are inaccessible (between TraceBegin and TraceEnd).
        self.tracing = False

    def refresh(self) -> None:
        """Copy the readable part of the region again (after a TOCTOU race fired)."""
        readable = min(self.guard - self.base, self.length)
        data = bytes(self.region.data[:readable])
        if not self.tracing:
            ffi().memmove(self.buf, data, readable)
        elif self.runtime.WddmWdkTracePoke(ffi().NULL, self.base, data, readable):
            raise HarnessError(f"cannot write the traced pages of {self.region.name}")


class _Trace:
    """The runtime's log of a WDK-style driver's direct reads of the user buffers of one
    call (WDDM_WDK_TRACE), replayed into each :class:`UserBuffer` in order: its read log
    (REN-COPYFIRST's double fetch) and its TOCTOU race see them as they see copies."""

    #: The most user buffers one trace covers (WDDM_WDK_TRACE.Ranges).
    RANGES: Final = 4

    def __init__(
        self, runtime: Any, c: Any, mapped: Sequence[_TracedMapped], library: Path
    ) -> None:
        if len(mapped) > self.RANGES:
            raise HarnessError(f"{len(mapped)} user buffers in one call: at most {self.RANGES}")
        self.runtime = runtime
        self.c = c
        self.mapped = list(mapped)
        self.consumed = 0
        c.RangeCount = len(mapped)
        c.Consumed = c.Written = c.Lost = 0
        locate = functools.partial(instruction_line, library)
        for r, m in zip(c.Ranges, mapped, strict=False):
            m.region.locate = locate  # type: ignore[attr-defined]
            r.Start, r.End, r.Guard = m.start, m.end, m.guard
            r.ToctouFired = int(m.region.toctou_fired)  # type: ignore[attr-defined]
            r.ToctouLength = 0
            race = m.region.pending_toctou  # type: ignore[attr-defined]
            if race is not None:
                offset, raced = race
                if len(raced) > len(r.ToctouBytes):
                    raise HarnessError(
                        f"TOCTOU race of {len(raced)} bytes in {m.region.name}: direct reads "
                        f"race at most {len(r.ToctouBytes)}"
                    )
                r.ToctouAddress = m.base + offset
                ffi().memmove(r.ToctouBytes, raced, len(raced))
                r.ToctouLength = len(raced)

    def begin(self) -> None:
        if self.runtime.WddmWdkTraceBegin(self.c):
            raise HarnessError("cannot make the user buffers of the call inaccessible (mprotect)")
        for m in self.mapped:
            m.tracing = True

    def end(self) -> None:
        for m in self.mapped:
            m.tracing = False
        if self.runtime.WddmWdkTraceEnd(self.c):
            raise HarnessError("cannot make the user buffers of the call accessible again")

    def drain(self) -> None:
        """Replay the reads logged since the last drain into their UserBuffers."""
        c = self.c
        written = int(c.Written)
        for i in range(self.consumed, written):
            entry = c.Reads[i]
            mapped = self.mapped[int(entry.Range)]
            region = mapped.region
            assert isinstance(region, UserBuffer)
            offset = int(entry.Address) - mapped.base
            # An instruction not decoded read at least the byte it faulted on; the part of a
            # read past the fault point was the access violation, not a read.
            end = min(offset + (int(entry.Length) or 1), mapped.guard - mapped.base)
            if end <= offset:
                continue
            with contextlib.suppress(UserAccessFault):  # outside the buffer: read() recorded it
                region.read(offset, end - offset)
                region.sites[len(region.reads) - 1] = int(entry.Instruction)
        self.consumed = written
        c.Consumed = written
        self.disarm()
        if int(c.Lost):
            raise HarnessError(
                f"the driver made more than {written} separate direct reads of user memory in "
                "one call: the runtime's read log is full"
            )

    def disarm(self) -> None:
        """A race the harness fired (replaying a copy's read, or on RtlCopyMemory) is no
        longer the runtime's to fire: the memory gets the changed bytes now."""
        for r, m in zip(self.c.Ranges, self.mapped, strict=False):
            if m.region.toctou_fired and not r.ToctouFired:  # type: ignore[attr-defined]
                r.ToctouLength = 0
                r.ToctouFired = 1
                m.refresh()


class _Call:
    """The marshalling state of one DDI call: mapped regions and objects kept alive."""

    __slots__ = ("error", "keep", "mapped", "runtime", "trace")

    def __init__(self, runtime: Any = None) -> None:
        self.mapped: dict[int, _Mapped] = {}
        self.keep: list[Any] = []
        #: A harness fault raised inside a callback, re-raised when the call returns.
        self.error: BaseException | None = None
        #: A WDK-style driver's library: user buffers are traced (x86-64 Linux) or, where
        #: that is not supported, those with a fault get a real guard page.
        self.runtime = runtime
        #: The direct-read log of this call's user buffers, while the driver runs.
        self.trace: _Trace | None = None

    def region(self, region: Region) -> _Mapped:
        mapped = self.mapped.get(id(region))
        if mapped is None:
            if (
                self.runtime is not None
                and isinstance(region, UserBuffer)
                and _tracing_supported(self.runtime)
            ):
                mapped = _TracedMapped(region, self.runtime)
            elif (
                self.runtime is not None
                and isinstance(region, UserBuffer)
                and region.fault_at is not None
                and 0 <= region.fault_at < len(region.data)
            ):
                mapped = _GuardedMapped(region, self.runtime)
            else:
                mapped = _Mapped(region)
            self.mapped[id(region)] = mapped
        return mapped

    def guarded(self) -> list[_GuardedMapped]:
        return [m for m in self.mapped.values() if isinstance(m, _GuardedMapped)]

    def traced(self) -> list[_TracedMapped]:
        return [m for m in self.mapped.values() if isinstance(m, _TracedMapped)]

    def pointer(self, p: Ptr | None) -> Any:
        f = ffi()
        if p is None:
            return f.NULL
        return f.cast("void *", self.region(p.region).base + p.offset)

    def address(self, p: Ptr | None) -> int:
        """The address ``p`` stands for in this call's real memory (0 for None)."""
        if p is None:
            return 0
        return (self.region(p.region).base + p.offset) & _MASK64

    def back(self, address: int, original: Ptr | None) -> Ptr | None:
        """The Ptr an address the driver left in a pointer field stands for."""
        if original is not None:
            base = self.region(original.region).base
            return Ptr(original.region, address - base, original.stride)
        if address == 0:
            return None
        for mapped in self.mapped.values():
            if mapped.base <= address <= mapped.base + mapped.length:
                return Ptr(mapped.region, address - mapped.base)
        return None

    def user_at(self, address: int) -> _Mapped | None:
        for mapped in self.mapped.values():
            if (
                isinstance(mapped.region, UserBuffer)
                and mapped.base - _USER_SLACK <= address < mapped.base + mapped.length + MARGIN
            ):
                return mapped
        return None

    def settle(self) -> None:
        """After the call: judge every buffer, then raise what the driver broke past the guard."""
        past_guard = [mapped.settle() for mapped in self.mapped.values()]
        if self.error is not None:
            raise self.error
        for violation in past_guard:
            if violation is not None:
                raise violation


# --------------------------------------------------------------------------- flat structures


@cache
def _fields(ctype: str) -> tuple[tuple[str, str, int, int], ...]:
    """``(name, how, mask, offset)`` of a structure's fields, offsets in bytes.

    ``how`` is pointer, quad (PHYSICAL_ADDRESS), value (a flags union), int (an unsigned
    integer or enum of ``mask`` bits), sint (a signed one), or nested (a member structure,
    marshalled by hand).
    """
    f = ffi()
    out = []
    for name, field in f.typeof(ctype).fields:
        kind = field.type.kind
        mask = (1 << (8 * f.sizeof(field.type))) - 1
        if kind == "pointer":
            how = "pointer"
        elif kind in ("struct", "union"):
            names = {n for n, _ in field.type.fields}
            how = "quad" if "QuadPart" in names else "value" if "Value" in names else "nested"
        elif kind in ("primitive", "enum") and field.bitsize < 0:
            how = "sint" if int(f.cast(field.type, -1)) < 0 else "int"
        else:
            what = (
                "a bit-field"
                if field.bitsize >= 0
                else f"an {kind}"
                if kind == "array"
                else f"a {kind} member"
            )
            raise HarnessError(f"{ctype}.{name}: {what} is not marshalled")
        out.append((name, how, mask, field.offset))
    return tuple(out)


_MASK64: Final = (1 << 64) - 1
_CODES: Final = {1: "B", 2: "H", 4: "I", 8: "Q"}


@dataclass(frozen=True)
class _Layout:
    """Where the fields a Python argument block shares with its C structure lie.

    ``packer`` covers the whole structure (``sizeof``), the fields in ``fields`` order
    and zero bytes elsewhere; ``fields`` are ``(name, how, mask)`` as :func:`_fields`
    gives them, nested members left out; ``values`` reads them from the Python block
    (a tuple); ``pointers`` are the indices of the pointer fields.
    """

    packer: struct.Struct
    fields: tuple[tuple[str, str, int], ...]
    values: Callable[[Any], tuple[Any, ...]]
    pointers: tuple[int, ...]


_LAYOUTS: dict[tuple[str, type], _Layout] = {}


def _layout(ctype: str, obj: Any) -> _Layout:
    """The layout of ``ctype`` for ``obj``'s fields (cached per class for dataclasses)."""
    key = (ctype, type(obj))
    layout = _LAYOUTS.get(key)
    if layout is not None:
        return layout
    fmt, at, chosen = ["<"], 0, []
    for name, how, mask, offset in _fields(ctype):
        if how == "nested" or not hasattr(obj, name):
            continue
        size = (mask.bit_length() + 7) // 8
        if offset < at:
            raise HarnessError(f"{ctype}.{name} overlaps a member marshalled before it")
        code = _CODES[size]
        fmt.append(f"{offset - at}x{code.lower() if how == 'sint' else code}")
        at = offset + size
        chosen.append((name, how, mask))
    fmt.append(f"{ffi().sizeof(ctype) - at}x")
    names = [name for name, _, _ in chosen]
    values = operator.attrgetter(*names) if len(names) > 1 else _attributes(names)
    pointers = tuple(i for i, (_, how, _) in enumerate(chosen) if how == "pointer")
    layout = _Layout(struct.Struct("".join(fmt)), tuple(chosen), values, pointers)
    if dataclasses.is_dataclass(obj):
        _LAYOUTS[key] = layout
    return layout


def _attributes(names: Sequence[str]) -> Callable[[Any], tuple[Any, ...]]:
    """What ``operator.attrgetter(*names)`` gives for two names or more, for any number."""
    return lambda obj: tuple(getattr(obj, name) for name in names)


def _put(ctype: str, obj: Any, call: _Call) -> tuple[Any, bytearray]:
    """A new C structure holding the fields of a Python argument block.

    Returns ``(pointer, memory)``: a ``ctype *`` and the bytearray it points into. Fields
    the block lacks and nested members are zero (set those through the pointer). An
    integer the C member cannot hold is cut to the member's bits, as a C cast does.
    """
    layout = _layout(ctype, obj)
    values = list(layout.values(obj))
    for i in layout.pointers:
        value = values[i]
        values[i] = value & _MASK64 if isinstance(value, int) else call.address(value)
    try:
        packed = layout.packer.pack(*values)
    except struct.error:
        packed = layout.packer.pack(*map(_cut, layout.fields, values))
    memory = bytearray(packed)
    return ffi().from_buffer(f"{ctype} *", memory), memory


def _cut(field: tuple[str, str, int], value: Any) -> int:
    """``value`` as the member ``field`` holds it (its low bits; signed members signed)."""
    _, how, mask = field
    bits = int(value) & mask
    return bits - mask - 1 if how == "sint" and bits > mask >> 1 else bits


def _get(memory: bytearray, ctype: str, obj: Any, call: _Call) -> None:
    """Copy the fields the driver changed back into the Python argument block (a pointer
    field always becomes a new Ptr into its region)."""
    layout = _layout(ctype, obj)
    for (name, how, _), value, original in zip(
        layout.fields, layout.packer.unpack_from(memory), layout.values(obj), strict=True
    ):
        if value == original:  # never for a Ptr
            continue
        if how == "pointer":
            setattr(obj, name, value if isinstance(original, int) else call.back(value, original))
        else:
            setattr(obj, name, value if how == "quad" else _typed(original, value))


def _typed(original: Any, value: int) -> Any:
    """``value`` in the type of ``original`` (an IntFlag or IntEnum stays one while it can)."""
    cls = type(original)
    if cls is int or cls is bool:
        return value
    try:
        return cls(value)
    except (ValueError, TypeError):
        return value


# --------------------------------------------------------------------------- the driver class

#: What may leave a DDI method: the driver's own faults, which the kernel judges, and the
#: findings of a WDK-style driver's runtime (bug checks, leaks).
_DRIVER_FAULTS: Final = (
    KernelAccessViolation,
    UserAccessFault,
    DdiTimeout,
    HarnessError,
    DriverFailure,
)


# --------------------------------------------------------------------------- WDK-style drivers

#: Scope numbers: each call of a WDK-style driver gets one, recorded on the pool it allocates.
_SCOPES = itertools.count(1)
_ALL_SCOPES: Final = (1 << 64) - 1
#: The rule a runtime bug check names, by WDDM_WDK_CALL.Kind (docs/INTERPRETING.md):
#: IRQL and spin-lock misuse is REN-IRQL, an unhandled fault on user memory REN-USERFAULT,
#: any other crash (a bad pool call, a failed assertion, an unhandled exception, the
#: driver's own KeBugCheckEx) ALL-NORAISE, a wait or deadlock that can never end ALL-BOUNDED
#: (a wait with no timeout is the TDR it would be, raised as :class:`Tdr`).
_KIND_RULE: Final = {
    WDK_KIND_POOL: "ALL-NORAISE",
    WDK_KIND_IRQL: "REN-IRQL",
    WDK_KIND_ASSERT: "ALL-NORAISE",
    WDK_KIND_USERFAULT: "REN-USERFAULT",
    WDK_KIND_EXCEPTION: "ALL-NORAISE",
    WDK_KIND_DRIVER: "ALL-NORAISE",
    WDK_KIND_HANG: "ALL-BOUNDED",
}
#: How many of its last calls an adapter remembers the DDI of (named by a pool leak).
SCOPE_NAMES: Final = 4096
#: Most debug-output lines an adapter keeps.
DEBUG_OUTPUT_LINES: Final = 2000
#: Pool a WDK-style driver still held when an adapter was removed by the garbage
#: collector (no one to report to): ``(library name, blocks)``, newest last.
LEAKED_AT_REMOVE: deque[tuple[str, tuple[PoolBlock, ...]]] = deque(maxlen=64)


@dataclass(frozen=True)
class PoolBlock:
    """A block of pool a WDK-style driver allocated and has not freed."""

    address: int
    size: int  # bytes
    tag: int  # the ULONG the driver passed ('Wdka' in C is 0x5764_6B61 read little-endian)
    pool_type: int  # POOL_TYPE: 0 nonpaged, 1 paged, 512 nonpaged NX
    scope: int  # the DDI call that allocated it

    @property
    def tag_text(self) -> str:
        """The tag as the debugger's !poolused shows it ('Wdka')."""
        raw = self.tag.to_bytes(4, "little")
        return "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in raw)

    def __str__(self) -> str:
        return f"tag '{self.tag_text}' {self.size} bytes at 0x{self.address:X}"


def pool_blocks(library: NativeLibrary, scopes: Iterable[int] | None = None) -> list[PoolBlock]:
    """The pool blocks of ``library`` still allocated, all or those of ``scopes``."""
    f = ffi()
    wanted = None if scopes is None else set(scopes)
    count = int(library.lib.WddmWdkPoolBlocks(_ALL_SCOPES, f.NULL, 0))
    array = _new("WDDM_WDK_POOLBLOCK[]", max(count, 1) + 16)
    count = min(int(library.lib.WddmWdkPoolBlocks(_ALL_SCOPES, array, len(array))), len(array))
    return [
        PoolBlock(int(b.Address), int(b.Size), int(b.Tag), int(b.PoolType), int(b.Scope))
        for b in array[0:count]
        if wanted is None or int(b.Scope) in wanted
    ]


def _leak_text(blocks: Sequence[PoolBlock]) -> str:
    shown = "; ".join(str(b) for b in blocks[:4])
    more = f" (+{len(blocks) - 4} more)" if len(blocks) > 4 else ""
    total = sum(b.size for b in blocks)
    return f"{len(blocks)} pool block(s), {total} bytes: {shown}{more}"


def direct_reads_note() -> str:
    """The report header's line on a native driver's direct reads of user memory."""
    if sys.platform.startswith("linux") and platform.machine() in ("x86_64", "AMD64"):
        return (
            "direct reads of user memory (WDK-style driver): traced, the double-fetch and "
            "TOCTOU probes see them"
        )
    return (
        f"direct reads of user memory (WDK-style driver): not traced on {sys.platform} "
        f"{platform.machine()} (x86-64 Linux only), the double-fetch and TOCTOU probes see "
        "RtlCopyMemory only"
    )


@functools.cache
def _tracing_supported(runtime: Any) -> bool:
    """True where the runtime traces direct reads of user memory (x86-64 Linux)."""
    return bool(runtime.WddmWdkTraceSupported())


def _wdk_invoke(
    library: NativeLibrary,
    name: str,
    args: tuple[Any, ...],
    adapter: NativeMiniport | None,
    scopes: set[int],
) -> int:
    """Run the registered DDI ``name`` through the runtime; raise the bug check that stopped it."""
    assert library.registered is not None
    f = ffi()
    c = _new("WDDM_WDK_CALL *")
    c.Function = f.cast("void *", library.registered[name])
    c.ArgumentCount = len(args)
    for i, value in enumerate(args):
        c.Arguments[i] = f.cast("void *", value)
    scope = next(_SCOPES)
    scopes.add(scope)
    c.Scope = scope
    c.CheckReturn = 1
    call = None
    if adapter is not None:
        adapter._last_scope = scope
        adapter._scope_ddi[scope] = name
        if len(adapter._scope_ddi) > SCOPE_NAMES:
            del adapter._scope_ddi[next(iter(adapter._scope_ddi))]
        c.CopyFromUser = f.cast("void *", adapter._callback)
        c.HandleQuery = f.cast("void *", adapter._handle_query)
        call = adapter._call
    if call is not None:
        ranges = [m for m in call.mapped.values() if isinstance(m.region, UserBuffer)][:8]
        for i, mapped in enumerate(ranges):
            c.UserRanges[i][0] = max(mapped.base - _USER_SLACK, 0)
            c.UserRanges[i][1] = mapped.base + mapped.length + MARGIN
        c.UserRangeCount = len(ranges)
    guarded = call.guarded() if call is not None else []
    traced = call.traced() if call is not None else []
    if call is not None and adapter is not None and traced:
        call.trace = _Trace(library.lib, adapter._trace_log(), traced, library.path)
    trace = call.trace if call is not None else None
    for mapped in guarded:
        mapped.protect(False)
    if trace is not None:
        trace.begin()
    try:
        stopped = int(library.lib.WddmWdkInvoke(c))
    finally:
        if trace is not None:
            trace.end()
        for mapped in guarded:
            mapped.protect(True)
    if trace is not None:
        assert call is not None
        call.trace = None
        trace.drain()
    printed = drain_debug_output(library.lib)
    if adapter is not None:
        adapter.debug_output.extend(printed)
        error, adapter._handle_error = adapter._handle_error, None
        if error is not None:
            raise HarnessError(f"the kernel's handle callbacks, in {name}: {error!r}") from error
    if stopped:
        message = runtime_stop_text(c, library.path)
        if printed:
            message += " (debug output before it: " + " | ".join(printed[-3:]) + ")"
        code = int(c.BugCheckCode)
        raise (Tdr if code == VIDEO_TDR_FAILURE else BugCheck)(
            code,
            tuple(int(p) for p in c.BugCheckParameters),  # type: ignore[arg-type]
            _KIND_RULE.get(int(c.Kind), "ALL-NORAISE"),
            name,
            message,
        )
    return int(c.Status)


def _wdk_remove(library: NativeLibrary, context: Any, scopes: set[int]) -> tuple[PoolBlock, ...]:
    """DxgkDdiRemoveDevice through the runtime; the adapter's pool still allocated after it."""
    _wdk_invoke(library, "DxgkDdiRemoveDevice", (context,), None, scopes)
    return tuple(pool_blocks(library, scopes))


def _wdk_finalize(library: NativeLibrary, context: Any, scopes: set[int]) -> None:
    """The garbage collector's RemoveDevice: what it finds is kept in LEAKED_AT_REMOVE."""
    try:
        leaked = _wdk_remove(library, context, scopes)
    except BugCheck:
        return
    if leaked:
        LEAKED_AT_REMOVE.append((library.name, leaked))


def _harness_faults(method: Callable[..., Any]) -> Callable[..., Any]:
    """Report a failure of the adapter itself (marshalling, a callback) as the harness's fault."""

    @functools.wraps(method)
    def wrapper(self: NativeMiniport, *args: Any) -> Any:
        try:
            return method(self, *args)
        except _DRIVER_FAULTS:
            raise
        except Exception as exc:
            raise HarnessError(
                f"native adapter, {method.__name__}: {type(exc).__name__}: {exc}"
            ) from exc

    return wrapper


class NativeMiniport:
    """A miniport implemented by a native library (see :func:`native_driver_class`)."""

    LIBRARY: ClassVar[NativeLibrary]
    COMMAND_ENCODER: ClassVar[str] = DEFAULT_COMMAND_ENCODER
    GPU_MODEL: ClassVar[str] = DEFAULT_GPU_MODEL

    #: The DdiCaller lets this driver's BugCheck and DriverViolation through: they are
    #: the runtime's findings (the kernel's side), not exceptions the driver raised.
    KERNEL_FINDINGS: ClassVar[bool] = True

    def __init__(self) -> None:
        f = ffi()
        library = self.LIBRARY
        self._lib = library.lib
        self._call: _Call | None = None
        # Through a weak reference: a bound method would keep this object alive in a cycle,
        # and DxgkDdiRemoveDevice would wait for the garbage collector.
        me = weakref.ref(self)

        def copy_from_user(handle: Any, destination: Any, source: Any, length: int) -> int:
            adapter = me()
            return 0 if adapter is None else adapter._copy_from_user(destination, source, length)

        self._callback: Any = f.callback(
            "BOOLEAN(HANDLE, PVOID, const void *, SIZE_T)", copy_from_user
        )

        def handle_query(op: int, handle: int, argument: int, flags: int) -> int:
            adapter = me()
            return 0 if adapter is None else adapter._query_handles(op, handle, argument, flags)

        self._handle_query: Any = f.callback(
            "uint64_t(uint32_t, uint32_t, uint32_t, uint32_t)", handle_query
        )
        #: The kernel's handle tables (attach_kernel_handles), for the handle callbacks.
        self._kernel_handles: HandleTable | None = None
        self._handle_error: BaseException | None = None
        self._interface: Any = None
        self._trace_c: Any = None
        #: What a WDK-style driver printed (DbgPrint, DbgPrintEx, KdPrint), oldest first.
        self.debug_output: deque[str] = deque(library.entry_output, maxlen=DEBUG_OUTPUT_LINES)
        #: WDK-style drivers: the scope of every call made on this adapter (its pool),
        #: the scope of the last call, and who owns the pool of each call.
        self._scopes: set[int] = set()
        self._last_scope = 0
        self._scope_owners: dict[int, set[int | tuple[str, int]]] = {}
        #: The DDI of each of the last SCOPE_NAMES calls (for what a leak message names).
        self._scope_ddi: dict[int, str] = {}
        self._allocation_scope: dict[int, int] = {}
        self._resource_scopes: dict[int, list[int]] = {}
        self._device_scope: dict[int, int] = {}
        self._context_scope: dict[int, int] = {}
        self._ddi: Any
        if library.registered is None:
            self._ddi = self._lib
        else:
            self._ddi = types.SimpleNamespace(
                **{name: self._wdk_entry(name) for name in library.registered}
            )
        context = _new("PVOID *")
        status = _status(self._ddi.DxgkDdiAddDevice(f.NULL, context))
        if status != 0:
            raise RuntimeError(f"DxgkDdiAddDevice returned 0x{status:08X}")
        self._context = context[0]
        self._finalizer: weakref.finalize[Any, Any]
        if library.registered is None:
            self._finalizer = weakref.finalize(self, self._ddi.DxgkDdiRemoveDevice, self._context)
        else:
            context, scopes = self._context, self._scopes

            def remove() -> None:  # holds no reference to the adapter
                _wdk_finalize(library, context, scopes)

            self._finalizer = weakref.finalize(self, remove)

    def _trace_log(self) -> Any:
        """This adapter's WDDM_WDK_TRACE (200 KB, allocated once: one call runs at a time)."""
        if self._trace_c is None:
            self._trace_c = _new("WDDM_WDK_TRACE *")
        return self._trace_c

    def _wdk_entry(self, name: str) -> Callable[..., int]:
        library, scopes, me = self.LIBRARY, self._scopes, weakref.ref(self)

        def entry(*args: Any) -> int:
            return _wdk_invoke(library, name, args, me(), scopes)

        return entry

    # ------------------------------------------------------------------ the kernel's handles

    def attach_kernel_handles(self, table: HandleTable) -> None:
        """The kernel's handle tables: DxgkCbGetHandleData, DxgkCbGetHandleParent and
        DxgkCbEnumHandleChildren answer from them, and DxgkDdiOpenAllocation of a WDK-style
        driver gets the kernel's handle in ``DXGK_OPENALLOCATIONINFO.hAllocation``."""
        self._kernel_handles = table

    def _query_handles(self, op: int, handle: int, argument: int, flags: int) -> int:
        """WDDM_WDK_CALL.HandleQuery: what the kernel answers (0 = NULL: a bad handle)."""
        table = self._kernel_handles
        try:
            if table is None:
                return 0
            if op == WDK_HANDLE_DATA:
                return table.handle_data(handle, argument, bool(flags & 1)) % (1 << 64)
            if op == WDK_HANDLE_PARENT:
                return table.parent(handle)
            if op == WDK_HANDLE_CHILD:
                return table.child(handle, argument)
            return 0
        except BaseException as exc:  # a harness fault: re-raised once the driver returns
            self._handle_error = exc
            return 0

    # ------------------------------------------------------------------ WDK pool tracking

    @property
    def wdk(self) -> bool:
        """True for a WDK-style driver (DriverEntry + DxgkInitialize, the runtime's checks)."""
        return self.LIBRARY.registered is not None

    def pool_blocks(self) -> list[PoolBlock]:
        """The pool this adapter's calls allocated and the driver has not freed (WDK-style only)."""
        return pool_blocks(self.LIBRARY, self._scopes) if self.wdk else []

    def pool_block_ddi(self, block: PoolBlock) -> str:
        """The DDI whose call allocated ``block`` ("a call" once it is too old to remember)."""
        return self._scope_ddi.get(block.scope, "an earlier call")

    def remove_device(self) -> None:
        """DxgkDdiRemoveDevice now (else the garbage collector calls it).

        For a WDK-style driver, pool any call on this adapter allocated and RemoveDevice
        left allocated is a leak: DriverViolation ALC-ADAPTER naming tag and size.
        """
        if not self._finalizer.alive:
            return
        if not self.wdk:
            self._finalizer()
            return
        self._finalizer.detach()
        leaked = _wdk_remove(self.LIBRARY, self._context, self._scopes)
        if leaked:
            raise DriverViolation(
                "ALC-ADAPTER",
                "DxgkDdiRemoveDevice",
                f"the adapter is removed and the driver still holds {_leak_text(leaked)}",
                {"leaked": [str(b) for b in leaked]},
            )

    def _leaks(self, ddi: str, scopes: Iterable[int], what: str) -> None:
        """Raise a leak if pool of ``scopes`` is still allocated: ALC-ATOMIC for a failed
        batch, ALC-ADAPTER for a destroy path (INTERPRETING.md §5, "Leaks")."""
        leaked = pool_blocks(self.LIBRARY, scopes)
        if leaked:
            raise DriverViolation(
                "ALC-ATOMIC" if ddi == DDI_METHODS["create_allocation"] else "ALC-ADAPTER",
                ddi,
                f"{what} and the driver still holds {_leak_text(leaked)} allocated for it",
                {"leaked": [str(b) for b in leaked]},
            )

    # ------------------------------------------------------------------ calling C

    def _invoke(self, fn: Callable[..., int], *args: Any, call: _Call | None = None) -> int:
        """Run one C entry point; under the kernel's watchdog it runs on a helper thread.

        The watchdog's SIGALRM only interrupts Python code. When an interval timer is armed
        (the kernel's WatchdogInvoker), the C function runs on a daemon thread while this
        thread waits, so a hung DDI still raises DdiTimeout here (a TDR); the hung thread is
        abandoned. Without a timer (fuzzing: libFuzzer's -timeout guards the process) the
        call is direct.
        """
        self._call = call
        try:
            result = fn(*args) if not armed() else _on_helper_thread(fn, args)
        finally:
            self._call = None
        if call is not None:
            call.settle()
        return _status(result)

    def _copy_from_user(self, destination: Any, source: Any, length: int) -> int:
        """WddmCbCopyFromUser: the __try/__except copy from user memory (FALSE on a fault)."""
        call = self._call
        if call is None:
            return 0
        try:
            if call.trace is not None:
                call.trace.drain()  # the direct reads before this copy come first
            mapped = call.user_at(_address(source))
            if mapped is None:
                return 0
            region = mapped.region
            assert isinstance(region, UserBuffer)
            fired = region.toctou_fired
            data = region.read(_address(source) - mapped.base, length)
            ffi().memmove(destination, data, len(data))
            if region.toctou_fired and not fired:
                if call.trace is not None:
                    call.trace.disarm()
                else:
                    mapped.refresh()
            return 1
        except UserAccessFault:
            return 0
        except BaseException as exc:  # a harness fault: re-raised once the driver returns
            call.error = exc
            return 0

    # ------------------------------------------------------------------ adapter

    @_harness_faults
    def start_device(self, info: DXGK_START_INFO) -> int:
        f = ffi()
        if self.wdk:
            return self._start_wdk(info)
        start = _new(
            "DXGK_START_INFO *",
            {
                "MemorySegmentSize": info.MemorySegmentSize,
                "ApertureSegmentSize": info.ApertureSegmentSize,
            },
        )
        self._interface = _new(
            "DXGKRNL_INTERFACE *",
            {
                "Size": f.sizeof("DXGKRNL_INTERFACE"),
                "Version": ABI_VERSION,
                "DeviceHandle": self._context,
                "WddmCbCopyFromUser": self._callback,
            },
        )
        sources, children = _new("ULONG *"), _new("ULONG *")
        return self._invoke(
            self._ddi.DxgkDdiStartDevice, self._context, start, self._interface, sources, children
        )

    def _start_wdk(self, info: DXGK_START_INFO) -> int:
        """StartDevice with dispmprt.h's DXGK_START_INFO and DXGKRNL_INTERFACE (no callbacks modelled)."""
        f = ffi()
        start = _new(
            "WDDM_WDK_START_INFO *",
            {
                "MemorySegmentSize": info.MemorySegmentSize,
                "ApertureSegmentSize": info.ApertureSegmentSize,
            },
        )
        self._interface = _new(
            "WDDM_WDK_DXGKRNL_INTERFACE *",
            {
                "Size": f.sizeof("WDDM_WDK_DXGKRNL_INTERFACE"),
                "Version": DXGKDDI_INTERFACE_VERSION_WIN7,
                "DeviceHandle": self._context,
            },
        )
        self._lib.WddmWdkKernelInterface(self._interface)
        sources, children = _new("ULONG *"), _new("ULONG *")
        return self._invoke(
            self._ddi.DxgkDdiStartDevice, self._context, start, self._interface, sources, children
        )

    def _query(self, kind: int, output: Any) -> int:
        f = ffi()
        query = _new(
            "DXGKARG_QUERYADAPTERINFO *",
            {
                "Type": kind,
                "pOutputData": output,
                "OutputDataSize": f.sizeof(f.typeof(output).item),
            },
        )
        return self._invoke(self._ddi.DxgkDdiQueryAdapterInfo, self._context, query)

    @_harness_faults
    def query_segments(self) -> list[DXGK_SEGMENTDESCRIPTOR] | int:
        out = _new("DXGK_QUERYSEGMENTOUT *")
        status = self._query(DXGKQAITYPE_QUERYSEGMENT, out)
        if status != 0:
            return status  # not a list: the kernel names what the driver returned
        count = min(int(out.NbSegment), MAX_SEGMENTS)
        descriptors = _new("DXGK_SEGMENTDESCRIPTOR[]", max(count, 1))
        out = _new(
            "DXGK_QUERYSEGMENTOUT *", {"NbSegment": count, "pSegmentDescriptor": descriptors}
        )
        status = self._query(DXGKQAITYPE_QUERYSEGMENT, out)
        if status != 0:
            return status
        return [
            DXGK_SEGMENTDESCRIPTOR(
                int(d.BaseAddress.QuadPart), int(d.Size), DXGK_SEGMENTFLAGS(int(d.Flags.Value))
            )
            for d in descriptors[0 : min(int(out.NbSegment), count)]
        ]

    @_harness_faults
    def query_driver_caps(self) -> DXGK_DRIVERCAPS | int:
        out = _new("DXGK_DRIVERCAPS *")
        status = self._query(DXGKQAITYPE_DRIVERCAPS, out)
        if status != 0:
            return status
        bits = int(out.HarnessCaps)
        return DXGK_DRIVERCAPS(
            DmaBufferPrivateDataSize=int(out.DmaBufferPrivateDataSize),
            SupportsContexts=bool(bits & HARNESSCAPS_SUPPORTSCONTEXTS),
            SupportsAlternateVA=bool(bits & HARNESSCAPS_SUPPORTSALTERNATEVA),
            MayReportAllocationBusy=bool(bits & HARNESSCAPS_MAYREPORTALLOCATIONBUSY),
            GuaranteedContractDma=bool(bits & HARNESSCAPS_GUARANTEEDCONTRACTDMA),
        )

    # ------------------------------------------------------------------ devices, contexts

    @_harness_faults
    def create_device(self, args: DXGKARG_CREATEDEVICE) -> int:
        info = _new("DXGK_DEVICEINFO *")
        c = _new("DXGKARG_CREATEDEVICE *", {"Flags": args.Flags & 0xFFFFFFFF, "pInfo": info})
        status = self._invoke(self._ddi.DxgkDdiCreateDevice, self._context, c)
        args.hDevice = _address(c.hDevice)
        if self.wdk and status == 0:
            self._device_scope[args.hDevice] = self._last_scope
        return status

    @_harness_faults
    def destroy_device(self, hDevice: int) -> int:
        status = self._invoke(self._ddi.DxgkDdiDestroyDevice, _handle(hDevice))
        scope = self._device_scope.pop(hDevice, None)
        if scope is not None:
            self._leaks(
                DDI_METHODS["destroy_device"], [scope], f"device 0x{hDevice:X} is destroyed"
            )
        return status

    @_harness_faults
    def create_context(self, args: DXGKARG_CREATECONTEXT) -> int:
        c = _new(
            "DXGKARG_CREATECONTEXT *",
            {
                "NodeOrdinal": args.NodeOrdinal,
                "EngineAffinity": args.EngineAffinity,
                "Flags": args.Flags,
            },
        )
        status = self._invoke(self._ddi.DxgkDdiCreateContext, _handle(args.hDevice), c)
        args.hContext = _address(c.hContext)
        if self.wdk and status == 0:
            self._context_scope[args.hContext] = self._last_scope
        return status

    @_harness_faults
    def destroy_context(self, hContext: int) -> int:
        status = self._invoke(self._ddi.DxgkDdiDestroyContext, _handle(hContext))
        scope = self._context_scope.pop(hContext, None)
        if scope is not None:
            self._leaks(
                DDI_METHODS["destroy_context"], [scope], f"context 0x{hContext:X} is destroyed"
            )
        return status

    # ------------------------------------------------------------------ allocations

    @_harness_faults
    def create_allocation(self, args: DXGKARG_CREATEALLOCATION) -> int:
        call = _Call()
        infos = args.pAllocationInfo
        array = _new("DXGK_ALLOCATIONINFO[]", max(len(infos), args.NumAllocations, 1))
        for c, info in zip(array, infos, strict=False):
            c.pPrivateDriverData = call.pointer(info.pPrivateDriverData)
            c.PrivateDriverDataSize = info.PrivateDriverDataSize & 0xFFFFFFFF
        c_args = _new(
            "DXGKARG_CREATEALLOCATION *",
            {
                "pPrivateDriverData": call.pointer(args.pPrivateDriverData),
                "PrivateDriverDataSize": args.PrivateDriverDataSize & 0xFFFFFFFF,
                "NumAllocations": args.NumAllocations & 0xFFFFFFFF,
                "pAllocationInfo": array,
                "hResource": _handle(args.hResource),
                "Flags": int(args.Flags),
            },
        )
        status = self._invoke(self._ddi.DxgkDdiCreateAllocation, self._context, c_args, call=call)
        args.hResource = _address(c_args.hResource)
        if self.wdk:
            self._own_batch(status, array, min(len(infos), args.NumAllocations), args)
        for c, info in zip(array, infos, strict=False):
            info.Alignment = int(c.Alignment)
            info.Size = int(c.Size)
            info.PitchAlignedSize = int(c.PitchAlignedSize)
            info.HintedBank = int(c.HintedBank.Value)
            preferred = int(c.PreferredSegment.Value)
            info.PreferredSegment = []
            for i in range(5):
                segment = (preferred >> (6 * i)) & 0x1F
                if not segment:
                    break
                info.PreferredSegment.append(segment)
            info.SupportedReadSegmentSet = int(c.SupportedReadSegmentSet)
            info.SupportedWriteSegmentSet = int(c.SupportedWriteSegmentSet)
            info.EvictionSegmentSet = int(c.EvictionSegmentSet)
            info.MaximumRenamingListLength = int(c.MaximumRenamingListLength)
            info.hAllocation = _address(c.hAllocation)
            info.Flags = DXGK_ALLOCATIONINFOFLAGS(int(c.Flags.Value))
            info.AllocationPriority = int(c.AllocationPriority)
        return status

    def _own_batch(
        self, status: int, array: Any, count: int, args: DXGKARG_CREATEALLOCATION
    ) -> None:
        """Record who owns the pool a CreateAllocation call kept; a failed batch keeps none."""
        scope = self._last_scope
        if status != 0:
            self._leaks(
                DDI_METHODS["create_allocation"],
                [scope],
                f"the batch of {args.NumAllocations} allocation(s) failed with {status_name(status)}",
            )
            return
        owners: set[int | tuple[str, int]] = set()
        for c in array[0:count]:
            handle = _address(c.hAllocation)
            if handle:
                owners.add(handle)
                self._allocation_scope[handle] = scope
        if args.hResource:
            owners.add(("resource", args.hResource))
            self._resource_scopes.setdefault(args.hResource, []).append(scope)
        self._scope_owners[scope] = owners

    def _disown(self, handles: Sequence[int], resource: int) -> None:
        """Allocations (and a resource) destroyed: pool of a call none of whose objects live is a leak."""
        emptied = []
        for handle in handles:
            scope = self._allocation_scope.pop(handle, None)
            if scope is not None:
                self._scope_owners[scope].discard(handle)
                emptied.append(scope)
        for scope in self._resource_scopes.pop(resource, []) if resource else []:
            self._scope_owners[scope].discard(("resource", resource))
            emptied.append(scope)
        done = [s for s in dict.fromkeys(emptied) if not self._scope_owners.get(s)]
        for scope in done:
            self._scope_owners.pop(scope, None)
        if done:
            self._leaks(
                DDI_METHODS["destroy_allocation"],
                done,
                "every allocation created with that pool is destroyed",
            )

    @staticmethod
    def _handles(values: Sequence[int], count: int) -> Any:
        """A C array of ``count`` HANDLEs (zero past the list, so a lying count reads NULLs)."""
        array = _new("HANDLE[]", max(len(values), count, 1))
        for i, value in enumerate(values):
            array[i] = _handle(value)
        return array

    @_harness_faults
    def destroy_allocation(self, args: DXGKARG_DESTROYALLOCATION) -> int:
        handles = self._handles(args.pAllocationList, args.NumAllocations)
        c = _new(
            "DXGKARG_DESTROYALLOCATION *",
            {
                "NumAllocations": args.NumAllocations & 0xFFFFFFFF,
                "pAllocationList": handles,
                "hResource": _handle(args.hResource),
                "Flags": args.Flags & 0xFFFFFFFF,
            },
        )
        status = self._invoke(self._ddi.DxgkDdiDestroyAllocation, self._context, c)
        if self.wdk:
            destroy_resource = bool(
                int(args.Flags) & 0x1
            )  # DXGK_DESTROYALLOCATIONFLAGS.DestroyResource
            self._disown(
                list(args.pAllocationList[: args.NumAllocations]),
                args.hResource if destroy_resource else 0,
            )
        return status

    @_harness_faults
    def open_allocation(self, hDevice: int, args: DXGKARG_OPENALLOCATION) -> int:
        infos = args.pOpenAllocation
        array = _new("DXGK_OPENALLOCATIONINFO[]", max(len(infos), args.NumAllocations, 1))
        for c, info in zip(array, infos, strict=False):
            c.hAllocation = _handle(self._kernel_handle(hDevice, info.hAllocation))
        c_args = _new(
            "DXGKARG_OPENALLOCATION *",
            {
                "NumAllocations": args.NumAllocations & 0xFFFFFFFF,
                "pOpenAllocation": array,
                "Flags": args.Flags & 0xFFFFFFFF,
            },
        )
        status = self._invoke(self._ddi.DxgkDdiOpenAllocation, _handle(hDevice), c_args)
        for c, info in zip(array, infos, strict=False):
            info.hDeviceSpecificAllocation = _address(c.hDeviceSpecificAllocation)
        return status

    def _kernel_handle(self, hDevice: int, hAllocation: int) -> int:
        """What DXGK_OPENALLOCATIONINFO.hAllocation carries: the driver's own handle for
        the exported-name ABI, the kernel's D3DKMT_HANDLE for a WDK-style driver (one that
        names nothing when the kernel holds none, as for a handle a failed batch left)."""
        table = self._kernel_handles
        if not self.wdk or table is None:
            return hAllocation
        return table.for_driver_handle(hDevice, hAllocation) or table.unused()

    @_harness_faults
    def close_allocation(self, hDevice: int, args: DXGKARG_CLOSEALLOCATION) -> int:
        handles = self._handles(args.pOpenHandleList, args.NumAllocations)
        c = _new(
            "DXGKARG_CLOSEALLOCATION *",
            {"NumAllocations": args.NumAllocations & 0xFFFFFFFF, "pOpenHandleList": handles},
        )
        return self._invoke(self._ddi.DxgkDdiCloseAllocation, _handle(hDevice), c)

    # ------------------------------------------------------------------ render, patch, submit

    def _flat(self, ctype: str, entry: Callable[..., int], first: Any, args: Any) -> int:
        """Call an entry point whose argument block is flat: marshal, call, read back."""
        call = _Call(self._lib if self.wdk else None)
        c, memory = _put(ctype, args, call)
        try:
            status = self._invoke(entry, first, c, call=call)
        finally:
            _get(memory, ctype, args, call)
        return status

    @_harness_faults
    def render(self, hContext: int, args: DXGKARG_RENDER) -> int:
        return self._flat("DXGKARG_RENDER", self._ddi.DxgkDdiRender, _handle(hContext), args)

    @_harness_faults
    def patch(self, args: DXGKARG_PATCH) -> int:
        return self._flat("DXGKARG_PATCH", self._ddi.DxgkDdiPatch, self._context, args)

    @_harness_faults
    def submit_command(self, args: DXGKARG_SUBMITCOMMAND) -> int:
        return self._flat(
            "DXGKARG_SUBMITCOMMAND", self._ddi.DxgkDdiSubmitCommand, self._context, args
        )

    # ------------------------------------------------------------------ paging

    @_harness_faults
    def build_paging_buffer(self, args: DXGKARG_BUILDPAGINGBUFFER) -> int:
        call = _Call()
        c, memory = _put("DXGKARG_BUILDPAGINGBUFFER", args, call)
        op = args.Operation
        if op in (OP.DXGK_OPERATION_TRANSFER, OP.DXGK_OPERATION_SPECIAL_LOCK_TRANSFER):
            special = op == OP.DXGK_OPERATION_SPECIAL_LOCK_TRANSFER
            t = args.SpecialLockTransfer if special else args.Transfer
            ct = c.SpecialLockTransfer if special else c.Transfer
            ct.hAllocation = _handle(t.hAllocation)
            ct.TransferOffset = t.TransferOffset & 0xFFFFFFFF
            ct.TransferSize = t.TransferSize & _MASK64
            self._location(ct.Source, t.Source, call)
            self._location(ct.Destination, t.Destination, call)
            ct.Flags = int(t.Flags) & 0xFFFFFFFF
            ct.MdlOffset = t.MdlOffset & 0xFFFFFFFF
            if special:
                ct.SwizzlingRangeId = t.SwizzlingRangeId & 0xFFFFFFFF
                ct.SwizzlingRangeData = t.SwizzlingRangeData & 0xFFFFFFFF
        elif op == OP.DXGK_OPERATION_FILL:
            fill = args.Fill
            c.Fill.hAllocation = _handle(fill.hAllocation)
            c.Fill.FillSize = fill.FillSize & _MASK64
            c.Fill.FillPattern = fill.FillPattern & 0xFFFFFFFF
            c.Fill.Destination.SegmentId = fill.Destination.SegmentId & 0xFFFFFFFF
            c.Fill.Destination.SegmentAddress.QuadPart = fill.Destination.SegmentAddress
        elif op == OP.DXGK_OPERATION_DISCARD_CONTENT:
            discard = args.DiscardContent
            c.DiscardContent.hAllocation = _handle(discard.hAllocation)
            c.DiscardContent.Flags = int(discard.Flags) & 0xFFFFFFFF
            c.DiscardContent.SegmentId = discard.SegmentId & 0xFFFFFFFF
            c.DiscardContent.SegmentAddress.QuadPart = discard.SegmentAddress
        elif op in (OP.DXGK_OPERATION_READ_PHYSICAL, OP.DXGK_OPERATION_WRITE_PHYSICAL):
            read = op == OP.DXGK_OPERATION_READ_PHYSICAL
            phys = args.ReadPhysical if read else args.WritePhysical
            cp = c.ReadPhysical if read else c.WritePhysical
            cp.SegmentId = phys.SegmentId & 0xFFFFFFFF
            cp.PhysicalAddress.QuadPart = phys.PhysicalAddress
            cp.Size = phys.Size & 0xFFFFFFFF
        elif op == OP.DXGK_OPERATION_MAP_APERTURE_SEGMENT:
            amap = args.MapApertureSegment
            cm = c.MapApertureSegment
            cm.hDevice = _handle(amap.hDevice)
            cm.hAllocation = _handle(amap.hAllocation)
            cm.SegmentId = amap.SegmentId & 0xFFFFFFFF
            cm.OffsetInPages = amap.OffsetInPages & _MASK64
            cm.NumberOfPages = amap.NumberOfPages & _MASK64
            cm.pMdl = self._mdl(amap.pMdl, call)
            cm.Flags = int(amap.Flags) & 0xFFFFFFFF
            cm.MdlOffset = amap.MdlOffset & 0xFFFFFFFF
        elif op == OP.DXGK_OPERATION_UNMAP_APERTURE_SEGMENT:
            unmap = args.UnmapApertureSegment
            cu = c.UnmapApertureSegment
            cu.hDevice = _handle(unmap.hDevice)
            cu.hAllocation = _handle(unmap.hAllocation)
            cu.SegmentId = unmap.SegmentId & 0xFFFFFFFF
            cu.OffsetInPages = unmap.OffsetInPages & _MASK64
            cu.NumberOfPages = unmap.NumberOfPages & _MASK64
            cu.DummyPage.QuadPart = unmap.DummyPage
        try:
            status = self._invoke(self._ddi.DxgkDdiBuildPagingBuffer, self._context, c, call=call)
        finally:
            _get(memory, "DXGKARG_BUILDPAGINGBUFFER", args, call)
        return status

    def _location(self, c: Any, location: DXGK_TRANSFER_LOCATION, call: _Call) -> None:
        c.SegmentId = location.SegmentId & 0xFFFFFFFF
        if location.SegmentId == 0:
            c.pMdl = self._mdl(location.pMdl, call)
        else:
            c.SegmentAddress.QuadPart = location.SegmentAddress

    @staticmethod
    def _mdl(mdl: MDL | None, call: _Call) -> Any:
        """An MDL header followed by its page frames, as MmGetMdlPfnArray expects."""
        f = ffi()
        if mdl is None:
            return f.NULL
        header = f.sizeof("MDL")
        raw = _new("unsigned char[]", header + 8 * len(mdl.pfns))
        c = _cast("MDL *", raw)
        c.Size = min(header + 8 * len(mdl.pfns), 0x7FFF)
        c.ByteCount = mdl.ByteCount & 0xFFFFFFFF
        pfns = _cast("PFN_NUMBER *", c + 1)
        for i, pfn in enumerate(mdl.pfns):
            pfns[i] = pfn
        call.keep.append(raw)
        return c


class _Worker:
    """A daemon thread that runs C calls while the calling (main) thread waits interruptibly.

    Two locks hand each call over and back (cheaper than a thread per call). When the
    wait is interrupted (the watchdog's DdiTimeout), the worker is stuck in the hung C
    call: it is abandoned, and the next call starts a new worker.
    """

    def __init__(self) -> None:
        self._go = threading.Lock()
        self._done = threading.Lock()
        self._go.acquire()
        self._done.acquire()
        self._job: tuple[Callable[..., int], tuple[Any, ...]] | None = None
        self._outcome: Any = None
        threading.Thread(target=self._serve, name="native DDI", daemon=True).start()

    def _serve(self) -> None:
        while True:
            self._go.acquire()
            assert self._job is not None
            fn, args = self._job
            try:
                self._outcome = fn(*args)
            except BaseException as exc:
                self._outcome = exc
            self._done.release()

    def run(self, fn: Callable[..., int], args: tuple[Any, ...]) -> int:
        self._job = (fn, args)
        self._go.release()
        self._done.acquire()  # a DdiTimeout raised here leaves this worker in the hung call
        outcome, self._outcome = self._outcome, None
        if isinstance(outcome, BaseException):
            raise outcome
        return int(outcome)


_worker: _Worker | None = None


def _on_helper_thread(fn: Callable[..., int], args: tuple[Any, ...]) -> int:
    """Run ``fn(*args)`` on the worker thread; a hung call abandons that worker."""
    global _worker
    worker, _worker = _worker or _Worker(), None
    result = worker.run(fn, args)
    _worker = worker  # only a worker that came back is used again
    return result


def native_driver_class(library: NativeLibrary) -> type[NativeMiniport]:
    """A driver class for one loaded library, carrying its companions."""
    attributes: dict[str, Any] = {"LIBRARY": library, "__module__": __name__}
    if library.command_encoder:
        attributes["COMMAND_ENCODER"] = library.command_encoder
    if library.gpu_model:
        attributes["GPU_MODEL"] = library.gpu_model
    attributes["__doc__"] = f"{library.name} ({library.path})"
    # The name the library gives itself (WDDM_WDK_DRIVER_INFO, WDDM_NATIVE_DRIVER_INFO_DEFINE)
    # is what the report header, the JSON and HTML reports show as the driver's class.
    named = library.path.name
    if library.name != named:
        named = f"{library.name}: {named}"
    return type(f"Native[{named}]", (NativeMiniport,), attributes)
