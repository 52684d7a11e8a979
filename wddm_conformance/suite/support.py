"""Scenarios the checks share: allocations with known content and programs over them."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from ..attribution import run_program_checked
from ..driver import AllocationRequest
from ..errors import DriverViolation, NotJudged
from ..kernel import Allocation, Context, Kernel, RenderResult
from ..leaks import Leak, find_leak, find_pool_leak, tracks_pool, unsupported
from ..program import AllocRef, Bind, Copy, Fill, Op, Write, Xor


def pair(
    k: Kernel, size: int = 64 << 10, seed: int = 1, **request: Any
) -> tuple[Context, Allocation, Allocation]:
    """A device, a context and two allocations filled with seeded random bytes."""
    device = k.create_device()
    ctx = k.create_context(device)
    a, b = k.create_allocations(
        device, [AllocationRequest(size, **request), AllocationRequest(size, **request)]
    )
    rng = random.Random(seed)
    k.cpu_write(a, 0, rng.randbytes(a.size))
    k.cpu_write(b, 0, rng.randbytes(b.size))
    return ctx, a, b


def program(repeat: int = 1) -> list[Op]:
    """Every kind of operation over allocation-list entries 1 and 2 (0 is the NULL element)."""
    ops: list[Op] = []
    for i in range(repeat):
        ops += [
            Copy(AllocRef(1, 64 * i), AllocRef(2, 4096 + 8 * i), 3000),
            Fill(AllocRef(2, 10000), 777, 0xA5A5F00D),
            Write(AllocRef(1, 20000 + 4 * i), 0xDEADBEEF),
            Xor(AllocRef(2, 30000), AllocRef(1, 100), 1000),
            Bind(i % 8, AllocRef(1, 16)),
            Bind(7, None),
        ]
    return ops


def run_checked(
    k: Kernel,
    ctx: Context,
    allocation_list: Sequence[Allocation | None],
    ops: Sequence[Op],
    what: str,
    **kwargs: Any,
) -> RenderResult:
    """Submit ``ops``; it must succeed and leave exactly what the program means in memory
    (a failure names the step that broke it: :func:`~wddm_conformance.attribution.run_program_checked`)."""
    return run_program_checked(k, ctx, allocation_list, ops, what, **kwargs)


def skip_unless_splitting(k: Kernel) -> None:
    """Tiny DMA buffers split a command buffer, except for a guaranteed-contract driver, whose
    user-mode driver guarantees the DMA buffer is large enough (it rejects, never splits)."""
    if k.rejects_oversized:
        pytest.skip(k.rejects_oversized)


def require_no_leak(
    k: Kernel, requirement: str, ddi: str, cycles: str, cycle: Callable[[], None]
) -> None:
    """Run ``cycle`` (whose objects are all gone at its end) enough times to see whether the
    driver's state grows with their number (:func:`~wddm_conformance.leaks.find_leak`): a
    leak is ``requirement`` broken in ``ddi``; ``cycles`` names them in the message. A
    WDK-style native driver is judged by the pool its runtime tracks
    (:func:`~wddm_conformance.leaks.find_pool_leak`), another native driver is SKIP (its
    state is C memory)."""
    reason = unsupported(k.spec.cls)
    if reason:
        raise NotJudged(reason)
    leak: Leak | None
    if tracks_pool(k.spec.cls):
        leak = find_pool_leak(k.driver, cycle)
    else:
        leak = find_leak(k.driver, cycle, companions=(k.spec.encoder_cls, k.spec.gpu_cls))
    if leak is not None:
        raise DriverViolation(requirement, ddi, leak.describe(cycles))
