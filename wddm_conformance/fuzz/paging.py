"""Fuzz target for DxgkDdiBuildPagingBuffer: every classic operation, tiny buffers, multipass.

An input is a :class:`PagingInput`: a kernel variant, a paging-buffer size (down to
64 bytes, so operations need several passes through MultipassOffset), and a list of
memory-manager steps on the rig's pool -- evict and page in (TRANSFER, MAP/UNMAP of
the aperture, FILL on first placement), relocate, FILL a range, DISCARD_CONTENT,
READ/WRITE_PHYSICAL, and a special-lock round trip (SPECIAL_LOCK_TRANSFER). The kernel
checks each operation as it completes (content, exactly-once, cursors, statuses, the
dummy page after unmap); after the steps every allocation whose content is defined
must hold what the steps say it holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import ClassVar

from ..ddi import DXGK_ALLOCATIONINFOFLAGS, DXGK_TRANSFER_LOCATION, DXGK_TRANSFERFLAGS
from ..errors import DriverViolation
from ..kernel import Allocation, Kernel, State
from ..kernel.vidmm import DDI
from ..program import describe_difference, fill_bytes
from .base import POOL, VARIANTS, RigTarget, pattern
from .data import Reader, Writer

STEPS = (
    "evict",
    "page-in",
    "relocate",
    "fill",
    "discard",
    "read-physical",
    "write-physical",
    "special-lock",
    "raw-transfer",
)
PAGING_SIZES = (4096, 1024, 256, 64)
#: Largest piece of a transfer per DxgkDdiBuildPagingBuffer operation (None: whole).
SUBTRANSFERS = (None, 4096, 1024)
MAX_STEPS = 8


@dataclass(frozen=True)
class Step:
    kind: int
    pool: int  # index into the rig's pool
    offset: int = 0
    size: int = 0
    pattern: int = 0


@dataclass(frozen=True)
class PagingInput:
    variant: int = 0
    paging_size: int = 0  # index into PAGING_SIZES
    split: int = 0  # index into SUBTRANSFERS
    steps: tuple[Step, ...] = ()
    pool_sizes: tuple[int, ...] = field(default=(), compare=False)

    @classmethod
    def decode(cls, data: bytes, pool_sizes: tuple[int, ...]) -> PagingInput:
        r = Reader(data)
        variant = r.u8() % len(VARIANTS)
        paging = r.u8() % len(PAGING_SIZES)
        split = r.u8() % len(SUBTRANSFERS)
        steps = []
        for _ in range(1 + r.u8() % MAX_STEPS):
            code = r.u8()
            kind, pool = (code & 0xF) % len(STEPS), (code >> 4) % len(pool_sizes)
            offset = size = pattern = 0
            if STEPS[kind] == "fill":
                size = 1 + r.u16() % pool_sizes[pool]
                offset = r.u16() % (pool_sizes[pool] - size + 1)
                pattern = r.u32()
            elif STEPS[kind] in ("read-physical", "write-physical"):
                size = 1 + r.u8() % 8
                offset = r.u16() % (pool_sizes[pool] - size + 1)
            steps.append(Step(kind, pool, offset, size, pattern))
        return cls(variant, paging, split, tuple(steps), pool_sizes)

    def encode(self) -> bytes:
        w = Writer().u8(self.variant).u8(self.paging_size).u8(self.split)
        w.u8(len(self.steps) - 1)
        for s in self.steps:
            w.u8(s.kind | s.pool << 4)
            if STEPS[s.kind] == "fill":
                w.u16(s.size - 1).u16(s.offset).u32(s.pattern)
            elif STEPS[s.kind] in ("read-physical", "write-physical"):
                w.u8(s.size - 1).u16(s.offset)
        return w.bytes()


class PagingTarget(RigTarget):
    """The memory manager's paging operations on the rig's pool."""

    name: ClassVar[str] = "build_paging_buffer"
    summary: ClassVar[str] = "DxgkDdiBuildPagingBuffer: every operation, tiny buffers, multipass"

    def decode(self, data: bytes) -> PagingInput:
        return PagingInput.decode(data, tuple(a.size for a in self.rig.pool))

    def _run(self, s: PagingInput) -> None:
        rig = self.rig
        k = rig.use(VARIANTS[s.variant])
        k.config = replace(
            k.config,
            paging_buffer_size=min(k.config.paging_buffer_size, PAGING_SIZES[s.paging_size]),
            subtransfer_size=SUBTRANSFERS[s.split] or k.config.subtransfer_size,
        )
        shadow: dict[int, bytearray | None] = {}
        for step in s.steps:
            a = rig.pool[step.pool]
            if a.id not in shadow:
                shadow[a.id] = bytearray(k.cpu_read(a))
            self._step(k, a, step, shadow)
        for a in rig.pool:
            want = shadow.get(a.id, b"")
            if want is None:
                rig.refill(a)
            elif want and k.cpu_read(a) != want:
                got = k.cpu_read(a)
                raise DriverViolation(
                    "PGB-TRANSFER",
                    DDI,
                    f"after the paging steps {a} does not hold its content {describe_difference(got, bytes(want))}",
                )

    @staticmethod
    def _step(k: Kernel, a: Allocation, step: Step, shadow: dict[int, bytearray | None]) -> None:
        kind = STEPS[step.kind]
        resident = a.state == State.RESIDENT
        aperture = resident and k.vidmm.segment(a.segment_id).is_aperture
        if kind == "evict":
            k.evict(a) if resident else k.make_resident(a)
        elif kind == "page-in":
            k.make_resident(a)
        elif kind == "relocate":
            k.make_resident(a)
            k.relocate(a)
        elif kind == "fill":
            if not resident or aperture or a.swizzled:
                return  # the memory manager fills linear memory-segment ranges only
            k.vidmm.fill(
                a.hAllocation, a.segment_id, a.address + step.offset, step.size, step.pattern
            )
            content = shadow[a.id]
            if content is not None:
                content[step.offset : step.offset + step.size] = fill_bytes(step.size, step.pattern)
        elif kind == "discard":
            if resident:
                if not aperture:
                    shadow[a.id] = None  # discarded content is undefined
                k.discard(a)
        elif kind in ("read-physical", "write-physical"):
            if not resident or aperture:
                return
            write = kind == "write-physical"
            k.vidmm.physical(write, a.segment_id, a.address + step.offset, step.size)
            if write:
                shadow[a.id] = None
        elif kind == "raw-transfer":  # bytes as they are into a resident range (hAllocation NULL)
            if not resident or aperture or a.swizzled:
                return
            mdl = k.sysmem.allocate_mdl(a.size)
            data = pattern(a.id * 7 + 128, a.size)
            k.sysmem.write_mdl(mdl, 0, data)
            try:
                k.vidmm.transfer(
                    0,
                    a.size,
                    DXGK_TRANSFER_LOCATION(0, 0, mdl),
                    DXGK_TRANSFER_LOCATION(a.segment_id, a.address),
                    DXGK_TRANSFERFLAGS.Swizzle,
                )
            finally:
                k.sysmem.free(mdl.pfns)
            if shadow[a.id] is not None:
                shadow[a.id] = bytearray(data)
        elif kind == "special-lock":
            if (
                not k.caps.SupportsAlternateVA
                or aperture
                or not a.info.Flags & DXGK_ALLOCATIONINFOFLAGS.UseAlternateVA
            ):
                return
            k.make_resident(a)
            k.lock_alternate_va(a)
            try:
                k.evict(a)
                k.make_resident(a)
            finally:
                if a.state == State.RESIDENT:
                    k.unlock_alternate_va(a)

    def describe(self, data: bytes) -> str:
        s = self.decode(data)
        lines = [
            f"paging input: kernel variant {VARIANTS[s.variant].name!r}, paging buffer of at most "
            f"{PAGING_SIZES[s.paging_size]} bytes, transfers split every "
            f"{SUBTRANSFERS[s.split] or 'never'} bytes"
        ]
        for i, step in enumerate(s.steps, 1):
            detail = ""
            if STEPS[step.kind] == "fill":
                detail = f" [+{step.offset}, {step.size} bytes] with 0x{step.pattern:08X}"
            elif step.size:
                detail = f" {step.size} byte(s) at +{step.offset}"
            lines.append(f"  {i}. {STEPS[step.kind]} {POOL[step.pool][0]}{detail}")
        return "\n".join(lines)

    def seeds(self) -> list[tuple[str, bytes]]:
        sizes = tuple(a.size for a in self.rig.pool)
        out: list[tuple[str, bytes]] = []
        for kind, name in enumerate(STEPS):
            for pool, (pool_name, _) in enumerate(POOL):
                steps = (
                    Step(1, pool),
                    Step(kind, pool, 8, 4 if "physical" in name else 100, 0xC0FFEE11),
                    Step(0, pool),
                )
                for paging, split in ((0, 0), (3, 2)):
                    out.append(
                        (
                            f"{name}-{pool_name}-{PAGING_SIZES[paging]}",
                            PagingInput(0, paging, split, steps, sizes).encode(),
                        )
                    )
        return out

    def dictionary(self) -> list[bytes]:
        return [bytes([k | p << 4]) for k in range(len(STEPS)) for p in range(len(POOL))]
