"""Building native drivers: the C reference miniport (and its mutants) with the system compiler.

Libraries are cached by the hash of everything that goes into them (sources, the
header, compiler, flags), in ``$WDDM_NATIVE_CACHE`` or ``~/.cache/wddm-conformance/native``,
so the tests and the suite build the C reference once per machine. Concurrent builds
(pytest-xdist workers) are safe: each compiles into a temporary file and renames it.

A sanitizer build uses clang with ``-fsanitize=address,undefined,fuzzer-no-link`` so
AddressSanitizer checks every access of the driver and libFuzzer sees its edges; it
runs under ``wddm-conformance fuzz run``, which preloads atheris's sanitizer runtime.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Final

from ..errors import DriverLoadError
from .abi import header_path

#: The C reference driver's mutants: macro -> (what it breaks, the requirement it breaks).
MUTANTS: Final[dict[str, tuple[str, str]]] = {
    "OVERFLOW_DMA": ("forgets the room for its trailing fence: writes past DmaSize", "REN-CURSORS"),
    "NO_PREPATCH": ("never pre-patches, even when SegmentId != 0", "REN-PREPATCH"),
    "UNMAP_OLD_PAGE": ("unmaps by doing nothing: the aperture keeps the old pages", "PGB-UNMAP"),
}
#: Variants of the C reference that conform (macro -> what changes).
VARIANTS: Final[dict[str, str]] = {
    "BUSY": "answers GRAPHICS_ALLOCATION_BUSY once per paging operation until AllocationIsIdle",
}

SANITIZE_FLAGS: Final = (
    "-fsanitize=address,undefined,fuzzer-no-link",
    "-fno-sanitize-recover=undefined",
    "-fno-omit-frame-pointer",
    "-g",
    "-O1",
)
_CLANGS: Final = ("clang", "clang-19", "clang-18", "clang-17", "clang-16", "clang-15", "clang-14")


class NativeBuildError(DriverLoadError):
    """A native driver could not be built (no compiler, or the compiler failed)."""


def reference_source() -> Path:
    """The C port of the reference miniport, shipped with the package."""
    return Path(
        str(resources.files("wddm_conformance.reference").joinpath("native", "refminiport.c"))
    )


def cache_dir() -> Path:
    env = os.environ.get("WDDM_NATIVE_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "wddm-conformance" / "native"


def find_compiler(sanitize: bool) -> str:
    """The C compiler to use: $CC (or $CLANG for sanitizer builds), else the system's."""
    if sanitize:
        for name in (os.environ.get("CLANG"), *_CLANGS):
            if name and shutil.which(name):
                return name
        raise NativeBuildError(
            "no clang found for a sanitizer build (install Debian's clang package, or set CLANG)"
        )
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return name
    raise NativeBuildError("no C compiler found (install gcc, or set CC)")


def wdk_include_dir() -> Path:
    """The WDK compatibility headers (``ntddk.h``, ``dispmprt.h``, ...), shipped with the package."""
    return Path(str(resources.files(__package__).joinpath("wdk")))


def wdk_runtime_source() -> Path:
    """The runtime a WDK-style driver links against (DxgkInitialize, pool, IRQL, ...)."""
    return Path(str(resources.files(__package__).joinpath("wdk_runtime.c")))


def wdk_cflags() -> list[str]:
    """Compiler flags for WDK-style driver sources (``wddm-conformance native cflags``)."""
    return [
        f"-I{wdk_include_dir()}",
        "-D_AMD64_",
        "-D_WIN64",
        "-Wno-multichar",
        "-Werror=implicit-function-declaration",
        "-pthread",
    ]


def _wdk_inputs() -> list[Path]:
    """Every shipped file a WDK build depends on (hashed into the cache key)."""
    runtime = wdk_runtime_source()
    return [*sorted(wdk_include_dir().glob("*.h")), runtime, runtime.with_suffix(".h")]


#: C++ sources, compiled with the C++ compiler of the C compiler's family.
CXX_SUFFIXES: Final = (".cpp", ".cc", ".cxx", ".c++")
#: What the WDK's /kernel switch means for C++: no C++ exceptions, no RTTI, and no
#: thread-safe local statics (a driver has no C++ runtime to provide them).
KERNEL_CXX_FLAGS: Final = ("-std=c++17", "-fno-exceptions", "-fno-rtti", "-fno-threadsafe-statics")
#: Sanitizer builds of C++: UBSan's indirect-call type check (C++ only) needs a handler
#: that the fuzzer's sanitizer runtime lacks, and the kernel's callbacks are called
#: through pointers.
CXX_SANITIZE_FLAGS: Final = ("-fno-sanitize=function",)
HEADER_SUFFIXES: Final = (".h", ".hh", ".hpp", ".hxx", ".inl")
_C_ONLY_FLAGS: Final = frozenset({"-std=c11", "-Werror=implicit-function-declaration"})


def cxx_compiler(c_compiler: str) -> str:
    """The C++ compiler of ``c_compiler``'s family (gcc -> g++, clang-14 -> clang++-14, cc -> c++).

    Raises :class:`NativeBuildError` when it is not installed.
    """
    directory, _, base = c_compiler.rpartition("/")
    for c, cxx in (("clang", "clang++"), ("gcc", "g++"), ("cc", "c++")):
        if c in base:
            head, _, tail = base.rpartition(c)
            name = f"{directory}/" * bool(directory) + head + cxx + tail
            if shutil.which(name):
                return name
            raise NativeBuildError(
                f"no C++ compiler {name} beside the C compiler {c_compiler} (install it, or set CC)"
            )
    raise NativeBuildError(f"cannot tell the C++ compiler of the C compiler {c_compiler}")


_TMH_INCLUDE: Final = re.compile(r'^[ \t]*#[ \t]*include[ \t]*[<"]([^">]+\.tmh)[">]', re.MULTILINE)
_WPP_CONFIG: Final = re.compile(r"begin_wpp config(.*?)end_wpp", re.DOTALL)
_WPP_FUNC: Final = re.compile(r"FUNC\s+(\w+)\s*(\{[^}]*\})?\s*\(([^)]*)\)")


def _wpp_function(name: str, fixed: str, parameters: str) -> str:
    """The macro of one ``FUNC Name{FLAG=X}(LEVEL, FLAGS, MSG, ...)`` of a begin_wpp config block."""
    params = [p.strip() for p in parameters.split(",") if p.strip()]
    named = params[: params.index("MSG")] if "MSG" in params else [p for p in params if p != "..."]
    defaults = dict(
        (k.strip(), v.strip())
        for k, _, v in (item.partition("=") for item in fixed.strip("{}").split(","))
        if v.strip()
    )
    flag = next((p for p in named if p in ("FLAGS", "FLAG")), None)
    flag_expr = (
        f"WDDM_WPP_FLAG({flag})"
        if flag
        else f"WDDM_WPP_FLAG({defaults.get('FLAG') or defaults.get('FLAGS')})"
        if defaults.get("FLAG") or defaults.get("FLAGS")
        else f'"{name}"'
    )
    level = "LEVEL" if "LEVEL" in named else defaults.get("LEVEL", "0")
    unused = "".join(f"(void)({p}), " for p in named if p not in ("FLAGS", "FLAG", "LEVEL"))
    return (
        f"#ifndef {name}\n#define {name}({', '.join([*named, '...'])}) ({unused}"
        f"WddmWdkWppMessage({flag_expr}, (ULONG)({level}), __FILE__, __LINE__, __func__, "
        "__VA_ARGS__))\n#endif\n"
    )


def wpp_trace_headers(sources: Sequence[Path], include_dirs: Sequence[Path] = ()) -> dict[str, str]:
    """The .tmh files ``sources`` include, by the name they include them by, with their text:
    each includes wddm_wpp.h and defines the trace functions the begin_wpp config blocks
    of the sources and of the headers beside them or in ``include_dirs`` declare."""
    texts = {source: source.read_text(errors="replace") for source in sources}
    wanted = {name: source for source, text in texts.items() for name in _TMH_INCLUDE.findall(text)}
    if not wanted:
        return {}
    scanned = list(texts.values())
    for directory in {*(s.parent for s in sources), *map(Path, include_dirs)}:
        scanned += [h.read_text(errors="replace") for h in sorted(directory.glob("*.h"))]
    functions = {
        name: _wpp_function(name, fixed, parameters)
        for text in scanned
        for block in _WPP_CONFIG.findall(text)
        for name, fixed, parameters in _WPP_FUNC.findall(block)
    }
    out = {}
    for name, source in wanted.items():
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise NativeBuildError(
                f"{source}: cannot generate trace header {name!r} (not a relative path)"
            )
        out[name] = (
            f"/* {name}: generated by wddm-conformance for {source.name}: WPP tracing as captured "
            "debug output (wddm_wpp.h) */\n#include <wddm_wpp.h>\n" + "".join(functions.values())
        )
    return out


def build(
    sources: Sequence[Path],
    *,
    name: str,
    defines: Sequence[str] = (),
    sanitize: bool = False,
    extra_flags: Sequence[str] = (),
    wdk: bool = False,
    include_dirs: Sequence[Path] = (),
    compiler: str | None = None,
) -> Path:
    """Compile ``sources`` into a shared library; cached by everything that goes into it.

    By default the sources use ``wddm_native.h`` (the exported-name ABI). With ``wdk``
    they are WDK-style sources: they compile against the WDK compatibility set and are
    linked with its runtime, and a call to a routine the set does not provide is a
    link error naming it (``-Wl,--no-undefined``; not in sanitizer builds, whose
    runtime is resolved at load). C++ sources (``.cpp``, ``.cc``, ``.cxx``) need ``wdk``;
    they are compiled with the C++ compiler of ``compiler``'s family (default: the
    system's C compiler, :func:`find_compiler`) with :data:`KERNEL_CXX_FLAGS`, and the
    library is linked without the C++ runtime, as a driver is: ``operator new`` and
    ``delete`` are the driver's own. Raises :class:`NativeBuildError` in one line.
    """
    cxx_sources = [s for s in sources if s.suffix.lower() in CXX_SUFFIXES]
    if cxx_sources and not wdk:
        raise NativeBuildError(
            f"cannot build {cxx_sources[0]}: C++ sources build only as WDK-style drivers (--wdk)"
        )
    compiler = compiler or find_compiler(sanitize)
    cxx = cxx_compiler(compiler) if cxx_sources else None
    flags = [
        "-std=c11",
        "-fPIC",
        "-shared",
        "-Wall",
        "-Wextra",
        *(SANITIZE_FLAGS if sanitize else ("-g", "-O2")),
        *(wdk_cflags() if wdk else [f"-I{header_path().parent}"]),
        *(f"-I{d}" for d in include_dirs),
        *(f"-D{d}" for d in defines),
        *(("-Wl,--no-undefined",) if wdk and not sanitize else ()),
        # A driver's calls to its own functions (its operator new and delete above all)
        # stay in it: a C++ runtime or a sanitizer in the process does not interpose them.
        *(("-Wl,-Bsymbolic-functions",) if wdk else ()),
        *extra_flags,
    ]
    own = list(sources)
    inputs = [*(_wdk_inputs() if wdk else [header_path()]), *own]
    digest = hashlib.sha256()
    for part in (compiler, _compiler_version(compiler), *flags):
        digest.update(part.encode() + b"\0")
    if cxx is not None:
        for part in (cxx, _compiler_version(cxx), *KERNEL_CXX_FLAGS, *CXX_SANITIZE_FLAGS):
            digest.update(part.encode() + b"\0")
    # The headers a source may include by a relative name: its own directory's and -I's.
    for directory in dict.fromkeys([*include_dirs, *(s.parent for s in sources)]):
        for header in sorted(Path(directory).iterdir() if Path(directory).is_dir() else ()):
            if header.suffix.lower() in HEADER_SUFFIXES:
                digest.update(header.name.encode() + b"\0" + header.read_bytes())
    if wdk:
        sources = [*sources, wdk_runtime_source()]
    for source in inputs:
        try:
            digest.update(source.read_bytes())
        except OSError as exc:
            raise NativeBuildError(f"cannot read source {source}: {exc.strerror}") from None
    traces = wpp_trace_headers(own, include_dirs) if wdk else {}
    for tmh, text in sorted(traces.items()):
        digest.update(f"{tmh}\0{text}".encode())
    out = cache_dir() / digest.hexdigest()[:16] / f"lib{name}.so"
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".lib{name}-", suffix=".so", dir=out.parent)
    os.close(fd)
    try:
        with tempfile.TemporaryDirectory(prefix="wddm-tmh-") as generated:
            for tmh, text in traces.items():
                path = Path(generated, tmh)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
            if traces:
                flags = [*flags, f"-I{generated}"]
            if cxx is None:
                _run(name, compiler, [compiler, *flags, "-o", tmp, *map(str, sources)])
            else:
                _build_mixed(name, compiler, cxx, flags, sources, tmp)
    except NativeBuildError:
        Path(tmp).unlink(missing_ok=True)
        raise
    os.replace(tmp, out)
    return out


def _build_mixed(
    name: str, cc: str, cxx: str, flags: list[str], sources: Sequence[Path], out: str
) -> None:
    """Compile C and C++ sources to objects with their own compiler, then link them with
    the C compiler: no C++ runtime (libstdc++) comes in, as none does in a kernel driver."""
    c_flags = [f for f in flags if f != "-shared" and not f.startswith("-Wl,")]
    cxx_flags = [f for f in c_flags if f not in _C_ONLY_FLAGS] + list(KERNEL_CXX_FLAGS)
    if any(f.startswith("-fsanitize=") for f in flags):
        cxx_flags += CXX_SANITIZE_FLAGS
    link_flags = [f for f in flags if f not in _C_ONLY_FLAGS and not f.startswith(("-I", "-D"))]
    link_flags = [f for f in link_flags if not f.startswith("-W") or f.startswith("-Wl,")]
    with tempfile.TemporaryDirectory(prefix=f"wddm-{name}-") as work:
        objects = []
        for i, source in enumerate(sources):
            is_cxx = source.suffix.lower() in CXX_SUFFIXES
            tool, own = (cxx, cxx_flags) if is_cxx else (cc, c_flags)
            obj = str(Path(work) / f"{i}-{source.stem}.o")
            _run(name, tool, [tool, *own, "-c", "-o", obj, str(source)])
            objects.append(obj)
        _run(name, cc, [cc, *link_flags, "-o", out, *objects])


def _run(name: str, compiler: str, command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        first = next(
            (line for line in done.stderr.splitlines() if "error" in line or "undefined" in line),
            "",
        )
        raise NativeBuildError(
            f"building {name} with {compiler} failed (exit {done.returncode}): "
            f"{first.strip() or done.stderr.strip()[:300]}"
        )


def _compiler_version(compiler: str) -> str:
    done = subprocess.run([compiler, "--version"], capture_output=True, text=True, check=False)
    return done.stdout.splitlines()[0] if done.stdout else compiler


def reference_library(
    mutant: str | None = None, *, variant: str | None = None, sanitize: bool = False
) -> Path:
    """The C reference miniport (optionally a mutant or variant), built and cached."""
    defines = []
    name = "wddmref"
    for macro, table, prefix in (
        (mutant, MUTANTS, "WDDM_MUTANT_"),
        (variant, VARIANTS, "WDDM_REFERENCE_"),
    ):
        if macro is None:
            continue
        if macro not in table:
            raise NativeBuildError(
                f"unknown C reference {'mutant' if table is MUTANTS else 'variant'} {macro!r}: "
                f"expected one of {', '.join(table)}"
            )
        defines.append(prefix + macro)
        name += "-" + macro.lower().replace("_", "-")
    if sanitize:
        name += "-asan"
    return build([reference_source()], name=name, defines=defines, sanitize=sanitize)
