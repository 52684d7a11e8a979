"""What every fuzz target shares: the rig (a long-lived kernel), kernel variants, programs.

A target keeps one :class:`Rig` per process -- a simulated kernel with a device, a
context and a pool of allocations -- because building a kernel costs far more than one
input. Each input says which variant of the kernel it runs under (stress mode and
buffer sizes) and where its allocations are, so its outcome depends on the input, not
on what ran before. Any exception discards the rig; the next input gets a fresh one.
"""

from __future__ import annotations

import gc
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any, ClassVar, Protocol

from ..defaults import ALL_STRESS
from ..driver import AllocationRequest, DriverSpec
from ..errors import NotJudged
from ..kernel import Allocation, Context, Device, Kernel, KernelConfig, KernelMode, State
from ..program import AllocRef, Bind, Copy, Fill, Op, Write, Xor, touches
from ..watchdog import Invoker, direct_invoker
from .data import Reader, Writer

#: Sizes of the fuzzing kernel: small, so one input costs microseconds, yet large enough to
#: split (a 4 KiB DMA buffer) and to page (1 MiB segments).
FUZZ_CONFIG = KernelConfig(
    memory_segment_size=1 << 20,
    aperture_segment_size=1 << 20,
    dma_buffer_size=4096,
    patch_list_entries=256,
    paging_buffer_size=4096,
)


@dataclass(frozen=True)
class Variant:
    """One kernel variant an input can ask for."""

    name: str
    mode: KernelMode
    config: KernelConfig

    @cached_property
    def lean_config(self) -> KernelConfig:
        """``config`` on a campaign's lean path: the moves the stress modes force between
        Render and submission are the kernel's own copies (docs/fuzzing.md, "Lean path")."""
        return replace(self.config, forced_moves_by_driver=False)


def _variant(name: str) -> Variant:
    mode = KernelMode.parse(name)
    return Variant(name, mode, FUZZ_CONFIG.for_mode(mode))


#: The kernel variants, indexed by an input byte (modulo their number).
VARIANTS: tuple[Variant, ...] = (
    *(
        _variant(name)
        for name in (
            "default",
            "tiny-buffers",
            "no-prepatching",
            "always-repatch",
            "split-submissions",
            "forced-relocation",
            "forced-eviction",
            ALL_STRESS,
        )
    ),
    # One limit shrunk alone (tiny-buffers shrinks them together, and with most formats
    # the DMA buffer fills first): a driver must split on whichever runs out.
    Variant("small-patch-list", KernelMode(), replace(FUZZ_CONFIG, patch_list_entries=3)),
    Variant("small-dma-buffer", KernelMode(), replace(FUZZ_CONFIG, dma_buffer_size=160)),
)

#: The pool every rig creates: (name, request). Entry 0 of an allocation list is always NULL.
POOL: tuple[tuple[str, AllocationRequest], ...] = (
    ("memory", AllocationRequest(8192, aperture=False)),
    ("any", AllocationRequest(8192)),
    ("aperture", AllocationRequest(8192, aperture_only=True)),
    ("swizzled", AllocationRequest(4096, cpu_visible=True, swizzled=True)),
    ("visible", AllocationRequest(4096, cpu_visible=True, aperture=False)),
    ("alternate-va", AllocationRequest(8192, aperture=False, alternate_va=True)),
)


_RAMP = bytes(range(256))


def pattern(start: int, size: int) -> bytes:
    """``size`` bytes counting up from ``start`` (mod 256): known content, cheap to make."""
    first = start % 256
    return (_RAMP[first:] + _RAMP * (size // 256 + 1))[:size]


class Rig:
    """A kernel, one device and context, and the allocation pool, reused across inputs."""

    def __init__(self, spec: DriverSpec, invoker: Invoker = direct_invoker) -> None:
        self.kernel = Kernel(spec, VARIANTS[0].mode, FUZZ_CONFIG, invoker=invoker)
        self.device: Device = self.kernel.create_device()
        self.context: Context = self.kernel.create_context(self.device)
        self.pool: list[Allocation] = self.kernel.create_allocations(
            self.device, [request for _, request in POOL]
        )
        for a in self.pool:
            self.refill(a)

    def refill(self, a: Allocation) -> None:
        """Give ``a`` its known starting content (after a step left it undefined)."""
        self.kernel.cpu_write(a, 0, pattern(a.id * 37, a.size))

    @property
    def healthy(self) -> bool:
        return self.device.state == State.ACTIVE

    def use(self, variant: Variant, *, lean: bool = False) -> Kernel:
        """Switch the kernel to ``variant`` for the next input (``lean``: its lean_config)."""
        k = self.kernel
        k.mode, k.config = variant.mode, variant.lean_config if lean else variant.config
        return k

    def use_default(self) -> Kernel:
        return self.use(VARIANTS[0])

    def place(self, a: Allocation, where: int) -> None:
        """Put ``a`` where an input asks: 0 resident (as it is), 1 paged out, 2 moved."""
        k = self.kernel
        if where == 1:
            if a.state == State.RESIDENT:
                k.evict(a)
        elif where == 2:
            if a.state != State.RESIDENT:
                k.make_resident(a)
            k.relocate(a)


class Target(Protocol):
    """A fuzz target: turns bytes into a scenario and runs it through the rig's kernel."""

    name: ClassVar[str]
    summary: ClassVar[str]

    def run(self, data: bytes) -> None:
        """Decode and run one input; raise a DriverFailure naming the rule the driver broke."""

    def describe(self, data: bytes) -> str:
        """The input as a readable DDI-level scenario (for ``repro``)."""

    def seeds(self) -> list[tuple[str, bytes]]:
        """Named seed inputs built from the driver's command encoder."""

    def dictionary(self) -> list[bytes]:
        """Tokens worth splicing into inputs: opcodes, magic values, boundary sizes."""


class RigTarget:
    """A target on one :class:`Rig`: ``decode`` an input, ``_run`` the scenario; any failure
    discards the rig so the next input starts from a fresh kernel.

    ``lean`` (a campaign's setting, :mod:`.runner`) leaves out the work that only names
    the rule of a failure: the snapshots the differential attribution replays start
    from (INTERPRETING.md §5). An input that fails lean is run again on a fresh target
    with every check on, and that run's failure is the finding.
    """

    name: ClassVar[str]
    summary: ClassVar[str]

    def __init__(
        self, spec: DriverSpec, invoker: Invoker = direct_invoker, *, lean: bool = False
    ) -> None:
        self.spec = spec
        self.invoker = invoker
        self.lean = lean
        self._rig: Rig | None = None
        self._builds = 0

    @property
    def rig(self) -> Rig:
        if self._rig is None or not self._rig.healthy:
            if self._builds:
                # The rig given up on (or the one whose set-up failed) is held in reference
                # cycles, the kernel's and the driver's: free it now, not when the
                # collector's schedule says, or they pile up.
                self._rig = None
                gc.collect()
            self._builds += 1
            self._rig = Rig(self.spec, self.invoker)
        return self._rig

    def start(self, invoker: Invoker) -> None:
        """Build the rig now, its set-up DDI calls through ``invoker`` (the runner's watchdog),
        the later ones through the target's own; raises the set-up's DriverFailure."""
        rig = Rig(self.spec, invoker)
        rig.kernel.caller.invoker = self.invoker
        self._rig = rig

    def decode(self, data: bytes) -> Any:
        raise NotImplementedError

    def _run(self, scenario: Any) -> None:
        raise NotImplementedError

    def run(self, data: bytes) -> None:
        try:
            self._run(self.decode(data))
        except NotJudged:
            self._rig = None  # nothing this driver may be judged on in the input's variant
        except BaseException:
            self._rig = None
            raise


# ---------------------------------------------------------------------- programs

OP_KINDS = ("copy", "fill", "write", "xor", "bind", "unbind")
#: Bit of the kind byte that turns clamping off: indices, offsets and sizes are taken raw.
RAW = 0x80
#: With RAW: indices, offsets and sizes are 32 bits wide (an index with bit 31 set, an
#: offset near 2^32 that a 32-bit bounds check wraps, a size past 2^16 or 2^31), not 8, 16
#: and 16.
WIDE = 0x40
MAX_OPS = 16


def read_op(r: Reader, sizes: Sequence[int]) -> Op:
    """One operation over allocation-list entries of ``sizes``; in bounds unless the RAW bit is set."""
    code = r.u8()
    kind, raw = OP_KINDS[code % 8 % len(OP_KINDS)], bool(code & RAW)
    wide = raw and bool(code & WIDE)
    count = len(sizes)

    def index() -> int:
        value = r.u32() if wide else r.u8()
        return value if raw else value % count

    def offset(size: int, length: int) -> int:
        value = r.u32() if wide else r.u16()
        return value if raw else value % max(size - length + 1, 1)

    def raw_length() -> int:
        return r.u32() if wide else r.u16()

    if kind in ("copy", "xor"):
        dst, src = index(), index()
        room = min(_size(sizes, dst), _size(sizes, src), 4096)
        length = raw_length() if raw else 1 + r.u16() % max(room, 1)
        dst_ref = AllocRef(dst, offset(_size(sizes, dst), length))
        src_ref = AllocRef(src, offset(_size(sizes, src), length))
        return (Copy if kind == "copy" else Xor)(dst_ref, src_ref, length)
    if kind == "fill":
        dst = index()
        room = min(_size(sizes, dst), 8192)
        length = raw_length() if raw else 1 + r.u16() % max(room, 1)
        return Fill(AllocRef(dst, offset(_size(sizes, dst), length)), length, r.u32())
    if kind == "write":
        dst = index()
        return Write(AllocRef(dst, offset(_size(sizes, dst), 4)), r.u32())
    slot = r.u8() % 8
    if kind == "unbind":
        return Bind(slot, None)
    target = index()
    return Bind(slot, AllocRef(target, offset(_size(sizes, target), 0)))


def write_op(w: Writer, op: Op, sizes: Sequence[int]) -> None:
    """The inverse of :func:`read_op`: clamped fields for an operation that stays in bounds
    (clamping leaves it as it is), raw fields for one that does not."""
    raw = not _in_bounds(op, sizes)
    wide = raw and any(
        a.ref.index > 0xFF or a.ref.offset > 0xFFFF or a.length > 0xFFFF for a in touches(op)
    )
    flag, less = (RAW | (WIDE if wide else 0), 0) if raw else (0, 1)
    index, offset, length = (w.u32, w.u32, w.u32) if wide else (w.u8, w.u16, w.u16)
    if isinstance(op, Copy | Xor):
        w.u8(OP_KINDS.index("copy" if isinstance(op, Copy) else "xor") | flag)
        index(op.dst.index)
        index(op.src.index)
        length(op.size - less)
        offset(op.dst.offset)
        offset(op.src.offset)
    elif isinstance(op, Fill):
        w.u8(OP_KINDS.index("fill") | flag)
        index(op.dst.index)
        length(op.size - less)
        offset(op.dst.offset)
        w.u32(op.pattern)
    elif isinstance(op, Write):
        w.u8(OP_KINDS.index("write") | flag)
        index(op.dst.index)
        offset(op.dst.offset)
        w.u32(op.value)
    elif op.ref is None:
        w.u8(OP_KINDS.index("unbind")).u8(op.slot)
    else:
        w.u8(OP_KINDS.index("bind") | flag).u8(op.slot)
        index(op.ref.index)
        offset(op.ref.offset)


def _in_bounds(op: Op, sizes: Sequence[int]) -> bool:
    limits = {Copy: 4096, Xor: 4096, Fill: 8192}
    for a in touches(op):
        if a.ref.index >= len(sizes) or a.end > _size(sizes, a.ref.index):
            return False
        if not isinstance(op, Bind | Write) and not 1 <= a.length <= limits[type(op)]:
            return False
    if isinstance(op, Copy | Xor):
        return op.size <= min(_size(sizes, op.dst.index), _size(sizes, op.src.index))
    return True


def read_program(r: Reader, sizes: Sequence[int]) -> list[Op]:
    return [read_op(r, sizes) for _ in range(r.u8() % (MAX_OPS + 1))]


def write_program(w: Writer, program: Sequence[Op], sizes: Sequence[int]) -> None:
    w.u8(len(program))
    for op in program:
        write_op(w, op, sizes)


def _size(sizes: Sequence[int], index: int) -> int:
    return sizes[index] if 0 <= index < len(sizes) else 0


def valid_op(op: Op, sizes: Sequence[int]) -> bool:
    """In bounds, on a real allocation, with a non-empty length (what every driver must accept)."""
    for a in touches(op):
        if not 0 < a.ref.index < len(sizes) or a.end > sizes[a.ref.index]:
            return False
        if a.length == 0 and not isinstance(op, Bind):
            return False
    return True


def describe_program(program: Sequence[Op]) -> list[str]:
    """One line per operation, in the program model's terms."""
    return [f"    {i}: {op}" for i, op in enumerate(program)]


def command_tokens(rig: Rig) -> list[bytes]:
    """Each operation kind as the driver's encoder writes it, plus its privileged and illegal commands."""
    encoder = rig.kernel.encoder
    ops: list[Op] = [
        Copy(AllocRef(1), AllocRef(2), 16),
        Fill(AllocRef(1), 16, 0xA5A5A5A5),
        Write(AllocRef(1), 0xDEADBEEF),
        Xor(AllocRef(1), AllocRef(2), 16),
        Bind(1, AllocRef(1)),
        Bind(1, None),
    ]
    empty = encoder.encode([]).command
    tokens = [encoder.encode([op]).command[len(empty) :] for op in ops]
    return [*tokens, empty, encoder.privileged_command(), encoder.illegal_command()]


def sample_program(
    rng: random.Random, sizes: tuple[int, ...], kinds: list[str], count: int
) -> list[Op]:
    """A deterministic in-bounds program of ``count`` operations of ``kinds`` (entries >= 1)."""
    out: list[Op] = []
    indices = [i for i, s in enumerate(sizes) if s >= 4]
    for _ in range(count):
        kind = rng.choice(kinds)
        dst, src = rng.choice(indices), rng.choice(indices)
        if kind in ("copy", "xor"):
            n = rng.randint(1, min(sizes[dst], sizes[src], 4096))
            d = AllocRef(dst, rng.randint(0, sizes[dst] - n))
            s = AllocRef(src, rng.randint(0, sizes[src] - n))
            out.append(Copy(d, s, n) if kind == "copy" else Xor(d, s, n))
        elif kind == "fill":
            n = rng.randint(1, sizes[dst])
            out.append(Fill(AllocRef(dst, rng.randint(0, sizes[dst] - n)), n, rng.getrandbits(32)))
        elif kind == "write":
            out.append(Write(AllocRef(dst, rng.randint(0, sizes[dst] - 4)), rng.getrandbits(32)))
        elif kind == "bind":
            out.append(Bind(rng.randint(0, 7), AllocRef(dst, rng.randint(0, sizes[dst]))))
        else:
            out.append(Bind(rng.randint(0, 7), None))
    return out
