"""The C ABI of native drivers: the shipped header, read by cffi, and loading a library against it.

``wddm_native.h`` is the single source of the layouts the harness marshals: C drivers
compile against it, and the part between its ``WDDM_NATIVE_CDEF`` markers is handed to
cffi here, so the harness marshals exactly the structures the driver was compiled
with. The WDK compatibility headers (``wdk/``) declare the same argument blocks at the
same offsets (tests/test_wdk_native.py checks it with the compiler), and the runtime a
WDK-style driver links (``wdk_runtime.h``, its cdef read here too) is how the harness
calls it.

A library is one of two kinds. An exported-name driver exports
``WddmNativeQueryDriverInfo`` (matching ABI major) and every ``DxgkDdi*`` entry point.
A WDK-style driver (built with ``native build --wdk``) exports ``DriverEntry`` and the
runtime: the harness calls ``DriverEntry``, which registers the DDIs through
``DxgkInitialize``; every DDI must be registered, and ``WddmNativeQueryDriverInfo``
is optional. Each failure is one line naming the library and what is wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Final

import cffi

from ..driver import DDI_METHODS
from ..errors import DriverLoadError
from .symbolize import driver_line

HEADER_NAME: Final = "wddm_native.h"
_BEGIN: Final = "/* WDDM_NATIVE_CDEF_BEGIN */"
_END: Final = "/* WDDM_NATIVE_CDEF_END */"
RUNTIME_HEADER_NAME: Final = "wdk_runtime.h"
_RUNTIME_BEGIN: Final = "/* WDDM_WDK_RUNTIME_CDEF_BEGIN */"
_RUNTIME_END: Final = "/* WDDM_WDK_RUNTIME_CDEF_END */"
#: WDDM_WDK_CALL.Kind values (wdk_runtime.h): which rule a bug check of the runtime names.
WDK_KIND_POOL: Final = 1
WDK_KIND_IRQL: Final = 2
WDK_KIND_ASSERT: Final = 3
WDK_KIND_USERFAULT: Final = 4
WDK_KIND_EXCEPTION: Final = 5
WDK_KIND_DRIVER: Final = 6
WDK_KIND_HANG: Final = 7
#: WDDM_WDK_CALL.HandleQuery's operations (wdk_runtime.h).
WDK_HANDLE_DATA: Final = 1
WDK_HANDLE_PARENT: Final = 2
WDK_HANDLE_CHILD: Final = 3

#: DDI method -> the exported C entry point that implements it: the WDK name of the
#: driver interface's table without its qualifier (QueryAdapterInfo serves two methods).
ENTRY_POINTS: Final[dict[str, str]] = {
    method: ddi.split("(")[0] for method, ddi in DDI_METHODS.items()
}
#: Exports every native driver has besides the DDIs.
LIFETIME_EXPORTS: Final = ("DxgkDdiAddDevice", "DxgkDdiRemoveDevice")


def header_path() -> Path:
    """Where the installed header is (pass its directory to the C compiler's ``-I``)."""
    return Path(str(resources.files(__package__).joinpath(HEADER_NAME)))


@cache
def header_text() -> str:
    return header_path().read_text(encoding="utf-8")


def cdef_text() -> str:
    """The plain-declaration part of the header that cffi parses."""
    text = header_text()
    return text.split(_BEGIN, 1)[1].split(_END, 1)[0]


def runtime_header_path() -> Path:
    """The harness's side of the WDK runtime (``wdk_runtime.h``)."""
    return Path(str(resources.files(__package__).joinpath(RUNTIME_HEADER_NAME)))


def runtime_cdef_text() -> str:
    """The plain-declaration part of ``wdk_runtime.h`` that cffi parses."""
    text = runtime_header_path().read_text(encoding="utf-8")
    return text.split(_RUNTIME_BEGIN, 1)[1].split(_RUNTIME_END, 1)[0]


def _define(name: str) -> int:
    match = re.search(rf"#define\s+{name}\s+(0x[0-9A-Fa-f]+|\d+)u?\b", header_text())
    if match is None:  # the shipped header always defines it
        raise RuntimeError(f"{HEADER_NAME} defines no {name}")
    return int(match.group(1), 0)


ABI_VERSION: Final = _define("WDDM_NATIVE_ABI_VERSION")


def abi_text(version: int) -> str:
    """``major.minor`` of an ABI version word."""
    return f"{version >> 16}.{version & 0xFFFF}"


@cache
def ffi() -> cffi.FFI:
    """The cffi instance that knows every structure of the header."""
    instance = cffi.FFI()
    instance.cdef(cdef_text())
    instance.cdef(runtime_cdef_text())
    return instance


@dataclass(frozen=True)
class NativeLibrary:
    """A loaded, checked native driver library."""

    path: Path
    lib: Any
    name: str
    command_encoder: str | None
    gpu_model: str | None
    abi_version: int
    #: WDK-style drivers: entry point name -> the DDI's address DriverEntry registered
    #: (``DxgkDdiRender`` -> 0x7f...); None for exported-name drivers.
    registered: dict[str, int] | None = None
    #: What DriverEntry printed (DbgPrint) while it registered, one string per line.
    entry_output: tuple[str, ...] = ()


def _c_string(value: Any) -> str | None:
    f = ffi()
    if value == f.NULL:
        return None
    raw = f.string(value)
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw


@cache
def open_library(path: Path, spec: str) -> NativeLibrary:
    """dlopen ``path`` and check it against the header; one-line DriverLoadError otherwise."""
    culprit = f"invalid --driver {spec!r}"
    if not path.is_file():
        raise DriverLoadError(f"{culprit}: no such library {str(path)!r}")
    f = ffi()
    lib: Any
    try:
        lib = f.dlopen(str(path))
    except OSError as exc:
        reason = " ".join(str(exc).split()).split(". Additionally, ctypes.util")[0]
        hint = ""
        if any(name in reason for name in ("__asan", "__sanitizer", "__ubsan", "__sancov")):
            hint = (
                " (built with sanitizers: `wddm-conformance fuzz run`, `repro`, `minimize` and "
                "`promote` preload atheris's sanitizer runtime; elsewhere set LD_PRELOAD to "
                "it, as docs/native.md shows)"
            )
        raise DriverLoadError(f"{culprit}: cannot load the library: {reason}{hint}") from None
    if _exports(lib, "WddmWdkInvoke"):
        return _open_wdk(path, lib, culprit)
    try:
        info = lib.WddmNativeQueryDriverInfo()
    except AttributeError:
        raise DriverLoadError(
            f"{culprit}: {path.name} exports no WddmNativeQueryDriverInfo, so it was not built against "
            f"{HEADER_NAME} (define it with WDDM_NATIVE_DRIVER_INFO_DEFINE)"
        ) from None
    version = int(info.AbiVersion)
    if version >> 16 != ABI_VERSION >> 16 or int(info.Size) != f.sizeof("WDDM_NATIVE_DRIVER_INFO"):
        raise DriverLoadError(
            f"{culprit}: {path.name} was built against {HEADER_NAME} ABI {abi_text(version)} "
            f"(info size {int(info.Size)}); this harness speaks ABI {abi_text(ABI_VERSION)}: rebuild it "
            f"with the header in {header_path().parent}"
        )
    missing = []
    for export in (*LIFETIME_EXPORTS, *dict.fromkeys(ENTRY_POINTS.values())):
        try:
            getattr(lib, export)
        except AttributeError:
            missing.append(export)
    if missing:
        raise DriverLoadError(
            f"{culprit}: {path.name} is not a display miniport, missing export(s): {', '.join(missing)}"
        )
    return NativeLibrary(
        path=path,
        lib=lib,
        name=_c_string(info.Name) or path.name,
        command_encoder=_c_string(info.CommandEncoder),
        gpu_model=_c_string(info.GpuModel),
        abi_version=version,
    )


def _exports(lib: Any, name: str) -> bool:
    try:
        getattr(lib, name)
    except AttributeError:
        return False
    return True


def drain_debug_output(lib: Any) -> list[str]:
    """The lines a WDK-style driver printed (DbgPrint, DbgPrintEx, KdPrint) since the last drain."""
    f = ffi()
    lines: list[str] = []
    buffer = f.new("char[]", 65536)
    while True:
        n = int(lib.WddmWdkDebugOutput(buffer, 65536))
        if n == 0:
            return lines
        text = f.buffer(buffer, n)[:].decode("utf-8", "replace")
        lines.extend(line for line in text.split("\n") if line)


def runtime_stop_text(call: Any, library: Path) -> str:
    """What a WDDM_WDK_CALL says stopped it (its message), and where in the driver's
    sources: ``... at wdkdisp.c:689 (CopyCommand)`` (:func:`.symbolize.driver_line`).
    A failed assertion names its file and line itself."""
    raw = ffi().string(call.Message)
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    if int(call.Kind) == WDK_KIND_ASSERT:
        return text
    frames = [int(f) for f in call.Frames]
    where = driver_line(library, frames[: frames.index(0)] if 0 in frames else frames)
    if where is None:
        return text
    return f"{text} ({where})" if where.startswith("no source line") else f"{text} at {where}"


#: The runtime's entry points and the C types the adapter's finalizer uses (RemoveDevice at
#: garbage collection): resolved when the library opens, because cffi resolves a name or
#: parses a type under a lock it does not re-enter, and a collection can run a finalizer
#: while this thread holds it (a deadlock).
_RUNTIME_FUNCTIONS: Final = (
    "WddmWdkDriverEntry",
    "WddmWdkDdiOffset",
    "WddmWdkInvoke",
    "WddmWdkPoolBlocks",
    "WddmWdkDebugOutput",
    "WddmWdkProtect",
    "WddmWdkKernelInterface",
    "WddmWdkTraceSupported",
    "WddmWdkTraceBegin",
    "WddmWdkTraceEnd",
    "WddmWdkTracePoke",
)
_RUNTIME_TYPES: Final = (
    "WDDM_WDK_CALL *",
    "WDDM_WDK_POOLBLOCK[]",
    "WDDM_WDK_TRACE *",
    "char[]",
    "char *",
    "void *",
    "uintptr_t",
    "uintptr_t *",
)

#: Library path -> (DriverEntry's WDDM_WDK_CALL, its DRIVER_INITIALIZATION_DATA, what it printed).
_ENTERED: dict[str, tuple[Any, Any, tuple[str, ...]]] = {}


def _open_wdk(path: Path, lib: Any, culprit: str) -> NativeLibrary:
    """A WDK-style library: call DriverEntry and take the DDIs it registered."""
    f = ffi()
    for name in _RUNTIME_FUNCTIONS:
        getattr(lib, name)
    for ctype in _RUNTIME_TYPES:
        f.typeof(ctype)
    # dlopen gives one copy of a library per process: DriverEntry runs once, whatever spec
    # names it, and what it printed is kept for every adapter of the library.
    key = str(path)
    if key not in _ENTERED:
        entry = f.new("WDDM_WDK_CALL *")
        _ENTERED[key] = (entry, lib.WddmWdkDriverEntry(entry), tuple(drain_debug_output(lib)))
    entry, data, printed = _ENTERED[key]
    if data == f.NULL:
        if int(entry.BugCheckCode):
            why = f"bug check 0x{int(entry.BugCheckCode):X} in DriverEntry: {runtime_stop_text(entry, path)}"
        elif int(entry.Status):
            why = f"DriverEntry returned 0x{int(entry.Status) & 0xFFFFFFFF:08X}"
        else:
            why = (
                "DriverEntry returned without registering its DDIs (DxgkInitialize was not called)"
            )
        raise DriverLoadError(f"{culprit}: {path.name}: {why}")
    registered: dict[str, int] = {}
    missing = []
    for export in (*LIFETIME_EXPORTS, *dict.fromkeys(ENTRY_POINTS.values())):
        offset = int(lib.WddmWdkDdiOffset(export.encode()))
        address = (
            int(f.cast("uintptr_t *", f.cast("char *", data) + offset)[0]) if offset >= 0 else 0
        )
        if address == 0:
            missing.append(export)
        registered[export] = address
    if missing:
        raise DriverLoadError(
            f"{culprit}: {path.name} registered no {', '.join(missing)} in its "
            f"DRIVER_INITIALIZATION_DATA (DxgkInitialize)"
        )
    name = path.name
    encoder = gpu = None
    if _exports(lib, "WddmNativeQueryDriverInfo"):
        info = lib.WddmNativeQueryDriverInfo()
        name = _c_string(info.Name) or name
        encoder, gpu = _c_string(info.CommandEncoder), _c_string(info.GpuModel)
    return NativeLibrary(
        path=path,
        lib=lib,
        name=name,
        command_encoder=encoder,
        gpu_model=gpu,
        abi_version=ABI_VERSION,
        registered=registered,
        entry_output=printed,
    )


def is_sanitized(path: Path) -> bool:
    """True if the library was built with AddressSanitizer (it needs the runtime preloaded)."""
    try:
        return b"__asan_init" in path.read_bytes()
    except OSError:
        return False
