"""The GPU model's CPU views of a swizzled allocation get its layout (INTERPRETING.md §1)."""

from __future__ import annotations

import random
from typing import Any

from wddm_conformance.driver import AllocationRequest, SurfaceLayout, load_driver
from wddm_conformance.kernel import Kernel
from wddm_conformance.reference.gpu import EmulatedGpu
from wddm_conformance.reference.isa import swizzle, unswizzle
from wddm_conformance.reference.miniport import ReferenceMiniport

SEEN: list[tuple[str, SurfaceLayout]] = []


class RecordingGpu(EmulatedGpu):
    def swizzle(self, linear: Any, layout: SurfaceLayout | None = None) -> bytes:
        assert layout is not None
        SEEN.append(("swizzle", layout))
        return super().swizzle(linear, layout)

    def unswizzle(self, tiled: Any, layout: SurfaceLayout | None = None) -> bytes:
        assert layout is not None
        SEEN.append(("unswizzle", layout))
        return super().unswizzle(tiled, layout)

    def read_linear(self, address: int, length: int, layout: SurfaceLayout | None = None) -> bytes:
        assert layout is not None
        SEEN.append(("read_linear", layout))
        return super().read_linear(address, length, layout)

    def write_linear(self, address: int, data: Any, layout: SurfaceLayout | None = None) -> None:
        assert layout is not None
        SEEN.append(("write_linear", layout))
        super().write_linear(address, data, layout)


class Contract20Gpu(EmulatedGpu):
    """A model written before the layout parameter: called without it."""

    def swizzle(self, linear: Any) -> bytes:  # type: ignore[override]
        return swizzle(linear)

    def unswizzle(self, tiled: Any) -> bytes:  # type: ignore[override]
        return unswizzle(tiled)

    def read_linear(self, address: int, length: int) -> bytes:  # type: ignore[override]
        return unswizzle(self.read(address, length))

    def write_linear(self, address: int, data: Any) -> None:  # type: ignore[override]
        self.write(address, swizzle(data))


class Recording(ReferenceMiniport):
    GPU_MODEL = RecordingGpu


class Contract20(ReferenceMiniport):
    GPU_MODEL = Contract20Gpu


def _round_trip(k: Kernel) -> tuple[Any, bytes]:
    request = AllocationRequest(16 << 10, cpu_visible=True, swizzled=True, aperture=False)
    (a,) = k.create_allocations(k.create_device(), [request])
    data = random.Random(5).randbytes(a.size)
    k.cpu_write(a, 0, data)
    assert k.gpu_view(a) == swizzle(data)
    k.evict(a)
    k.make_resident(a)
    assert k.cpu_read(a) == data
    return a, k.encoder.allocation_private_data(request)


def test_every_cpu_view_of_a_swizzled_allocation_gets_its_layout() -> None:
    SEEN.clear()
    a, private = _round_trip(Kernel(load_driver(f"{__name__}:Recording")))
    assert {name for name, _ in SEEN} == {"swizzle", "unswizzle", "read_linear", "write_linear"}
    assert {layout for _, layout in SEEN} == {
        SurfaceLayout(a.info.Size, a.info.PitchAlignedSize, private)
    }


def test_a_gpu_model_without_the_layout_parameter_still_works() -> None:
    _round_trip(Kernel(load_driver(f"{__name__}:Contract20")))
