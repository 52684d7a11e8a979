"""A mixed end-to-end workload: every kernel path, checked against what the commands meant.

Allocations of every kind (video memory, aperture-only, swizzled CPU-visible, large
enough for multipass paging, a shared one that outlives its device) are created,
written by the CPU, rendered into with every program operation, evicted, relocated,
discarded, repatched, mapped and unmapped through the aperture. A shadow copy of each
allocation is kept with :func:`wddm_conformance.program.apply`; after every step the
memory the GPU left must equal it. The same seed gives the same workload.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from .attribution import run_program_checked
from .driver import AllocationRequest, DriverSpec
from .kernel import Allocation, Kernel, KernelConfig, KernelMode, State
from .oracles import Shadow
from .program import AllocRef, Bind, Copy, Fill, Op, Write, Xor


@dataclass
class WorkloadReport:
    """What a workload run did."""

    mode: KernelMode
    steps: list[str] = field(default_factory=list)
    submissions: int = 0
    ddi_calls: int = 0


class Workload:
    """Drives one kernel through the mixed workload, checking memory after every step."""

    def __init__(self, kernel: Kernel, seed: int = 0) -> None:
        self.k = kernel
        self.rng = random.Random(seed)
        self.shadow = Shadow(kernel)
        self.report = WorkloadReport(kernel.mode)

    def _new(self, device: object, request: AllocationRequest) -> Allocation:
        (a,) = self.k.create_allocations(device, [request])  # type: ignore[arg-type]
        self.shadow.cpu_write(a, self.rng.randbytes(a.size))
        return a

    def check(self, step: str, allocations: list[Allocation]) -> None:
        """Every allocation must hold exactly what the shadow model says (compared in GPU view)."""
        self.report.steps.append(step)
        self.shadow.expect_held(
            "REN-TRANSLATE",
            "end-to-end workload",
            f"after step {step!r} in mode {self.k.mode}: ",
            "what the commands meant",
            allocations,
        )

    def submit(self, context: object, alist: list[Allocation | None], program: list[Op]) -> None:
        """Run a program and apply it to the shadow copies."""
        shared = any(a is not None and a.creator.state == State.DESTROYED for a in alist)
        result = run_program_checked(
            self.k,
            context,  # type: ignore[arg-type]
            alist,
            program,
            "a valid program of the workload",
            "ALC-ADAPTER" if shared else "REN-TRANSLATE",
        )
        self.report.submissions += len(result.submissions)
        self.shadow.apply(alist, program)

    def random_program(self, alist: list[Allocation | None], count: int) -> list[Op]:
        """Random valid operations over the non-NULL entries of ``alist``."""
        rng = self.rng
        entries = [i for i, a in enumerate(alist) if a is not None]
        sizes = {i: a.size for i, a in enumerate(alist) if a is not None}
        program: list[Op] = []
        for _ in range(count):
            kind = rng.choice(("copy", "fill", "write", "xor", "bind", "bind-null"))
            dst, src = rng.choice(entries), rng.choice(entries)
            n = rng.randint(1, min(sizes[dst], sizes[src], 3000))
            d_off, s_off = rng.randint(0, sizes[dst] - n), rng.randint(0, sizes[src] - n)
            if kind == "copy":
                program.append(Copy(AllocRef(dst, d_off), AllocRef(src, s_off), n))
            elif kind == "xor":
                program.append(Xor(AllocRef(dst, d_off), AllocRef(src, s_off), n))
            elif kind == "fill":
                program.append(Fill(AllocRef(dst, d_off), n, rng.getrandbits(32)))
            elif kind == "write":
                program.append(
                    Write(AllocRef(dst, rng.randint(0, sizes[dst] - 4)), rng.getrandbits(32))
                )
            elif kind == "bind":
                program.append(Bind(rng.randint(0, 7), AllocRef(dst, d_off)))
            else:
                program.append(Bind(rng.randint(0, 7), None))
        return program

    def run(self) -> WorkloadReport:
        k = self.k
        dev = k.create_device()
        ctx = k.create_context(dev)
        vram = self._new(dev, AllocationRequest(64 << 10, aperture=False))
        big = self._new(dev, AllocationRequest(256 << 10, aperture=False))
        aperture = self._new(dev, AllocationRequest(32 << 10, aperture_only=True))
        swizzled = self._new(dev, AllocationRequest(16 << 10, cpu_visible=True, swizzled=True))
        locked = self._new(dev, AllocationRequest(16 << 10, aperture=False, alternate_va=True))
        everything = [vram, big, aperture, swizzled, locked]
        alist: list[Allocation | None] = [None, *everything]
        self.check("create + CPU write", everything)

        self.submit(ctx, alist, self.random_program(alist, 40))
        self.check("render mixed program", everything)

        def evict_all() -> None:
            for a in everything:
                if a.state == State.RESIDENT:
                    k.evict(a)

        def relocate_all() -> None:
            for a in everything:
                k.relocate(a)

        def special_lock_eviction() -> None:
            # PGB-SPECIALLOCK: drivers without UseAlternateVA support are never asked.
            if k.caps.SupportsAlternateVA:
                k.lock_alternate_va(locked)
            k.evict(locked)

        def render(entries: list[Allocation | None], count: int) -> Callable[[], None]:
            return lambda: self.submit(ctx, entries, self.random_program(entries, count))

        steps: list[tuple[str, Callable[[], None]]] = [
            ("evict all", evict_all),
            ("render while paged out", render(alist, 30)),
            ("relocate all", relocate_all),
            ("render after relocation", render(alist, 30)),
            ("unmap aperture allocation", lambda: k.evict(aperture)),
            ("map it back by rendering", render([None, aperture, vram], 10)),
            ("special-lock eviction", special_lock_eviction),
            ("page back from alternate VA", render([None, locked, big], 10)),
            ("swizzled eviction", lambda: k.evict(swizzled)),
            ("swizzled page-in", lambda: k.make_resident(swizzled)),
        ]
        for name, action in steps:
            action()
            self.check(name, everything)

        k.discard(vram)
        self.shadow.record(vram, bytes(vram.size))
        self.check("discard", everything)

        # ALC-ADAPTER: a shared allocation keeps working after its creating device is gone.
        other = k.create_device()
        other_ctx = k.create_context(other)
        shared = self._new(dev, AllocationRequest(8 << 10))
        for a in (shared, big):
            k.open_for(other, a)
        k.destroy_device(dev)
        self.submit(other_ctx, [None, shared, big], self.random_program([None, shared, big], 20))
        self.check("render on shared allocation after its device was destroyed", [shared, big])

        for a in [*everything, shared]:
            k.destroy_allocation(a)
        self.report.ddi_calls = k.caller.calls
        return self.report


def run_workload(
    driver: DriverSpec | str = "reference",
    mode: KernelMode | str = "default",
    seed: int = 0,
    config: KernelConfig | None = None,
) -> WorkloadReport:
    """Run the mixed workload on a fresh kernel; raises the first failure."""
    kernel = Kernel(driver, mode, config or KernelConfig(seed=seed))
    return Workload(kernel, seed).run()
