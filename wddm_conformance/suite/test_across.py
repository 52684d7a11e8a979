"""Across the DDIs: no escaped exceptions, bounded time, read-only inputs, isolation."""

from __future__ import annotations

import pytest

from ..driver import AllocationRequest
from ..kernel import Kernel
from ..program import AllocRef, Copy, Fill
from ..workload import Workload
from .support import pair, program, run_checked

requirement = pytest.mark.requirement


@requirement("ALL-NORAISE")
def test_no_ddi_lets_an_exception_escape_during_a_mixed_workload(kernel: Kernel) -> None:
    Workload(kernel, seed=1).run()


@requirement("ALL-BOUNDED")
def test_every_ddi_call_returns_in_bounded_time(kernel: Kernel) -> None:
    ctx, a, b = pair(kernel)
    run_checked(kernel, ctx, [None, a, b], program(2), "program")
    kernel.evict(a)
    kernel.make_resident(a)


@requirement("ALL-READONLY")
def test_inputs_the_kernel_owns_are_not_written(make_kernel: object) -> None:
    k = make_kernel("always-repatch")  # type: ignore[operator]
    ctx, a, b = pair(k)
    run_checked(k, ctx, [None, a, b], program(2), "program")  # allocation and patch lists


@requirement("ALL-ISOLATION")
def test_a_submission_reaches_only_its_own_allocations(kernel: Kernel) -> None:
    """Two processes (devices): each one's DMA streams stay inside its own allocation list."""
    mine_ctx, mine_a, mine_b = pair(kernel, 16 << 10, seed=1, aperture=False)
    other = kernel.create_device()
    other_ctx = kernel.create_context(other)
    secret, scratch = kernel.create_allocations(
        other, [AllocationRequest(16 << 10, aperture=False), AllocationRequest(16 << 10)]
    )
    kernel.cpu_write(secret, 0, b"SECRET!!" * 2048)
    for round_ in range(3):
        run_checked(
            kernel,
            other_ctx,
            [None, secret, scratch],
            [Copy(AllocRef(2), AllocRef(1), 4096)],
            f"other process, round {round_}",
        )
        run_checked(
            kernel,
            mine_ctx,
            [None, mine_a, mine_b],
            [Copy(AllocRef(1), AllocRef(2), 4096), Fill(AllocRef(2, 8), 64, round_)],
            f"this process, round {round_}",
        )
