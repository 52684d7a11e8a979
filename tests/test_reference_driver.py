"""The reference miniport answers every kind of bad input with the documented status."""

from __future__ import annotations

import struct

import pytest

from wddm_conformance.ddi import (
    DXGK_ALLOCATIONINFOFLAGS,
    DXGK_TRANSFER_LOCATION,
    DXGK_TRANSFERFLAGS,
)
from wddm_conformance.driver import AllocationRequest
from wddm_conformance.kernel import AllocationUse, Kernel, KernelConfig
from wddm_conformance.oracles import expect_memory, expect_single_fetch
from wddm_conformance.program import AllocRef, Copy, Write
from wddm_conformance.reference import formats as f
from wddm_conformance.reference import isa
from wddm_conformance.status import (
    STATUS_GRAPHICS_DRIVER_MISMATCH,
    STATUS_ILLEGAL_INSTRUCTION,
    STATUS_INVALID_HANDLE,
    STATUS_INVALID_PARAMETER,
    STATUS_INVALID_USER_BUFFER,
    STATUS_PRIVILEGED_INSTRUCTION,
    STATUS_SUCCESS,
)


@pytest.fixture
def setup() -> tuple[Kernel, object, list[object]]:
    k = Kernel("reference", "default", KernelConfig())
    dev = k.create_device()
    ctx = k.create_context(dev)
    a, b = k.create_allocations(dev, [AllocationRequest(8192), AllocationRequest(8192)])
    k.cpu_write(a, 0, b"A" * 8192)
    k.cpu_write(b, 0, b"B" * 8192)
    return k, ctx, [None, AllocationUse(a, True), AllocationUse(b, True)]


def _render(setup: tuple[Kernel, object, list[object]], command: bytes, **kw: object) -> int:
    k, ctx, uses = setup
    return k.render(ctx, command, uses, **kw).status  # type: ignore[arg-type]


COPY = f.pack_command(f.U_COPY, 1, 0, 2, 0, 64)


@pytest.mark.parametrize(
    ("command", "status"),
    [
        (COPY, STATUS_SUCCESS),
        (b"", STATUS_SUCCESS),
        (f.pack_command(f.U_SETPTE, 0, 1, 0x100), STATUS_PRIVILEGED_INSTRUCTION),
        (f.pack_command(f.U_SETREG, 1, 2), STATUS_PRIVILEGED_INSTRUCTION),
        (bytes([0x3C, 0, 4, 0]), STATUS_ILLEGAL_INSTRUCTION),
        (COPY[:10], STATUS_INVALID_USER_BUFFER),
        (COPY + b"\x01", STATUS_INVALID_USER_BUFFER),
        (struct.pack("<BBH", f.U_COPY, 0, 28) + COPY[4:] + b"\0" * 4, STATUS_INVALID_USER_BUFFER),
        (f.pack_command(f.U_COPY, 9, 0, 2, 0, 64), STATUS_INVALID_HANDLE),
        (f.pack_command(f.U_COPY, 0, 0, 2, 0, 64), STATUS_INVALID_HANDLE),
        (f.pack_command(f.U_COPY, 1, 8190, 2, 0, 64), STATUS_INVALID_PARAMETER),
        (f.pack_command(f.U_COPY, 1, 0, 2, 0xFFFFFFF0, 64), STATUS_INVALID_PARAMETER),
        (f.pack_command(f.U_FILL, 1, 0, 8193, 0), STATUS_INVALID_PARAMETER),
        (f.pack_command(f.U_VERSION, 2), STATUS_GRAPHICS_DRIVER_MISMATCH),
    ],
    ids=[
        "valid",
        "empty",
        "pte",
        "reg",
        "unknown-opcode",
        "truncated",
        "trailing-byte",
        "overlong-length",
        "index-past-list",
        "null-allocation-target",
        "out-of-bounds-dst",
        "offset-overflow",
        "fill-past-end",
        "umd-version",
    ],
)
def test_render_status_for(
    setup: tuple[Kernel, object, list[object]], command: bytes, status: int
) -> None:
    """REN-VALIDATE, REN-UNDERRUN: bad commands get the documented status."""
    assert _render(setup, command) == status


def test_render_rejects_a_write_to_an_allocation_without_write_operation(
    setup: tuple[Kernel, object, list[object]],
) -> None:
    k, ctx, uses = setup
    read_only = [None, AllocationUse(uses[1].allocation, False), uses[2]]  # type: ignore[attr-defined]
    assert k.render(ctx, COPY, read_only).status == STATUS_INVALID_PARAMETER  # type: ignore[arg-type]


@pytest.mark.parametrize("fault_at", [0, 1, 4, 23, 24 + 10])
def test_user_fault_anywhere_in_the_command_buffer_becomes_invalid_parameter(
    setup: tuple[Kernel, object, list[object]], fault_at: int
) -> None:
    assert _render(setup, COPY + COPY, fault_at=fault_at) == STATUS_INVALID_PARAMETER


def test_user_fault_in_the_input_patch_list_is_harmless_because_it_is_rebuilt(
    setup: tuple[Kernel, object, list[object]],
) -> None:
    k, ctx, _ = setup
    a, b = (u.allocation for u in setup[2][1:])  # type: ignore[union-attr]
    result = k.run_program(ctx, [None, a, b], [Copy(AllocRef(1), AllocRef(2), 8)], patch_fault_at=0)  # type: ignore[arg-type]
    assert result.status == STATUS_SUCCESS


def test_a_lying_input_patch_list_does_not_corrupt_the_output(
    setup: tuple[Kernel, object, list[object]],
) -> None:
    k, ctx, _ = setup
    a, b = (u.allocation for u in setup[2][1:])  # type: ignore[union-attr]
    alist = [None, a, b]
    program = [Copy(AllocRef(1, 100), AllocRef(2, 200), 300), Write(AllocRef(2, 4000), 7)]
    lies = k.encoder.encode(program).patch_locations
    for p in lies:
        p.AllocationIndex, p.PatchOffset = 99, 0xFFFF
    want = k.expected_after(alist, program)  # type: ignore[arg-type]
    k.relocate(a)  # type: ignore[arg-type]
    assert k.run_program(ctx, alist, program, patch_list_in=lies).ok  # type: ignore[arg-type]
    expect_memory(k, alist, want, "lying patch list")  # type: ignore[arg-type]


def test_toctou_on_the_command_buffer_cannot_smuggle_a_privileged_command(
    setup: tuple[Kernel, object, list[object]],
) -> None:
    # Right after the driver reads the first command, the user thread turns the second into a PTE write.
    pte = f.pack_command(f.U_SETPTE, 0, 1, 0x100)
    command = COPY + f.pack_command(f.U_NOP) * 5
    k, ctx, uses = setup
    result = k.render(ctx, command, uses, toctou=(24, pte))  # type: ignore[arg-type]
    assert result.command_buffer is not None and result.command_buffer.toctou_fired
    assert result.status in (STATUS_SUCCESS, STATUS_PRIVILEGED_INSTRUCTION)
    expect_single_fetch(result)
    for submission in result.submissions:
        emitted = {submission.dma[pc] for pc in isa.instruction_boundaries(submission.dma)}
        assert not any(op & isa.PRIVILEGED_BIT for op in emitted), k.gpu.disassemble(submission.dma)


def test_every_user_byte_is_read_once_per_render_call(
    setup: tuple[Kernel, object, list[object]],
) -> None:
    k, ctx, uses = setup
    result = k.render(ctx, COPY * 400, uses)  # type: ignore[arg-type]
    assert result.ok
    expect_single_fetch(result)
    assert sum(n for _, n in result.command_buffer.reads) == len(COPY) * 400  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (f.pack_allocation_data(4096, f.AllocationDataFlags(0)), STATUS_SUCCESS),
        (f.pack_allocation_data(4096, f.AllocationDataFlags(0))[:20], STATUS_INVALID_PARAMETER),
        (f.pack_allocation_data(4096, f.AllocationDataFlags(0)) + b"\0", STATUS_INVALID_PARAMETER),
        (
            b"XXXX" + f.pack_allocation_data(4096, f.AllocationDataFlags(0))[4:],
            STATUS_INVALID_PARAMETER,
        ),
        (f.pack_allocation_data(0, f.AllocationDataFlags(0)), STATUS_INVALID_PARAMETER),
        (f.pack_allocation_data(4096, f.AllocationDataFlags(0x8000)), STATUS_INVALID_PARAMETER),
        (f.pack_allocation_data(1 << 40, f.AllocationDataFlags(0)), STATUS_INVALID_PARAMETER),
        (
            f.pack_allocation_data(4096, f.AllocationDataFlags(0), version=2),
            STATUS_GRAPHICS_DRIVER_MISMATCH,
        ),
        (b"", STATUS_INVALID_PARAMETER),
    ],
    ids=[
        "valid",
        "short",
        "oversized",
        "magic",
        "zero-size",
        "unknown-flag",
        "too-large",
        "version",
        "empty",
    ],
)
def test_create_allocation_private_data(data: bytes, status: int) -> None:
    k = Kernel("reference")
    dev = k.create_device()
    made = k.create_allocations(dev, [data], allow_failure=True)
    assert bool(made) == (status == STATUS_SUCCESS)
    assert status_from_trace(k) == status


def status_from_trace(k: Kernel) -> int:
    from wddm_conformance.status import NTSTATUS

    last = k.caller.sequence().splitlines()[-1]
    return int(NTSTATUS[last.split("-> ")[1]])


def test_failed_batch_leaves_no_half_made_allocations() -> None:
    k = Kernel("reference")
    dev = k.create_device()
    good = f.pack_allocation_data(4096, f.AllocationDataFlags(0))
    assert k.create_allocations(dev, [good, good, b"bad"], allow_failure=True) == []
    assert k.driver.allocations == {}  # type: ignore[attr-defined]


def test_resource_handle_is_returned_and_reused() -> None:
    """ALC-RESOURCE: a resource handle comes back and later calls for the resource receive it."""
    k = Kernel("reference")
    dev = k.create_device()
    (a,) = k.create_allocations(dev, [AllocationRequest(4096)], resource=0)
    assert a.resource
    (b,) = k.create_allocations(dev, [AllocationRequest(4096)], resource=a.resource)
    assert b.resource == a.resource


def test_history_buffer_flag_is_accepted_and_reported() -> None:
    """ALC-HISTORY: HistoryBuffer allocations are accepted and the flag is reported."""
    k = Kernel("reference")
    (a,) = k.create_allocations(k.create_device(), [AllocationRequest(4096, history_buffer=True)])
    assert a.info.Flags & DXGK_ALLOCATIONINFOFLAGS.HistoryBuffer


def test_allocation_outlives_its_device() -> None:
    k = Kernel("reference")
    dev, other = k.create_device(), k.create_device()
    ctx = k.create_context(other)
    a, b = k.create_allocations(dev, [AllocationRequest(4096), AllocationRequest(4096)])
    k.cpu_write(b, 0, b"shared")
    k.destroy_device(dev)
    assert k.run_program(ctx, [None, a, b], [Copy(AllocRef(1), AllocRef(2), 6)]).ok
    assert k.cpu_read(a, 0, 6) == b"shared"


def test_fill_read_write_physical_and_discard_are_accepted() -> None:
    k = Kernel("reference")
    dev = k.create_device()
    (a,) = k.create_allocations(dev, [AllocationRequest(8192, aperture=False)])
    k.make_resident(a)
    k.vidmm.fill(a.hAllocation, a.segment_id, a.address, 8192, 0x11223344)
    assert k.cpu_read(a, 0, 8) == bytes.fromhex("4433221144332211")
    k.vidmm.physical(True, a.segment_id, a.address, 8)
    k.vidmm.physical(False, a.segment_id, a.address, 1)
    k.discard(a)
    assert a.state == "evicted"


def test_transfer_with_null_handle_copies_bytes_as_they_are() -> None:
    k = Kernel("reference")
    (a,) = k.create_allocations(k.create_device(), [AllocationRequest(8192, aperture=False)])
    k.make_resident(a)
    mdl = k.sysmem.allocate_mdl(8192)
    data = bytes(range(256)) * 32
    k.sysmem.write_mdl(mdl, 0, data)
    k.vidmm.transfer(
        0,
        8192,
        DXGK_TRANSFER_LOCATION(0, 0, mdl),
        DXGK_TRANSFER_LOCATION(1, a.address),
        DXGK_TRANSFERFLAGS.Swizzle,
    )
    assert k.gpu.read(a.address, 8192) == data


def test_every_paging_buffer_is_patched_without_a_patch_list_and_keeps_its_size() -> None:
    """PGB-PATCHED: the kernel calls Patch on each paging buffer with Flags.Paging and no patch list."""
    from wddm_conformance.ddi import DXGK_PATCHFLAGS

    k = Kernel("reference", "tiny-buffers")
    (a,) = k.create_allocations(k.create_device(), [AllocationRequest(32 << 10, aperture=False)])
    seen: list[tuple[int, object, int]] = []
    original = k.driver.patch

    def spy(args):  # type: ignore[no-untyped-def]
        seen.append((int(args.Flags), args.pPatchLocationList, args.DmaBufferSubmissionEndOffset))
        return original(args)

    k.driver.patch = spy  # type: ignore[method-assign]
    k.make_resident(a)
    k.evict(a)
    assert len(seen) > 4
    assert all(
        flags & DXGK_PATCHFLAGS.Paging and plist is None and end > 0 for flags, plist, end in seen
    )


def test_memory_only_allocation_larger_than_the_memory_segment_is_rejected() -> None:
    """ALC-INFO: the reference driver never reports a size no supported segment can hold."""
    k = Kernel(
        "reference",
        "default",
        KernelConfig(memory_segment_size=1 << 20, aperture_segment_size=4 << 20),
    )
    dev = k.create_device()
    big = f.pack_allocation_data(2 << 20, f.AllocationDataFlags(0))
    assert k.create_allocations(dev, [big], allow_failure=True) == []
    assert status_from_trace(k) == STATUS_INVALID_PARAMETER
    (a,) = k.create_allocations(dev, [AllocationRequest(2 << 20)])  # aperture allowed: fits there
    assert a.size == 2 << 20


def test_reference_model_shares_bytes_of_aliased_list_entries() -> None:
    k = Kernel("reference")
    dev = k.create_device()
    ctx = k.create_context(dev)
    (a,) = k.create_allocations(dev, [AllocationRequest(4096)])
    k.cpu_write(a, 0, bytes(range(256)) * 16)
    program = [Copy(AllocRef(1, 0), AllocRef(2, 100), 8), Copy(AllocRef(2, 200), AllocRef(1, 0), 8)]
    want = k.expected_after([None, a, a], program)
    assert k.run_program(ctx, [None, a, a], program).ok
    expect_memory(k, [None, a, a], want, "aliased entries")
