"""Differential attribution: which step broke a valid command buffer (INTERPRETING.md §5).

One run of a valid command buffer that ends with the wrong bytes in memory, or with the
GPU outside its allocations, cannot always say which step was wrong: Render's
translation (REN-TRANSLATE), its pre-patched addresses (REN-PREPATCH), its output patch
list as Patch applies it (REN-FULLPATCH), Patch on one range of a split submission
(PAT-RANGE), or trust in a lying input patch list (REN-PATCHIN). :func:`attributed`
watches such a run; when it fails with a rule :data:`~.kernel.blame.REFINABLE`, it
replays the same command buffer from the same memory with one step changed, in the
order of :data:`~.kernel.blame.REPLAYS`, and the first replay that comes out right
names the rule. A correct driver never gets here: replays run only after a failure.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from .ddi import D3DDDI_PATCHLOCATIONLIST
from .errors import DriverViolation, NotJudged
from .kernel import Allocation, AllocationUse, Context, Kernel, KernelMode, RenderResult, State
from .kernel.blame import Failure, Variation, refine
from .kernel.kernel import ProgramSubmission
from .oracles import expect_memory, expect_null_bindings, expect_success
from .program import Op


@dataclass(frozen=True)
class Submitted:
    """One valid command buffer as it was submitted: enough to submit it again.

    ``want``: allocation-list index -> the GPU view a right run leaves there.
    ``start``: each allocation of the list with its CPU-view bytes and whether it was
    resident before the run (replays start from there). ``patch_fault_at``: the byte of
    pPatchLocationListIn that faults (replays keep it). ``program``: what the command
    buffer encodes, for the oracles beyond memory (the NULL allocation's bindings).
    """

    context: Context
    command: bytes
    uses: tuple[AllocationUse, ...]
    patch_list_in: tuple[D3DDDI_PATCHLOCATIONLIST, ...] | None
    honest: tuple[D3DDDI_PATCHLOCATIONLIST, ...]
    want: Mapping[int, bytes]
    start: tuple[tuple[Allocation, bytes, bool], ...]
    patch_fault_at: int | None = None
    program: tuple[Op, ...] = ()

    @classmethod
    def snapshot(
        cls,
        k: Kernel,
        context: Context,
        command: bytes,
        uses: Sequence[AllocationUse],
        patch_list_in: Sequence[D3DDDI_PATCHLOCATIONLIST] | None,
        honest: Sequence[D3DDDI_PATCHLOCATIONLIST],
        want: Mapping[int, bytes],
        patch_fault_at: int | None = None,
        program: Sequence[Op] = (),
    ) -> Submitted:
        """Record the command buffer and the memory it starts from (call before submitting)."""
        seen: dict[int, tuple[Allocation, bytes, bool]] = {}
        for use in uses:
            a = use.allocation
            if a is not None and a.id not in seen:
                seen[a.id] = (a, k.cpu_read(a), a.state == State.RESIDENT)
        return cls(
            context,
            command,
            tuple(uses),
            None if patch_list_in is None else tuple(patch_list_in),
            tuple(honest),
            dict(want),
            tuple(seen.values()),
            patch_fault_at,
            tuple(program),
        )

    @property
    def deviates(self) -> bool:
        """pPatchLocationListIn was not the encoder's list (lying, empty or absent)."""
        return self.patch_list_in != self.honest


@contextmanager
def attributed(k: Kernel, submitted: Submitted) -> Iterator[None]:
    """Re-raise a refinable DriverViolation of the block under the rule the replays name.

    The block submits ``submitted`` and judges it. A failure whose rule the replays
    refine (:func:`~.kernel.blame.refine`) is raised again as a DriverViolation of the
    refined rule, from the original, its message ending with the replay that was right;
    any other exception passes unchanged. Bug checks are never refined.
    """
    patch_calls, moved_repatches = k.scheduler.patch_calls, k.scheduler.moved_repatches
    try:
        yield
    except DriverViolation as exc:
        failure = Failure(
            exc.requirement,
            patched=k.scheduler.patch_calls > patch_calls,
            split=k.mode.split_submissions,
            deviates=submitted.deviates,
            moved_repatch=k.scheduler.moved_repatches > moved_repatches,
        )
        verdict = refine(failure, lambda v: _replay_is_right(k, submitted, v, failure))
        if verdict is None or verdict.requirement == exc.requirement:
            raise
        prefix = f"[{exc.requirement}] {exc.ddi}: "
        said = str(exc).removeprefix(prefix)
        raise DriverViolation(
            verdict.requirement,
            verdict.ddi or exc.ddi,
            f"{verdict.sentence}. The run itself named {exc.requirement}: {said}",
            exc.details,
        ) from exc


def _replay_mode(mode: KernelMode, variation: Variation, failure: Failure) -> KernelMode:
    if variation is Variation.UNSPLIT:
        return replace(
            mode, split_submissions=False, always_repatch=mode.always_repatch or failure.patched
        )
    if variation is Variation.UNPATCHED:
        return KernelMode(tiny_buffers=mode.tiny_buffers)
    if variation is Variation.REPATCHED:
        return KernelMode(tiny_buffers=mode.tiny_buffers, always_repatch=True)
    if variation is Variation.PATCHED_ONCE:  # forced relocation moves, Patch follows once
        return replace(mode, always_repatch=False)
    return mode


def _replay_is_right(k: Kernel, s: Submitted, variation: Variation, failure: Failure) -> bool:
    """Submit ``s`` again under ``variation`` from its starting memory; True when it succeeds
    and leaves ``s.want``. Anything the driver does wrong in the replay makes it wrong."""
    everything_resident = variation in (Variation.UNPATCHED, Variation.REPATCHED)
    patch_list_in = s.honest if variation is Variation.HONEST else s.patch_list_in
    device = s.context.device
    saved_mode, saved_device = k.mode, (device.state, device.lost_reason)
    k.mode = _replay_mode(k.mode, variation, failure)
    try:
        for a, content, resident in s.start:
            if resident or everything_resident:
                k.make_resident(a)
            elif a.state == State.RESIDENT:
                k.evict(a)
            k.cpu_write(a, 0, content)
        device.state, device.lost_reason = State.ACTIVE, ""  # a GPU fault of the run lost it
        result = k.scheduler.render(
            s.context,
            s.command,
            s.uses,
            patch_list_in=patch_list_in,
            patch_fault_at=s.patch_fault_at,
        )
        if not result.ok or any(
            k.gpu_view(use.allocation) != s.want[i]
            for i, use in enumerate(s.uses)
            if use.allocation is not None and i in s.want
        ):
            return False
        expect_null_bindings(k, result, s.program, "replay")
        return True
    except Exception:  # a replay that fails in any way is not "right"
        return False
    finally:
        k.mode = saved_mode
        device.state, device.lost_reason = saved_device


def run_program_checked(
    k: Kernel,
    context: Context,
    allocation_list: Sequence[Allocation | None],
    program: Sequence[Op],
    what: str,
    requirement: str = "REN-TRANSLATE",
    *,
    lean: bool = False,
    **kwargs: Any,
) -> RenderResult:
    """Submit a valid ``program``; it must succeed and leave what it means in memory.

    ``kwargs`` go to :meth:`~.kernel.Kernel.render` (``patch_list_in`` defaults to the
    encoder's list). A failure names ``requirement`` unless the replays of
    :func:`attributed` name the step that broke it (INTERPRETING.md §5). ``lean`` (a fuzz
    campaign's lean path, which runs a failing input again with every check on) takes
    no snapshot and replays nothing: the same failures, under ``requirement``. A rejection
    by a driver that may reject oversized work here
    (:attr:`~.kernel.Kernel.rejects_oversized`) raises :class:`~.errors.NotJudged`.
    """
    want = k.expected_after(allocation_list, program)
    p = k.encode_program(allocation_list, program)
    kwargs.setdefault("patch_list_in", p.patch_locations)
    kwargs.setdefault("out_of_bounds", p.out_of_bounds)
    if lean:
        return _run_checked(
            k, context, allocation_list, program, what, requirement, want, p, kwargs
        )
    submitted = Submitted.snapshot(
        k,
        context,
        p.command,
        p.uses,
        kwargs["patch_list_in"],
        p.patch_locations,
        want,
        kwargs.get("patch_fault_at"),
        program,
    )
    with attributed(k, submitted):
        return _run_checked(
            k, context, allocation_list, program, what, requirement, want, p, kwargs
        )


def _run_checked(
    k: Kernel,
    context: Context,
    allocation_list: Sequence[Allocation | None],
    program: Sequence[Op],
    what: str,
    requirement: str,
    want: Mapping[int, bytes],
    p: ProgramSubmission,
    kwargs: dict[str, Any],
) -> RenderResult:
    result = k.scheduler.render(context, p.command, p.uses, **kwargs)
    if not result.ok and not result.refused and k.rejects_oversized:
        raise NotJudged(f"{what}: {k.rejects_oversized}")
    expect_success(result, what, requirement)
    expect_memory(k, allocation_list, want, what, requirement)
    expect_null_bindings(k, result, program, what)
    return result
