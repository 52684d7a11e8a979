"""The GPU scheduler: Render with split and resume, residency, Patch, submission, fences.

A command buffer's journey (:meth:`Scheduler.render`):

1. the kernel-mode allocation list is built: device-specific handles, WriteOperation
   as given, SegmentId/PhysicalAddress of resident allocations (0 when paged out, or
   always 0 under NoPrePatching);
2. DxgkDdiRender is called until it finishes; on INSUFFICIENT_DMA_BUFFER the part it
   wrote is submitted and Render is called again with fresh buffers from the advanced
   pCommand;
3. each part is submitted: every allocation is made resident (and, under the stress
   modes, evicted or relocated first), DxgkDdiPatch is called with the part's patch
   list -- or skipped when nothing moved since a fully pre-patched Render, as the real
   kernel may -- then DxgkDdiSubmitCommand, then the GPU runs it.

Every answer is judged on the spot and a broken rule raises with its requirement ID.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..ddi import (
    D3DDDI_PATCHLOCATIONLIST,
    DXGK_ALLOCATIONLIST,
    DXGK_PATCHFLAGS,
    DXGKARG_PATCH,
    DXGKARG_RENDER,
    DXGKARG_SUBMITCOMMAND,
    PAGE_SIZE,
)
from ..driver import DDI_METHODS, GpuExecution
from ..errors import (
    KMODE_EXCEPTION_NOT_HANDLED,
    SCHEDULER_INVALID_FENCE_ID,
    SCHEDULER_PAGING_COMMAND_FAILED,
    SCHEDULER_PATCH_FAILED,
    SCHEDULER_SUBMIT_FAILED,
    STATUS_ACCESS_VIOLATION,
    VIDEO_SCHEDULER_INTERNAL_ERROR,
    BugCheck,
    DriverViolation,
)
from ..memory import (
    UNWRITTEN,
    KernelAccessViolation,
    KernelBuffer,
    Ptr,
    UserBuffer,
    ViolationKind,
    unwritten,
)
from ..program import describe_difference
from ..status import (
    RENDER_STATUSES,
    STATUS_GRAPHICS_GPU_EXCEPTION_ON_DEVICE,
    STATUS_GRAPHICS_INSUFFICIENT_DMA_BUFFER,
    STATUS_SUCCESS,
    status_name,
)
from .blame import Event, Facts, Verdict, decide
from .ddicall import memory_violations
from .objects import Allocation, Context, State
from .vidmm import DDI as PAGING
from .vidmm import Range, coverage

if TYPE_CHECKING:
    from .kernel import Kernel

RENDER = DDI_METHODS["render"]
PATCH = DDI_METHODS["patch"]
SUBMIT = DDI_METHODS["submit_command"]
#: Bytes of one D3DDDI_PATCHLOCATIONLIST entry.
PATCH_ENTRY = D3DDDI_PATCHLOCATIONLIST.SIZE
#: Fake "pointers to internal scheduler data" for bug check parameters 2-4 (stable across runs).
SCHEDULER_DATA = (0xFFFF_C000_0000_1000, 0xFFFF_C000_0000_2000, 0xFFFF_C000_0000_3000)


@dataclass(frozen=True)
class AllocationUse:
    """One entry of the allocation list user mode submits: an allocation (None = the NULL element)."""

    allocation: Allocation | None
    write: bool = False


@dataclass
class Submission:
    """One DMA range handed to the GPU."""

    fence_id: int
    dma: bytes
    start: int
    end: int
    patched: bool
    patch_list: bytes
    execution: GpuExecution

    @property
    def patch_locations(self) -> list[D3DDDI_PATCHLOCATIONLIST]:
        """The patch locations of this range, decoded."""
        return [
            D3DDDI_PATCHLOCATIONLIST.unpack(self.patch_list, i)
            for i in range(0, len(self.patch_list), PATCH_ENTRY)
        ]


@dataclass
class RenderResult:
    """What became of one command buffer."""

    status: int
    render_calls: int = 0
    submissions: list[Submission] = field(default_factory=list)
    #: Set when the kernel refused the work without calling the driver (device lost).
    refused: str = ""
    #: User-mode buffers as the driver left them (read logs, double fetches, TOCTOU).
    command_buffer: UserBuffer | None = None
    patch_list_in: UserBuffer | None = None

    @property
    def ok(self) -> bool:
        return self.status == STATUS_SUCCESS and not self.refused


@dataclass
class _Progress:
    """One command buffer's way through repeated Render calls."""

    cmd: UserBuffer
    plin: UserBuffer | None
    out_of_bounds: tuple[str, ...]
    consumed: int = 0  # bytes of pCommand the driver has consumed
    multipass: int = 0  # [in/out]: the driver's own progress marker, kept across split calls
    seen: set[tuple[int, int, bytes]] = field(default_factory=set)


@dataclass(frozen=True)
class _RenderBuffers:
    """The kernel buffers of one Render call, and the allocation list it was shown."""

    alist: KernelBuffer
    dma: KernelBuffer
    private: KernelBuffer
    plo: KernelBuffer
    view: list[DXGK_ALLOCATIONLIST]


@dataclass(frozen=True)
class _Scene:
    """What the judge of one submission needs: who submitted what, and what the kernel did."""

    context: Context
    uses: Sequence[AllocationUse]
    dma: bytes
    patched: bool
    stale: list[Range]
    paged_out: list[Range]
    out_of_bounds: tuple[str, ...]
    #: The range's bytes before Patch ran on it (None: not patched).
    unpatched: bytes | None = None


@dataclass
class _Part:
    dma: KernelBuffer
    written: int
    private: KernelBuffer
    patches: bytes  # the driver's output patch list, packed
    render_view: list[DXGK_ALLOCATIONLIST]

    @property
    def count(self) -> int:
        return len(self.patches) // D3DDDI_PATCHLOCATIONLIST.SIZE


class Scheduler:
    """Submission path of one adapter."""

    def __init__(self, kernel: Kernel) -> None:
        self.k = kernel
        self.fence = 0
        self.completed_fence = 0
        #: Instruction-boundary picks for split submissions (empty: one cut near the middle).
        self.cuts: tuple[int, ...] = ()
        #: DxgkDdiPatch calls on render submissions so far (paging buffers not counted).
        self.patch_calls = 0
        #: Patch calls made again on a range after its allocations moved (PAT-REPATCH).
        self.moved_repatches = 0

    # ------------------------------------------------------------------ render

    def _entries(
        self, context: Context, uses: Sequence[AllocationUse], for_render: bool
    ) -> list[DXGK_ALLOCATIONLIST]:
        out: list[DXGK_ALLOCATIONLIST] = []
        hide = for_render and self.k.mode.no_prepatching
        for use in uses:
            a = use.allocation
            if a is None:
                out.append(DXGK_ALLOCATIONLIST(0, use.write, 0, 0))
                continue
            handle = self.k.open_for(context.device, a)
            if a.state == State.RESIDENT and not hide:
                out.append(DXGK_ALLOCATIONLIST(handle, use.write, a.segment_id, a.address))
            else:  # paged out: SegmentId 0, PhysicalAddress the last known address (not to be trusted)
                out.append(DXGK_ALLOCATIONLIST(handle, use.write, 0, a.last_address))
        return out

    def render(
        self,
        context: Context,
        command: bytes,
        uses: Sequence[AllocationUse],
        *,
        patch_list_in: Sequence[D3DDDI_PATCHLOCATIONLIST] | None = None,
        fault_at: int | None = None,
        toctou: tuple[int, bytes] | None = None,
        patch_fault_at: int | None = None,
        patch_toctou: tuple[int, bytes] | None = None,
        out_of_bounds: Sequence[str] = (),
    ) -> RenderResult:
        """Translate, submit and execute one command buffer (module docstring); ``fault_at``,
        ``toctou``, ``patch_fault_at``, ``patch_toctou``: as :class:`.memory.UserBuffer`
        defines them (INTERPRETING.md §4); ``out_of_bounds``: references the caller knows
        reach outside their allocation (:func:`.program.out_of_bounds`), or bytes it
        damaged, whose acceptance is REN-VALIDATE's (blame row 1)."""
        context.require(State.ACTIVE)
        device = context.device
        if device.state == State.LOST:
            return RenderResult(
                STATUS_GRAPHICS_GPU_EXCEPTION_ON_DEVICE,
                refused=f"{device} is lost: {device.lost_reason}",
            )
        device.require(State.ACTIVE)
        cmd = UserBuffer("pCommand", command, fault_at=fault_at, toctou=toctou)
        plin: UserBuffer | None = None
        if patch_list_in is not None:
            raw = b"".join(e.pack() for e in patch_list_in)
            plin = UserBuffer(
                "pPatchLocationListIn", raw, fault_at=patch_fault_at, toctou=patch_toctou
            )
        result = RenderResult(STATUS_SUCCESS, command_buffer=cmd, patch_list_in=plin)
        progress = _Progress(cmd, plin, tuple(out_of_bounds))
        while True:
            if result.render_calls >= self.k.config.max_render_passes:
                raise DriverViolation(
                    "REN-SPLIT", RENDER, f"still unfinished after {result.render_calls} calls"
                )
            args, buffers = self._render_args(context, uses, progress)
            result.render_calls += 1
            status = self._call_render(context, args, progress)
            part, consumed_now = self._judge_render(args, status, progress, buffers)
            result.status = status
            if status == STATUS_GRAPHICS_GPU_EXCEPTION_ON_DEVICE:
                self.k.lose_device(
                    device, "DxgkDdiRender returned GRAPHICS_GPU_EXCEPTION_ON_DEVICE"
                )
                return result
            if status not in (STATUS_SUCCESS, STATUS_GRAPHICS_INSUFFICIENT_DMA_BUFFER):
                return result
            if status == STATUS_GRAPHICS_INSUFFICIENT_DMA_BUFFER:
                self._judge_split(args, part, consumed_now, progress, result.render_calls)
            if part.written:
                submitted = self._submit_part(context, uses, part, progress.out_of_bounds)
                result.submissions.extend(submitted)
            progress.consumed = consumed_now
            if status == STATUS_SUCCESS:
                return result

    def _render_args(
        self, context: Context, uses: Sequence[AllocationUse], progress: _Progress
    ) -> tuple[DXGKARG_RENDER, _RenderBuffers]:
        """Fresh kernel buffers and the arguments of the next DxgkDdiRender call."""
        cfg = self.k.config
        view = self._entries(context, uses, for_render=True)
        b = _RenderBuffers(
            KernelBuffer(
                "pAllocationList",
                len(view) * DXGK_ALLOCATIONLIST.SIZE,
                writable=False,
                initial=b"".join(e.pack() for e in view),
            ),
            KernelBuffer("DMA buffer", cfg.dma_buffer_size, fill=UNWRITTEN),
            KernelBuffer("DMA buffer private data", self.k.caps.DmaBufferPrivateDataSize),
            KernelBuffer(
                "pPatchLocationListOut",
                cfg.patch_list_entries * D3DDDI_PATCHLOCATIONLIST.SIZE,
                fill=UNWRITTEN,
            ),
            view,
        )
        cmd, plin = progress.cmd, progress.plin
        args = DXGKARG_RENDER(
            pCommand=cmd.ptr(progress.consumed),
            CommandLength=len(cmd.data) - progress.consumed,
            pDmaBuffer=b.dma.ptr(),
            DmaSize=cfg.dma_buffer_size,
            pDmaBufferPrivateData=b.private.ptr(),
            DmaBufferPrivateDataSize=b.private.size,
            pAllocationList=b.alist.ptr(stride=DXGK_ALLOCATIONLIST.SIZE),
            AllocationListSize=len(view),
            pPatchLocationListIn=plin.ptr(stride=D3DDDI_PATCHLOCATIONLIST.SIZE)
            if plin is not None
            else None,
            PatchLocationListInSize=len(plin.data) // D3DDDI_PATCHLOCATIONLIST.SIZE
            if plin is not None
            else 0,
            pPatchLocationListOut=b.plo.ptr(stride=D3DDDI_PATCHLOCATIONLIST.SIZE),
            PatchLocationListOutSize=cfg.patch_list_entries,
            MultipassOffset=progress.multipass,
        )
        return args, b

    def _call_render(self, context: Context, args: DXGKARG_RENDER, progress: _Progress) -> int:
        """Call DxgkDdiRender; its status if it is one Render may return (REN-STATUS).

        An exception escaping a call on a command buffer with known out-of-bounds
        references is blamed by :mod:`.blame` (reading past a list it did not check).
        """
        progress.cmd.new_epoch()
        if progress.plin is not None:
            progress.plin.new_epoch()
        try:
            status = self.k.caller.call("render", context.hContext, args)
        except BugCheck as exc:
            # a read past a kernel buffer it was given, not one through a buffer of an
            # earlier call (the same bug check, but no list it failed to check)
            read = (
                exc.code == KMODE_EXCEPTION_NOT_HANDLED
                and exc.parameters[0::2] == (STATUS_ACCESS_VIOLATION, 0)
                and isinstance(exc.__cause__, KernelAccessViolation)
            )
            facts = Facts(
                Event.EXCEPTION,
                raised=exc.requirement,
                out_of_bounds=progress.out_of_bounds,
                read_past_buffer=read,
            )
            verdict = decide(facts)
            if verdict.requirement == exc.requirement:
                raise
            raise BugCheck(
                exc.code,
                exc.parameters,
                verdict.requirement,
                RENDER,
                f"{verdict.sentence}; then {exc}",
            ) from exc
        if not isinstance(status, int) or isinstance(status, bool) or status not in RENDER_STATUSES:
            raise DriverViolation(
                "REN-STATUS",
                RENDER,
                f"returned {status_name(status)}, which DxgkDdiRender may not return",
            )
        return status

    def _judge_split(
        self, args: DXGKARG_RENDER, part: _Part, consumed_now: int, progress: _Progress, calls: int
    ) -> None:
        """INSUFFICIENT_DMA_BUFFER: allowed only outside contract mode, and only with progress."""
        cfg = self.k.config
        if self.k.caps.GuaranteedContractDma:
            raise DriverViolation(
                "REN-CONTRACT",
                RENDER,
                "returned INSUFFICIENT_DMA_BUFFER in guaranteed-contract DMA mode: a command buffer "
                f"that needs more than the {cfg.dma_buffer_size}-byte DMA buffer must be rejected",
            )
        if part.written == 0 and consumed_now == progress.consumed:
            raise DriverViolation(
                "REN-SPLIT",
                RENDER,
                f"returned INSUFFICIENT_DMA_BUFFER on an empty {cfg.dma_buffer_size}-byte DMA buffer without "
                f"consuming or writing anything: a command that cannot fit must be an error, not a livelock",
            )
        state = (consumed_now, _int(args.MultipassOffset), bytes(part.dma.data[: part.written]))
        if state in progress.seen:
            raise DriverViolation(
                "REN-SPLIT",
                RENDER,
                f"livelock: call {calls} left pCommand (+{consumed_now}), MultipassOffset "
                f"and the DMA bytes exactly as an earlier call did, so it never finishes",
            )
        progress.seen.add(state)
        progress.multipass = _int(args.MultipassOffset)

    def _judge_render(
        self, args: DXGKARG_RENDER, status: int, progress: _Progress, b: _RenderBuffers
    ) -> tuple[_Part, int]:
        """Judge what one Render call left in its buffers; the part to submit and pCommand's advance."""
        alist_rule = "ALL-READONLY"
        if (
            progress.out_of_bounds
            and b.alist.violations
            and b.alist.violations[0].kind == ViolationKind.READ_OUTSIDE_WINDOW
        ):
            # a read past the list for an index the program reaches past it with: accepted
            alist_rule = "REN-VALIDATE"
        checks = [
            (progress.cmd, "REN-UNDERRUN"),
            (b.alist, alist_rule),
            (b.dma, "REN-CURSORS"),
            (b.plo, "REN-CURSORS"),
            (b.private, "REN-CURSORS"),
        ]
        if progress.plin is not None:
            checks.append((progress.plin, "REN-UNDERRUN"))
        memory_violations(RENDER, checks)
        if (
            args.DmaSize != self.k.config.dma_buffer_size
            or args.PatchLocationListOutSize != self.k.config.patch_list_entries
        ):
            raise DriverViolation(
                "ALL-READONLY",
                RENDER,
                "changed the [in] fields DmaSize or PatchLocationListOutSize",
            )
        if status not in (STATUS_SUCCESS, STATUS_GRAPHICS_INSUFFICIENT_DMA_BUFFER):
            return _Part(b.dma, 0, b.private, b"", b.view), progress.consumed
        written, entries = _judge_cursors(args, b)
        consumed_now = _judge_command_cursor(args, status, progress)
        patches = bytes(b.plo.data[:entries])
        _judge_patch_out(patches, len(b.view), written)
        _judge_split_offsets(
            patches, lambda: self.k.gpu.instruction_boundaries(b.dma.data[:written])
        )
        return _Part(b.dma, written, b.private, patches, b.view), consumed_now

    # ------------------------------------------------------------------ submit

    def _submit_part(
        self,
        context: Context,
        uses: Sequence[AllocationUse],
        part: _Part,
        out_of_bounds: tuple[str, ...] = (),
    ) -> list[Submission]:
        k = self.k
        self._make_resident(uses)
        view = self._entries(context, uses, for_render=False)
        stale, paged_out, moved = self._moves(part.render_view, view, uses)
        # A DMA buffer split across submissions is patched range by range (PAT-RANGE).
        need_patch = k.mode.always_repatch or k.mode.split_submissions or moved
        ranges = [(0, part.written, 0, part.count)]
        if k.mode.split_submissions:
            ranges = self._split(part) or ranges
        out: list[Submission] = []
        for start, end, p_start, p_len in ranges:
            self.fence += 1
            fence = self.fence
            unpatched = bytes(part.dma.data[start:end]) if need_patch else None
            if need_patch:
                span = (start, end, p_start, p_len)
                view, moved_away = self._patch_range(context, uses, part, view, span, fence)
                stale = [*stale, *moved_away]
            dma = bytes(part.dma.data[start:end])
            self._call_submit(
                context.hContext, part.written, start, end, part.private, fence, DXGK_PATCHFLAGS(0)
            )
            execution = k.gpu.execute(dma, privileged=False)
            patches = part.patches[p_start * PATCH_ENTRY : (p_start + p_len) * PATCH_ENTRY]
            out.append(Submission(fence, dma, start, end, need_patch, patches, execution))
            scene = _Scene(
                context, uses, dma, need_patch, stale, paged_out, out_of_bounds, unpatched
            )
            self._judge_execution(scene, fence, execution)
        return out

    def _make_resident(self, uses: Sequence[AllocationUse]) -> None:
        """Page every allocation in (evicting or relocating first under the stress modes)."""
        k = self.k
        # Each allocation once, however many entries name it: evicted or moved once per part.
        listed = {id(u.allocation): u.allocation for u in uses if u.allocation is not None}
        allocations = list(listed.values())
        pinned = frozenset(a.id for a in allocations)
        for a in allocations:
            k.vidmm.make_resident(a, pinned)
        moved: set[int] = set()
        by_hand = not k.config.forced_moves_by_driver
        if k.mode.forced_eviction:
            for a in allocations:
                if by_hand and not self.k.segments[a.segment_id].is_aperture:
                    address = a.address
                    k.vidmm.relocate(a, pinned, by_hand=True)  # what Patch sees of an eviction
                    if a.address != address:
                        moved.add(a.id)
                    continue
                old = (a.offset, a.size) if a.state == State.RESIDENT else None
                sid, address = a.segment_id, a.address
                k.vidmm.evict(a)
                k.vidmm.make_resident(a, pinned, segment_id=sid, avoid=old)
                if a.address != address:
                    moved.add(a.id)
        if k.mode.forced_relocation:
            # An allocation the eviction already brought back elsewhere is at a new address,
            # which is all forced relocation asks for.
            for a in allocations:
                if a.id not in moved:
                    k.vidmm.relocate(a, pinned, by_hand=by_hand)

    def _moves(
        self,
        render_view: list[DXGK_ALLOCATIONLIST],
        view: list[DXGK_ALLOCATIONLIST],
        uses: Sequence[AllocationUse],
    ) -> tuple[list[Range], list[Range], bool]:
        """Where entries were at Render and are no more: (stale, paged_out, anything moved).

        ``stale``: the old ranges of entries that moved out of a memory segment;
        ``paged_out``: where entries given as paged out last were (never to be trusted).
        """
        sizes = [u.allocation.size if u.allocation is not None else 0 for u in uses]
        stale: list[Range] = []
        paged_out: list[Range] = []
        moved = False
        for r, n, size in zip(render_view, view, sizes, strict=True):
            if not n.hDeviceSpecificAllocation:
                continue
            if r.SegmentId == 0 or (r.SegmentId, r.PhysicalAddress) != (
                n.SegmentId,
                n.PhysicalAddress,
            ):
                moved = True
                if r.SegmentId and not self.k.segments[r.SegmentId].is_aperture:
                    stale.append((r.PhysicalAddress, size))
                elif not r.SegmentId and r.PhysicalAddress != n.PhysicalAddress:
                    paged_out.append((r.PhysicalAddress, size))
        return stale, paged_out, moved

    def _patch_range(
        self,
        context: Context,
        uses: Sequence[AllocationUse],
        part: _Part,
        view: list[DXGK_ALLOCATIONLIST],
        span: tuple[int, int, int, int],
        fence: int,
    ) -> tuple[list[DXGK_ALLOCATIONLIST], list[Range]]:
        """Patch one range; under always-repatch (preemption) patch it again and compare, and
        with forced relocation too, move its allocations and patch it a third time with their
        new addresses (the preempted buffer resumes elsewhere). Returns the allocation list
        the range runs with and where its allocations were before that last move."""
        start, end = span[0], span[1]
        self._patch(context, part, view, *span, fence)
        if not self.k.mode.always_repatch:
            return view, []
        once = bytes(part.dma.data[start:end])
        self._patch(context, part, view, *span, fence)
        if part.dma.data[start:end] != once:
            raise DriverViolation(
                "PAT-REPATCH",
                PATCH,
                f"patching range [{start}, {end}) a second time with the same addresses changed it "
                f"{describe_difference(bytes(part.dma.data[start:end]), once)}",
            )
        if not self.k.mode.forced_relocation:
            return view, []
        listed = {id(u.allocation): u.allocation for u in uses if u.allocation is not None}
        pinned = frozenset(a.id for a in listed.values())
        by_hand = not self.k.config.forced_moves_by_driver
        for a in listed.values():
            self.k.vidmm.relocate(a, pinned, by_hand=by_hand)
        moved = self._entries(context, uses, for_render=False)
        away, _, _ = self._moves(view, moved, uses)
        self.moved_repatches += 1
        self._patch(context, part, moved, *span, fence)
        return moved, away

    def _split(self, part: _Part) -> list[tuple[int, int, int, int]] | None:
        """Ranges split at instruction boundaries, with their patch sub-lists.

        By default two ranges split near the middle; :attr:`cuts` (set by a fuzz target)
        picks the boundaries instead, each value modulo the number of boundaries.
        """
        boundaries = [
            b
            for b in self.k.gpu.instruction_boundaries(part.dma.data[: part.written])
            if 0 < b < part.written
        ]
        if not boundaries:
            return None
        if self.cuts:
            chosen = sorted({boundaries[c % len(boundaries)] for c in self.cuts})
        else:
            chosen = [boundaries[len(boundaries) // 2]]
        # Entries go with the range their SplitOffset is in; REN-PATCHOUT made SplitOffset
        # strictly increasing (DDI_FACTS), so each range's entries are one contiguous run.
        offsets = [e[5] for e in D3DDDI_PATCHLOCATIONLIST.STRUCT.iter_unpack(part.patches)]
        ranges: list[tuple[int, int, int, int]] = []
        start, p_start = 0, 0
        for cut in [*chosen, part.written]:
            p_end = sum(1 for o in offsets if o < cut)
            ranges.append((start, cut, p_start, p_end - p_start))
            start, p_start = cut, p_end
        return ranges

    def _patch(
        self,
        context: Context,
        part: _Part,
        view: list[DXGK_ALLOCATIONLIST],
        start: int,
        end: int,
        p_start: int,
        p_len: int,
        fence: int,
    ) -> None:
        k = self.k
        alist = KernelBuffer(
            "pAllocationList (Patch)",
            len(view) * DXGK_ALLOCATIONLIST.SIZE,
            writable=False,
            initial=b"".join(e.pack() for e in view),
        )
        plist = KernelBuffer(
            "pPatchLocationList (Patch)",
            len(part.patches),
            writable=False,
            initial=part.patches,
        )
        plist.set_read_window(p_start * PATCH_ENTRY, (p_start + p_len) * PATCH_ENTRY)
        part.dma.set_write_window(start, end)
        part.dma.violations.clear()
        part.private.violations.clear()
        args = _patch_args(
            context.hContext,
            (part.dma, part.written, start, end),
            part.private,
            (alist, len(view)),
            (plist, part.count, p_start, p_len),
            fence,
        )
        self.patch_calls += 1
        status = k.caller.call("patch", args)
        self._require_patch_success(
            status, f"range [{start}, {end}) of a {part.written}-byte DMA buffer"
        )
        memory_violations(
            PATCH, [(part.dma, "PAT-RANGE"), (plist, "PAT-RANGE"), (alist, "ALL-READONLY")]
        )
        # In-window writes are legal: DXGKARG_PATCH's private data is not const.
        if part.private.violations:
            raise DriverViolation(
                "PAT-RANGE",
                PATCH,
                f"wrote past the DMA buffer private data: {part.private.violations[0]}",
            )
        if (
            args.DmaBufferSubmissionStartOffset,
            args.DmaBufferSubmissionEndOffset,
            args.DmaBufferSize,
        ) != (start, end, part.written):
            raise DriverViolation(
                "PAT-INPLACE", PATCH, "changed the submission offsets or the DMA buffer size"
            )
        part.dma.set_write_window(0, part.dma.size)

    def _require_patch_success(
        self, status: object, what: str, requirement: str = "PAT-BUGCHECK"
    ) -> None:
        """Any Patch failure bug-checks 0x119 (0x3); on a paging buffer it breaks PAT-PAGING too."""
        if status == STATUS_SUCCESS and isinstance(status, int) and not isinstance(status, bool):
            return
        raise BugCheck(
            VIDEO_SCHEDULER_INTERNAL_ERROR,
            (SCHEDULER_PATCH_FAILED, *SCHEDULER_DATA),
            requirement,
            PATCH,
            f"returned {status_name(status)} for {what}; any failure of DxgkDdiPatch bug-checks the system",
        )

    def _call_submit(
        self,
        hContext: int,
        size: int,
        start: int,
        end: int,
        private: KernelBuffer,
        fence: int,
        flags: DXGK_PATCHFLAGS,
    ) -> None:
        args = DXGKARG_SUBMITCOMMAND(
            hContext=hContext,
            DmaBufferSegmentId=0,
            DmaBufferPhysicalAddress=0,
            DmaBufferSize=size,
            DmaBufferSubmissionStartOffset=start,
            DmaBufferSubmissionEndOffset=end,
            pDmaBufferPrivateData=private.ptr(),
            DmaBufferPrivateDataSize=private.size,
            SubmissionFenceId=fence,
            Flags=flags,
        )
        status = self.k.caller.call("submit_command", args)
        if status != STATUS_SUCCESS or not isinstance(status, int) or isinstance(status, bool):
            # Not a catalogue rule (no seed page for SubmitCommand): the requirement is left empty.
            raise BugCheck(
                VIDEO_SCHEDULER_INTERNAL_ERROR,
                (SCHEDULER_SUBMIT_FAILED, *SCHEDULER_DATA),
                "",
                SUBMIT,
                f"returned {status_name(status)}; DxgkDdiSubmitCommand must not fail",
            )

    def _judge_fences(self, ddi: str, fences: list[int], fence: int, patched: bool) -> None:
        for value in fences:
            if value > self.fence:
                raise BugCheck(
                    VIDEO_SCHEDULER_INTERNAL_ERROR,
                    (SCHEDULER_INVALID_FENCE_ID, *SCHEDULER_DATA),
                    "PAT-FENCE",
                    ddi,
                    f"the GPU signalled fence {value}, which was never submitted (the newest is {self.fence})",
                )
            if patched and value != fence:
                raise DriverViolation(
                    "PAT-FENCE",
                    PATCH,
                    f"the GPU signalled fence {value}, but SubmissionFenceId was {fence}",
                )
        self.completed_fence = fence

    def _judge_execution(self, scene: _Scene, fence: int, execution: GpuExecution) -> None:
        """Judge what the GPU did with one submission; blame comes from :mod:`.blame`."""
        if execution.fault is not None:
            fault = execution.fault
            verdict = self._blame(
                scene,
                Event.FAULT,
                fault.address,
                1,
                fault.kind,
                self._patch_broke(scene, fault.dma_offset),
            )
            self.k.lose_device(scene.context.device, str(fault))
            raise DriverViolation(
                verdict.requirement,
                RENDER,
                f"the DMA buffer it built faulted on the GPU: {fault}; {verdict.sentence}\n"
                f"{self.k.gpu.disassemble(scene.dma, mark=fault.dma_offset)}",
                {"fault": str(fault)},
            )
        self._judge_fences(PATCH, execution.fences, fence, scene.patched)
        if not self.k.config.check_isolation:
            return
        self._judge_bindings(scene, execution.bindings)
        self._judge_accesses(scene, execution)

    def _judge_bindings(self, scene: _Scene, bindings: dict[int, int]) -> None:
        """Bindings hold segment addresses (aperture included), not the pages behind them."""
        bindable = [
            (u.allocation.address, u.allocation.size)
            for u in scene.uses
            if u.allocation is not None and u.allocation.state == State.RESIDENT
        ]
        bindable.append(self._dummy())  # a NULL allocation may be bound to the dummy page
        for slot, address in bindings.items():
            if address and not _inside(address, 0, bindable):  # an end-of-allocation bind is legal
                verdict = self._blame(scene, Event.BIND, address, 1)
                raise DriverViolation(
                    verdict.requirement,
                    RENDER,
                    f"binding slot {slot} holds 0x{address:X}, neither 0 (the NULL allocation) nor "
                    f"an address inside the allocations of this submission; {verdict.sentence}\n"
                    f"{self.k.gpu.disassemble(scene.dma)}",
                )

    def _judge_accesses(self, scene: _Scene, execution: GpuExecution) -> None:
        """Every logged GPU read inside the submission, every write inside its writable part."""
        allowed, writable = self._submission_ranges(scene.uses)
        allowed_merged, _ = coverage([self._dummy(), *allowed])  # reads via an unmap: PGB-UNMAP's
        writable_merged, _ = coverage(writable)  # the dummy page is never a write target
        for event, accesses, ranges in (
            (Event.READ, execution.reads, allowed_merged),
            (Event.WRITE, execution.writes, writable_merged),
        ):
            outside = _first_outside(accesses, ranges)
            if outside is None:
                continue
            address, length = outside
            verdict = self._blame(scene, event, address, length)
            kind = event.value
            raise DriverViolation(
                verdict.requirement,
                RENDER,
                f"the GPU {kind} {length} byte(s) at 0x{address:X}, outside the "
                f"{'writable ' if kind == 'write' else ''}allocations of this submission; "
                f"{verdict.sentence}\n{self.k.gpu.disassemble(scene.dma)}",
            )

    def _submission_ranges(self, uses: Sequence[AllocationUse]) -> tuple[list[Range], list[Range]]:
        """Physical ranges of the submission's allocations, and of those it may write."""
        allowed: list[Range] = []
        writable: list[Range] = []
        for use in uses:
            if use.allocation is not None:
                spans = self.k.vidmm.physical_ranges(use.allocation)
                allowed += spans
                if use.write:
                    writable += spans
        return allowed, writable

    def _dummy(self) -> Range:
        return (self.k.dummy_page_address, PAGE_SIZE)

    def _patch_broke(self, scene: _Scene, offset: int) -> bool:
        """Patch changed how the range decodes up to the fault at ``offset``: where
        instructions start, or an instruction that spanned ``offset`` before it (patching
        writes operands, never opcodes, so a patch location lay over command bytes)."""
        before = scene.unpatched
        if before is None or before == scene.dma:
            return False
        boundaries = self.k.gpu.instruction_boundaries
        was = [x for x in boundaries(before) if x <= offset]
        if was != [x for x in boundaries(scene.dma) if x <= offset]:
            return True
        spanning = [x for x in was if x < offset]
        return bool(spanning) and spanning[-1] not in boundaries(before[:offset])

    def _blame(
        self,
        scene: _Scene,
        event: Event,
        address: int | None,
        length: int,
        fault_kind: str = "",
        patch_broke_command: bool = False,
    ) -> Verdict:
        """Gather the facts of ``scene`` around one access and ask :func:`.blame.decide`."""
        k = self.k
        segments = [(d.BaseAddress, d.Size) for d in k.segments.values()]
        reaches = address is not None and (
            _inside(address, length, segments) or k.sysmem.page(address // PAGE_SIZE) is not None
        )
        return decide(
            Facts(
                event,
                address,
                length,
                patched=scene.patched,
                fault_kind=fault_kind,
                unmapped_aperture=address is not None and k.is_dummy_mapped(address),
                reaches_memory=reaches,
                paged_out=tuple(scene.paged_out),
                stale=tuple(scene.stale),
                dummy=self._dummy(),
                submission=tuple(self._submission_ranges(scene.uses)[0]),
                out_of_bounds=scene.out_of_bounds,
                patch_broke_command=patch_broke_command,
            )
        )

    # ------------------------------------------------------------------ paging submissions

    def submit_paging(
        self, buffer: KernelBuffer, written: int, private: KernelBuffer, rule: str, operation: str
    ) -> GpuExecution:
        """Patch (no patch list, size unchanged), submit and execute one paging buffer."""
        k = self.k
        self.fence += 1
        fence = self.fence
        before = bytes(buffer.data)
        buffer.set_write_window(0, written)
        buffer.violations.clear()
        args = _patch_args(0, (buffer, written, 0, written), private, None, None, fence)
        args.Flags = DXGK_PATCHFLAGS.Paging
        status = k.caller.call("patch", args)
        self._require_patch_success(
            status, f"a {written}-byte paging buffer ({operation})", "PAT-PAGING"
        )
        memory_violations(
            PATCH, [(buffer, "PGB-PATCHED")], f" while patching a paging buffer ({operation})"
        )
        if (
            args.DmaBufferSize != written
            or args.DmaBufferSubmissionEndOffset != written
            or buffer.data[written:] != before[written:]
        ):
            raise DriverViolation(
                "PGB-PATCHED",
                PATCH,
                f"changed the size of a {written}-byte paging buffer ({operation})",
            )
        dma = bytes(buffer.data[:written])
        self._call_submit(0, written, 0, written, private, fence, DXGK_PATCHFLAGS.Paging)
        execution = k.gpu.execute(dma, privileged=True)
        if execution.fault is not None:
            raise BugCheck(
                VIDEO_SCHEDULER_INTERNAL_ERROR,
                (SCHEDULER_PAGING_COMMAND_FAILED, *SCHEDULER_DATA),
                rule,
                PAGING,
                f"the paging buffer for {operation} faulted on the GPU: {execution.fault}\n"
                f"{k.gpu.disassemble(dma, mark=execution.fault.dma_offset)}",
            )
        self._judge_fences(PATCH, execution.fences, fence, True)
        return execution


def _patch_args(
    hContext: int,
    dma: tuple[KernelBuffer, int, int, int],
    private: KernelBuffer,
    alist: tuple[KernelBuffer, int] | None,
    plist: tuple[KernelBuffer, int, int, int] | None,
    fence: int,
) -> DXGKARG_PATCH:
    """DXGKARG_PATCH for ``dma`` (buffer, size, start, end), ``alist`` (buffer, entries)
    and ``plist`` (buffer, entries, submission start, length); None: a paging buffer's."""
    buffer, size, start, end = dma
    return DXGKARG_PATCH(
        hContext=hContext,
        DmaBufferSegmentId=0,
        DmaBufferPhysicalAddress=0,
        pDmaBuffer=buffer.ptr(),
        DmaBufferSize=size,
        DmaBufferSubmissionStartOffset=start,
        DmaBufferSubmissionEndOffset=end,
        pDmaBufferPrivateData=private.ptr(),
        DmaBufferPrivateDataSize=private.size,
        DmaBufferPrivateDataSubmissionStartOffset=0,
        DmaBufferPrivateDataSubmissionEndOffset=private.size,
        pAllocationList=alist[0].ptr(stride=DXGK_ALLOCATIONLIST.SIZE) if alist else None,
        AllocationListSize=alist[1] if alist else 0,
        pPatchLocationList=plist[0].ptr(stride=D3DDDI_PATCHLOCATIONLIST.SIZE) if plist else None,
        PatchLocationListSize=plist[1] if plist else 0,
        PatchLocationListSubmissionStart=plist[2] if plist else 0,
        PatchLocationListSubmissionLength=plist[3] if plist else 0,
        SubmissionFenceId=fence,
    )


def _int(value: object) -> int:
    """A driver-written integer field, or -1 when the driver left junk there."""
    return value if isinstance(value, int) and not isinstance(value, bool) else -1


def _cursor(ptr: object, region: KernelBuffer, size: int, name: str) -> int:
    if not isinstance(ptr, Ptr) or ptr.region is not region or not 0 <= ptr.offset <= size:
        raise DriverViolation(
            "REN-CURSORS", RENDER, f"{name} left at {ptr!r}, outside its {size}-byte buffer"
        )
    return ptr.offset


def _judge_cursors(args: DXGKARG_RENDER, b: _RenderBuffers) -> tuple[int, int]:
    """REN-CURSORS: bytes written to the DMA buffer and to the patch list, nothing past them."""
    written = _cursor(args.pDmaBuffer, b.dma, b.dma.size, "pDmaBuffer")
    entries = _cursor(args.pPatchLocationListOut, b.plo, b.plo.size, "pPatchLocationListOut")
    if entries % D3DDDI_PATCHLOCATIONLIST.SIZE:
        raise DriverViolation(
            "REN-CURSORS",
            RENDER,
            f"pPatchLocationListOut advanced by {entries} bytes, not whole entries",
        )
    if not unwritten(b.dma.data, written, b.dma.size):
        raise DriverViolation(
            "REN-CURSORS", RENDER, f"wrote DMA bytes past pDmaBuffer (+{written})"
        )
    if not unwritten(b.plo.data, entries, b.plo.size):
        raise DriverViolation(
            "REN-CURSORS",
            RENDER,
            "wrote patch locations past pPatchLocationListOut "
            f"(entry {entries // D3DDDI_PATCHLOCATIONLIST.SIZE})",
        )
    return written, entries


def _judge_command_cursor(args: DXGKARG_RENDER, status: int, progress: _Progress) -> int:
    """REN-SPLIT: where pCommand was left; how much of the command buffer is consumed."""
    cmd, consumed = progress.cmd, progress.consumed
    if not isinstance(args.pCommand, Ptr) or args.pCommand.region is not cmd:
        raise DriverViolation(
            "REN-SPLIT",
            RENDER,
            f"pCommand left at {args.pCommand!r}, not inside the command buffer",
        )
    if status == STATUS_SUCCESS:
        return len(cmd.data)
    if not consumed <= args.pCommand.offset <= len(cmd.data):
        raise DriverViolation(
            "REN-SPLIT",
            RENDER,
            f"pCommand moved to +{args.pCommand.offset}, outside [+{consumed}, +{len(cmd.data)}]",
        )
    return args.pCommand.offset


def _judge_patch_out(patches: bytes, size: int, written: int) -> None:
    """REN-PATCHOUT: each output patch location names a list entry and a written byte, in order."""
    last_split = -1
    for i, (index, _, _, _, patch_offset, split_offset) in enumerate(
        D3DDDI_PATCHLOCATIONLIST.STRUCT.iter_unpack(patches)
    ):
        if index >= size:
            raise DriverViolation(
                "REN-PATCHOUT",
                RENDER,
                f"patch location {i} names allocation index {index}, but AllocationListSize is {size}",
            )
        if patch_offset >= written:
            raise DriverViolation(
                "REN-PATCHOUT",
                RENDER,
                f"patch location {i} has PatchOffset {patch_offset}, outside the {written} bytes written",
            )
        if split_offset <= last_split:
            raise DriverViolation(
                "REN-PATCHOUT",
                RENDER,
                f"patch location {i}: SplitOffset {split_offset} is not above the previous {last_split}",
            )
        last_split = split_offset


def _judge_split_offsets(patches: bytes, boundaries: Callable[[], list[int]]) -> None:
    """REN-PATCHOUT: each SplitOffset lies in the command its PatchOffset patches (at or
    before it, no instruction boundary between them), so the range of a split submission
    that holds the SplitOffset holds the patched bytes (INTERPRETING.md §3)."""
    entries = list(D3DDDI_PATCHLOCATIONLIST.STRUCT.iter_unpack(patches))
    if all(e[5] == e[4] for e in entries):
        return  # the common choice, SplitOffset = PatchOffset, needs no decoding
    starts = boundaries()
    for i, (_, _, _, _, patch_offset, split_offset) in enumerate(entries):
        if split_offset > patch_offset or any(split_offset < b <= patch_offset for b in starts):
            raise DriverViolation(
                "REN-PATCHOUT",
                RENDER,
                f"patch location {i}: SplitOffset {split_offset} is not in the command that "
                f"PatchOffset {patch_offset} patches; a split submission would patch it in "
                "the wrong range",
            )


def _first_outside(accesses: list[Range], ranges: list[Range]) -> Range | None:
    """The first access not inside one of ``ranges`` (a plain loop: this runs per GPU access)."""
    spans = [(start, start + n) for start, n in ranges]
    for access in accesses:
        address, length = access
        end = address + length
        for start, stop in spans:
            if start <= address and end <= stop:
                break
        else:
            return access
    return None


def _inside(address: int, length: int, ranges: list[Range]) -> bool:
    return any(start <= address and address + length <= start + n for start, n in ranges)
