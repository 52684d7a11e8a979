"""Oracles shared by the tests, the workload and (later) the suite and fuzz targets.

Each oracle raises :class:`~wddm_conformance.errors.DriverViolation` naming the
requirement it checks; the kernel itself raises the violations it sees during DDI
calls. A failing test and a fuzz finding therefore name the same requirement ID.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .errors import DriverViolation
from .kernel import Allocation, Kernel, RenderResult
from .program import describe_difference


def expect_memory(
    kernel: Kernel,
    allocation_list: Sequence[Allocation | None],
    expected: Mapping[int, bytes],
    what: str,
) -> None:
    """REN-TRANSLATE: every allocation holds what the program meant (GPU view)."""
    for index, want in expected.items():
        a = allocation_list[index]
        if a is None:
            continue
        got = kernel.gpu_view(a)
        if got != want:
            raise DriverViolation(
                "REN-TRANSLATE",
                "DxgkDdiRender",
                f"{what}: allocation-list entry {index} ({a}) differs from the reference model "
                f"{describe_difference(got, want)}",
            )


def expect_single_fetch(result: RenderResult) -> None:
    """REN-COPYFIRST: no byte of the command buffer was read twice within one Render call."""
    if result.command_buffer is None:
        return
    doubled = result.command_buffer.double_fetched()
    if doubled:
        lo, hi = doubled[0]
        raise DriverViolation(
            "REN-COPYFIRST",
            "DxgkDdiRender",
            f"read command-buffer bytes [{lo}, {hi}) more than once: copy user memory once, then validate the copy",
            {"double_fetched": doubled},
        )
