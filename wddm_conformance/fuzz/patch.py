"""Fuzz target for DxgkDdiPatch: submission ranges, repatching after moves, paging buffers.

An input is a :class:`PatchInput`: a kernel variant, allocations from the rig's pool,
a program (only its in-bounds operations are kept: this target is about patching
valid work, not validation), instruction boundaries at which each DMA buffer is cut
into submission ranges, and rounds; before each round the input relocates or evicts
allocations, so Render sees them paged out or moved and every range must be patched
with the new addresses. Paging buffers built for those moves are patched too
(PAT-PAGING). Each round must succeed and leave GPU memory equal to the program model;
the kernel checks ranges, fences, in-place patching and repatching as it goes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import ClassVar

from ..attribution import run_program_checked
from ..kernel import Allocation
from ..program import Op
from .base import (
    OP_KINDS,
    POOL,
    VARIANTS,
    RigTarget,
    command_tokens,
    describe_program,
    read_op,
    sample_program,
    valid_op,
    write_op,
)
from .data import Reader, Writer

MAX_ENTRIES = 4
MAX_CUTS = 4
MAX_ROUNDS = 3
#: What a round does to an entry, as ``Rig.place`` does it (0, 1, 2).
MOVES = ("stay", "evict", "relocate")


@dataclass(frozen=True)
class PatchInput:
    variant: int = 3
    pools: tuple[int, ...] = (1, 2)  # pool index + 1 of allocation-list entries 1..n
    program: tuple[Op, ...] = ()
    cuts: tuple[int, ...] = ()
    rounds: tuple[tuple[int, ...], ...] = ((),)  # per round, a move per entry
    sizes: tuple[int, ...] = field(default=(), compare=False)

    @classmethod
    def decode(cls, data: bytes, pool_sizes: tuple[int, ...]) -> PatchInput:
        r = Reader(data)
        variant = r.u8() % len(VARIANTS)
        pools = tuple(1 + r.u8() % len(pool_sizes) for _ in range(1 + r.u8() % MAX_ENTRIES))
        sizes = (0, *(pool_sizes[p - 1] for p in pools))
        program = tuple(
            op for op in (read_op(r, sizes) for _ in range(r.u8() % 17)) if valid_op(op, sizes)
        )
        cuts = tuple(r.u8() for _ in range(r.u8() % (MAX_CUTS + 1)))
        rounds = tuple(
            tuple(r.u8() % len(MOVES) for _ in pools) for _ in range(1 + r.u8() % MAX_ROUNDS)
        )
        return cls(variant, pools, program, cuts, rounds, sizes)

    def encode(self) -> bytes:
        w = Writer().u8(self.variant).u8(len(self.pools) - 1)
        for p in self.pools:
            w.u8(p - 1)
        w.u8(len(self.program))
        for op in self.program:
            write_op(w, op, self.sizes)
        w.u8(len(self.cuts))
        for c in self.cuts:
            w.u8(c)
        w.u8(len(self.rounds) - 1)
        for moves in self.rounds:
            for i in range(len(self.pools)):
                w.u8(moves[i] if i < len(moves) else 0)
        return w.bytes()


class PatchTarget(RigTarget):
    """Patch through Render, split submissions and moves between rounds."""

    name: ClassVar[str] = "patch"
    summary: ClassVar[str] = (
        "DxgkDdiPatch: submission ranges, repatching after moves, paging buffers"
    )

    def decode(self, data: bytes) -> PatchInput:
        return PatchInput.decode(data, tuple(a.size for a in self.rig.pool))

    def _run(self, s: PatchInput) -> None:
        rig = self.rig
        k = rig.use(VARIANTS[s.variant], lean=self.lean)
        alist: list[Allocation | None] = [None, *(rig.pool[p - 1] for p in s.pools)]
        k.scheduler.cuts = s.cuts
        try:
            for n, moves in enumerate(s.rounds):
                for a, move in zip(alist[1:], moves, strict=True):
                    if a is not None:
                        rig.place(a, move)
                what = f"round {n + 1} of {len(s.rounds)}"
                run_program_checked(k, rig.context, alist, s.program, what, lean=self.lean)
        finally:
            k.scheduler.cuts = ()

    def describe(self, data: bytes) -> str:
        s = self.decode(data)
        lines = [
            f"patch input: kernel variant {VARIANTS[s.variant].name!r}, cuts at boundaries {list(s.cuts)}",
            "  allocation list:",
            "    0: NULL element",
        ]
        for i, p in enumerate(s.pools, 1):
            lines.append(f"    {i}: {POOL[p - 1][0]} ({s.sizes[i]} bytes)")
        lines.append("  program (valid operations only):")
        lines += describe_program(s.program) or ["    (empty)"]
        for n, moves in enumerate(s.rounds, 1):
            lines.append(
                f"  round {n}: " + ", ".join(f"{i}: {MOVES[m]}" for i, m in enumerate(moves, 1))
            )
        return "\n".join(lines)

    def seeds(self) -> list[tuple[str, bytes]]:
        pool_sizes = tuple(a.size for a in self.rig.pool)
        rng = random.Random(119)
        out: list[tuple[str, bytes]] = []
        for v, variant in enumerate(VARIANTS):
            pools = (1, 2, 3, 4)
            sizes = (0, *(pool_sizes[p - 1] for p in pools))
            program = tuple(sample_program(rng, sizes, list(OP_KINDS), 8))
            rounds = ((0, 0, 0, 0), (1, 2, 1, 0), (2, 1, 0, 1))
            cuts = (1, 3, 5) if variant.mode.split_submissions else ()
            out.append(
                (
                    f"variant-{variant.name}",
                    PatchInput(v, pools, program, cuts, rounds, sizes).encode(),
                )
            )
        return out

    def dictionary(self) -> list[bytes]:
        return command_tokens(self.rig)
