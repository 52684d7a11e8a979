"""A long fuzz campaign's memory stays flat: nothing the rig, the kernel or the driver keeps
grows with the number of inputs.

Growth is measured with tracemalloc as the bytes allocated after a warm-up and still
alive at the end, over a fixed number of calls: a count of inputs, never seconds, so
the verdict does not depend on the machine's speed or load.
"""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Callable

import pytest

from wddm_conformance.errors import HarnessError
from wddm_conformance.sysmem import FIRST_PFN, SystemMemory


def retained(step: Callable[[], object], warmup: int, count: int) -> int:
    """Bytes allocated by ``count`` calls of ``step`` (after ``warmup`` calls) still alive after them."""
    for _ in range(warmup):
        step()
    gc.collect()
    tracemalloc.start()
    try:
        for _ in range(count):
            step()
        gc.collect()
        return tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()


# ---------------------------------------------------------------------- system memory


def test_system_memory_keeps_no_record_of_freed_frames() -> None:
    sysmem = SystemMemory()

    def cycle() -> None:
        sysmem.free(sysmem.allocate_mdl(8192).pfns)

    # 20,000 frees of 2 frames each: a record per freed frame would be about 1.5 MiB.
    assert retained(cycle, warmup=100, count=10_000) < 16 << 10


def test_a_freed_frame_comes_back_only_after_every_other_free_frame() -> None:
    sysmem = SystemMemory(max_pages=FIRST_PFN + 4)
    a, b = sysmem.allocate(2)
    sysmem.free([a])
    assert sysmem.allocate(2) == (FIRST_PFN + 2, FIRST_PFN + 3)  # never-used frames first
    assert sysmem.allocate(1) == (a,)  # then round again, skipping b, still allocated
    with pytest.raises(HarnessError, match="exhausted"):
        sysmem.allocate(1)
    sysmem.free([b])
    assert sysmem.allocate(1) == (b,)
