"""``wddm-conformance native ...``: build a native driver against the header, or find the header.

* ``native build [SOURCE.c ...] [--sanitize] [-D MACRO] [--out PATH]`` compiles the
  sources (default: the C reference miniport) into a shared library and prints its
  path; ``--sanitize`` builds with clang and ``-fsanitize=address,undefined,fuzzer-no-link``
  for ``wddm-conformance fuzz run TARGET --driver=native:PATH``.
* ``native build --wdk SOURCE.c|SOURCE.cpp ... [-I DIR] [-D MACRO]`` builds a driver
  written against the WDK (``ntddk.h``, ``dispmprt.h``, ``DriverEntry`` +
  ``DxgkInitialize``), in C or C++, with the WDK compatibility set and its runtime.
* ``native header`` prints the directory holding ``wddm_native.h`` (for ``-I``).
* ``native cflags`` prints the compiler flags for WDK-style sources; ``--runtime``
  prints the runtime source to compile with them instead.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from ..errors import CommandLineError
from .abi import header_path
from .build import (
    MUTANTS,
    VARIANTS,
    build,
    reference_library,
    wdk_cflags,
    wdk_runtime_source,
)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    native = sub.add_parser("native", help="build native (C) drivers against wddm_native.h")
    nsub = native.add_subparsers(dest="native_command", required=True)
    b = nsub.add_parser("build", help="compile a C driver (default: the C reference miniport)")
    b.add_argument(
        "sources", nargs="*", type=Path, help="C sources of your driver (C++ too with --wdk)"
    )
    b.add_argument(
        "--sanitize",
        action="store_true",
        help="clang with -fsanitize=address,undefined,fuzzer-no-link (for fuzz campaigns)",
    )
    b.add_argument("-D", dest="defines", action="append", default=[], help="a macro to define")
    b.add_argument(
        "-I",
        dest="include_dirs",
        action="append",
        default=[],
        type=Path,
        help="an include directory",
    )
    b.add_argument(
        "--wdk",
        action="store_true",
        help="WDK-style sources: DriverEntry + DxgkInitialize, built with the WDK compatibility set",
    )
    b.add_argument("--name", default="driver", help="library name for your sources (libNAME.so)")
    b.add_argument("--mutant", choices=sorted(MUTANTS), help="a deliberately broken C reference")
    b.add_argument("--variant", choices=sorted(VARIANTS), help="a conforming C reference variant")
    b.add_argument("--out", type=Path, help="copy the library here (default: print the cache path)")
    nsub.add_parser("header", help="print the directory that holds wddm_native.h")
    c = nsub.add_parser("cflags", help="print the compiler flags for WDK-style driver sources")
    c.add_argument(
        "--runtime", action="store_true", help="print the runtime source to compile with them"
    )


def dispatch(args: argparse.Namespace) -> int:
    if args.native_command == "header":
        print(header_path().parent)
        return 0
    if args.native_command == "cflags":
        print(wdk_runtime_source() if args.runtime else " ".join(wdk_cflags()))
        return 0
    if args.wdk and not args.sources:
        raise CommandLineError("--wdk builds your own sources: name the driver's .c and .cpp files")
    if args.sources:
        if args.mutant or args.variant:
            raise CommandLineError(
                "--mutant and --variant apply to the C reference, not to your sources"
            )
        path = build(
            args.sources,
            name=args.name,
            defines=args.defines,
            sanitize=args.sanitize,
            wdk=args.wdk,
            include_dirs=args.include_dirs,
        )
    else:
        if args.defines or args.include_dirs:
            raise CommandLineError(
                "-D and -I apply to your own sources; use --mutant/--variant for the reference"
            )
        path = reference_library(args.mutant, variant=args.variant, sanitize=args.sanitize)
    if args.out is not None:
        shutil.copyfile(path, args.out)
        path = args.out
    print(path)
    return 0
