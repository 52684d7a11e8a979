"""Fuzz target for DxgkDdiCreateAllocation: private driver data, counts, resources.

An input is a list of batches, each one DxgkDdiCreateAllocation call: plain
allocations, a new resource, or more allocations for the resource an earlier batch
made. Each allocation of a batch is either a request the driver's encoder turns into
private data (valid: a request every driver must grant, INTERPRETING §3, is accepted,
ALC-PRIVDATA; one combining special kinds may be refused) or raw bytes -- the
encoder's data damaged, or anything -- which the driver may reject with a documented
status. The kernel judges every answer: statuses (ALC-STATUS), the DXGK_ALLOCATIONINFO
it filled (ALC-INFO, ALC-HANDLE, ALC-GDISIZE, ALC-HISTORY), hResource (ALC-RESOURCE),
and that a failed batch leaves nothing live behind (ALC-ATOMIC). Everything created is
destroyed again at the end of the input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..driver import AllocationRequest
from ..kernel import Allocation
from .base import RigTarget
from .data import Reader, Writer

MAX_BATCHES = 3
MAX_PER_BATCH = 4
RESOURCES = ("plain", "new-resource", "same-resource")
FLAGS = ("cpu_visible", "swizzled", "aperture", "aperture_only", "history_buffer", "alternate_va")


@dataclass(frozen=True)
class Spec:
    """One allocation of a batch: a request (``raw`` None) or raw private data."""

    request: AllocationRequest | None = None
    raw: bytes | None = None
    flip: int = -1  # with a request: flip this byte of its encoded data (-1: none)


@dataclass(frozen=True)
class Batch:
    resource: int = 0  # index into RESOURCES
    specs: tuple[Spec, ...] = ()


def _read_request(r: Reader) -> AllocationRequest:
    bits = r.u8()
    size = 4 * (1 + r.u16() % (16 << 10))  # up to 64 KiB
    rows = r.u8() % 17
    flags = {name: bool(bits >> i & 1) for i, name in enumerate(FLAGS)}
    if flags["swizzled"]:
        flags["cpu_visible"] = True  # the interface's swizzled surfaces are CPU-visible
    if rows:
        size = 1 + (size - 1) % 4096  # a GDI row
    return AllocationRequest(size, gdi_rows=rows, **flags)


def _write_request(w: Writer, q: AllocationRequest) -> None:
    w.u8(sum(1 << i for i, name in enumerate(FLAGS) if getattr(q, name)))
    w.u16(q.size // 4 - 1).u8(q.gdi_rows)


@dataclass(frozen=True)
class CreateInput:
    batches: tuple[Batch, ...] = ()

    @classmethod
    def decode(cls, data: bytes) -> CreateInput:
        r = Reader(data)
        batches = []
        for _ in range(1 + r.u8() % MAX_BATCHES):
            resource = r.u8() % len(RESOURCES)
            specs = []
            for _ in range(1 + r.u8() % MAX_PER_BATCH):
                how = r.u8() % 3
                if how == 0:
                    specs.append(Spec(_read_request(r)))
                elif how == 1:
                    request = _read_request(r)
                    specs.append(Spec(request, flip=r.u8()))
                else:
                    specs.append(Spec(raw=r.blob(64)))
            batches.append(Batch(resource, tuple(specs)))
        return cls(tuple(batches))

    def encode(self) -> bytes:
        w = Writer().u8(len(self.batches) - 1)
        for b in self.batches:
            w.u8(b.resource).u8(len(b.specs) - 1)
            for s in b.specs:
                if s.raw is not None:
                    w.u8(2).blob(s.raw)
                elif s.request is not None:
                    w.u8(0 if s.flip < 0 else 1)
                    _write_request(w, s.request)
                    if s.flip >= 0:
                        w.u8(s.flip)
        return w.bytes()


class CreateAllocationTarget(RigTarget):
    """DxgkDdiCreateAllocation batches, with the kernel's judgement of every answer."""

    name: ClassVar[str] = "create_allocation"
    summary: ClassVar[str] = "DxgkDdiCreateAllocation: private driver data, counts, resources"

    def decode(self, data: bytes) -> CreateInput:
        return CreateInput.decode(data)

    def _run(self, s: CreateInput) -> None:
        rig = self.rig
        k = rig.kernel
        made: list[Allocation] = []
        resource: int | None = None
        try:
            for batch in s.batches:
                datas: list[AllocationRequest | bytes] = []
                for spec in batch.specs:
                    if spec.raw is not None:
                        datas.append(spec.raw)
                    elif spec.request is not None and spec.flip >= 0:
                        raw = bytearray(k.encoder.allocation_private_data(spec.request))
                        if raw:
                            raw[spec.flip % len(raw)] ^= 1 << (spec.flip >> 5)
                        datas.append(bytes(raw))
                    elif spec.request is not None:
                        datas.append(spec.request)
                valid = all(
                    isinstance(d, AllocationRequest)
                    and d.must_be_granted
                    and (k.caps.SupportsAlternateVA or not d.alternate_va)
                    for d in datas
                )
                kind = RESOURCES[batch.resource]
                asked = (
                    None if kind == "plain" else (resource or 0) if kind == "same-resource" else 0
                )
                created = k.create_allocations(
                    rig.device, datas, resource=asked, allow_failure=not valid
                )
                made += created
                if created and asked is not None:
                    resource = created[0].resource
        finally:
            if self._rig is rig:
                k.destroy_allocations(made)

    def describe(self, data: bytes) -> str:
        s = self.decode(data)
        lines = ["create_allocation input:"]
        for i, b in enumerate(s.batches, 1):
            lines.append(f"  DxgkDdiCreateAllocation #{i} ({RESOURCES[b.resource]}):")
            for j, spec in enumerate(b.specs):
                if spec.raw is not None:
                    lines.append(
                        f"    {j}: raw private data {spec.raw.hex()} ({len(spec.raw)} bytes)"
                    )
                elif spec.flip >= 0:
                    lines.append(
                        f"    {j}: {spec.request} with byte {spec.flip} of its data damaged"
                    )
                else:
                    lines.append(f"    {j}: {spec.request}")
        return "\n".join(lines)

    def seeds(self) -> list[tuple[str, bytes]]:
        encoder = self.rig.kernel.encoder
        requests = {
            "plain": AllocationRequest(4096),
            "memory": AllocationRequest(65536, aperture=False),
            "visible": AllocationRequest(12288, cpu_visible=True),
            "swizzled": AllocationRequest(8192, cpu_visible=True, swizzled=True),
            "aperture-only": AllocationRequest(16384, aperture_only=True),
            "history": AllocationRequest(4096, history_buffer=True),
            "alternate-va": AllocationRequest(8192, aperture=False, alternate_va=True),
            "gdi": AllocationRequest(1000, gdi_rows=7),
            "gdi-visible": AllocationRequest(1000, cpu_visible=True, gdi_rows=7),
        }
        out = [
            (f"request-{n}", CreateInput((Batch(0, (Spec(q),)),)).encode())
            for n, q in requests.items()
        ]
        every = tuple(Spec(q) for q in list(requests.values())[:4])
        out.append(("batch", CreateInput((Batch(0, every),)).encode()))
        out.append(("resource", CreateInput((Batch(1, every[:2]), Batch(2, every[2:]))).encode()))
        bad = AllocationRequest(4096, cpu_visible=True)
        data = encoder.allocation_private_data(bad)
        out.append(("damaged", CreateInput((Batch(0, (Spec(bad), Spec(bad, flip=3))),)).encode()))
        out.append(("raw", CreateInput((Batch(0, (Spec(raw=data[:-1]),)),)).encode()))
        out.append(
            (
                "half-valid",
                CreateInput((Batch(1, (Spec(bad), Spec(raw=b"\0" * len(data)))),)).encode(),
            )
        )
        return out

    def dictionary(self) -> list[bytes]:
        encoder = self.rig.kernel.encoder
        data = encoder.allocation_private_data(AllocationRequest(4096))
        return [data, data[:4], data[4:8], (4096).to_bytes(4, "little"), b"\xff\xff\xff\xff"]
