"""Issue 13, "Position and neighbours" and "Vocabulary outside the encoder": hostile commands
after every kind of command, reserved bits, command bytes the encoder never writes (suite,
suite/test_render_hostile.py), and several kinds of damage in one render fuzz input."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import get_args

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wddm_conformance.driver import command_boundaries, load_driver
from wddm_conformance.errors import DriverFailure
from wddm_conformance.fuzz import CORPORA
from wddm_conformance.fuzz.render import (
    Damage,
    Entry,
    Piece,
    RenderInput,
    RenderTarget,
    Step,
    apply_step,
    damaged,
    demand,
    pieces_of,
)
from wddm_conformance.kernel import Kernel
from wddm_conformance.program import AllocRef, Copy, Op, Write
from wddm_conformance.suite import support
from wddm_conformance.suite.test_render_hostile import (
    NEIGHBOURS,
    OTHER_OPERANDS,
    _fixed_bytes,
    _ignored_bits,
)

#: Fuzz inputs a correct driver once failed on (harness false positives, now fixed).
DATA = Path(__file__).resolve().parent / "data" / "fuzz_false_positives" / "render"

# ------------------------------------------------------------------ the suite's scenes


def test_the_neighbours_are_every_kind_of_command_of_the_program_model() -> None:
    kinds = {type(op) for op in NEIGHBOURS.values()}
    assert kinds == set(get_args(Op))
    assert [op.ref for op in NEIGHBOURS.values() if type(op).__name__ == "Bind"].count(None) == 1
    assert NEIGHBOURS.keys() == OTHER_OPERANDS.keys()


@pytest.mark.parametrize("driver", ["reference", "tests.second_driver:Miniport"])
def test_the_bytes_that_are_no_operand_are_found_in_any_format(driver: str) -> None:
    k = Kernel(driver)
    for kind in NEIGHBOURS:
        fixed = _fixed_bytes(k, kind)
        assert {0, 1, 2, 3} <= fixed, kind  # both formats keep opcode and length in word 0
        length = len(k.encoder.encode([NEIGHBOURS[kind]]).command)
        assert len(fixed) < length - command_boundaries(k.encoder, [])[0], kind


def _ignored(driver: str) -> list[int]:
    k = Kernel(driver)
    ctx, a, b = support.pair(k, 8192, aperture=False)
    return _ignored_bits(k, ctx, [None, a, b])


def test_the_reserved_byte_the_reference_ignores_is_found_from_its_answers() -> None:
    assert _ignored("reference") == list(range(8, 16))  # the header's reserved byte
    assert _ignored("tests.second_driver:Miniport") == []  # it rejects a reserved bit set


def test_a_late_read_through_an_earlier_buffer_is_not_blamed_on_validation() -> None:
    """A read through an earlier call's pCommand is ALL-NORAISE even when the buffer of the
    call it happens in holds bytes the harness damaged (blame row 1 is for reads past a
    kernel buffer the call was given)."""
    k = Kernel("tests.mutants:KeepsCommandBuffer")
    ctx, a, b = support.pair(k, 8192, aperture=False)
    command = k.encoder.encode([Write(AllocRef(1), 1)]).command
    k.render(ctx, command, [None, a, b])
    with pytest.raises(DriverFailure) as caught:
        k.render(ctx, command, [None, a, b], out_of_bounds=("damaged bytes",))
    assert caught.value.requirement == "ALL-NORAISE"


# ------------------------------------------------------------------ the render fuzz input


def _target(driver: str = "reference") -> RenderTarget:
    return RenderTarget(load_driver(driver))


def _scenario(t: RenderTarget, program: tuple[Op, ...], *steps: Step) -> RenderInput:
    sizes = tuple(a.size for a in t.rig.pool)
    first, *more = steps
    return RenderInput(
        0,
        (Entry(1, True), Entry(2, True)),
        program,
        first.damage,
        first.at,
        first.data,
        sizes=(0, sizes[0], sizes[1]),
        more=tuple(more),
    )


def test_inputs_written_before_there_was_more_damage_keep_their_meaning() -> None:
    t = _target()
    for path in sorted((CORPORA / "render").iterdir()):
        data = path.read_bytes()
        s = t.decode(data)
        assert s.encode() == data, path.name
        assert t.decode(data + b"\x00") == s  # an explicit count of 0 is the same input
        if not path.name.startswith("damage-inject-"):
            assert s.more == (), path.name


def test_one_input_carries_an_injected_command_and_a_bit_flip() -> None:
    t = _target()
    copy = Copy(AllocRef(1, 8), AllocRef(2, 16), 32)
    at = command_boundaries(t.rig.kernel.encoder, [copy])[1]  # after the copy
    s = _scenario(t, (copy,), Step(Damage.INJECT, 1), Step(Damage.FLIP, at + 1, b"\x80"))
    data = s.encode()
    assert t.decode(data) == s
    assert t.describe(data).count("command buffer damage") == 2
    t.run(data)  # the reference ignores the reserved byte and still rejects
    with pytest.raises(DriverFailure) as caught:
        _target("tests.mutants:ReservedBitDisablesChecks").run(data)
    assert caught.value.requirement == "REN-VALIDATE"


def test_the_render_fuzzer_seeds_put_the_privileged_command_after_a_copy() -> None:
    t = _target("tests.mutants:SkipsValidationAfterCopy")
    with pytest.raises(DriverFailure) as caught:
        t.run((CORPORA / "render" / "inject-after-copy").read_bytes())
    assert caught.value.requirement == "REN-VALIDATE"
    for name in ("inject-after-fill", "inject-after-xor", "damage-inject-flip"):
        _target("tests.mutants:SkipsValidationAfterCopy").run(
            (CORPORA / "render" / name).read_bytes()
        )


CMD = Piece(b"c", "command")
BAD = Piece(b"h", "hostile")


@pytest.mark.parametrize(
    ("pieces", "rule"),
    [
        ([Piece(b"p", "prologue"), CMD, BAD, CMD], "REN-VALIDATE"),
        ([CMD, BAD, Piece(b"?", "unknown")], "REN-VALIDATE"),  # damage after it changes nothing
        ([CMD, Piece(b"?", "unknown"), BAD], ""),  # damage before it may swallow it
        ([CMD, Piece(b"c", "cut")], "REN-UNDERRUN"),
        ([CMD, Piece(b"c", "cut"), BAD], ""),  # a cut followed by more bytes is no cut
        ([CMD, Piece(b"h", "cut-hostile")], "REN-UNDERRUN"),
        ([CMD, CMD], ""),
    ],
)
def test_a_damaged_buffer_has_a_right_answer_only_up_to_its_first_unknown_piece(
    pieces: list[Piece], rule: str
) -> None:
    assert demand(pieces) == rule


def test_damage_applies_in_order_to_the_pieces() -> None:
    t = _target()
    encoder = t.rig.kernel.encoder
    program = (Write(AllocRef(1), 1), Write(AllocRef(2), 2))
    command = encoder.encode(program).command
    cuts = command_boundaries(encoder, program)
    s = _scenario(
        t, program, Step(Damage.INJECT, 2), Step(Damage.FLIP, 0, b"\x01"), Step(Damage.TRUNCATE, 9)
    )
    out, pieces = damaged(command, s, encoder, cuts)
    assert [p.what for p in pieces] == ["unknown", "cut"]  # flipped prologue, cut Write
    assert out == bytes([command[0] ^ 1]) + command[1:9]
    assert pieces_of(command, cuts)[0].what == "prologue"
    assert replace(s, more=()).steps == (Step(Damage.INJECT, 2),)


def test_an_injected_command_cut_twice_is_still_a_cut_injected_command() -> None:
    """Found by a newcomer's 20 s campaign on the reference: INJECT, TRUNCATE, TRUNCATE made
    the cut privileged command a plain cut, which demanded the two underrun statuses."""
    t = _target()
    data = (DATA / "inject-then-cut-twice").read_bytes()
    encoder = t.rig.kernel.encoder
    pieces = [Piece(b"\0" * 8, "prologue"), Piece(encoder.privileged_command(), "hostile")]
    for at in (12, 10):
        pieces = apply_step(pieces, Step(Damage.TRUNCATE, at), encoder)
    assert [p.what for p in pieces] == ["prologue", "cut-hostile"]
    t.run(data)  # the reference's PRIVILEGED_INSTRUCTION for it is an allowed answer


STEPS = st.builds(
    Step,
    st.sampled_from([d for d in Damage if d != Damage.NONE]),
    st.integers(0, 0xFFFF),
    st.one_of(st.sampled_from([bytes([1 << b]) for b in range(8)]), st.binary(max_size=24)),
).filter(lambda s: s.damage != Damage.FLIP or (len(s.data) == 1 and s.data[0].bit_count() == 1))


@pytest.mark.parametrize("driver", ["reference", "tests.second_driver:Miniport"])
def test_several_kinds_of_damage_find_nothing_on_a_correct_driver(driver: str) -> None:
    """No false positives from the pieces' verdicts, in either command format."""
    t = _target(driver)
    seed = t.decode((CORPORA / "render" / "inject-after-copy").read_bytes())

    @settings(max_examples=150, deadline=None, database=None, derandomize=True)
    @given(st.lists(STEPS, min_size=2, max_size=4))
    def clean(steps: list[Step]) -> None:
        first, *more = steps
        s = replace(seed, damage=first.damage, damage_at=first.at, damage_bytes=first.data)
        t.run(replace(s, more=tuple(more)).encode())

    clean()
