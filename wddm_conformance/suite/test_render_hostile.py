"""DxgkDdiRender with hostile neighbours and with command bytes outside the encoder's vocabulary.

Every command buffer here starts as the driver's own encoding (its ``COMMAND_ENCODER``) and
is changed only as bytes, between commands or in place, so the checks hold for any
command format:

* position: the encoder's privileged and illegal commands, and a reference one byte past
  its allocation, directly after each kind of command of the program model, first and
  last, are rejected (REN-VALIDATE): validation may not depend on the previous command;
* reserved bits: a bit the driver ignores in every valid command of every kind (flipping
  it leaves status and memory as they were: a reserved field, by the driver's own
  answers) set in a hostile command leaves it hostile: rejected (REN-VALIDATE);
* vocabulary: every value of every byte of each kind's command that is no operand
  (unknown opcodes, lengths that disagree with the opcode, flags), sampled values of its
  operand bytes, random words between commands: an allowed status and never an
  exception (REN-STATUS, ALL-NORAISE); a command cut at any byte is rejected
  (REN-UNDERRUN).

The harness cannot decode damaged bytes, so what the GPU does with damaged bytes the
driver accepted is blamed on REN-VALIDATE (row 1 of the blame table, INTERPRETING.md §5),
after the undamaged program of every kind passed: whatever Render accepts must keep the
GPU inside the submission.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace

import pytest

from ..ddi import D3DDDI_PATCHLOCATIONLIST
from ..driver import command_boundaries
from ..kernel import Allocation, AllocationUse, Context, Kernel, RenderResult
from ..oracles import UNDERRUN_ERRORS, VALIDATION_ERRORS, expect_rejected
from ..program import AllocRef, Bind, Copy, Fill, Op, Write, Xor
from .support import pair, run_checked

requirement = pytest.mark.requirement

#: One command of each kind of the program model, over entries 1 and 2 of 8 KiB each.
NEIGHBOURS: dict[str, Op] = {
    "copy": Copy(AllocRef(1, 128), AllocRef(2, 256), 64),
    "fill": Fill(AllocRef(2, 512), 100, 0x5A5AF00D),
    "write": Write(AllocRef(1, 40), 0xDEADBEEF),
    "xor": Xor(AllocRef(2, 1024), AllocRef(1, 2048), 64),
    "bind": Bind(2, AllocRef(1, 16)),
    "unbind": Bind(5, None),
}
EVERY_KIND: list[Op] = list(NEIGHBOURS.values())

#: Where a hostile command stands: (commands before it, commands after it).
POSITIONS: dict[str, tuple[list[Op], list[Op]]] = {
    **{f"after {kind}": ([op], []) for kind, op in NEIGHBOURS.items()},
    "first": ([], EVERY_KIND),
    "last": (EVERY_KIND, []),
}

HOSTILE = ("privileged", "illegal", "out-of-bounds")


def _out_of_bounds(a: Allocation) -> Op:
    """A Write whose last byte lies one past the end of entry 1 (``a``, as the driver sized it)."""
    return Write(AllocRef(1, a.size - 3), 7)


@dataclass(frozen=True)
class Submission:
    """A command buffer and what the kernel is told about it."""

    command: bytes
    uses: tuple[AllocationUse, ...]
    #: the UMD's patch list (None: none given, the list being optional, REN-PATCHIN)
    patch_list: tuple[D3DDDI_PATCHLOCATIONLIST, ...] | None
    #: references the harness knows are outside their allocation, or what it damaged
    out_of_bounds: tuple[str, ...]

    def render(self, k: Kernel, ctx: Context) -> RenderResult:
        return k.render(
            ctx,
            self.command,
            list(self.uses),
            patch_list_in=None if self.patch_list is None else list(self.patch_list),
            out_of_bounds=self.out_of_bounds,
        )


def _scene(k: Kernel) -> tuple[Context, list[Allocation | None]]:
    """A context and entries 1 and 2 of 8 KiB; each kind of command, undamaged, alone (it
    fits any DMA buffer) and all together (unless the driver may reject that as larger
    than its DMA buffer), passes first, so a driver that cannot translate them fails that
    rule, not this file's."""
    ctx, a, b = pair(k, 8192, aperture=False)
    alist: list[Allocation | None] = [None, a, b]
    for kind, op in NEIGHBOURS.items():
        run_checked(k, ctx, alist, [op], f"one {kind} command, undamaged")
    if not k.rejects_oversized:
        run_checked(k, ctx, alist, EVERY_KIND, "one command of every kind, undamaged")
    return ctx, alist


def _shifted(
    patch_list: Sequence[D3DDDI_PATCHLOCATIONLIST], at: int, by: int
) -> tuple[D3DDDI_PATCHLOCATIONLIST, ...]:
    """The UMD's patch list after ``by`` bytes were inserted at byte ``at`` of the buffer."""
    return tuple(
        replace(e, PatchOffset=e.PatchOffset + by) if e.PatchOffset >= at else e for e in patch_list
    )


def _with_hostile(
    k: Kernel,
    alist: Sequence[Allocation | None],
    before: list[Op],
    hostile: str,
    after: list[Op],
    flip: int | None = None,
) -> Submission:
    """``before``, the hostile command, ``after``, encoded by the driver's encoder; with
    ``flip``, that bit of the hostile command's bytes inverted (bit 0 = bit 0 of its first
    byte) and no input patch list, as :func:`_ignored_bits` learned the bit."""
    if hostile == "out-of-bounds":
        a = alist[1]
        assert a is not None
        program = [*before, _out_of_bounds(a), *after]
        p = k.encode_program(alist, program)
        if flip is None:
            return Submission(p.command, p.uses, p.patch_locations, p.out_of_bounds)
        at = command_boundaries(k.encoder, program)[len(before)]
        return Submission(_flipped(p.command, at, flip), p.uses, None, p.out_of_bounds)
    bad = k.encoder.privileged_command() if hostile == "privileged" else k.encoder.illegal_command()
    if flip is not None:
        bad = _flipped(bad, 0, flip)
    program = [*before, *after]
    p = k.encode_program(alist, program)
    at = command_boundaries(k.encoder, program)[len(before)]
    command = p.command[:at] + bad + p.command[at:]
    plist = None if flip is not None else _shifted(p.patch_locations, at, len(bad))
    return Submission(command, p.uses, plist, ())


def _flipped(data: bytes, start: int, bit: int) -> bytes:
    out = bytearray(data)
    out[start + bit // 8] ^= 1 << bit % 8
    return bytes(out)


def _what(hostile: str, position: str) -> str:
    command = {
        "privileged": "the encoder's privileged command",
        "illegal": "the encoder's illegal command",
        "out-of-bounds": "a Write one byte past the end of its allocation",
    }[hostile]
    return f"{command}, {position}" if position in ("first", "last") else f"{command} {position}"


@requirement("REN-VALIDATE")
@pytest.mark.parametrize("hostile", HOSTILE)
def test_a_hostile_command_is_rejected_after_every_kind_of_command(
    kernel: Kernel, hostile: str
) -> None:
    ctx, alist = _scene(kernel)
    for position, (before, after) in POSITIONS.items():
        result = _with_hostile(kernel, alist, before, hostile, after).render(kernel, ctx)
        expect_rejected(result, VALIDATION_ERRORS, "REN-VALIDATE", _what(hostile, position))


def _ignored_bits(k: Kernel, ctx: Context, alist: Sequence[Allocation | None]) -> list[int]:
    """Bits (from the start of a command) the driver ignores in every kind of command: with
    the bit flipped, the command is accepted and memory ends as the undamaged one leaves it.
    Only bits inside the shortest command are tried, with no input patch list (so the
    command's bytes are all the driver has to go on)."""
    encoded = {kind: k.encode_program(alist, [op]) for kind, op in NEIGHBOURS.items()}
    starts = {kind: command_boundaries(k.encoder, [op])[0] for kind, op in NEIGHBOURS.items()}
    shortest = min(len(p.command) - starts[kind] for kind, p in encoded.items())
    everything = tuple(AllocationUse(a, True) for a in alist)
    ignored = []
    for bit in range(8 * shortest):
        for kind, op in NEIGHBOURS.items():
            p = encoded[kind]
            want = k.expected_after(alist, [op])
            damaged = Submission(
                _flipped(p.command, starts[kind], bit),
                everything,
                None,
                (
                    f"{op} with bit {bit} of its command flipped (damaged: the harness cannot "
                    "decode it)",
                ),
            )
            result = damaged.render(k, ctx)
            if not result.ok or any(
                k.gpu_view(a) != want[i] for i, a in enumerate(alist) if a is not None and i in want
            ):
                break
        else:
            ignored.append(bit)
    return ignored


@requirement("REN-VALIDATE")
@pytest.mark.parametrize("hostile", HOSTILE)
def test_a_bit_the_driver_ignores_does_not_switch_its_checks_off(
    kernel: Kernel, hostile: str
) -> None:
    """A header bit or reserved field the user sets must not turn validation off. Which
    bits are reserved is the driver's format; its answers show them: a bit it ignores in a
    valid command of every kind. A driver that rejects any reserved bit set has none, and
    passes."""
    ctx, alist = _scene(kernel)
    a = alist[1]
    assert a is not None
    hostile_length = {
        "privileged": len(kernel.encoder.privileged_command()),
        "illegal": len(kernel.encoder.illegal_command()),
        "out-of-bounds": len(kernel.encoder.encode([_out_of_bounds(a)]).command)
        - command_boundaries(kernel.encoder, [])[0],
    }[hostile]
    for bit in _ignored_bits(kernel, ctx, alist):
        if bit >= 8 * hostile_length:
            continue
        for position, (before, after) in POSITIONS.items():
            submission = _with_hostile(kernel, alist, before, hostile, after, flip=bit)
            result = submission.render(kernel, ctx)
            what = (
                f"{_what(hostile, position)}, with bit {bit} of the command set (a bit the "
                "driver ignores in every valid command)"
            )
            expect_rejected(result, VALIDATION_ERRORS, "REN-VALIDATE", what)


#: The same kinds with other operands, differing from NEIGHBOURS' in their low bytes: the
#: bytes that stay the same are a command's opcode, length, flags and reserved fields (and
#: the high bytes of its operands, where nearly every value is out of bounds).
OTHER_OPERANDS: dict[str, Op] = {
    "copy": Copy(AllocRef(2, 0x0F51), AllocRef(1, 0x0AE7), 0x1F3),
    "fill": Fill(AllocRef(1, 0x0C13), 0x2E5, 0x01020304),
    "write": Write(AllocRef(2, 0x1A6C), 0x12345678),
    "xor": Xor(AllocRef(1, 0x0D01), AllocRef(2, 0x1B17), 0x1F3),
    "bind": Bind(6, AllocRef(2, 0x1323)),
    "unbind": Bind(3, None),
}
#: Values every operand byte of a command takes (with each single-bit change); a byte the
#: encoder writes the same whatever the operands (an opcode, a length, a flag or reserved
#: field) takes all 256.
SAMPLED_VALUES = (0x00, 0x01, 0x7F, 0x80, 0xFF)


def _fixed_bytes(k: Kernel, kind: str) -> set[int]:
    """Positions (from the command's start) of the bytes the encoder writes the same for
    ``NEIGHBOURS[kind]`` and ``OTHER_OPERANDS[kind]``: what is not an operand."""
    one = k.encoder.encode([NEIGHBOURS[kind]]).command
    other = k.encoder.encode([OTHER_OPERANDS[kind]]).command
    start = command_boundaries(k.encoder, [NEIGHBOURS[kind]])[0]
    return {i - start for i in range(start, min(len(one), len(other))) if one[i] == other[i]}


def _byte_values(k: Kernel, alist: Sequence[Allocation | None], kind: str) -> Iterator[Submission]:
    """The command of ``kind``, followed by a Write, with each of its bytes set to other
    values: every value for a byte that is no operand, SAMPLED_VALUES and each single-bit
    change for an operand byte."""
    program = [NEIGHBOURS[kind], Write(AllocRef(2, 64), 0x600DF00D)]
    p = k.encode_program(alist, program)
    start, end, _ = command_boundaries(k.encoder, program)
    fixed = _fixed_bytes(k, kind)
    everything = tuple(AllocationUse(a, True) for a in alist)
    for at in range(start, end):
        was = p.command[at]
        if at - start in fixed:
            values: Iterable[int] = range(256)
        else:
            values = sorted({*SAMPLED_VALUES, *(was ^ 1 << bit for bit in range(8))})
        for value in values:
            if value == was:
                continue
            command = p.command[:at] + bytes([value]) + p.command[at + 1 :]
            damaged = (
                f"{NEIGHBOURS[kind]} with byte {at - start} of its command set to 0x{value:02X} "
                "(damaged: the harness cannot decode it)"
            )
            yield Submission(command, everything, p.patch_locations, (damaged,))


@requirement("REN-STATUS", "ALL-NORAISE", "REN-VALIDATE")
@pytest.mark.parametrize("kind", NEIGHBOURS)
def test_every_value_of_every_byte_of_a_command_gets_an_allowed_status(
    kernel: Kernel, kind: str
) -> None:
    """Unknown opcodes, lengths that disagree with the opcode, flags, reserved fields, any
    operand (:func:`_byte_values`): the kernel judges each answer (an allowed status, no
    exception, and whatever was accepted stays inside the submission). Nothing more can be
    asked without knowing the format."""
    ctx, alist = _scene(kernel)
    for submission in _byte_values(kernel, alist, kind):
        submission.render(kernel, ctx)


@requirement("REN-UNDERRUN")
@pytest.mark.parametrize("kind", NEIGHBOURS)
def test_a_command_cut_at_any_byte_is_an_underrun(kernel: Kernel, kind: str) -> None:
    ctx, alist = _scene(kernel)
    program = [NEIGHBOURS["write"], NEIGHBOURS[kind]]
    p = kernel.encode_program(alist, program)
    _, start, end = command_boundaries(kernel.encoder, program)
    for cut in range(start + 1, end):
        submission = Submission(p.command[:cut], p.uses, p.patch_locations, ())
        result = submission.render(kernel, ctx)
        what = f"{NEIGHBOURS[kind]} cut to {cut - start} of its {end - start} bytes"
        expect_rejected(result, UNDERRUN_ERRORS, "REN-UNDERRUN", what)


#: Random 32-bit words put between commands, per boundary.
RANDOM_WORDS = 64


@requirement("REN-STATUS", "ALL-NORAISE", "REN-VALIDATE")
def test_random_words_between_commands_get_an_allowed_status(kernel: Kernel) -> None:
    ctx, alist = _scene(kernel)
    p = kernel.encode_program(alist, EVERY_KIND)
    cuts = command_boundaries(kernel.encoder, EVERY_KIND)
    everything = tuple(AllocationUse(a, True) for a in alist)
    rng = random.Random(13)
    for at in cuts:
        for _ in range(RANDOM_WORDS):
            words = rng.randbytes(4 * rng.randint(1, 4))
            command = p.command[:at] + words + p.command[at:]
            damaged = (
                f"{words.hex(' ', 4)} inserted at byte {at} (damaged: the harness cannot decode it)"
            )
            Submission(
                command, everything, _shifted(p.patch_locations, at, len(words)), (damaged,)
            ).render(kernel, ctx)
