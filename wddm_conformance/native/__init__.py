"""Native (C) drivers: the shipped ABI header, the cffi adapter, and building C drivers.

``--driver=native:path/to/libdriver.so`` loads a shared library that implements the
DxgkDdi* entry points of ``wddm_native.h``; ``--driver=reference-c`` builds (once,
cached) and loads the C port of the reference miniport. See docs/native.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

PREFIX = "native:"
#: ``--driver=native:@reference`` (and the registry name ``reference-c``): the C reference, built on demand.
BUILT_REFERENCE = "@reference"


def load_native(spec: str, where: str = "--driver") -> type[Any]:
    """The driver class for ``native:PATH`` (or ``native:@reference``); one-line errors."""
    from .abi import open_library
    from .adapter import native_driver_class

    target = spec[len(PREFIX) :]
    if not target:
        from ..errors import DriverLoadError

        suffix = "" if where == "--driver" else f" from {where}"
        raise DriverLoadError(
            f"invalid --driver {spec!r}{suffix}: expected 'native:path/to/libdriver.so'"
        )
    if target == BUILT_REFERENCE:
        from .build import reference_library

        path = reference_library()
    else:
        path = Path(target).expanduser().resolve()
    return native_driver_class(open_library(path, spec))
