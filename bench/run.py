"""Benchmark runner for the emulated GPU and the Render -> Patch -> execute path.

Every figure is a ratio against a baseline measured in the same run, because the
machines this runs on are noisy: absolute seconds are printed for reference, the
ratios are what the targets judge. Each measurement is repeated (``--repeat``),
the variants of one benchmark are interleaved (round robin, rotating the order each
round) so drift hits them alike, and the median is quoted.

1. GPU COPY throughput: one ``COPY`` instruction moving N bytes inside the emulated
   GPU's memory segment, against ``mv[dst:dst+n] = mv[src:src+n]`` on a plain
   bytearray of the same size. Ratio = baseline seconds / GPU seconds (1.0 = as fast
   as a memoryview copy). Target: >= 0.5 at the largest size.
2. Render throughput: ``Kernel.render`` (DxgkDdiRender, DxgkDdiPatch under
   always-repatch, DxgkDdiSubmitCommand, GPU execution and the kernel's checks) on
   command buffers of growing size. Linearity = per-byte cost at the largest size /
   per-byte cost at the smallest (target <= 1.5); the largest (1 MiB) must take < 1 s.
   A bare Python parse loop over the same command buffer is the calibration.

Usage: ``python bench/run.py [--repeat N] [--json PATH] [--quick] [--seed S]``.
Exit status 0 whether or not targets are met (a miss prints MISS); 3 if a benchmark
produced a wrong result (the numbers would be meaningless); 2 on bad arguments
(argparse); 1 on any other crash.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wddm_conformance.ddi import DXGK_START_INFO
from wddm_conformance.driver import AllocationRequest
from wddm_conformance.kernel import (
    Allocation,
    AllocationUse,
    Context,
    Kernel,
    KernelConfig,
    KernelMode,
    RenderResult,
)
from wddm_conformance.program import AllocRef, Copy, Fill, Op, Write, Xor
from wddm_conformance.reference import formats, isa
from wddm_conformance.reference.gpu import MEMORY_SEGMENT_BASE, EmulatedGpu
from wddm_conformance.sysmem import SystemMemory

KiB = 1 << 10
MiB = 1 << 20

#: Targets (see README.md).
GPU_RATIO_TARGET = 0.5
LINEARITY_TARGET = 1.5
RENDER_1MIB_TARGET_S = 1.0

FULL_GPU_SIZES = (1 * MiB, 16 * MiB, 64 * MiB)
FULL_GPU_SEGMENT = 256 * MiB
FULL_RENDER_SIZES = (64 * KiB, 128 * KiB, 256 * KiB, 512 * KiB, 1 * MiB)
QUICK_GPU_SIZES = (1 * MiB, 16 * MiB)
QUICK_GPU_SEGMENT = 64 * MiB
QUICK_RENDER_SIZES = (64 * KiB, 128 * KiB, 256 * KiB)
FULL_REPEAT = 7
QUICK_REPEAT = 3

#: Size of each of the two allocations the render programs address.
ALLOCATION_SIZE = 1 * MiB
#: Largest Copy/Fill/Xor a render program uses (small commands: the cost is per command).
MAX_OP_BYTES = 64


class BenchError(Exception):
    """A benchmark produced a wrong result, so its timings mean nothing (exit status 3)."""


# --------------------------------------------------------------------------- timing


@dataclass
class Timing:
    """Samples of one measured operation, in seconds."""

    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        """Median of the samples."""
        return statistics.median(self.samples)

    @property
    def spread(self) -> float:
        """(max - min) / median: how noisy the samples were."""
        return (max(self.samples) - min(self.samples)) / self.median if self.median else 0.0

    def summary(self) -> dict[str, Any]:
        """JSON-ready view: median, min, max, spread and every sample."""
        return {
            "median_s": self.median,
            "min_s": min(self.samples),
            "max_s": max(self.samples),
            "spread": self.spread,
            "samples_s": self.samples,
        }


def _time_once(fn: Callable[[], object]) -> float:
    """Seconds one call of ``fn`` takes; the garbage collector runs before, not during the clock."""
    gc.collect()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure_interleaved(fns: dict[str, Callable[[], object]], repeat: int) -> dict[str, Timing]:
    """Time every function ``repeat`` times, round robin, rotating the order each round."""
    names = list(fns)
    out = {name: Timing() for name in names}
    for r in range(repeat):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            out[name].samples.append(_time_once(fns[name]))
    return out


def _fmt_s(seconds: float) -> str:
    """Seconds in a readable unit."""
    if abs(seconds) < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    if abs(seconds) < 1.0:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.3f} s"


def _fmt_size(n: int) -> str:
    """Bytes as KiB / MiB."""
    return f"{n // MiB} MiB" if n >= MiB and n % MiB == 0 else f"{n // KiB} KiB"


def _verdict(ok: bool | None) -> str:
    """PASS / MISS / SKIP."""
    return "SKIP" if ok is None else "PASS" if ok else "MISS"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table, first column left-aligned, the others right-aligned."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


# --------------------------------------------------------------------------- 1. GPU COPY


@dataclass
class GpuCopyRow:
    """One size of the GPU COPY benchmark."""

    size: int
    gpu: Timing
    baseline: Timing

    @property
    def ratio(self) -> float:
        """Baseline seconds / GPU seconds: the GPU's throughput as a fraction of a memoryview copy."""
        return self.baseline.median / self.gpu.median

    def summary(self) -> dict[str, Any]:
        """JSON-ready view of the row."""
        return {
            "size_bytes": self.size,
            "gpu": self.gpu.summary(),
            "memoryview_baseline": self.baseline.summary(),
            "ratio_baseline_over_gpu": self.ratio,
            "gpu_gib_per_s": self.size / self.gpu.median / (1 << 30),
            "baseline_gib_per_s": self.size / self.baseline.median / (1 << 30),
            "target": GPU_RATIO_TARGET,
            "pass": self.ratio >= GPU_RATIO_TARGET,
        }


def _pattern(n: int) -> bytes:
    """``n`` bytes of a non-trivial pattern (so a copy that moves nothing is caught)."""
    unit = bytes(range(251))  # prime length: no alignment with powers of two
    return (unit * (n // len(unit) + 1))[:n]


def bench_gpu_copy(sizes: Sequence[int], segment_size: int, repeat: int) -> list[GpuCopyRow]:
    """Time one COPY of each size from segment offset 0 to the middle of the segment, against memoryview."""
    gpu = EmulatedGpu(
        SystemMemory(), DXGK_START_INFO(MemorySegmentSize=segment_size, ApertureSegmentSize=4 * MiB)
    )
    plain = bytearray(segment_size)
    mv = memoryview(plain)
    src, dst = 0, segment_size // 2
    rows: list[GpuCopyRow] = []
    for n in sizes:
        if n > dst:
            raise BenchError(
                f"a {_fmt_size(n)} copy does not fit in half of a {_fmt_size(segment_size)} segment"
            )
        dma = isa.encode("COPY", MEMORY_SEGMENT_BASE + dst, MEMORY_SEGMENT_BASE + src, n)
        data = _pattern(n)

        # Correctness (and warm-up: touches every page of both ranges once).
        gpu.write(MEMORY_SEGMENT_BASE + src, data)
        gpu.vram[dst : dst + n] = bytes(n)
        check = gpu.execute(dma, privileged=False)
        if check.fault is not None:
            raise BenchError(f"GPU COPY of {_fmt_size(n)} faulted: {check.fault}")
        if check.instructions != 1 or gpu.vram[dst : dst + n] != data:
            raise BenchError(f"GPU COPY of {_fmt_size(n)} did not copy the bytes")
        mv[src : src + n] = data
        mv[dst : dst + n] = mv[src : src + n]
        if plain[dst : dst + n] != data:
            raise BenchError("memoryview baseline did not copy the bytes")
        del data, check

        def run_gpu(dma: bytes = dma, n: int = n) -> None:
            result = gpu.execute(dma, privileged=False)
            if result.fault is not None:
                raise BenchError(f"GPU COPY of {_fmt_size(n)} faulted: {result.fault}")

        def run_baseline(n: int = n) -> None:
            mv[dst : dst + n] = mv[src : src + n]

        timings = measure_interleaved({"gpu": run_gpu, "baseline": run_baseline}, repeat)
        rows.append(GpuCopyRow(n, timings["gpu"], timings["baseline"]))
    mv.release()
    return rows


# --------------------------------------------------------------------------- 2. Render


def _op_sizes(k: Kernel) -> tuple[int, dict[type, int]]:
    """Bytes the driver's encoder spends on an empty program, and per operation type."""
    probe: dict[type, Op] = {
        Copy: Copy(AllocRef(1), AllocRef(2), 4),
        Xor: Xor(AllocRef(1), AllocRef(2), 4),
        Fill: Fill(AllocRef(1), 4, 0),
        Write: Write(AllocRef(1), 0),
    }
    empty = len(k.encoder.encode([]).command)
    return empty, {kind: len(k.encoder.encode([op]).command) - empty for kind, op in probe.items()}


def _random_op(rng: random.Random, kind: type) -> Op:
    """One small operation of ``kind`` at random offsets inside the 1 MiB allocations 1 and 2."""
    dst = rng.choice((1, 2))
    size = rng.randint(1, MAX_OP_BYTES)

    def at(index: int, length: int) -> AllocRef:
        return AllocRef(index, rng.randrange(ALLOCATION_SIZE - length + 1))

    if kind is Copy:
        return Copy(at(dst, size), at(3 - dst, size), size)
    if kind is Xor:
        return Xor(at(dst, size), at(3 - dst, size), size)
    if kind is Fill:
        return Fill(at(dst, size), size, rng.getrandbits(32))
    return Write(at(dst, 4), rng.getrandbits(32))


def _exact_tail(remaining: int, sizes: dict[type, int]) -> list[type] | None:
    """Operation kinds whose sizes add up to exactly ``remaining`` (fewest operations), or None."""
    best: dict[int, list[type]] = {0: []}
    for total in range(1, remaining + 1):
        options = [best[total - s] + [kind] for kind, s in sizes.items() if total - s in best]
        if options:
            best[total] = min(options, key=len)
    return best.get(remaining)


def make_program(rng: random.Random, target: int, empty: int, sizes: dict[type, int]) -> list[Op]:
    """A random mix of Copy/Fill/Write/Xor whose encoded command buffer is exactly ``target`` bytes."""
    kinds = list(sizes)
    reserve = 4 * max(sizes.values())  # leave room to land exactly on the target
    program: list[Op] = []
    remaining = target - empty
    while remaining > reserve:
        kind = rng.choice(kinds)
        program.append(_random_op(rng, kind))
        remaining -= sizes[kind]
    tail = _exact_tail(remaining, sizes)
    if tail is None:
        raise BenchError(
            f"cannot encode exactly {target} bytes with operations of {sorted(sizes.values())} bytes"
        )
    program.extend(_random_op(rng, kind) for kind in tail)
    return program


_HEADER = struct.Struct("<BBH")
_LAYOUTS = {c.opcode: c.struct for c in formats.COMMANDS}


def calibration_loop(command: bytes) -> int:
    """The least Python work any Render does per command: unpack, look up, unpack, append, store.

    A baseline in the same run with a comparable number of dict/list operations per
    command: ``render / calibration`` says how many bare parse passes one Render costs.
    """
    seen: dict[int, int] = {}
    out: list[tuple[int, ...]] = []
    pos = 0
    end = len(command)
    while pos < end:
        opcode, _, length = _HEADER.unpack_from(command, pos)
        fields = _LAYOUTS[opcode].unpack_from(command, pos)
        out.append(fields)
        seen[pos] = opcode
        pos += length
    return len(out) + len(seen)


@dataclass
class RenderRow:
    """One command-buffer size of the Render benchmark."""

    size: int
    commands: int
    render: Timing
    calibration: Timing
    instructions: int
    patch_locations: int

    @property
    def per_byte(self) -> float:
        """Median seconds per byte of command buffer."""
        return self.render.median / self.size

    def summary(self, smallest: RenderRow) -> dict[str, Any]:
        """JSON-ready view of the row; per-byte cost relative to ``smallest``."""
        return {
            "size_bytes": self.size,
            "commands": self.commands,
            "gpu_instructions": self.instructions,
            "patch_locations": self.patch_locations,
            "render": self.render.summary(),
            "seconds_per_mib": self.render.median * MiB / self.size,
            "ns_per_byte": self.per_byte * 1e9,
            "per_byte_vs_smallest": self.per_byte / smallest.per_byte,
            "calibration": self.calibration.summary(),
            "render_over_calibration": self.render.median / self.calibration.median,
        }


@dataclass
class RenderReport:
    """The Render benchmark: rows plus the derived linearity figures."""

    rows: list[RenderRow]
    mode: str
    config: dict[str, Any]

    @property
    def linearity(self) -> float:
        """Per-byte cost at the largest size / per-byte cost at the smallest."""
        return self.rows[-1].per_byte / self.rows[0].per_byte

    def fit(self) -> tuple[float, float, float]:
        """Least squares ``seconds = fixed + per_byte * bytes`` over the medians: (fixed, per_byte, R^2)."""
        xs = [float(r.size) for r in self.rows]
        ys = [r.render.median for r in self.rows]
        if len(xs) < 2:
            return 0.0, ys[0] / xs[0], 1.0
        slope, intercept = statistics.linear_regression(xs, ys)
        mean = statistics.fmean(ys)
        ss_tot = sum((y - mean) ** 2 for y in ys)
        ss_res = sum((y - (intercept + slope * x)) ** 2 for x, y in zip(xs, ys, strict=True))
        return intercept, slope, 1.0 - ss_res / ss_tot if ss_tot else 1.0

    def one_mib(self) -> RenderRow | None:
        """The 1 MiB row, if measured."""
        return next((r for r in self.rows if r.size == MiB), None)


def _setup_kernel() -> tuple[Kernel, Context, Allocation, Allocation]:
    """The kernel of the brief: reference driver, always-repatch, 4 MiB DMA buffers, two resident 1 MiB allocations."""
    k = Kernel(
        "reference",
        KernelMode.parse("always-repatch"),
        KernelConfig(dma_buffer_size=4 * MiB, patch_list_entries=1 << 18, ddi_timeout=0),
    )
    dev = k.create_device()
    ctx = k.create_context(dev)
    a, b = k.create_allocations(
        dev,
        [
            AllocationRequest(ALLOCATION_SIZE, aperture=False),
            AllocationRequest(ALLOCATION_SIZE, aperture=False),
        ],
    )
    k.cpu_write(a, 0, bytes(ALLOCATION_SIZE))  # makes them resident
    k.cpu_write(b, 0, bytes(ALLOCATION_SIZE))
    return k, ctx, a, b


def bench_render(sizes: Sequence[int], repeat: int, seed: int) -> RenderReport:
    """Time ``Kernel.render`` on command buffers of each size, interleaved with the calibration loop."""
    k, ctx, a, b = _setup_kernel()
    uses: list[Allocation | AllocationUse | None] = [
        None,
        AllocationUse(a, True),
        AllocationUse(b, True),
    ]
    empty, op_sizes = _op_sizes(k)
    rng = random.Random(seed)
    commands: dict[int, bytes] = {}
    rows_info: dict[int, tuple[int, int, int]] = {}
    for size in sizes:
        program = make_program(rng, size, empty, op_sizes)
        command = k.encoder.encode(program).command
        if len(command) != size:
            raise BenchError(f"program for {_fmt_size(size)} encoded to {len(command)} bytes")
        # Correctness (and warm-up): the effect must match the program model.
        expected = k.expected_after([None, a, b], program)
        result = k.render(ctx, command, uses)
        _check_render(result, size)
        if k.gpu_view(a) != expected[1] or k.gpu_view(b) != expected[2]:
            raise BenchError(
                f"the {_fmt_size(size)} program left memory different from the program model"
            )
        sub = result.submissions[0]
        rows_info[size] = (len(program), sub.execution.instructions, len(sub.patch_locations))
        commands[size] = command

    fns: dict[str, Callable[[], object]] = {}
    for size, command in commands.items():

        def run_render(command: bytes = command, size: int = size) -> None:
            _check_render(k.render(ctx, command, uses), size)

        def run_calibration(command: bytes = command) -> None:
            calibration_loop(command)

        fns[f"render:{size}"] = run_render
        fns[f"calibration:{size}"] = run_calibration
    timings = measure_interleaved(fns, repeat)
    rows = [
        RenderRow(
            size,
            rows_info[size][0],
            timings[f"render:{size}"],
            timings[f"calibration:{size}"],
            rows_info[size][1],
            rows_info[size][2],
        )
        for size in sizes
    ]
    cfg = k.config
    config = {
        "dma_buffer_size": cfg.dma_buffer_size,
        "patch_list_entries": cfg.patch_list_entries,
        "ddi_timeout": cfg.ddi_timeout,
        "check_isolation": cfg.check_isolation,
        "allocation_size": ALLOCATION_SIZE,
        "max_op_bytes": MAX_OP_BYTES,
        "seed": seed,
    }
    return RenderReport(rows, str(k.mode), config)


def _check_render(result: RenderResult, size: int) -> None:
    """Raise BenchError unless the render succeeded in one patched, fault-free submission."""
    if not result.ok:
        raise BenchError(
            f"render of {_fmt_size(size)} failed: status 0x{result.status:08X} {result.refused}"
        )
    if len(result.submissions) != 1:
        raise BenchError(
            f"render of {_fmt_size(size)} made {len(result.submissions)} submissions, expected 1"
        )
    sub = result.submissions[0]
    if sub.execution.fault is not None or not sub.patched:
        raise BenchError(
            f"render of {_fmt_size(size)}: fault {sub.execution.fault}, patched {sub.patched}"
        )


# --------------------------------------------------------------------------- report


def _git_revision() -> dict[str, Any]:
    """The commit and whether the working tree had local changes (best effort)."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}
    return {"commit": head.stdout.strip(), "dirty": bool(dirty.stdout.strip())}


def report_gpu(rows: list[GpuCopyRow], repeat: int) -> tuple[str, dict[str, Any]]:
    """Text table and JSON for the GPU COPY benchmark."""
    text_rows = [
        [
            _fmt_size(r.size),
            _fmt_s(r.gpu.median),
            f"{r.size / r.gpu.median / (1 << 30):.2f}",
            _fmt_s(r.baseline.median),
            f"{r.size / r.baseline.median / (1 << 30):.2f}",
            f"{r.ratio:.4g}",
            f">= {GPU_RATIO_TARGET}",
            _verdict(r.ratio >= GPU_RATIO_TARGET),
            f"{r.gpu.spread:.0%}/{r.baseline.spread:.0%}",
        ]
        for r in rows
    ]
    headers = [
        "size",
        "GPU COPY",
        "GiB/s",
        "memoryview",
        "GiB/s",
        "ratio",
        "target",
        "",
        "spread gpu/mv",
    ]
    text = f"1. GPU COPY vs memoryview copy (median of {repeat}; ratio = memoryview s / GPU s)\n"
    text += _table(headers, text_rows)
    return text, {"repeat": repeat, "rows": [r.summary() for r in rows]}


def report_render(rep: RenderReport, repeat: int) -> tuple[str, dict[str, Any]]:
    """Text table and JSON for the Render benchmark."""
    first = rep.rows[0]
    text_rows = [
        [
            _fmt_size(r.size),
            str(r.commands),
            _fmt_s(r.render.median),
            f"{r.render.median * MiB / r.size:.3f}",
            f"{r.per_byte * 1e9:.0f}",
            f"{r.per_byte / first.per_byte:.2f}",
            _fmt_s(r.calibration.median),
            f"{r.render.median / r.calibration.median:.0f}x",
            f"{r.render.spread:.0%}",
        ]
        for r in rep.rows
    ]
    headers = [
        "command buffer",
        "cmds",
        "render",
        "s/MiB",
        "ns/B",
        f"per-B vs {_fmt_size(first.size)}",
        "calib loop",
        "render/calib",
        "spread",
    ]
    fixed, slope, r2 = rep.fit()
    text = (
        f"2. Kernel.render end to end, mode {rep.mode} (median of {repeat}; "
        f"calib = bare Python parse loop over the same bytes)\n"
    )
    text += _table(headers, text_rows)
    text += (
        f"\n   least-squares fit over the medians: {_fmt_s(fixed)} fixed + {slope * MiB:.3f} s/MiB "
        f"(R^2 {r2:.4f})"
    )
    data = {
        "repeat": repeat,
        "mode": rep.mode,
        "config": rep.config,
        "rows": [r.summary(first) for r in rep.rows],
        "linearity_per_byte_largest_over_smallest": rep.linearity,
        "fit": {"fixed_s": fixed, "seconds_per_mib": slope * MiB, "r_squared": r2},
    }
    return text, data


def targets(gpu: list[GpuCopyRow], rep: RenderReport) -> tuple[str, list[dict[str, Any]]]:
    """The summary of every target: measured value, target, PASS/MISS/SKIP."""
    largest_gpu = gpu[-1]
    one = rep.one_mib()
    fixed, slope, _ = rep.fit()
    predicted = fixed + slope * MiB
    out: list[dict[str, Any]] = [
        {
            "name": f"GPU COPY {_fmt_size(largest_gpu.size)}: memoryview s / GPU s",
            "measured": largest_gpu.ratio,
            "target": f">= {GPU_RATIO_TARGET}",
            "pass": largest_gpu.ratio >= GPU_RATIO_TARGET,
        },
        {
            "name": f"render per-byte cost {_fmt_size(rep.rows[-1].size)} / {_fmt_size(rep.rows[0].size)}",
            "measured": rep.linearity,
            "target": f"<= {LINEARITY_TARGET}",
            "pass": rep.linearity <= LINEARITY_TARGET,
        },
        {
            "name": "render of a 1 MiB command buffer, seconds"
            + ("" if one is not None else f" (not measured; fit predicts {predicted:.3f})"),
            "measured": one.render.median if one is not None else None,
            "target": f"< {RENDER_1MIB_TARGET_S}",
            "pass": None if one is None else one.render.median < RENDER_1MIB_TARGET_S,
        },
    ]
    rows = [
        [
            t["name"],
            "-" if t["measured"] is None else f"{t['measured']:.4g}",
            t["target"],
            _verdict(t["pass"]),
        ]
        for t in out
    ]
    return "Targets\n" + _table(["target", "measured", "wanted", ""], rows), out


def main(argv: Sequence[str] | None = None) -> int:
    """Run both benchmarks, print the tables, optionally write JSON; 0 unless something broke."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--repeat",
        type=int,
        default=None,
        help=f"repeats per measurement (default {FULL_REPEAT}, {QUICK_REPEAT} with --quick)",
    )
    parser.add_argument(
        "--json", type=Path, default=None, metavar="PATH", help="also write the results as JSON"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: fewer repeats, GPU sizes up to 16 MiB, command buffers up to 256 KiB",
    )
    parser.add_argument(
        "--seed", type=int, default=1, help="seed of the random render programs (default 1)"
    )
    args = parser.parse_args(argv)
    repeat = args.repeat if args.repeat is not None else QUICK_REPEAT if args.quick else FULL_REPEAT
    if repeat < 1:
        parser.error("--repeat must be at least 1")
    gpu_sizes, segment = (
        (QUICK_GPU_SIZES, QUICK_GPU_SEGMENT) if args.quick else (FULL_GPU_SIZES, FULL_GPU_SEGMENT)
    )
    render_sizes = QUICK_RENDER_SIZES if args.quick else FULL_RENDER_SIZES

    started = time.perf_counter()
    try:
        gpu_rows = bench_gpu_copy(gpu_sizes, segment, repeat)
        gc.collect()
        render = bench_render(render_sizes, repeat, args.seed)
    except BenchError as exc:
        print(f"benchmark produced a wrong result: {exc}", file=sys.stderr)
        return 3
    elapsed = time.perf_counter() - started

    gpu_text, gpu_json = report_gpu(gpu_rows, repeat)
    render_text, render_json = report_render(render, repeat)
    target_text, target_json = targets(gpu_rows, render)
    env = {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        **_git_revision(),
    }
    print(
        f"wddm-conformance benchmarks{' (--quick)' if args.quick else ''}: Python {env['python']}, "
        f"{env['cpus']} CPU(s), {env['platform']}"
    )
    print()
    print(gpu_text)
    print()
    print(render_text)
    print()
    print(target_text)
    print(f"\n(total {elapsed:.1f} s; targets that MISS do not change the exit status)")
    if args.json is not None:
        payload = {
            "quick": args.quick,
            "repeat": repeat,
            "environment": env,
            "elapsed_s": elapsed,
            "gpu_copy": gpu_json,
            "render": render_json,
            "targets": target_json,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
