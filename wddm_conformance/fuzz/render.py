"""Fuzz target for DxgkDdiRender: allocation lists, command buffers, patch lists, user faults.

An input is a :class:`RenderInput`: a kernel variant, an allocation list over the
rig's pool (entry 0 is the NULL element), a program in the harness's program model
that the driver's encoder turns into a command buffer, then what a hostile user mode
does to it: damage the bytes (up to 1 + MAX_MORE_DAMAGE kinds of damage, applied in
order: a bit flip and an injected command in one input), lie in (or drop) the input
patch-location list, fault part of the buffer, or change one byte right after the driver
reads it (TOCTOU).

Oracles, by what the input is (:func:`classify`):

* valid and undamaged: SUCCESS and GPU memory equals the program model
  (REN-TRANSLATE; REN-PATCHIN when the patch list lied or was missing; REN-COPYFIRST
  under TOCTOU), and no command byte read twice (REN-COPYFIRST);
* a reference outside the submission: rejected with a validation status (REN-VALIDATE);
* damaged, where the harness can tell (:func:`demand`): the encoder's privileged or
  illegal command after undamaged commands only is rejected (REN-VALIDATE); a command
  cut by the end of the buffer after undamaged commands only, an underrun (REN-UNDERRUN);
* a faulting byte inside the buffer: an error status (REN-USERFAULT);
* always: allocations no entry may write stay unchanged (REN-ALLOCINDEX), and the
  kernel's own checks -- statuses, cursors, patch lists, ALL-ISOLATION on every GPU
  access -- run on every call.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field, replace
from enum import IntEnum
from typing import ClassVar, NamedTuple

from ..attribution import Submitted, attributed
from ..ddi import D3DDDI_PATCHLOCATIONLIST
from ..driver import DDI_METHODS, CommandEncoder, command_boundaries
from ..errors import DriverViolation
from ..kernel import Allocation, AllocationUse
from ..oracles import (
    ERRORS,
    UNDERRUN_ERRORS,
    VALIDATION_ERRORS,
    expect_memory,
    expect_null_bindings,
    expect_rejected,
    expect_single_fetch,
    expect_success,
    expect_unchanged,
)
from ..program import AllocRef, Bind, Copy, Op, Write, out_of_bounds, touches
from ..status import STATUS_SUCCESS
from .base import (
    OP_KINDS,
    POOL,
    VARIANTS,
    RigTarget,
    command_tokens,
    describe_program,
    read_program,
    sample_program,
    write_program,
)
from .data import Reader, Writer

MAX_ENTRIES = 6
RENDER = DDI_METHODS["render"]
PLACES = ("resident", "paged-out", "moved")


class Damage(IntEnum):
    NONE = 0
    TRUNCATE = 1
    FLIP = 2
    SPLICE = 3
    REPLACE = 4
    INJECT = 5  # the encoder's privileged or illegal command, between two commands


#: Kinds of damage an input may add after its first (a trailing count, 0 when absent, so an
#: input written before there were more keeps its meaning).
MAX_MORE_DAMAGE = 3


@dataclass(frozen=True)
class Step:
    """One kind of damage: ``at`` (taken modulo the buffer's size) and its bytes (FLIP: the
    mask; SPLICE, REPLACE: the bytes; INJECT: bit 15 of ``at`` picks the illegal command)."""

    damage: Damage
    at: int = 0
    data: bytes = b""

    @classmethod
    def read(cls, r: Reader) -> Step:
        damage = Damage(r.u8() % len(Damage))
        at, data = 0, b""
        if damage in (Damage.TRUNCATE, Damage.FLIP, Damage.SPLICE, Damage.INJECT):
            at = r.u16()
        if damage == Damage.FLIP:
            data = bytes([1 << r.u8() % 8])
        elif damage in (Damage.SPLICE, Damage.REPLACE):
            data = r.blob(4096 if damage == Damage.REPLACE else 32)
        return cls(damage, at, data)

    def write(self, w: Writer) -> None:
        w.u8(self.damage)
        if self.damage in (Damage.TRUNCATE, Damage.FLIP, Damage.SPLICE, Damage.INJECT):
            w.u16(self.at)
        if self.damage == Damage.FLIP:
            w.u8(self.data[0].bit_length() - 1)
        elif self.damage in (Damage.SPLICE, Damage.REPLACE):
            w.blob(self.data)

    def __str__(self) -> str:
        return f"{self.damage.name.lower()} at {self.at} {self.data[:32].hex()}".rstrip()


class PatchList(IntEnum):
    HONEST = 0
    MISSING = 1
    EMPTY = 2
    LYING = 3


class Fault(IntEnum):
    NONE = 0
    COMMAND = 1
    TOCTOU = 2
    PATCH_LIST = 3


#: Inputs whose failure the replays of :mod:`wddm_conformance.attribution` may refine (a
#: faulting pCommand or a TOCTOU race already names its own rule).
ATTRIBUTABLE = (Fault.NONE, Fault.PATCH_LIST)


class Kind(IntEnum):
    """What the harness knows an input means (which oracles apply)."""

    VALID = 0
    INVALID = 1  # reaches outside the submission: must be rejected
    WRITE_DENIED = 2  # writes an entry without WriteOperation
    UNKNOWN = 3  # damaged or degenerate: only the always-on oracles


#: What ``repro`` says an input is, and so which oracles judge it.
KIND_MEANS: dict[Kind, str] = {
    Kind.VALID: "a valid program (Render must translate it and the GPU must do what it says)",
    Kind.INVALID: "an invalid program (it reaches outside the submission: Render must reject it)",
    Kind.WRITE_DENIED: "a program writing an entry without WriteOperation (the write must not land)",
    Kind.UNKNOWN: (
        "a damaged or degenerate program (judged by the checks that always hold: allowed "
        "status, no exception, isolation, cursors; and by what its damage demands where the "
        "harness can tell: an injected command rejected, a command cut off an underrun)"
    ),
}


@dataclass(frozen=True)
class Entry:
    pool: int  # 0: the NULL element; 1..: the rig's pool allocation pool - 1
    write: bool = False
    place: int = 0  # index into PLACES

    def encode(self) -> int:
        return self.pool | self.write << 3 | self.place << 4


@dataclass(frozen=True)
class RenderInput:
    variant: int = 0
    entries: tuple[Entry, ...] = ()
    program: tuple[Op, ...] = ()
    damage: Damage = Damage.NONE
    damage_at: int = 0
    damage_bytes: bytes = b""
    patch_list: PatchList = PatchList.HONEST
    lie: int = 0
    fault: Fault = Fault.NONE
    fault_at: int = 0
    fault_byte: int = 0
    sizes: tuple[int, ...] = field(default=(), compare=False)
    #: damage after the first, in order (at most MAX_MORE_DAMAGE)
    more: tuple[Step, ...] = ()

    @property
    def steps(self) -> tuple[Step, ...]:
        """Every kind of damage the input does, in order (NONE left out)."""
        first = Step(self.damage, self.damage_at, self.damage_bytes)
        return tuple(step for step in (first, *self.more) if step.damage != Damage.NONE)

    @property
    def damaged(self) -> bool:
        return bool(self.steps)

    @classmethod
    def decode(cls, data: bytes, pool_sizes: tuple[int, ...]) -> RenderInput:
        r = Reader(data)
        variant = r.u8() % len(VARIANTS)
        entries = []
        for _ in range(1 + r.u8() % MAX_ENTRIES):
            b = r.u8()
            entries.append(Entry(b % 8 % (len(pool_sizes) + 1), bool(b >> 3 & 1), (b >> 4) % 3))
        sizes = (0, *(pool_sizes[e.pool - 1] if e.pool else 0 for e in entries))
        program = tuple(read_program(r, sizes))
        first = Step.read(r)
        patch_list = PatchList(r.u8() % len(PatchList))
        lie = r.u32() if patch_list == PatchList.LYING else 0
        fault = Fault(r.u8() % len(Fault))
        fault_at = r.u16() if fault != Fault.NONE else 0
        fault_byte = r.u8() if fault == Fault.TOCTOU else 0
        more = tuple(Step.read(r) for _ in range(r.u8() % (MAX_MORE_DAMAGE + 1)))
        return cls(
            variant,
            tuple(entries),
            program,
            first.damage,
            first.at,
            first.data,
            patch_list,
            lie,
            fault,
            fault_at,
            fault_byte,
            sizes,
            more,
        )

    def encode(self) -> bytes:
        w = Writer().u8(self.variant).u8(len(self.entries) - 1)
        for e in self.entries:
            w.u8(e.encode())
        write_program(w, self.program, self.sizes)
        Step(self.damage, self.damage_at, self.damage_bytes).write(w)
        w.u8(self.patch_list)
        if self.patch_list == PatchList.LYING:
            w.u32(self.lie)
        w.u8(self.fault)
        if self.fault != Fault.NONE:
            w.u16(self.fault_at)
        if self.fault == Fault.TOCTOU:
            w.u8(self.fault_byte)
        if self.more:
            w.u8(len(self.more))
            for step in self.more:
                step.write(w)
        return w.bytes()


def classify(scenario: RenderInput) -> Kind:
    """Which oracles apply to ``scenario`` (see the module docstring)."""
    if scenario.damaged:
        return Kind.UNKNOWN
    sizes, entries = scenario.sizes, (Entry(0), *scenario.entries)
    kind = Kind.VALID
    for op in scenario.program:
        for a in touches(op):
            index = a.ref.index
            if not 0 <= index < len(sizes):
                return Kind.INVALID
            if not entries[index].pool:
                if isinstance(op, Bind):  # binding a NULL entry other than 0: driver-defined
                    kind = Kind.UNKNOWN
                    continue
                return Kind.INVALID
            if a.end > sizes[index]:
                return Kind.INVALID
            if a.length == 0 and not isinstance(op, Bind):
                kind = Kind.UNKNOWN
            if a.writes and not entries[index].write and kind == Kind.VALID:
                kind = Kind.WRITE_DENIED
    return kind


def bounds(scenario: RenderInput) -> list[str]:
    """The references of the scenario's program the harness knows are out of bounds."""
    sizes = {i: n for i, n in enumerate(scenario.sizes) if i and scenario.entries[i - 1].pool}
    return out_of_bounds(scenario.program, sizes, len(scenario.sizes))


class Piece(NamedTuple):
    """A run of a damaged command buffer and what the harness knows it is."""

    data: bytes
    what: str  # one of PIECES


#: What a piece is: the encoder's prologue or one of its commands, undamaged; the encoder's
#: privileged or illegal command; the head of a command, or of that command, cut off by
#: the buffer's end (rejected either way: any error for the latter); bytes the harness
#: cannot decode.
PIECES = ("prologue", "command", "hostile", "cut", "cut-hostile", "unknown")


def pieces_of(command: bytes, cuts: list[int]) -> list[Piece]:
    """``command`` (the encoding) split at ``cuts`` (:func:`command_boundaries`; ``[len]``
    when they are not needed: one piece)."""
    out = [Piece(command[: cuts[0]], "prologue")] if cuts[0] else []
    out += [Piece(command[a:b], "command") for a, b in itertools.pairwise(cuts)]
    return out


def _locate(pieces: list[Piece], at: int) -> tuple[int, int]:
    """(index of the piece holding byte ``at``, offset in it); ``(len, 0)`` at the end."""
    for i, piece in enumerate(pieces):
        if at < len(piece.data):
            return i, at
        at -= len(piece.data)
    return len(pieces), 0


def apply_step(pieces: list[Piece], step: Step, encoder: CommandEncoder) -> list[Piece]:
    """The pieces after one kind of damage."""
    size = sum(len(p.data) for p in pieces)
    out = list(pieces)
    if step.damage == Damage.FLIP and size:
        i, off = _locate(out, step.at % size)
        data = bytearray(out[i].data)
        data[off] ^= step.data[0]
        out[i] = Piece(bytes(data), "unknown")
    elif step.damage == Damage.SPLICE:
        i, off = _locate(out, step.at % (size + 1))
        if off == 0:
            out.insert(i, Piece(step.data, "unknown"))
        else:
            old = out[i].data
            out[i] = Piece(old[:off] + step.data + old[off:], "unknown")
    elif step.damage == Damage.TRUNCATE:
        i, off = _locate(out, step.at % (size + 1))
        head = out[i].data[:off] if i < len(out) else b""
        out = out[:i]
        if head:
            was = pieces[i].what
            cut = {"unknown": "unknown", "hostile": "cut-hostile"}.get(was, "cut")
            if was == "cut-hostile":
                cut = was  # cut again: still the injected command, cut
            out.append(Piece(head, cut))
    elif step.damage == Damage.REPLACE:
        out = [Piece(step.data, "unknown")] if step.data else []
    elif step.damage == Damage.INJECT:
        # between two pieces, never before the encoder's prologue
        first = 1 if out and out[0].what == "prologue" else 0
        edges = [sum(len(p.data) for p in out[:i]) for i in range(first, len(out) + 1)]
        where = edges[step.at % len(edges)]
        i, _ = _locate(out, where)
        bad = encoder.illegal_command() if step.at & 0x8000 else encoder.privileged_command()
        out.insert(i, Piece(bad, "hostile"))
    return out


def damaged(
    command: bytes, s: RenderInput, encoder: CommandEncoder, cuts: list[int]
) -> tuple[bytes, list[Piece]]:
    """The command buffer after every kind of damage the input does, and its pieces."""
    pieces = pieces_of(command, cuts)
    for step in s.steps:
        pieces = apply_step(pieces, step, encoder)
    return b"".join(p.data for p in pieces), pieces


def demand(pieces: list[Piece]) -> str:
    """The rule a damaged buffer must be rejected under ("" when the harness cannot tell):
    the first piece that is not an undamaged command decides, since nothing before it can
    change how it is read. An injected command: REN-VALIDATE; a command cut off by the end
    of the buffer: REN-UNDERRUN (followed by other bytes, the cut is no longer known)."""
    for i, piece in enumerate(pieces):
        if piece.what == "hostile":
            return "REN-VALIDATE"
        if piece.what in ("cut", "cut-hostile") and i == len(pieces) - 1:
            return "REN-UNDERRUN"
        if piece.what != "command" and piece.what != "prologue":
            return ""
    return ""


def patch_list_in(
    honest: list[D3DDDI_PATCHLOCATIONLIST], s: RenderInput
) -> list[D3DDDI_PATCHLOCATIONLIST] | None:
    if s.patch_list == PatchList.MISSING:
        return None
    if s.patch_list == PatchList.EMPTY:
        return []
    if s.patch_list == PatchList.LYING and honest:
        victim = s.lie % len(honest)
        e = honest[victim]
        lied = replace(
            e,
            AllocationIndex=e.AllocationIndex ^ (s.lie >> 8 & 0x7),
            AllocationOffset=e.AllocationOffset ^ (s.lie >> 12 & 0xFFF),
            PatchOffset=e.PatchOffset ^ (s.lie >> 24 & 0x3F),
        )
        return [*honest[:victim], lied, *honest[victim + 1 :]]
    return honest


class RenderTarget(RigTarget):
    """DxgkDdiRender through the scheduler, split, patch, submit and the emulated GPU."""

    name: ClassVar[str] = "render"
    summary: ClassVar[str] = "DxgkDdiRender: allocation lists, command buffers, patch lists, faults"

    def decode(self, data: bytes) -> RenderInput:
        return RenderInput.decode(data, tuple(a.size for a in self.rig.pool))

    def _run(self, s: RenderInput) -> None:
        rig = self.rig
        k = rig.use(VARIANTS[s.variant], lean=self.lean)
        alist: list[Allocation | None] = [None]
        for e in s.entries:
            a = rig.pool[e.pool - 1] if e.pool else None
            if a is not None:
                rig.place(a, e.place)
            alist.append(a)
        uses = [AllocationUse(None)] + [
            AllocationUse(a, e.write) for a, e in zip(alist[1:], s.entries, strict=True)
        ]
        kind = classify(s)
        writable = {id(u.allocation) for u in uses if u.allocation is not None and u.write}
        # Lean: the CPU view, which changes exactly when the GPU view does (the swizzle is a
        # permutation) and costs no swizzle; a change is named by the full replay.
        view = k.cpu_read if self.lean else k.gpu_view
        untouched = {a: view(a) for a in alist if a is not None and id(a) not in writable}
        want = k.expected_after(alist, s.program) if kind == Kind.VALID else {}
        encoded = k.encoder.encode(s.program)
        located = any(step.damage in (Damage.TRUNCATE, Damage.INJECT) for step in s.steps)
        cuts = command_boundaries(k.encoder, s.program) if located else [len(encoded.command)]
        command, pieces = damaged(encoded.command, s, k.encoder, cuts)
        plist = patch_list_in(encoded.patch_locations, s)
        if self.lean or kind != Kind.VALID or s.damaged or s.fault not in ATTRIBUTABLE:
            self._judge(s, kind, alist, uses, command, pieces, plist, untouched, want)
            return
        patch_fault = s.fault_at if s.fault == Fault.PATCH_LIST else None
        honest = encoded.patch_locations
        replayable = Submitted.snapshot(
            k, rig.context, command, uses, plist, honest, want, patch_fault, s.program
        )
        with attributed(k, replayable):
            self._judge(s, kind, alist, uses, command, pieces, plist, untouched, want)

    def _judge(
        self,
        s: RenderInput,
        kind: Kind,
        alist: list[Allocation | None],
        uses: list[AllocationUse],
        command: bytes,
        pieces: list[Piece],
        plist: list[D3DDDI_PATCHLOCATIONLIST] | None,
        untouched: dict[Allocation, bytes],
        want: dict[int, bytes],
    ) -> None:
        """Submit the command buffer the input made and judge the result by its kind."""
        k = self.rig.kernel
        fault_at = s.fault_at % (len(command) + 8) if s.fault == Fault.COMMAND else None
        toctou = None
        if s.fault == Fault.TOCTOU and command:
            at = s.fault_at % len(command)
            toctou = (at, bytes([command[at] ^ (s.fault_byte or 1)]))
        patch_fault = s.fault_at if s.fault == Fault.PATCH_LIST else None
        result = k.render(
            self.rig.context,
            command,
            uses,
            patch_list_in=plist,
            fault_at=fault_at,
            toctou=toctou,
            patch_fault_at=patch_fault,
            out_of_bounds=bounds(s) if kind == Kind.INVALID and fault_at is None else (),
        )
        what = f"render input ({kind.name.lower()})"
        if self.lean:
            for a, before in untouched.items():
                if k.cpu_read(a) != before:
                    raise DriverViolation("REN-ALLOCINDEX", RENDER, f"{what}: {a} changed")
        else:
            expect_unchanged(k, untouched, "REN-ALLOCINDEX", what)
        if fault_at is not None and fault_at < len(command):
            expect_rejected(
                result, ERRORS, "REN-USERFAULT", f"pCommand faulting at byte {fault_at}"
            )
            return
        if result.ok:
            expect_single_fetch(result)
        if toctou is not None and result.render_calls > 1:
            return  # a byte read again by a later Render call is new user content, not a race
        # Damage to a valid program has one right answer where nothing else was damaged;
        # to an invalid program, or with other damage, any error will do.
        rule = demand(pieces) if s.damaged else ""
        intact = classify(replace(s, damage=Damage.NONE, more=())) == Kind.VALID
        intact = intact and all(p.what not in ("unknown", "cut-hostile") for p in pieces)
        if rule == "REN-UNDERRUN":
            cut = f"a command buffer cut to {len(command)} bytes, inside a command"
            expect_rejected(result, UNDERRUN_ERRORS if intact else ERRORS, rule, cut)
        elif rule == "REN-VALIDATE":
            bad = "a privileged or illegal command after undamaged commands"
            expect_rejected(result, VALIDATION_ERRORS if intact else ERRORS, rule, bad)
        if kind == Kind.INVALID:
            if result.status == STATUS_SUCCESS or result.status not in VALIDATION_ERRORS:
                # the program is formatted only for the failure (a repr per operation)
                expect_rejected(result, VALIDATION_ERRORS, "REN-VALIDATE", f"{what}: {s.program}")
        elif kind == Kind.VALID:
            if result.status != STATUS_SUCCESS and (
                s.fault == Fault.PATCH_LIST
                or (k.mode.tiny_buffers and k.caps.GuaranteedContractDma)
            ):
                return  # an unreadable patch list, or a contract driver's refusal, may fail the call
            rule = "REN-TRANSLATE"
            if s.patch_list != PatchList.HONEST:
                rule = "REN-PATCHIN"
            if toctou is not None:
                rule = "REN-COPYFIRST"
            expect_success(result, what, rule)
            expect_memory(k, alist, want, what, rule)
            if toctou is None:
                expect_null_bindings(k, result, s.program, what)

    def describe(self, data: bytes) -> str:
        s = self.decode(data)
        variant = VARIANTS[s.variant]
        lines = [
            f"render input: kernel variant {variant.name!r}, {KIND_MEANS[classify(s)]}",
            "  allocation list:",
            "    0: NULL element",
        ]
        for i, e in enumerate(s.entries, 1):
            name = POOL[e.pool - 1][0] if e.pool else "NULL element"
            size = f" ({s.sizes[i]} bytes)" if e.pool else ""
            flags = ", WriteOperation" if e.write else ""
            place = f", {PLACES[e.place]}" if e.pool else ""
            lines.append(f"    {i}: {name}{size}{flags}{place}")
        lines.append("  program (encoded by the driver's command encoder):")
        lines += describe_program(s.program) or ["    (empty)"]
        for step in s.steps:
            lines.append(f"  command buffer damage: {step}")
        lines.append(f"  pPatchLocationListIn: {s.patch_list.name.lower()}")
        if s.fault != Fault.NONE:
            lines.append(f"  user memory: {s.fault.name.lower()} at {s.fault_at}")
        return "\n".join(lines)

    def seeds(self) -> list[tuple[str, bytes]]:
        sizes = tuple(a.size for a in self.rig.pool)
        rng = random.Random(2026)
        out: list[tuple[str, bytes]] = []

        def make(variant: int, entries: tuple[Entry, ...], program: tuple[Op, ...]) -> RenderInput:
            pools = tuple(sizes[e.pool - 1] if e.pool else 0 for e in entries)
            return RenderInput(variant, entries, program, sizes=(0, *pools))

        # every operation kind alone, then mixed programs, on every pool allocation and variant
        entries = tuple(Entry(i, True) for i in range(1, len(sizes) + 1))
        full = (0, *sizes)
        for kind in OP_KINDS:
            program = sample_program(rng, full, [kind], 1)
            out.append((f"op-{kind}", make(0, entries, tuple(program)).encode()))
        for v, variant in enumerate(VARIANTS):
            program = sample_program(rng, full, list(OP_KINDS), 6)
            out.append((f"variant-{variant.name}", make(v, entries, tuple(program)).encode()))
        for place in (1, 2):
            placed = tuple(replace(e, place=place) for e in entries)
            program = sample_program(rng, full, list(OP_KINDS), 5)
            out.append((f"place-{PLACES[place]}", make(0, placed, tuple(program)).encode()))
        base = make(0, entries, tuple(sample_program(rng, full, list(OP_KINDS), 4)))
        for pl in PatchList:
            out.append(
                (
                    f"patchlist-{pl.name.lower()}",
                    replace(base, patch_list=pl, lie=0x01020304).encode(),
                )
            )
        for d in (Damage.TRUNCATE, Damage.FLIP, Damage.SPLICE):
            out.append(
                (
                    f"damage-{d.name.lower()}",
                    replace(base, damage=d, damage_at=7, damage_bytes=b"\x10").encode(),
                )
            )
        raw = self.rig.kernel.encoder.encode(base.program).command
        out.append(
            ("damage-replace", replace(base, damage=Damage.REPLACE, damage_bytes=raw).encode())
        )
        for at, name in ((1, "privileged"), (0x8001, "illegal")):
            inject = replace(base, damage=Damage.INJECT, damage_at=at)
            out.append((f"inject-{name}", inject.encode()))
        # the privileged command directly after each kind of command
        for kind in OP_KINDS:
            pair = (*sample_program(rng, full, [kind], 1), *sample_program(rng, full, ["write"], 1))
            after = replace(make(0, entries, pair), damage=Damage.INJECT, damage_at=1)
            out.append((f"inject-after-{kind}", after.encode()))
        # more than one kind of damage: a bit of the injected command (then one before it)
        # flipped, a buffer cut inside its last command after the injection
        encoder = self.rig.kernel.encoder
        injected = command_boundaries(encoder, base.program)[1]
        end = len(encoder.encode(base.program).command) + len(encoder.privileged_command())
        inject = replace(base, damage=Damage.INJECT, damage_at=1)
        for name, step in (
            ("inject-flip", Step(Damage.FLIP, injected + 1, b"\x01")),
            ("inject-flip-before", Step(Damage.FLIP, injected - 1, b"\x01")),
            ("inject-truncate", Step(Damage.TRUNCATE, end - 1)),
        ):
            out.append((f"damage-{name}", replace(inject, more=(step,)).encode()))
        for f in (Fault.COMMAND, Fault.TOCTOU, Fault.PATCH_LIST):
            out.append(
                (
                    f"fault-{f.name.lower()}",
                    replace(base, fault=f, fault_at=9, fault_byte=0x40).encode(),
                )
            )
        read_only = tuple(replace(e, write=False) for e in entries)
        out.append(("write-denied", replace(base, entries=read_only).encode()))
        oob = (Copy(AllocRef(1, sizes[0] - 8), AllocRef(2), 64),)
        out.append(("outside", make(0, entries, oob).encode()))
        nulls = (Entry(0), Entry(1, True), Entry(0), Entry(2, True))
        out.append(
            (
                "null-entries",
                make(
                    0, nulls, (Bind(1, None), Bind(2, AllocRef(2, 8)), Write(AllocRef(4, 4), 9))
                ).encode(),
            )
        )
        return out

    def dictionary(self) -> list[bytes]:
        return command_tokens(self.rig)
