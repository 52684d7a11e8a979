"""DxgkDdiPatch: in place, only the submission range, repeatable, paging buffers, fences."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ..errors import DriverViolation, HarnessError
from ..kernel import Kernel
from ..kernel.scheduler import PATCH
from .support import pair, program, run_checked

requirement = pytest.mark.requirement
MakeKernel = Callable[..., Kernel]


@requirement("PAT-INPLACE")
@pytest.mark.parametrize("mode", ["always-repatch", "forced-relocation"])
def test_patch_writes_addresses_in_place_without_changing_the_size(
    make_kernel: MakeKernel, mode: str
) -> None:
    k = make_kernel(mode)
    ctx, a, b = pair(k, aperture=False)
    result = run_checked(k, ctx, [None, a, b], program(2), "patched program")
    if not all(s.patched for s in result.submissions):
        raise HarnessError(f"{mode} did not patch every submission")


@requirement("PAT-RANGE")
def test_patch_uses_only_the_submission_range(make_kernel: MakeKernel) -> None:
    k = make_kernel("split-submissions")
    ctx, a, b = pair(k, aperture=False)
    result = run_checked(k, ctx, [None, a, b], program(4), "program submitted in two ranges")
    if len(result.submissions) < 2:
        raise HarnessError("split-submissions did not split the DMA buffer")


@requirement("PAT-REPATCH")
def test_patching_twice_with_the_same_addresses_changes_nothing(make_kernel: MakeKernel) -> None:
    k = make_kernel("always-repatch")
    ctx, a, b = pair(k, aperture=False)
    run_checked(k, ctx, [None, a, b], program(2), "program patched twice (preemption)")


@requirement("PAT-REPATCH")
def test_repatching_after_relocation_reaches_the_new_addresses(make_kernel: MakeKernel) -> None:
    k = make_kernel("always-repatch,forced-relocation,split-submissions")
    ctx, a, b = pair(k, aperture=False)
    for i in range(2):
        run_checked(k, ctx, [None, a, b], program(), f"submission {i} after relocation")


@requirement("PAT-PAGING")
def test_patch_accepts_paging_buffers_without_a_patch_list(kernel: Kernel) -> None:
    _, a, _ = pair(kernel, aperture=False)
    kernel.evict(a)
    kernel.make_resident(a)


@requirement("PAT-FENCE")
@pytest.mark.parametrize("mode", ["always-repatch", "split-submissions"])
def test_the_gpu_signals_exactly_the_submitted_fence(make_kernel: MakeKernel, mode: str) -> None:
    k = make_kernel(mode)
    ctx, a, b = pair(k)
    result = run_checked(k, ctx, [None, a, b], program(2), "program")
    for s in result.submissions:
        if s.patched and any(f != s.fence_id for f in s.execution.fences):
            raise DriverViolation(
                "PAT-FENCE",
                PATCH,
                f"submission with fence {s.fence_id} signalled {s.execution.fences}",
            )


@requirement("PAT-BUGCHECK")
@pytest.mark.parametrize("mode", ["always-repatch", "split-submissions", "no-prepatching"])
def test_patch_succeeds_on_every_valid_dma_buffer(make_kernel: MakeKernel, mode: str) -> None:
    """A failing Patch is BugCheck 0x119 (0x3, ...): reported as CRASH with its parameters."""
    k = make_kernel(mode)
    ctx, a, b = pair(k)
    run_checked(k, ctx, [None, a, b], program(2), "program")
