"""The pluggable driver interface: what a miniport provides, and how ``module:Class`` is loaded.

A driver is a class whose methods mirror the DDIs dxgkrnl calls (table below and in
docs/INTERPRETING.md). Each DDI method returns an NTSTATUS integer and changes its
argument block as the WDK describes. The class also names two companions the
harness needs to judge it:

* ``COMMAND_ENCODER`` -- how user mode expresses an abstract program
  (:mod:`wddm_conformance.program`) in this driver's command-buffer format, and the
  private data that asks for an allocation of a given size;
* ``GPU_MODEL`` -- how this driver's DMA buffers execute (memory, aperture, faults).

Either may be a class or a ``"module:Class"`` string; the reference driver's are
the defaults.

============================  ==============================================================
method                        WDK DDI
============================  ==============================================================
start_device                  DxgkDdiStartDevice
query_segments                DxgkDdiQueryAdapterInfo (DXGKQAITYPE_QUERYSEGMENT)
query_driver_caps             DxgkDdiQueryAdapterInfo (DXGKQAITYPE_DRIVERCAPS)
create_device                 DxgkDdiCreateDevice
destroy_device                DxgkDdiDestroyDevice
create_context                DxgkDdiCreateContext
destroy_context               DxgkDdiDestroyContext
create_allocation             DxgkDdiCreateAllocation
destroy_allocation            DxgkDdiDestroyAllocation
open_allocation               DxgkDdiOpenAllocation
close_allocation              DxgkDdiCloseAllocation
render                        DxgkDdiRender
patch                         DxgkDdiPatch
submit_command                DxgkDdiSubmitCommand
build_paging_buffer           DxgkDdiBuildPagingBuffer
============================  ==============================================================
"""

from __future__ import annotations

import difflib
import importlib
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol, runtime_checkable

from .ddi import (
    D3DDDI_PATCHLOCATIONLIST,
    DXGK_DRIVERCAPS,
    DXGK_SEGMENTDESCRIPTOR,
    DXGK_START_INFO,
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
)
from .errors import DriverLoadError
from .program import Op
from .sysmem import SystemMemory

#: Method name -> WDK DDI name. The single source for the table above, messages and docs.
DDI_METHODS: dict[str, str] = {
    "start_device": "DxgkDdiStartDevice",
    "query_segments": "DxgkDdiQueryAdapterInfo(QUERYSEGMENT)",
    "query_driver_caps": "DxgkDdiQueryAdapterInfo(DRIVERCAPS)",
    "create_device": "DxgkDdiCreateDevice",
    "destroy_device": "DxgkDdiDestroyDevice",
    "create_context": "DxgkDdiCreateContext",
    "destroy_context": "DxgkDdiDestroyContext",
    "create_allocation": "DxgkDdiCreateAllocation",
    "destroy_allocation": "DxgkDdiDestroyAllocation",
    "open_allocation": "DxgkDdiOpenAllocation",
    "close_allocation": "DxgkDdiCloseAllocation",
    "render": "DxgkDdiRender",
    "patch": "DxgkDdiPatch",
    "submit_command": "DxgkDdiSubmitCommand",
    "build_paging_buffer": "DxgkDdiBuildPagingBuffer",
}

#: Short names usable as ``--driver=NAME`` (wptrunner-style product registry).
REGISTRY: dict[str, str] = {
    "reference": "wddm_conformance.reference:ReferenceMiniport",
    # The C port of the reference miniport, built with the system C compiler on first use.
    "reference-c": "native:@reference",
}

DEFAULT_COMMAND_ENCODER = "wddm_conformance.reference.encoder:CommandEncoder"
DEFAULT_GPU_MODEL = "wddm_conformance.reference.gpu:EmulatedGpu"


@runtime_checkable
class Miniport(Protocol):
    """What a display miniport implements. Every DDI returns an NTSTATUS integer."""

    def start_device(self, info: DXGK_START_INFO) -> int: ...
    def query_segments(self) -> list[DXGK_SEGMENTDESCRIPTOR]: ...
    def query_driver_caps(self) -> DXGK_DRIVERCAPS: ...
    def create_device(self, args: DXGKARG_CREATEDEVICE) -> int: ...
    def destroy_device(self, hDevice: int) -> int: ...
    def create_context(self, args: DXGKARG_CREATECONTEXT) -> int: ...
    def destroy_context(self, hContext: int) -> int: ...
    def create_allocation(self, args: DXGKARG_CREATEALLOCATION) -> int: ...
    def destroy_allocation(self, args: DXGKARG_DESTROYALLOCATION) -> int: ...
    def open_allocation(self, hDevice: int, args: DXGKARG_OPENALLOCATION) -> int: ...
    def close_allocation(self, hDevice: int, args: DXGKARG_CLOSEALLOCATION) -> int: ...
    def render(self, hContext: int, args: DXGKARG_RENDER) -> int: ...
    def patch(self, args: DXGKARG_PATCH) -> int: ...
    def submit_command(self, args: DXGKARG_SUBMITCOMMAND) -> int: ...
    def build_paging_buffer(self, args: DXGKARG_BUILDPAGINGBUFFER) -> int: ...


# --------------------------------------------------------------------------- companions


@dataclass(frozen=True)
class EncodedProgram:
    """A program in a driver's user-mode format: the command buffer and the UMD's patch list."""

    command: bytes
    patch_locations: list[D3DDDI_PATCHLOCATIONLIST] = field(default_factory=list)


@dataclass(frozen=True)
class AllocationRequest:
    """What user mode asks for when it creates an allocation (turned into private data by the encoder)."""

    size: int
    cpu_visible: bool = False
    swizzled: bool = False
    #: Allow placement in the aperture segment (system memory mapped through the GPU page table).
    aperture: bool = True
    #: Only the aperture segment (to exercise map/unmap deterministically).
    aperture_only: bool = False
    history_buffer: bool = False
    alternate_va: bool = False
    #: A GDI hardware-accelerated surface (ALC-GDISIZE): ``size`` is one row (Width x bytes per
    #: pixel) and ``gdi_rows`` the Height; the driver sets Size (and the pitch for CPU-visible ones).
    gdi_rows: int = 0

    @property
    def must_be_granted(self) -> bool:
        """Every driver must grant this request (INTERPRETING.md §3, "Allocation requests"):
        at most one of swizzled, aperture_only, history_buffer, alternate_va and gdi_rows,
        and aperture_only only with aperture. Any other may be refused with
        INVALID_PARAMETER; alternate_va also needs the driver's SupportsAlternateVA."""
        special = (
            self.swizzled,
            self.aperture_only,
            self.history_buffer,
            self.alternate_va,
            bool(self.gdi_rows),
        )
        return sum(special) <= 1 and (self.aperture or not self.aperture_only)

    @property
    def min_size(self) -> int:
        """The fewest bytes the allocation may have."""
        return self.size * self.gdi_rows if self.gdi_rows else self.size


class CommandEncoder(Protocol):
    """The user-mode side of a driver: its command-buffer format and allocation private data."""

    def allocation_private_data(self, request: AllocationRequest) -> bytes: ...
    def encode(self, program: Sequence[Op]) -> EncodedProgram: ...
    def privileged_command(self) -> bytes: ...
    def illegal_command(self) -> bytes: ...


def command_boundaries(encoder: CommandEncoder, program: Sequence[Op]) -> list[int]:
    """Where each encoded command of ``program`` starts, then where the buffer ends: entry
    ``i`` is the length of ``encoder.encode(program[:i]).command`` (entry 0 is past any
    prologue the encoder writes). ``len(program) + 1`` byte offsets, ascending.

    The encoding of a program's prefix is a prefix of its encoding (INTERPRETING.md §1,
    Companions), so these are the offsets between two commands.
    """
    return [len(encoder.encode(program[:i]).command) for i in range(len(program) + 1)]


class FaultKind(StrEnum):
    """The GPU faults the harness tells apart (the reference GPU raises only these)."""

    #: An access outside every segment, to an unmapped aperture page or a missing page frame.
    PAGE_FAULT = "page-fault"
    #: An unknown opcode, an instruction cut off by the end of the buffer, a bad operand.
    ILLEGAL_INSTRUCTION = "illegal-instruction"
    #: A privileged opcode in a DMA buffer built from a user command buffer.
    PRIVILEGED_INSTRUCTION = "privileged-instruction"


@dataclass(frozen=True)
class GpuFault:
    """Why the GPU stopped.

    ``kind`` is a :class:`FaultKind` for the reference GPU. A driver's own GPU model may
    give any string: the harness compares it with :class:`FaultKind`'s values (a plain
    ``"page-fault"`` is a page fault) and reports any other as it is.
    """

    kind: str
    dma_offset: int
    address: int | None
    message: str

    def __str__(self) -> str:
        return f"GPU {self.kind} at DMA +{self.dma_offset}: {self.message}"


@dataclass
class GpuExecution:
    """What one DMA range did on the GPU: fences signalled, fault, and the physical access log.

    ``reads`` and ``writes`` are ``(physical_address, length)`` of the memory finally
    reached: a segment address, or the system page behind an aperture page.
    """

    fences: list[int] = field(default_factory=list)
    fault: GpuFault | None = None
    reads: list[tuple[int, int]] = field(default_factory=list)
    writes: list[tuple[int, int]] = field(default_factory=list)
    instructions: int = 0
    bindings: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class SurfaceLayout:
    """A swizzled allocation as its driver created it, for a GPU model whose tiling depends
    on the format, pitch or size the driver chose (INTERPRETING.md §1, "GPU models").

    Not its address: the memory manager moves an allocation's tiled bytes unchanged between
    segments (a TRANSFER without Swizzle/Unswizzle), so tiling may not depend on where the
    allocation lives.
    """

    #: DXGK_ALLOCATIONINFO.Size and PitchAlignedSize as the driver set them (bytes).
    Size: int
    PitchAlignedSize: int
    #: The allocation's private driver data (DXGK_ALLOCATIONINFO.pPrivateDriverData), as the
    #: driver's encoder wrote it: where a real UMD puts format, width, height and pitch.
    PrivateDriverData: bytes


class GpuModel(Protocol):
    """The hardware a driver's DMA buffers run on. Deterministic: no threads, no clock.

    The four CPU-view methods get the allocation's ``layout``; a model written against
    contract 2.0 without that parameter is called without it.
    """

    def execute(self, dma: bytes | bytearray | memoryview, *, privileged: bool) -> GpuExecution: ...
    def read(self, address: int, length: int) -> bytes: ...
    def write(self, address: int, data: bytes | bytearray | memoryview) -> None: ...
    def read_linear(self, address: int, length: int, layout: SurfaceLayout) -> bytes: ...
    def write_linear(
        self, address: int, data: bytes | bytearray | memoryview, layout: SurfaceLayout
    ) -> None: ...
    def translate(self, address: int) -> int | None: ...
    def swizzle(self, linear: bytes | bytearray | memoryview, layout: SurfaceLayout) -> bytes: ...
    def unswizzle(self, tiled: bytes | bytearray | memoryview, layout: SurfaceLayout) -> bytes: ...
    def disassemble(
        self,
        dma: bytes | bytearray | memoryview,
        start: int = 0,
        end: int | None = None,
        mark: int | None = None,
    ) -> str: ...
    def instruction_boundaries(self, dma: bytes | bytearray | memoryview) -> list[int]: ...


# --------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class DriverSpec:
    """A loaded driver class with its companions, ready to instantiate per kernel."""

    spec: str
    cls: type[Any]
    encoder_cls: type[Any]
    gpu_cls: type[Any]

    def instantiate(self) -> Miniport:
        """Construct the driver; a constructor that raises is a one-line DriverLoadError.

        Except MemoryError: a driver that allocates past the check's memory limit is a
        CRASH (``results.classify``), not a bad ``--driver``.
        """
        try:
            return self.cls()  # type: ignore[no-any-return]
        except MemoryError:
            raise
        except Exception as exc:
            raise DriverLoadError(
                f"invalid --driver {self.spec!r}: constructing {self.cls.__qualname__}() raised {_one_line(exc)}"
            ) from exc

    def encoder(self) -> CommandEncoder:
        return self.encoder_cls()  # type: ignore[no-any-return]

    def gpu(self, sysmem: SystemMemory, info: DXGK_START_INFO) -> GpuModel:
        return self.gpu_cls(sysmem, info)  # type: ignore[no-any-return]


def _one_line(exc: BaseException) -> str:
    """An exception as ``Type: message`` on one line (load errors must be one line)."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def module_path(module: ModuleType) -> str:
    """``module``'s file as its import path spells it: ``mydriver/miniport.py`` for
    ``mydriver.miniport``, ``mydriver/__init__.py`` for the package ``mydriver``; "" for a
    module without a file. Unlike the file's name alone, one module's only."""
    name = getattr(module, "__file__", None)
    if not isinstance(name, str):
        return ""
    parts = Path(name).parts
    depth = module.__name__.count(".") + (Path(name).stem == "__init__")
    return "/".join(parts[-depth - 1 :])


def _import_module(name: str) -> Any:
    """``importlib.import_module``, falling back to the current directory when the top-level
    package is found nowhere else: the plain ``pytest`` script, unlike ``python -m pytest``,
    does not put it on ``sys.path``. It is on ``sys.path`` only during this import."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        top = name.partition(".")[0]
        cwd = os.getcwd()
        if exc.name != top or cwd in sys.path:
            raise
    sys.path.insert(0, cwd)
    try:
        return importlib.import_module(name)
    finally:
        if cwd in sys.path:
            sys.path.remove(cwd)


def driver_forms(spec: str = "") -> str:
    """What ``--driver`` accepts, for a message about ``spec``, which is none of them:
    ``'module:Class', 'native:PATH' (a native library) or one of: reference, ...``, and
    the form ``spec`` probably meant, if one is close (a registry name, a library path)."""
    text = (
        "'module:Class', 'native:PATH' (a path to a native library) "
        f"or one of: {', '.join(REGISTRY)}"
    )
    if os.sep in spec or "/" in spec or os.path.splitext(spec)[1] in (".so", ".dll", ".dylib"):
        return f"{text}; did you mean 'native:{spec}'?"
    close = difflib.get_close_matches(spec, REGISTRY, n=1)
    return f"{text}; did you mean {close[0]!r}?" if close else text


def require_driver_form(spec: str) -> None:
    """Raise DriverLoadError when ``spec`` is none of ``--driver``'s forms (a misspelled
    registry name), before anything is imported or made on disk for it."""
    module_name, sep, attr = REGISTRY.get(spec, spec).partition(":")
    if not sep or not module_name or not attr:
        raise DriverLoadError(f"invalid --driver {spec!r}: expected {driver_forms(spec)}")


def _import_object(spec: str, what: str, where: str) -> Any:
    where = "" if where == "--driver" else f" from {where}"
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        expected = driver_forms(spec) if what == "--driver" else "'module:Class'"
        raise DriverLoadError(f"invalid {what} {spec!r}{where}: expected {expected}")
    try:
        module = _import_module(module_name)
    except Exception as exc:
        raise DriverLoadError(
            f"invalid {what} {spec!r}{where}: cannot import module {module_name!r} ({_one_line(exc)})"
        ) from exc
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise DriverLoadError(
                f"invalid {what} {spec!r}{where}: module {module_name!r} has no attribute {attr!r}"
            ) from None
    if not isinstance(obj, type):
        raise DriverLoadError(f"invalid {what} {spec!r}{where}: {attr!r} is not a class")
    return obj


def _companion(cls: type[Any], attribute: str, default: str, spec: str) -> type[Any]:
    value = getattr(cls, attribute, default)
    if isinstance(value, type):
        return value
    if isinstance(value, str):
        return _import_object(value, f"{attribute}", f"{spec}.{attribute}")  # type: ignore[no-any-return]
    raise DriverLoadError(
        f"invalid {attribute} of driver {spec!r}: expected a class or 'module:Class', got {value!r}"
    )


def load_driver(spec: str, where: str = "--driver") -> DriverSpec:
    """Resolve ``module:Class``, ``native:lib.so`` or a registry name into a :class:`DriverSpec`.

    Every failure is a :class:`DriverLoadError` whose message is one line naming the
    culprit: no colon, no module, no class, not a class, missing DDI methods.
    """
    resolved = REGISTRY.get(spec, spec)
    if resolved.startswith("native:"):  # a shared library implementing wddm_native.h
        from .native import load_native

        cls: Any = load_native(resolved, where)
    else:
        cls = _import_object(resolved, "--driver", where)
    missing = [
        f"{m} ({ddi})" for m, ddi in DDI_METHODS.items() if not callable(getattr(cls, m, None))
    ]
    if missing:
        raise DriverLoadError(
            f"invalid --driver {spec!r}{'' if where == '--driver' else f' from {where}'}: "
            f"{cls.__qualname__} is not a display miniport, "
            f"missing DDI method(s): {', '.join(missing)}"
        )
    encoder_cls = _companion(cls, "COMMAND_ENCODER", DEFAULT_COMMAND_ENCODER, spec)
    gpu_cls = _companion(cls, "GPU_MODEL", DEFAULT_GPU_MODEL, spec)
    return DriverSpec(spec, cls, encoder_cls, gpu_cls)
