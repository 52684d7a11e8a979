"""DxgkDdiRender: translation, validation, patch lists, pre-patching, split and resume."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from ..attribution import run_program_checked
from ..ddi import D3DDDI_PATCHLOCATIONLIST
from ..driver import AllocationRequest
from ..errors import DriverViolation, HarnessError
from ..kernel import Allocation, AllocationUse, Context, Kernel
from ..kernel.scheduler import RENDER
from ..oracles import (
    ERRORS,
    UNDERRUN_ERRORS,
    VALIDATION_ERRORS,
    expect_memory,
    expect_rejected,
    expect_single_fetch,
    expect_success,
)
from ..program import AllocRef, Bind, Copy, Fill, Op, Write, Xor
from ..status import (
    STATUS_SUCCESS,
)
from .support import pair, program, run_checked, skip_unless_splitting

requirement = pytest.mark.requirement
MakeKernel = Callable[..., Kernel]


@requirement("REN-TRANSLATE")
def test_render_translates_every_command_of_a_valid_buffer(kernel: Kernel) -> None:
    ctx, a, b = pair(kernel, aperture=False)
    run_checked(kernel, ctx, [None, a, b], program(3), "copy/fill/write/xor/bind program")


@requirement("REN-STATUS")
@pytest.mark.parametrize(
    "case",
    ["valid", "privileged", "illegal", "truncated", "bad-index", "empty", "one-byte", "one-more"],
)
def test_render_returns_only_documented_statuses(kernel: Kernel, case: str) -> None:
    ctx, a, b = pair(kernel, 8192)
    command = kernel.encoder.encode([Copy(AllocRef(1), AllocRef(2), 64)]).command
    commands = {
        "valid": command,
        "privileged": kernel.encoder.privileged_command(),
        "illegal": kernel.encoder.illegal_command(),
        "truncated": command[:-3],
        "bad-index": kernel.encoder.encode([Copy(AllocRef(1), AllocRef(9), 64)]).command,
        # CommandLength at 0, 1 and one byte past a whole program
        "empty": b"",
        "one-byte": command[:1],
        "one-more": command + command[:1],
    }
    uses = [None, AllocationUse(a, True), AllocationUse(b, True)]
    kernel.render(ctx, commands[case], uses)  # the kernel judges the status on return


@requirement("REN-VALIDATE")
def test_render_rejects_privileged_commands(kernel: Kernel) -> None:
    ctx, a, _ = pair(kernel, 8192)
    result = kernel.render(ctx, kernel.encoder.privileged_command(), [None, a])
    expect_rejected(result, VALIDATION_ERRORS, "REN-VALIDATE", "a privileged command")


@requirement("REN-VALIDATE")
def test_render_rejects_illegal_commands(kernel: Kernel) -> None:
    ctx, a, _ = pair(kernel, 8192)
    result = kernel.render(ctx, kernel.encoder.illegal_command(), [None, a])
    expect_rejected(result, VALIDATION_ERRORS, "REN-VALIDATE", "an illegal command")


#: Each operation kind with one reference at the end of its allocation: ``past`` 0 ends
#: exactly at the end (valid), 1 reaches one byte beyond it (outside the submission).
EDGES: dict[str, Callable[[int, int, int], Op]] = {
    "copy-dst": lambda s1, s2, past: Copy(AllocRef(1, s1 - 64 + past), AllocRef(2), 64),
    "copy-src": lambda s1, s2, past: Copy(AllocRef(1), AllocRef(2, s2 - 64 + past), 64),
    "xor-dst": lambda s1, s2, past: Xor(AllocRef(1, s1 - 64 + past), AllocRef(2), 64),
    "xor-src": lambda s1, s2, past: Xor(AllocRef(1), AllocRef(2, s2 - 64 + past), 64),
    "fill": lambda s1, s2, past: Fill(AllocRef(2, s2 - 64 + past), 64, 0x5A5A5A5A),
    "write": lambda s1, s2, past: Write(AllocRef(1, s1 - 4 + past), 7),
    "bind": lambda s1, s2, past: Bind(3, AllocRef(1, s1 + past)),
}


def _edge(kernel: Kernel, kind: str, past: int) -> tuple[Context, list[Allocation | None], Op]:
    """Two allocations and an ``EDGES`` operation placed at the end of their Size as the
    driver reported it (INTERPRETING §3: bounds are the driver's)."""
    ctx, a, b = pair(kernel, 8192, aperture=False)
    return ctx, [None, a, b], EDGES[kind](a.size, b.size, past)


@requirement("REN-VALIDATE", "ALL-ISOLATION")
@pytest.mark.parametrize("kind", EDGES)
def test_render_rejects_a_reference_one_byte_past_its_allocation(kernel: Kernel, kind: str) -> None:
    ctx, alist, op = _edge(kernel, kind, 1)
    # run_program tells the kernel which references are out of bounds: whatever the GPU
    # does with them once accepted is REN-VALIDATE (docs/INTERPRETING.md §5).
    result = kernel.run_program(ctx, alist, [op])
    expect_rejected(result, VALIDATION_ERRORS, "REN-VALIDATE", f"{op}")


@requirement("REN-TRANSLATE")
@pytest.mark.parametrize("kind", EDGES)
def test_a_reference_that_ends_exactly_at_its_allocation_end_is_translated(
    kernel: Kernel, kind: str
) -> None:
    ctx, alist, op = _edge(kernel, kind, 0)
    run_checked(kernel, ctx, alist, [op], f"{op}, which ends exactly at the allocation's end")


@requirement("REN-VALIDATE", "ALL-ISOLATION")
@pytest.mark.parametrize(
    "op",
    [
        Write(AllocRef(3), 1),  # an index outside the allocation list
        Copy(AllocRef(1, 0xFFFF_FF00), AllocRef(2), 0x200),  # the end wraps at 2^32
        Write(AllocRef(0x8000_0001), 1),  # bit 31 set: negative when compared signed
        Write(AllocRef(0xFFFF_FFFF), 1),  # -1 when compared signed
        Fill(AllocRef(2), 0x1_0040, 0x5A5A5A5A),  # 64 bytes when the size is taken in 16 bits
        Fill(AllocRef(2, 16), 0x8000_0000, 1),  # negative when the size is compared signed
        Write(AllocRef(1, 0xFFFF_FFFE), 1),  # the end wraps to 2
    ],
    ids=[
        "bad-index",
        "wrapped-offset",
        "high-bit-index",
        "all-ones-index",
        "17-bit-size",
        "high-bit-size",
        "wrapped-write",
    ],
)
def test_render_rejects_references_outside_the_submission(kernel: Kernel, op: Op) -> None:
    ctx, a, b = pair(kernel, 8192, aperture=False)
    result = kernel.run_program(ctx, [None, a, b], [op])
    expect_rejected(result, VALIDATION_ERRORS, "REN-VALIDATE", f"{op}")


@requirement("REN-VALIDATE", "ALL-ISOLATION")
@pytest.mark.parametrize("length", [0, 1, 2])
def test_render_rejects_an_index_just_past_a_short_allocation_list(
    kernel: Kernel, length: int
) -> None:
    """AllocationListSize 0, 1 and 2: the first index past the list's end is refused."""
    ctx, a, b = pair(kernel, 8192, aperture=False)
    alist: list[Allocation | None] = [None, a, b][:length]
    op = Write(AllocRef(length), 1)
    result = kernel.run_program(ctx, alist, [op])
    expect_rejected(
        result, VALIDATION_ERRORS, "REN-VALIDATE", f"{op} with AllocationListSize {length}"
    )


@requirement("REN-UNDERRUN")
@pytest.mark.parametrize("cut", [1, 3, 4])
def test_render_rejects_a_truncated_command_buffer(kernel: Kernel, cut: int) -> None:
    ctx, a, b = pair(kernel, 8192)
    encoded = kernel.encoder.encode([Copy(AllocRef(1), AllocRef(2), 64), Bind(1, None)])
    uses = [None, AllocationUse(a, True), AllocationUse(b)]
    result = kernel.render(ctx, encoded.command[:-cut], uses, patch_list_in=encoded.patch_locations)
    expect_rejected(result, UNDERRUN_ERRORS, "REN-UNDERRUN", f"a command buffer cut {cut} short")


@requirement("REN-USERFAULT")
@pytest.mark.parametrize("at", [0, 5, 30])
def test_a_fault_reading_the_command_buffer_becomes_an_error_status(
    kernel: Kernel, at: int
) -> None:
    ctx, a, b = pair(kernel)
    result = kernel.run_program(ctx, [None, a, b], program(), fault_at=at)
    expect_rejected(result, ERRORS, "REN-USERFAULT", f"pCommand faulting at byte {at}")


@requirement("REN-USERFAULT")
def test_a_fault_reading_the_input_patch_list_is_not_an_escape(kernel: Kernel) -> None:
    ctx, a, b = pair(kernel)
    # A driver may ignore pPatchLocationListIn (then it succeeds); reading it must not crash.
    result = kernel.run_program(ctx, [None, a, b], program(), patch_fault_at=0)
    if result.status == STATUS_SUCCESS:
        return
    expect_rejected(result, ERRORS, "REN-USERFAULT", "pPatchLocationListIn faulting at byte 0")


@requirement("REN-COPYFIRST")
def test_render_reads_each_user_byte_once(kernel: Kernel) -> None:
    ctx, a, b = pair(kernel)
    expect_single_fetch(run_checked(kernel, ctx, [None, a, b], program(2), "program"))


@requirement("REN-COPYFIRST")
def test_user_memory_changed_after_reading_does_not_reach_the_dma_buffer(kernel: Kernel) -> None:
    ctx, a, b = pair(kernel, aperture=False)
    honest: list[Op] = [Fill(AllocRef(2, 100), 256, 0x11111111), Write(AllocRef(1, 8), 0x22222222)]
    raced: list[Op] = [Fill(AllocRef(2, 100), 256, 0x77777777), Write(AllocRef(1, 8), 0x66666666)]
    before = kernel.encoder.encode(honest).command
    after = kernel.encoder.encode(raced).command
    diff = [i for i, (x, y) in enumerate(zip(before, after, strict=True)) if x != y]
    if len(before) != len(after) or not diff:
        raise HarnessError("the encoder must encode the two programs to equal-length buffers")
    lo, hi = diff[0], diff[-1] + 1
    alist = [None, a, b]
    run_checked(kernel, ctx, alist, honest, "the program without a race")  # REN-TRANSLATE first
    want = kernel.expected_after(alist, honest)
    uses = [None, AllocationUse(a, True), AllocationUse(b, True)]
    umd_list = kernel.encoder.encode(honest).patch_locations
    result = kernel.render(ctx, before, uses, toctou=(lo, after[lo:hi]), patch_list_in=umd_list)
    if result.render_calls > 1:
        pytest.skip(
            f"Render split the command buffer ({result.render_calls} calls): a later call may "
            "read the changed bytes as new user content (INTERPRETING.md §5); the race is "
            "judged where one call translates the whole buffer"
        )
    expect_success(result, "TOCTOU program")
    expect_memory(
        kernel, alist, want, "user bytes changed right after the driver read them", "REN-COPYFIRST"
    )


@requirement("REN-PATCHOUT")
def test_output_patch_list_names_valid_indices_inside_the_written_bytes(kernel: Kernel) -> None:
    ctx, a, b = pair(kernel)
    result = run_checked(kernel, ctx, [None, a, b], program(4), "program")
    if not any(s.patch_list for s in result.submissions):
        raise HarnessError("no patch list to judge")  # pragma: no cover - the kernel judged it


@requirement("REN-PREPATCH")
def test_pre_patched_buffer_reaches_resident_allocations_without_a_patch_call(
    kernel: Kernel,
) -> None:
    """HLK: Render with resident allocations, submit with no Patch call, check GPU memory."""
    if kernel.mode.patches_every_submission:
        pytest.skip(
            f"--kernel-mode={kernel.mode} patches every submission: the pre-patched buffer "
            "alone is judged in the default and tiny-buffers modes"
        )
    ctx, a, b = pair(kernel, aperture=False)
    result = run_checked(kernel, ctx, [None, a, b], program(2), "pre-patched program")
    if any(s.patched for s in result.submissions):
        raise HarnessError("the kernel patched a buffer nothing moved under")


@requirement("REN-PREPATCH", "REN-PAGEDOUT")
def test_no_prepatching_mode_gets_every_reference_patched(make_kernel: MakeKernel) -> None:
    """HLK "No PrePatching": SegmentId is always 0 in Render, so Patch must fix every address."""
    k = make_kernel("no-prepatching")
    ctx, a, b = pair(k)
    run_checked(k, ctx, [None, a, b], program(2), "program with SegmentId 0 everywhere")


@requirement("REN-FULLPATCH")
@pytest.mark.parametrize("mode", ["always-repatch,forced-relocation", "forced-eviction"])
def test_every_reference_is_in_the_patch_list_so_moved_allocations_are_reached(
    make_kernel: MakeKernel, mode: str
) -> None:
    """HLK AlwaysRepatch: after Render every allocation moves; Patch with the output list."""
    k = make_kernel(mode)
    ctx, a, b = pair(k, aperture=False)
    run_checked(k, ctx, [None, a, b], program(2), "program whose allocations moved")


@requirement("REN-PAGEDOUT")
def test_paged_out_allocations_are_patched_not_trusted(make_kernel: MakeKernel) -> None:
    k = make_kernel("forced-relocation")
    ctx, a, b = pair(k, aperture=False)
    k.evict(a)
    k.evict(b)
    run_checked(k, ctx, [None, a, b], program(), "program over paged-out allocations")


@requirement("REN-PATCHIN")
@pytest.mark.parametrize("given", ["absent", "empty", "one-entry", "one-too-many"])
def test_render_without_an_input_patch_list_translates(make_kernel: MakeKernel, given: str) -> None:
    """PatchLocationListInSize at 0, 1 and one more than the references: the list is the
    user's and optional, so what it holds changes nothing."""
    k = make_kernel("always-repatch")
    ctx, a, b = pair(k, aperture=False)
    alist = [None, a, b]
    ops = program()
    run_checked(k, ctx, alist, ops, "with the UMD's patch list")  # REN-TRANSLATE first
    umd = list(k.encoder.encode(ops).patch_locations)
    patch_list_in = {
        "absent": None,
        "empty": [],
        "one-entry": umd[:1],
        "one-too-many": [*umd, D3DDDI_PATCHLOCATIONLIST(1, 0, 0, 0, 0, 0)],
    }[given]
    what = f"{given} pPatchLocationListIn ({len(patch_list_in or ())} of {len(umd)} entries)"
    run_program_checked(k, ctx, alist, ops, what, "REN-PATCHIN", patch_list_in=patch_list_in)


@requirement("REN-PATCHIN")
def test_a_lying_input_patch_list_does_not_corrupt_the_output(make_kernel: MakeKernel) -> None:
    k = make_kernel("always-repatch")
    ctx, a, b = pair(k, aperture=False)
    alist = [None, a, b]
    ops = program()
    run_checked(k, ctx, alist, ops, "with the UMD's patch list")  # REN-TRANSLATE first
    lies = [
        D3DDDI_PATCHLOCATIONLIST(
            3 - e.AllocationIndex if e.AllocationIndex else 2, 0, 0, 4096, 7, 7
        )
        for e in k.encoder.encode(ops).patch_locations
    ]
    run_program_checked(
        k, ctx, alist, ops, "a lying pPatchLocationListIn", "REN-PATCHIN", patch_list_in=lies
    )


@requirement("REN-COPYFIRST")
def test_an_input_patch_list_changed_after_reading_does_not_reach_the_output(
    make_kernel: MakeKernel,
) -> None:
    k = make_kernel("always-repatch")
    ctx, a, b = pair(k, aperture=False)
    alist = [None, a, b]
    ops = program()
    honest = list(k.encoder.encode(ops).patch_locations)
    swapped = [
        replace(e, AllocationIndex=3 - e.AllocationIndex) if e.AllocationIndex in (1, 2) else e
        for e in honest
    ]
    raced = [i for i, (e, lie) in enumerate(zip(honest, swapped, strict=True)) if e != lie]
    if not raced:
        raise HarnessError("the encoder must give the program an input patch list")
    run_checked(k, ctx, alist, ops, "with the UMD's patch list")  # REN-TRANSLATE first
    run_program_checked(  # the lies, read as they are, are REN-PATCHIN's case
        k,
        ctx,
        alist,
        ops,
        "pPatchLocationListIn naming the other allocation",
        "REN-PATCHIN",
        patch_list_in=swapped,
    )
    submission = k.encode_program(alist, ops)
    for at in raced:  # one entry at a time: a driver may check each entry as it reads it
        want = k.expected_after(alist, ops)
        result = k.render(
            ctx,
            submission.command,
            submission.uses,
            patch_list_in=honest,
            patch_toctou=(at * D3DDDI_PATCHLOCATIONLIST.SIZE, swapped[at].pack()),
        )
        if result.render_calls > 1:
            pytest.skip(
                f"Render split the command buffer ({result.render_calls} calls): a later call "
                "may read the changed entry as new user content (INTERPRETING.md §5)"
            )
        what = f"pPatchLocationListIn entry {at} changed right after the driver read it"
        expect_success(result, what, "REN-COPYFIRST")
        expect_memory(k, alist, want, what, "REN-COPYFIRST")


@requirement("REN-ALLOCINDEX")
def test_writes_reach_only_allocations_marked_write_operation(kernel: Kernel) -> None:
    ctx, a, b = pair(kernel, aperture=False)
    before = kernel.cpu_read(a)
    command = kernel.encoder.encode([Copy(AllocRef(1), AllocRef(2), 64)]).command
    result = kernel.render(ctx, command, [None, AllocationUse(a, False), AllocationUse(b, False)])
    if result.status == STATUS_SUCCESS and kernel.cpu_read(a) != before:
        raise DriverViolation(
            "REN-ALLOCINDEX", RENDER, "wrote an allocation not marked WriteOperation"
        )


@requirement("REN-ALLOCINDEX")
def test_allocation_indices_and_write_flags_stay_as_given(make_kernel: MakeKernel) -> None:
    k = make_kernel("always-repatch")
    ctx, a, b = pair(k, aperture=False)
    run_checked(k, ctx, [None, b, a, None, b], [Copy(AllocRef(2), AllocRef(4), 4096)], "aliases")


@requirement("REN-NULLALLOC")
@pytest.mark.parametrize("mode", ["default", "always-repatch"])
def test_a_null_allocation_reference_unbinds(make_kernel: MakeKernel, mode: str) -> None:
    k = make_kernel(mode)
    ctx, a, b = pair(k)
    ops = [Bind(slot, None) for slot in range(8)] + [Bind(3, AllocRef(1, 8)), Bind(3, None)]
    run_checked(k, ctx, [None, a, b], ops, "binds of the NULL allocation")


@requirement("REN-SPLIT")
def test_a_split_render_equals_one_translation(make_kernel: MakeKernel) -> None:
    k = make_kernel("tiny-buffers")
    skip_unless_splitting(k)
    ctx, a, b = pair(k, aperture=False)
    result = run_checked(k, ctx, [None, a, b], program(6), "program split over tiny DMA buffers")
    if result.render_calls < 2:
        raise HarnessError("tiny buffers did not split the command buffer")


#: One limit shrunk at a time (tiny-buffers shrinks them together, and the DMA buffer
#: always fills first): the driver must split on whichever runs out.
ONE_LIMIT = {
    "dma-buffer": {"dma_buffer_size": 160},
    "patch-list": {"patch_list_entries": 3},
}


@requirement("REN-SPLIT", "REN-CURSORS")
@pytest.mark.parametrize("limit", ONE_LIMIT)
def test_render_splits_on_whichever_limit_runs_out(make_kernel: MakeKernel, limit: str) -> None:
    k = make_kernel(**ONE_LIMIT[limit])
    if k.caps.GuaranteedContractDma:
        pytest.skip(
            "guaranteed-contract DMA: the driver rejects, never splits, an oversized buffer"
        )
    ctx, a, b = pair(k, aperture=False)
    result = run_checked(k, ctx, [None, a, b], program(6), f"program over a small {limit}")
    if result.render_calls < 2:
        raise HarnessError(f"a {ONE_LIMIT[limit]} kernel did not split the command buffer")


@requirement("REN-CURSORS")
@pytest.mark.parametrize("mode", ["default", "tiny-buffers", "split-submissions"])
def test_render_cursors_stay_inside_the_buffers(make_kernel: MakeKernel, mode: str) -> None:
    k = make_kernel(mode)
    skip_unless_splitting(k)
    ctx, a, b = pair(k)
    run_checked(k, ctx, [None, a, b], program(8), "program")


@requirement("REN-CONTRACT")
def test_guaranteed_contract_rejects_a_buffer_needing_more_than_the_dma_buffer(
    make_kernel: MakeKernel,
) -> None:
    k = make_kernel("tiny-buffers")
    if not k.caps.GuaranteedContractDma:
        pytest.skip("the driver does not declare GuaranteedContractDma")
    ctx, a, b = pair(k)
    result = k.run_program(ctx, [None, a, b], program(6))
    expect_rejected(result, ERRORS, "REN-CONTRACT", "a program larger than the DMA buffer")


@requirement("REN-DEVICELOST")
def test_valid_work_does_not_lose_the_device(kernel: Kernel) -> None:
    ctx, a, b = pair(kernel)
    for i in range(3):
        run_checked(kernel, ctx, [None, a, b], program(), f"submission {i}")


@requirement("REN-CONTEXT")
def test_each_context_handle_is_accepted_by_render(kernel: Kernel) -> None:
    device = kernel.create_device()
    contexts = [kernel.create_context(device) for _ in range(3)]
    (a,) = kernel.create_allocations(device, [AllocationRequest(4096)])
    for ctx in contexts:
        run_checked(kernel, ctx, [None, a], [Write(AllocRef(1, 8), ctx.hContext & 0xFFFF)], "write")
