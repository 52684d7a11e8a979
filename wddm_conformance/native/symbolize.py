"""Source lines of a native driver's code: where a bug check stopped it, for the report.

The WDK runtime records the stack of a bug check as offsets into the driver's library
(``WDDM_WDK_CALL.Frames``, innermost first, the runtime's own frames among them). A
symbolizer turns them into functions and ``file:line`` from the library's debug
information (``native build`` compiles with ``-g``): LLVM's ``llvm-symbolizer`` or
``llvm-addr2line``, else binutils' ``addr2line`` (which names the function an inlined one
was inlined into). The first frame outside the runtime and the WDK compatibility headers
is the driver's.
"""

from __future__ import annotations

import ctypes
import functools
import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

#: Sources that are the harness's, not the driver's: their frames are skipped.
_HARNESS_SOURCES: Final = frozenset({"wdk_runtime.c", "wdk_runtime.h", "wddm_wpp.h"})
_WDK_HEADERS: Final = Path(__file__).resolve().parent / "wdk"
#: Symbolizers, in order of preference, with the arguments that make them print, for each
#: address, the address and then function and ``file:line`` pairs, innermost inlined first.
_SYMBOLIZERS: Final = (
    ("llvm-symbolizer", ("--output-style=GNU", "-a", "-f", "-i", "-C", "-e")),
    ("llvm-addr2line", ("-a", "-f", "-i", "-C", "-e")),
    ("addr2line", ("-a", "-f", "-i", "-C", "-e")),
)
_TIMEOUT: Final = 20.0  # seconds; a symbolizer that takes longer gives no line


def symbolizer() -> tuple[str, tuple[str, ...]] | None:
    """The symbolizer to use and its arguments before the library, or None."""
    for name, args in _SYMBOLIZERS:
        path = shutil.which(name)
        if path is not None:
            return path, args
    return None


def _harness_source(file: str) -> bool:
    path = Path(file)
    return path.name in _HARNESS_SOURCES or path.parent.resolve() == _WDK_HEADERS


@functools.lru_cache(maxsize=256)
def _symbolize(library: Path, offsets: tuple[int, ...]) -> tuple[tuple[str, str], ...] | str:
    """(function, file:line) of every location of ``offsets``, innermost inlined first,
    in order; or why there are none (one clause)."""
    tool = symbolizer()
    if tool is None:
        return "no source line: neither addr2line nor llvm-symbolizer is installed"
    path, args = tool
    try:
        done = subprocess.run(
            [path, *args, str(library), *(f"0x{o:x}" for o in offsets)],
            capture_output=True,
            text=True,
            timeout=_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"no source line: {Path(path).name} failed ({type(exc).__name__})"
    lines = [line.strip() for line in done.stdout.splitlines() if line.strip()]
    out: list[tuple[str, str]] = []
    i = 0
    while i < len(lines):
        if lines[i].startswith("0x"):  # the address -a prints before its locations
            i += 1
            continue
        if i + 1 >= len(lines):
            break
        out.append((lines[i], lines[i + 1]))
        i += 2
    if not out:
        return f"no source line: {Path(path).name} read nothing from {library.name}"
    return tuple(out)


def _short(function: str) -> str:
    """A C++ name without its parameters or anonymous namespace; "?" when unknown."""
    if function.startswith("??"):
        return "?"
    return function.replace("(anonymous namespace)::", "").split("(", 1)[0] or function


def driver_line(library: Path, offsets: Sequence[int]) -> str | None:
    """Where in the driver's sources the stack ``offsets`` (WDDM_WDK_CALL.Frames) stopped:
    ``wdkdisp.c:689 (CopyCommand)``, the file's base name; a clause saying why there is no
    line (no symbolizer, no debug information); or None when every frame is the harness's
    (a bug check when the DDI returned). Never raises."""
    if not offsets:
        return None
    found = _symbolize(library, tuple(offsets))
    if isinstance(found, str):
        return found
    unknown = False
    for function, location in found:
        file, _, line = location.rpartition(":")
        line = line.split()[0] if line else ""  # "123 (discriminator 2)"
        if not file or file.startswith("??") or not line.isdigit() or line == "0":
            unknown = True
        elif not _harness_source(file):
            return f"{Path(file).name}:{line} ({_short(function)})"
    if unknown:
        return f"no source line: {library.name} has no debug information (build it with -g)"
    return None


class _DlInfo(ctypes.Structure):
    _fields_ = (
        ("dli_fname", ctypes.c_char_p),
        ("dli_fbase", ctypes.c_void_p),
        ("dli_sname", ctypes.c_char_p),
        ("dli_saddr", ctypes.c_void_p),
    )


@functools.cache
def _dladdr() -> Callable[..., int] | None:
    try:
        function = ctypes.CDLL(None).dladdr
    except (OSError, AttributeError):  # no dynamic loader interface (not Linux)
        return None
    function.argtypes = (ctypes.c_void_p, ctypes.POINTER(_DlInfo))
    function.restype = ctypes.c_int
    return function


def library_offset(library: Path, address: int) -> int | None:
    """``address`` (in this process) as an offset into ``library``'s code, or None when it
    is not in ``library`` (the C library's memcpy, say)."""
    dladdr = _dladdr()
    info = _DlInfo()
    if dladdr is None or not dladdr(address, ctypes.byref(info)) or not info.dli_fname:
        return None
    if os.path.realpath(os.fsdecode(info.dli_fname)) != os.path.realpath(library):
        return None
    return address - (info.dli_fbase or 0)


def instruction_line(library: Path, address: int) -> str | None:
    """``wdkdisp.c:767 (Stage)`` for an instruction of ``library`` loaded in this process
    (a direct read's, WDDM_WDK_READ.Instruction); None when it is not the driver's code
    or no line is known."""
    offset = library_offset(library, address)
    if offset is None:
        return None
    line = driver_line(library, [offset])
    return None if line is None or line.startswith("no source line") else line
