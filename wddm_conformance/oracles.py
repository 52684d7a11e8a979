"""Oracles shared by the workload, the conformance suite, the fuzz targets and the tests.

Each oracle raises :class:`~wddm_conformance.errors.DriverViolation` naming the
requirement it checks; the kernel itself raises the violations it sees during DDI
calls. A failing test and a fuzz finding therefore name the same requirement ID.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence

from .ddi import PAGE_SIZE
from .errors import DriverViolation
from .kernel import Allocation, Kernel, RenderResult
from .kernel.scheduler import RENDER
from .program import AllocRef, Bind, Op, apply, describe_difference
from .status import (
    RENDER_STATUSES,
    STATUS_GRAPHICS_GPU_EXCEPTION_ON_DEVICE,
    STATUS_GRAPHICS_INSUFFICIENT_DMA_BUFFER,
    STATUS_ILLEGAL_INSTRUCTION,
    STATUS_INVALID_HANDLE,
    STATUS_INVALID_PARAMETER,
    STATUS_INVALID_USER_BUFFER,
    STATUS_PRIVILEGED_INSTRUCTION,
    STATUS_SUCCESS,
    status_name,
)

#: REN-VALIDATE: how a command buffer that is not allowed is rejected.
VALIDATION_ERRORS = frozenset(
    {
        STATUS_PRIVILEGED_INSTRUCTION,
        STATUS_ILLEGAL_INSTRUCTION,
        STATUS_INVALID_PARAMETER,
        STATUS_INVALID_HANDLE,
    }
)
#: REN-UNDERRUN: how truncated command data is rejected.
UNDERRUN_ERRORS = frozenset({STATUS_INVALID_USER_BUFFER, STATUS_ILLEGAL_INSTRUCTION})
#: REN-USERFAULT: any error status Render may return (never SUCCESS, never a split).
ERRORS = RENDER_STATUSES - {STATUS_SUCCESS, STATUS_GRAPHICS_INSUFFICIENT_DMA_BUFFER}


def expect_memory(
    kernel: Kernel,
    allocation_list: Sequence[Allocation | None],
    expected: Mapping[int, bytes],
    what: str,
    requirement: str = "REN-TRANSLATE",
) -> None:
    """REN-TRANSLATE: every allocation holds what the program meant (GPU view).

    ``requirement`` names the rule a difference breaks when the scenario isolates a
    narrower one (a TOCTOU race is REN-COPYFIRST, a lying input patch list REN-PATCHIN).
    """
    for index, want in expected.items():
        a = allocation_list[index]
        if a is None:
            continue
        got = kernel.gpu_view(a)
        if got != want:
            raise DriverViolation(
                requirement,
                RENDER,
                f"{what}: allocation-list entry {index} ({a}) differs from the reference model "
                f"{describe_difference(got, want)}",
            )


def expect_single_fetch(result: RenderResult) -> None:
    """REN-COPYFIRST: no byte of user memory (the command buffer, the input patch-location
    list) was read twice within one Render call (seed 000: both are user-mode buffers)."""
    for buffer, name in (
        (result.command_buffer, "command-buffer"),
        (result.patch_list_in, "pPatchLocationListIn"),
    ):
        doubled = buffer.double_fetched() if buffer is not None else []
        if doubled:
            lo, hi = doubled[0]
            assert buffer is not None
            sites = buffer.fetch_sites(lo, hi)
            where = f" (reads: {', '.join(sites)})" if sites else ""
            raise DriverViolation(
                "REN-COPYFIRST",
                RENDER,
                f"read {name} bytes [{lo}, {hi}) more than once{where}: copy user memory "
                "once, then validate the copy",
                {"double_fetched": doubled},
            )


def expect_success(result: RenderResult, what: str, requirement: str = "REN-TRANSLATE") -> None:
    """A valid command buffer is translated: Render ends with SUCCESS.

    GRAPHICS_GPU_EXCEPTION_ON_DEVICE for valid work loses the device for nothing
    (REN-DEVICELOST); any other error rejects what it had to translate (``requirement``).
    """
    if result.ok:
        return
    if result.status == STATUS_GRAPHICS_GPU_EXCEPTION_ON_DEVICE:
        raise DriverViolation(
            "REN-DEVICELOST",
            RENDER,
            f"{what}: returned GRAPHICS_GPU_EXCEPTION_ON_DEVICE for a valid command buffer; the "
            f"device is now lost and the kernel refuses all its further work",
        )
    raise DriverViolation(
        requirement,
        RENDER,
        f"{what}: rejected a valid command buffer with {status_name(result.status)}",
    )


def expect_rejected(
    result: RenderResult, allowed: frozenset[int], requirement: str, what: str
) -> None:
    """An invalid command buffer is rejected with one of ``allowed`` (never SUCCESS)."""
    if result.status in allowed and result.status != STATUS_SUCCESS:
        return
    names = ", ".join(sorted(status_name(s) for s in allowed))
    raise DriverViolation(
        requirement,
        RENDER,
        f"{what}: returned {status_name(result.status)}; it must be rejected with one of {names}",
    )


def expect_unchanged(
    kernel: Kernel, before: Mapping[Allocation, bytes], requirement: str, what: str
) -> None:
    """Allocations the submission had no right to write still hold what they held before."""
    for a, want in before.items():
        got = kernel.gpu_view(a)
        if got != want:
            raise DriverViolation(
                requirement,
                RENDER,
                f"{what}: {a} changed {describe_difference(got, want)} although no entry of the "
                f"allocation list gave it WriteOperation",
            )


def expect_null_bindings(
    kernel: Kernel, result: RenderResult, program: Sequence[Op], what: str
) -> None:
    """REN-NULLALLOC: every slot ``program`` last unbinds (``Bind(slot, None)``) holds 0 or
    an address in the dummy page after the run, never memory (another allocation of the
    submission included).

    The slots bound by each submission come from the GPU model's ``bindings``
    (INTERPRETING.md §1, "GPU models": a model reports every slot a DMA range binds), so
    a slot the program unbinds that no submission bound is REN-TRANSLATE: the DMA did not
    do what the command buffer says (the replays may name the step that lost it).
    """
    last: dict[int, AllocRef | None] = {}
    for op in program:
        if isinstance(op, Bind):
            last[op.slot] = op.ref
    unbound = sorted(slot for slot, ref in last.items() if ref is None)
    if not unbound or not result.ok:
        return
    bound: dict[int, int] = {}
    for submission in result.submissions:
        bound.update(submission.execution.bindings)
    dummy = kernel.dummy_page_address
    for slot in unbound:
        if slot not in bound:
            raise DriverViolation(
                "REN-TRANSLATE",
                RENDER,
                f"{what}: the program unbinds slot {slot}, but no DMA it ran bound that slot "
                "(a GPU model reports every slot a DMA range binds: INTERPRETING.md §1)",
            )
        address = bound[slot]
        if address and not dummy <= address < dummy + PAGE_SIZE:
            raise DriverViolation(
                "REN-NULLALLOC",
                RENDER,
                f"{what}: binding slot {slot} holds 0x{address:X} after the program unbound it "
                "(the NULL allocation); an unbind is patched to a harmless address (0 or the "
                "dummy page), never to memory",
            )


class Shadow:
    """The harness's model of what each tracked allocation holds, checked against memory.

    Content is kept per allocation (so list entries naming one allocation share it) in
    the GPU view: the bytes programs address, a swizzled allocation's tiled layout. The
    CPU's writes and every program the driver ran are applied to it with the program
    model (:func:`~wddm_conformance.program.apply`); :meth:`expect_held` then says
    whether the kernel's memory agrees. Iterating gives the tracked allocations in the
    order they were first recorded.
    """

    def __init__(self, kernel: Kernel) -> None:
        self.k = kernel
        self._held: dict[int, tuple[Allocation, bytearray]] = {}

    def __iter__(self) -> Iterator[Allocation]:
        return (a for a, _ in self._held.values())

    def __len__(self) -> int:
        return len(self._held)

    def __contains__(self, a: object) -> bool:
        return isinstance(a, Allocation) and a.id in self._held

    def record(self, a: Allocation, linear: bytes) -> None:
        """From now on ``a`` must hold ``linear``: all its bytes, as the CPU sees them."""
        gpu = self.k.tiling.swizzle(a, linear) if a.swizzled else linear
        self._held[a.id] = (a, bytearray(gpu))

    def cpu_write(self, a: Allocation, linear: bytes) -> None:
        """Write all of ``a`` through the kernel's CPU path (``linear``: ``a.size`` bytes) and record it."""
        self.k.cpu_write(a, 0, linear)
        self.record(a, linear)

    def forget(self, a: Allocation) -> None:
        """Stop tracking ``a`` (destroyed); KeyError if it was not tracked."""
        del self._held[a.id]

    def apply(self, allocation_list: Sequence[Allocation | None], program: Iterable[Op]) -> None:
        """Apply ``program``, run on ``allocation_list`` (every non-NULL entry tracked), to the model."""
        memory = {i: self._held[a.id][1] for i, a in enumerate(allocation_list) if a is not None}
        apply(program, memory)

    def expect_held(
        self,
        requirement: str,
        ddi: str,
        when: str = "",
        model: str = "the model",
        allocations: Iterable[Allocation] | None = None,
        linear: bool = False,
    ) -> None:
        """Every allocation of ``allocations`` (default: all tracked) holds what the model says.

        Compared in the GPU view, or with ``linear`` in the CPU's (where a swizzled
        allocation's first differing byte is counted in linear order). The first
        difference raises ``DriverViolation(requirement, ddi, "<when><allocation> differs
        from <model> at byte N (got .., want ..)")``.
        """
        for a in self if allocations is None else allocations:
            want = bytes(self._held[a.id][1])
            if linear:
                got = self.k.cpu_read(a)
                want = self.k.tiling.unswizzle(a, want) if a.swizzled else want
            else:
                got = self.k.gpu_view(a)
            if got != want:
                raise DriverViolation(
                    requirement,
                    ddi,
                    f"{when}{a} differs from {model} {describe_difference(got, want)}",
                )
