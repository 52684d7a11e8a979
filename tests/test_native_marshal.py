"""The native adapter's marshalling (wddm_conformance/native/adapter.py): what the real
memory of a call catches when the C code writes it, and how argument blocks cross to C
and back. The C code's writes are made here with ``memmove`` at the addresses it gets."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from wddm_conformance.ddi import DXGK_PATCHFLAGS, DXGKARG_PATCH, DXGKARG_RENDER
from wddm_conformance.errors import HarnessError
from wddm_conformance.memory import (
    GUARD_BYTES,
    UNWRITTEN,
    KernelAccessViolation,
    KernelBuffer,
    Ptr,
    UserBuffer,
)
from wddm_conformance.native.abi import ffi
from wddm_conformance.native.adapter import MARGIN, _Call, _fields, _get, _Mapped, _put


def poke(mapped: _Mapped, offset: int, payload: bytes) -> None:
    """What the C code does: write ``payload`` at ``mapped.base + offset``."""
    ffi().memmove(ffi().cast("void *", mapped.base + offset), payload, len(payload))


def dma(size: int = 64) -> KernelBuffer:
    return KernelBuffer("DMA buffer", size, fill=UNWRITTEN)


# --------------------------------------------------------------------------- buffers


def test_a_write_inside_the_window_is_kept_and_clean() -> None:
    region, call = dma(), _Call()
    poke(call.region(region), 8, b"\x01\x02")
    call.settle()
    assert region.violations == []
    assert region.data[8:10] == b"\x01\x02"


def test_a_write_into_the_guard_zone_names_the_buffer_and_the_span() -> None:
    region, call = dma(), _Call()
    mapped = call.region(region)
    poke(mapped, 70, b"\0")
    poke(mapped, 80, b"\0")
    call.settle()
    assert [str(v) for v in region.violations] == [
        "write-outside-window in DMA buffer at +70 (11 byte(s))"
    ]
    assert region.data[70] == 0 and not region.guard_intact()


def test_a_write_below_a_restricted_window_is_caught() -> None:
    region, call = dma(), _Call()
    region.set_write_window(16, 32)
    mapped = call.region(region)
    poke(mapped, 4, b"\0\0")
    poke(mapped, 20, b"\0")
    call.settle()
    assert [str(v) for v in region.violations] == [
        "write-outside-window in DMA buffer at +4 (2 byte(s))"
    ]


@pytest.mark.parametrize(
    "region",
    [KernelBuffer("pAllocationList", 48, writable=False), UserBuffer("pCommand", bytes(48))],
    ids=["kernel input", "user buffer"],
)
def test_a_write_to_a_read_only_buffer_is_write_readonly(region: KernelBuffer) -> None:
    call = _Call()
    poke(call.region(region), 10, b"\xff\xff\xff")
    call.settle()
    assert [str(v) for v in region.violations] == [
        f"write-readonly in {region.name} at +10 (3 byte(s))"
    ]


def test_a_write_past_the_guard_zone_is_the_access_violation() -> None:
    region, call = dma(), _Call()
    poke(call.region(region), 64 + GUARD_BYTES + 100, b"\0\0\0\0")
    with pytest.raises(KernelAccessViolation) as info:
        call.settle()
    assert str(info.value) == (
        f"write of 4 byte(s) at +{64 + GUARD_BYTES + 100} past the end of buffer DMA buffer "
        f"(64 bytes + {GUARD_BYTES} guard)"
    )
    assert info.value.write and info.value.offset == 64 + GUARD_BYTES + 100


def test_the_last_byte_of_the_hidden_margin_is_watched() -> None:
    region, call = dma(), _Call()
    poke(call.region(region), 64 + GUARD_BYTES + MARGIN - 1, b"\0")
    with pytest.raises(KernelAccessViolation, match=r"write of 1 byte\(s\)"):
        call.settle()


def test_a_refresh_shows_the_c_code_what_the_harness_changed() -> None:
    region, call = UserBuffer("pCommand", b"abcd"), _Call()
    mapped = call.region(region)
    region.data[1:3] = b"XY"
    mapped.refresh()
    assert ffi().buffer(ffi().cast("char *", mapped.base), 4)[:] == b"aXYd"
    call.settle()
    assert region.violations == []


# --------------------------------------------------------------------------- argument blocks


def render_args(command: UserBuffer, buffer: KernelBuffer) -> DXGKARG_RENDER:
    patches = KernelBuffer("pPatchLocationListOut", 48)
    allocations = KernelBuffer("pAllocationList", 24, writable=False)
    return DXGKARG_RENDER(
        command.ptr(),
        len(command.data),
        buffer.ptr(),
        buffer.size,
        None,
        0,
        allocations.ptr(stride=24),
        1,
        None,
        0,
        patches.ptr(stride=24),
        2,
        DmaBufferPhysicalAddress=(1 << 64) - 4096,
    )


def test_render_arguments_cross_to_c_and_back() -> None:
    command, buffer, call = UserBuffer("pCommand", bytes(16)), dma(), _Call()
    args = render_args(command, buffer)
    c, memory = _put("DXGKARG_RENDER", args, call)
    base = call.region(buffer).base
    assert int(ffi().cast("uintptr_t", c.pDmaBuffer)) == base
    assert (c.CommandLength, c.DmaSize, c.pPatchLocationListIn) == (16, 64, ffi().NULL)
    assert c.DmaBufferPhysicalAddress.QuadPart == -4096
    c.pDmaBuffer = ffi().cast("void *", base + 40)
    c.pCommand = ffi().cast("void *", call.region(command).base + 8)
    c.MultipassOffset = 3
    _get(memory, "DXGKARG_RENDER", args, call)
    assert args.pDmaBuffer == Ptr(buffer, 40) and args.pCommand == Ptr(command, 8)
    assert args.pPatchLocationListOut.stride == 24 and args.pPatchLocationListIn is None
    assert (args.MultipassOffset, args.DmaSize) == (3, 64)
    assert args.DmaBufferPhysicalAddress == (1 << 64) - 4096


def test_a_flags_member_comes_back_as_its_flag_type() -> None:
    args = DXGKARG_PATCH(
        0x1234,
        0,
        0,
        dma().ptr(),
        64,
        0,
        16,
        None,
        0,
        0,
        0,
        None,
        0,
        None,
        0,
        0,
        0,
        7,
        DXGK_PATCHFLAGS(0),
    )
    call = _Call()
    c, memory = _put("DXGKARG_PATCH", args, call)
    assert int(ffi().cast("uintptr_t", c.hContext)) == 0x1234 and c.SubmissionFenceId == 7
    c.Flags.Value = 0x3
    _get(memory, "DXGKARG_PATCH", args, call)
    assert args.Flags == DXGK_PATCHFLAGS.Paging | DXGK_PATCHFLAGS.Present
    assert isinstance(args.Flags, DXGK_PATCHFLAGS) and args.hContext == 0x1234


@dataclass
class _Mdl:
    Size: int
    MdlFlags: int
    ByteCount: int


def test_a_signed_member_takes_a_negative_value_as_c_does() -> None:
    args = _Mdl(Size=-2, MdlFlags=0xFFFF, ByteCount=-1)
    c, memory = _put("MDL", args, _Call())
    assert (c.Size, c.MdlFlags, c.ByteCount) == (-2, -1, 0xFFFFFFFF)
    c.Size = -300
    _get(memory, "MDL", args, _Call())
    assert (args.Size, args.MdlFlags, args.ByteCount) == (-300, -1, 0xFFFFFFFF)


@dataclass
class _BothHandles:
    hDevice: int
    hContext: int


def test_two_members_of_one_union_are_refused_naming_them() -> None:
    with pytest.raises(HarnessError, match=r"^DXGKARG_PATCH\.hContext overlaps"):
        _put("DXGKARG_PATCH", _BothHandles(1, 2), _Call())


@pytest.mark.parametrize(
    ("ctype", "message"),
    [
        ("DXGK_ALLOCATIONLIST", "DXGK_ALLOCATIONLIST.WriteOperation: a bit-field"),
        ("WDDM_WDK_CALL", "WDDM_WDK_CALL.Arguments: an array"),
    ],
)
def test_a_member_the_adapter_cannot_marshal_is_named(ctype: str, message: str) -> None:
    with pytest.raises(HarnessError, match=rf"^{message} is not marshalled"):
        _fields(ctype)
