"""Fuzz target for DxgkDdiRender: allocation lists, command buffers, patch lists, user faults.

An input is a :class:`RenderInput`: a kernel variant, an allocation list over the
rig's pool (entry 0 is the NULL element), a program in the harness's program model
that the driver's encoder turns into a command buffer, then what a hostile user mode
does to it: damage the bytes, lie in (or drop) the input patch-location list, fault
part of the buffer, or change one byte right after the driver reads it (TOCTOU).

Oracles, by what the input is (:func:`classify`):

* valid and undamaged: SUCCESS and GPU memory equals the program model
  (REN-TRANSLATE; REN-PATCHIN when the patch list lied or was missing; REN-COPYFIRST
  under TOCTOU), and no command byte read twice (REN-COPYFIRST);
* a reference outside the submission: rejected with a validation status (REN-VALIDATE);
* a faulting byte inside the buffer: an error status (REN-USERFAULT);
* always: allocations no entry may write stay unchanged (REN-ALLOCINDEX), and the
  kernel's own checks -- statuses, cursors, patch lists, ALL-ISOLATION on every GPU
  access -- run on every call.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from enum import IntEnum
from typing import ClassVar

from ..attribution import Submitted, attributed
from ..ddi import D3DDDI_PATCHLOCATIONLIST
from ..driver import DDI_METHODS, CommandEncoder
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
        "a damaged or degenerate program with no single right answer (judged by the checks "
        "that always hold: allowed status, no exception, isolation, cursors)"
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
        damage = Damage(r.u8() % len(Damage))
        at, extra = 0, b""
        if damage in (Damage.TRUNCATE, Damage.FLIP, Damage.SPLICE, Damage.INJECT):
            at = r.u16()
        if damage == Damage.FLIP:
            extra = bytes([1 << r.u8() % 8])
        elif damage in (Damage.SPLICE, Damage.REPLACE):
            extra = r.blob(4096 if damage == Damage.REPLACE else 32)
        patch_list = PatchList(r.u8() % len(PatchList))
        lie = r.u32() if patch_list == PatchList.LYING else 0
        fault = Fault(r.u8() % len(Fault))
        fault_at = r.u16() if fault != Fault.NONE else 0
        fault_byte = r.u8() if fault == Fault.TOCTOU else 0
        return cls(
            variant,
            tuple(entries),
            program,
            damage,
            at,
            extra,
            patch_list,
            lie,
            fault,
            fault_at,
            fault_byte,
            sizes,
        )

    def encode(self) -> bytes:
        w = Writer().u8(self.variant).u8(len(self.entries) - 1)
        for e in self.entries:
            w.u8(e.encode())
        write_program(w, self.program, self.sizes)
        w.u8(self.damage)
        if self.damage in (Damage.TRUNCATE, Damage.FLIP, Damage.SPLICE, Damage.INJECT):
            w.u16(self.damage_at)
        if self.damage == Damage.FLIP:
            w.u8(self.damage_bytes[0].bit_length() - 1)
        elif self.damage in (Damage.SPLICE, Damage.REPLACE):
            w.blob(self.damage_bytes)
        w.u8(self.patch_list)
        if self.patch_list == PatchList.LYING:
            w.u32(self.lie)
        w.u8(self.fault)
        if self.fault != Fault.NONE:
            w.u16(self.fault_at)
        if self.fault == Fault.TOCTOU:
            w.u8(self.fault_byte)
        return w.bytes()


def classify(scenario: RenderInput) -> Kind:
    """Which oracles apply to ``scenario`` (see the module docstring)."""
    if scenario.damage != Damage.NONE:
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


def boundaries(encoder: CommandEncoder, program: tuple[Op, ...]) -> list[int]:
    """Byte offsets between the encoded commands of ``program`` (0 and the end included)."""
    return [len(encoder.encode(program[:i]).command) for i in range(len(program) + 1)]


def damaged(command: bytes, s: RenderInput, encoder: CommandEncoder, cuts: list[int]) -> bytes:
    """The command buffer after what the input does to it."""
    if s.damage == Damage.TRUNCATE:
        return command[: s.damage_at % (len(command) + 1)]
    if s.damage == Damage.FLIP and command:
        out = bytearray(command)
        out[s.damage_at % len(out)] ^= s.damage_bytes[0]
        return bytes(out)
    if s.damage == Damage.SPLICE:
        at = s.damage_at % (len(command) + 1)
        return command[:at] + s.damage_bytes + command[at:]
    if s.damage == Damage.REPLACE:
        return s.damage_bytes
    if s.damage == Damage.INJECT:
        bad = encoder.illegal_command() if s.damage_at & 0x8000 else encoder.privileged_command()
        at = cuts[s.damage_at % len(cuts)]
        return command[:at] + bad + command[at:]
    return command


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
        k = rig.use(VARIANTS[s.variant])
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
        cuts = (
            boundaries(k.encoder, s.program) if s.damage in (Damage.TRUNCATE, Damage.INJECT) else []
        )
        command = damaged(encoded.command, s, k.encoder, cuts)
        plist = patch_list_in(encoded.patch_locations, s)
        if (
            self.lean
            or kind != Kind.VALID
            or s.damage != Damage.NONE
            or s.fault not in ATTRIBUTABLE
        ):
            self._judge(s, kind, alist, uses, command, cuts, plist, untouched, want)
            return
        patch_fault = s.fault_at if s.fault == Fault.PATCH_LIST else None
        honest = encoded.patch_locations
        replayable = Submitted.snapshot(
            k, rig.context, command, uses, plist, honest, want, patch_fault, s.program
        )
        with attributed(k, replayable):
            self._judge(s, kind, alist, uses, command, cuts, plist, untouched, want)

    def _judge(
        self,
        s: RenderInput,
        kind: Kind,
        alist: list[Allocation | None],
        uses: list[AllocationUse],
        command: bytes,
        cuts: list[int],
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
        # Damage to a valid program has one right answer; to an invalid one, any error will do.
        intact = classify(replace(s, damage=Damage.NONE)) == Kind.VALID
        if s.damage == Damage.TRUNCATE and command and len(command) not in cuts:
            cut = f"a command buffer cut to {len(command)} bytes, inside a command"
            expect_rejected(result, UNDERRUN_ERRORS if intact else ERRORS, "REN-UNDERRUN", cut)
        elif s.damage == Damage.INJECT:
            bad = "a privileged or illegal command"
            expect_rejected(result, VALIDATION_ERRORS if intact else ERRORS, "REN-VALIDATE", bad)
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
        if s.damage != Damage.NONE:
            lines.append(
                f"  command buffer damage: {s.damage.name.lower()} at {s.damage_at} "
                f"{s.damage_bytes[:32].hex()}"
            )
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
