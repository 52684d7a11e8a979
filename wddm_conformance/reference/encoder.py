"""The reference driver's command encoder: the user-mode display driver's side of its formats."""

from __future__ import annotations

from collections.abc import Sequence

from wddm_conformance.ddi import D3DDDI_PATCHLOCATIONLIST
from wddm_conformance.driver import AllocationRequest, EncodedProgram
from wddm_conformance.program import Bind, Copy, Fill, Op, Write, Xor

from . import formats as f


class CommandEncoder:
    """Encodes abstract programs in the reference command-buffer format.

    The input patch list it produces names every allocation reference with the
    offset of the reference inside the command buffer (PatchOffset), as a UMD
    would; the reference miniport is free to rebuild its own (REN-PATCHIN).
    """

    def allocation_private_data(self, request: AllocationRequest) -> bytes:
        flags = 0  # an int: an IntFlag | builds a flag object each time
        if request.cpu_visible:
            flags |= f.AllocationDataFlags.CpuVisible.value
        if request.swizzled:
            flags |= f.AllocationDataFlags.Swizzled.value
        if request.aperture and not request.swizzled:
            flags |= f.AllocationDataFlags.Aperture.value
        if request.aperture_only:
            flags |= f.AllocationDataFlags.ApertureOnly.value | f.AllocationDataFlags.Aperture.value
        if request.history_buffer:
            flags |= f.AllocationDataFlags.HistoryBuffer.value
        if request.alternate_va:
            flags |= f.AllocationDataFlags.AlternateVA.value
        if request.gdi_rows:
            flags |= f.AllocationDataFlags.Gdi.value
        return f.pack_allocation_data(request.size, flags, rows=request.gdi_rows)

    def encode(self, program: Sequence[Op]) -> EncodedProgram:
        out = bytearray(f.pack_command(f.U_VERSION, f.INTERFACE_VERSION))
        patches: list[D3DDDI_PATCHLOCATIONLIST] = []

        def ref(index: int, offset: int, at: int) -> None:
            pos = len(out) + at
            patches.append(D3DDDI_PATCHLOCATIONLIST(index, 0, 0, offset, pos, pos))

        for op in program:
            if isinstance(op, Copy | Xor):
                ref(op.dst.index, op.dst.offset, 4)
                ref(op.src.index, op.src.offset, 12)
                code = f.U_COPY if isinstance(op, Copy) else f.U_XOR
                out += f.pack_command(
                    code, op.dst.index, op.dst.offset, op.src.index, op.src.offset, op.size
                )
            elif isinstance(op, Fill):
                ref(op.dst.index, op.dst.offset, 4)
                out += f.pack_command(
                    f.U_FILL, op.dst.index, op.dst.offset, op.size, op.pattern & 0xFFFFFFFF
                )
            elif isinstance(op, Write):
                ref(op.dst.index, op.dst.offset, 4)
                out += f.pack_command(f.U_WRITE, op.dst.index, op.dst.offset, op.value & 0xFFFFFFFF)
            elif isinstance(op, Bind):
                index, offset = (0, 0) if op.ref is None else (op.ref.index, op.ref.offset)
                ref(index, offset, 8)
                out += f.pack_command(f.U_BIND, op.slot, index, offset)
            else:  # pragma: no cover - Op is a closed union
                raise TypeError(f"not a program operation: {op!r}")
        return EncodedProgram(bytes(out), patches)

    def privileged_command(self) -> bytes:
        return f.pack_command(f.U_SETPTE, 0, 1, 0x100)

    def illegal_command(self) -> bytes:
        return bytes([0x3C, 0, 4, 0])
