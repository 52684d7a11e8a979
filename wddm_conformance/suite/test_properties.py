"""Property checks: GPU memory equals the program model in every kernel mode; malformed
command buffers are rejected or stay inside their submission."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from ..driver import AllocationRequest
from ..kernel import ALL_MODES, AllocationUse, KernelMode
from ..oracles import VALIDATION_ERRORS, expect_rejected
from ..profiles import suite_settings
from ..program import Op
from ..release import per_example
from ..run import Run
from ..strategies import malformed, outside_operations, programs
from .support import run_checked, skip_unless_splitting

requirement = pytest.mark.requirement

#: The suite's hypothesis settings: the suite's profile, repeatable, no example database.
SUITE = suite_settings(
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

SIZES = [0, 24 << 10, 16 << 10, 4096]


@requirement("REN-TRANSLATE")
@pytest.mark.parametrize("mode", ALL_MODES, ids=str)
@SUITE
@given(data=st.data())
@per_example
def test_gpu_memory_matches_the_program_model(
    wddm_run: Run, mode: KernelMode, data: st.DataObject
) -> None:
    ops: list[Op] = data.draw(programs(SIZES), label="program")
    k = wddm_run.kernel(mode)
    skip_unless_splitting(k)
    device = k.create_device()
    ctx = k.create_context(device)
    allocs = k.create_allocations(device, [AllocationRequest(s) for s in SIZES[1:]])
    rng = random.Random(len(ops))
    for a in allocs:
        k.cpu_write(a, 0, rng.randbytes(a.size))
    run_checked(k, ctx, [None, *allocs], ops, f"program of {len(ops)} operations")


@requirement("REN-STATUS", "ALL-ISOLATION")
@SUITE
@given(data=st.data())
@per_example
def test_malformed_command_buffers_are_rejected_or_stay_isolated(
    wddm_run: Run, data: st.DataObject
) -> None:
    k = wddm_run.kernel()
    ops: list[Op] = data.draw(programs(SIZES, max_ops=4), label="program")
    command = data.draw(malformed(k.encoder.encode(ops).command), label="command buffer")
    device = k.create_device()
    ctx = k.create_context(device)
    allocs = k.create_allocations(device, [AllocationRequest(s) for s in SIZES[1:]])
    # The kernel judges the status, the cursors and, on success, every GPU access.
    k.render(ctx, command, [None, *(AllocationUse(a, True) for a in allocs)])


@requirement("REN-VALIDATE", "ALL-ISOLATION")
@SUITE
@given(data=st.data())
@per_example
def test_full_width_references_outside_their_allocation_are_rejected(
    wddm_run: Run, data: st.DataObject
) -> None:
    """Indices with bit 31 set or past the list, offsets whose end wraps at 2^32, sizes
    past 2^16 or 2^31, after a valid prefix: the buffer is refused (REN-VALIDATE)."""
    k = wddm_run.kernel()
    skip_unless_splitting(k)
    device = k.create_device()
    ctx = k.create_context(device)
    allocs = k.create_allocations(device, [AllocationRequest(s) for s in SIZES[1:]])
    sizes = [0, *(a.size for a in allocs)]
    ops: list[Op] = data.draw(programs(sizes, max_ops=3), label="valid prefix")
    bad = data.draw(outside_operations(sizes), label="outside operation")
    ops.insert(data.draw(st.integers(0, len(ops)), label="at"), bad)
    result = k.run_program(ctx, [None, *allocs], ops)
    expect_rejected(result, VALIDATION_ERRORS, "REN-VALIDATE", f"{bad}")
