"""A pytest plugin (``-p tests.memory_probe``) that measures, per check, what the suite's
checks keep alive; for tests/test_suite_memory.py, in a run with ``--isolate=none``.

Every Kernel made in the run is followed, with its driver instance, GPU and system
memory, through weak references. For each check it records, in the JSON file named by
``$WDDM_MEMORY_PROBE``:

* ``peak``: the most bytes Python had allocated at once while the check ran
  (tracemalloc, from the check's start);
* ``most``: the most Kernels alive at once (unreachable ones the collector had not yet
  freed count: they hold their memory all the same);
* ``left``: what is still alive once the check has ended and been reported and a full
  collection has run, by kind (``Kernel``, ``driver``, ``gpu``, ``sysmem``).
"""

from __future__ import annotations

import gc
import json
import os
import tracemalloc
import weakref
from typing import Any

import pytest

from wddm_conformance.kernel import Kernel

_kernels: weakref.WeakSet[Kernel] = weakref.WeakSet()
#: Weak references to the parts of every kernel made, by kind.
_parts: list[tuple[str, weakref.ref[Any]]] = []
_most = 0
_results: dict[str, dict[str, Any]] = {}
_original_init = Kernel.__init__


def _init(self: Kernel, *args: Any, **kwargs: Any) -> None:
    global _most
    _original_init(self, *args, **kwargs)
    _kernels.add(self)
    _most = max(_most, len(_kernels))
    for kind, part in (("driver", self.driver), ("gpu", self.gpu), ("sysmem", self.sysmem)):
        _parts.append((kind, weakref.ref(part)))


def pytest_configure(config: pytest.Config) -> None:
    Kernel.__init__ = _init  # type: ignore[method-assign]


def pytest_runtest_logstart(nodeid: str, location: tuple[str, int | None, str]) -> None:
    global _most
    gc.collect()
    _most = len(_kernels)
    tracemalloc.start()


def pytest_runtest_logfinish(nodeid: str, location: tuple[str, int | None, str]) -> None:
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    gc.collect()
    left = {"Kernel": len(_kernels)}
    for kind, ref in _parts:
        left[kind] = left.get(kind, 0) + (ref() is not None)
    _parts[:] = [(kind, ref) for kind, ref in _parts if ref() is not None]
    _results[nodeid.split("::", 1)[1]] = {"peak": peak, "most": _most, "left": left}


def pytest_unconfigure(config: pytest.Config) -> None:
    path = os.environ.get("WDDM_MEMORY_PROBE")
    if path:
        with open(path, "w", encoding="utf-8") as out:
            json.dump(_results, out, indent=1)
