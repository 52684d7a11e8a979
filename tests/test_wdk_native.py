"""WDK-style native drivers: the compatibility headers, the runtime, registration through
DriverEntry + DxgkInitialize, and the Driver Verifier checks of the runtime.

The drivers are tests/native_drivers/wdk_pool.c and broken variants of it (its
WDK_BUG_* macros); each is built once per machine (cached) with `native build --wdk`.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

import cffi
import pytest

from wddm_conformance.cli import main
from wddm_conformance.ddi import DXGKARG_RENDER
from wddm_conformance.driver import AllocationRequest, load_driver
from wddm_conformance.errors import BugCheck, DriverLoadError, DriverViolation
from wddm_conformance.kernel import Kernel
from wddm_conformance.memory import Ptr, UserBuffer, ViolationKind
from wddm_conformance.native import abi, adapter
from wddm_conformance.native.abi import open_library
from wddm_conformance.native.adapter import NativeMiniport, _wdk_invoke
from wddm_conformance.native.build import (
    NativeBuildError,
    build,
    wdk_cflags,
    wdk_include_dir,
    wdk_runtime_source,
)

HERE = Path(__file__).resolve().parent
DRIVER = HERE / "native_drivers" / "wdk_pool.c"
CC = shutil.which("cc") or shutil.which("gcc")

pytestmark = pytest.mark.skipif(CC is None, reason="no C compiler (install gcc, or set CC)")

#: Structures wddm_native.h declares with its own, harness-only layout (the WDK's differ).
HARNESS_ONLY = {"DXGKRNL_INTERFACE", "DXGK_START_INFO"}


#: wdk_pool.c's switches that are not bugs (WDK_DIRECT_COPY, ...); the others are WDK_BUG_*.
OPTIONS = {"DIRECT_COPY", "DIRECT_READS"}


@cache
def _library(*bugs: str) -> Path:
    name = "wdkpool" + "".join(f"-{b.lower()}" for b in bugs)
    defines = [f"WDK_{b}" if b in OPTIONS else f"WDK_BUG_{b}" for b in bugs]
    return build([DRIVER], name=name, defines=defines, wdk=True)


def _kernel(*bugs: str) -> Kernel:
    return Kernel(f"native:{_library(*bugs)}")


def _adapter(kernel: Kernel) -> NativeMiniport:
    assert isinstance(kernel.driver, NativeMiniport)
    return kernel.driver


def _compile_and_run(source: str, tmp_path: Path, flags: list[str]) -> list[int]:
    path = tmp_path / "probe.c"
    path.write_text(source)
    exe = tmp_path / "probe"
    assert CC is not None
    subprocess.run([CC, "-std=c11", *flags, str(path), "-o", str(exe)], check=True)
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    return [int(x) for x in out.split()]


# --------------------------------------------------------------------------- the headers


@pytest.mark.parametrize("compiler", ["cc", "clang"])
def test_the_wdk_headers_compile_cleanly_as_c11_and_c17(compiler: str, tmp_path: Path) -> None:
    path = CC if compiler == "cc" else shutil.which("clang")
    if path is None:
        pytest.skip("clang is not installed")
    source = tmp_path / "h.c"
    source.write_text(
        "#include <ntddk.h>\n#include <dispmprt.h>\n#include <d3dkmddi.h>\nint main(void) { return 0; }\n"
    )
    for std in ("-std=c11", "-std=c17"):
        done = subprocess.run(
            [
                path,
                std,
                "-Wall",
                "-Wextra",
                "-pedantic",
                "-Werror",
                *wdk_cflags(),
                "-c",
                str(source),
                "-o",
                str(tmp_path / "h.o"),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr


#: Byte offsets of the x64 WDK layout (published layout data of d3dkmddi.h, cross-checked
#: with the field order of the documentation pages): where a header written from the
#: documentation alone could go wrong (a member before or after a union, the size of a
#: union, padding after a UINT).
WDK_X64_OFFSETS: dict[str, dict[str, int]] = {
    "DXGKARG_BUILDPAGINGBUFFER": {
        "DmaSize": 8,
        "pDmaBufferPrivateData": 16,
        "DmaBufferPrivateDataSize": 24,
        "Operation": 28,
        "MultipassOffset": 32,
        "Transfer": 40,
        "Transfer.TransferSize": 56,
        "Transfer.Source": 64,
        "Transfer.Destination": 80,
        "Transfer.Flags": 96,
        "Transfer.MdlOffset": 100,
        "DiscardContent.Flags": 48,
        "DiscardContent.SegmentId": 52,
        "DiscardContent.SegmentAddress": 56,
        "ReadPhysical.PhysicalAddress": 48,
        "MapApertureSegment.hAllocation": 48,
        "MapApertureSegment.SegmentId": 56,
        "MapApertureSegment.OffsetInPages": 64,
        "MapApertureSegment.NumberOfPages": 72,
        "MapApertureSegment.pMdl": 80,
        "MapApertureSegment.Flags": 88,
        "MapApertureSegment.MdlOffset": 92,
        "UnmapApertureSegment.DummyPage": 80,
        "SpecialLockTransfer.SwizzlingRangeId": 100,
        "SpecialLockTransfer.SwizzlingRangeData": 104,
        "hSystemContext": 296,
        "DmaBufferGpuVirtualAddress": 304,
        "DmaBufferWriteOffset": 312,
    },
    "DXGKARG_RENDER": {
        "CommandLength": 8,
        "pDmaBuffer": 16,
        "DmaSize": 24,
        "pDmaBufferPrivateData": 32,
        "DmaBufferPrivateDataSize": 40,
        "pAllocationList": 48,
        "AllocationListSize": 56,
        "pPatchLocationListIn": 64,
        "PatchLocationListInSize": 72,
        "pPatchLocationListOut": 80,
        "PatchLocationListOutSize": 88,
        "MultipassOffset": 92,
        "DmaBufferSegmentId": 96,
        "DmaBufferPhysicalAddress": 104,
    },
    "DXGKARG_PATCH": {
        "DmaBufferSegmentId": 8,
        "DmaBufferPhysicalAddress": 16,
        "pDmaBuffer": 24,
        "DmaBufferSize": 32,
        "DmaBufferSubmissionStartOffset": 36,
        "DmaBufferSubmissionEndOffset": 40,
        "pDmaBufferPrivateData": 48,
        "DmaBufferPrivateDataSize": 56,
        "DmaBufferPrivateDataSubmissionStartOffset": 60,
        "DmaBufferPrivateDataSubmissionEndOffset": 64,
        "pAllocationList": 72,
        "AllocationListSize": 80,
        "pPatchLocationList": 88,
        "PatchLocationListSize": 96,
        "PatchLocationListSubmissionStart": 100,
        "PatchLocationListSubmissionLength": 104,
        "SubmissionFenceId": 108,
        "Flags": 112,
        "EngineOrdinal": 116,
    },
    "DXGKARG_SUBMITCOMMAND": {
        "DmaBufferSegmentId": 8,
        "DmaBufferPhysicalAddress": 16,
        "DmaBufferSize": 24,
        "DmaBufferSubmissionStartOffset": 28,
        "DmaBufferSubmissionEndOffset": 32,
        "pDmaBufferPrivateData": 40,
        "DmaBufferPrivateDataSize": 48,
        "SubmissionFenceId": 60,
        "Flags": 72,
    },
    "DXGKARG_CREATEALLOCATION": {
        "PrivateDriverDataSize": 8,
        "NumAllocations": 12,
        "pAllocationInfo": 16,
        "hResource": 24,
        "Flags": 32,
    },
    "DXGK_ALLOCATIONINFO": {
        "PrivateDriverDataSize": 8,
        "Alignment": 12,
        "Size": 16,
        "PitchAlignedSize": 24,
        "HintedBank": 32,
        "PreferredSegment": 36,
        "SupportedReadSegmentSet": 40,
        "SupportedWriteSegmentSet": 44,
        "EvictionSegmentSet": 48,
        "MaximumRenamingListLength": 52,
        "hAllocation": 56,
        "Flags": 64,
        "pAllocationUsageHint": 72,
        "AllocationPriority": 80,
    },
    "DXGK_ALLOCATIONLIST": {"PhysicalAddress": 16},
}


def test_the_wdk_headers_have_the_x64_wdk_offsets(tmp_path: Path) -> None:
    lines = ["#include <ntddk.h>", "#include <dispmprt.h>", "#include <d3dkmddi.h>"]
    lines += ["#include <stddef.h>", "#include <stdio.h>", "int main(void) {"]
    labels = []
    for struct, fields in WDK_X64_OFFSETS.items():
        for designator in fields:
            lines.append(f'printf("%zu\\n", offsetof({struct}, {designator}));')
            labels.append((f"{struct}.{designator}", fields[designator]))
    lines += ["return 0;", "}"]
    got = _compile_and_run("\n".join(lines), tmp_path, wdk_cflags())
    wrong = [
        f"{name}: {n}, not {want}" for (name, want), n in zip(labels, got, strict=True) if n != want
    ]
    assert not wrong, wrong


def _designators(ctype: str) -> list[tuple[str, int]]:
    """Every non-bit-field member of a cffi structure, nested ones as ``A.B``, with its offset."""
    f = abi.ffi()

    def walk(t: object, prefix: str, base: int) -> list[tuple[str, int]]:
        out = []
        for name, field in t.fields:  # type: ignore[attr-defined]
            if field.bitsize != -1:
                continue
            out.append((prefix + name, base + field.offset))
            if field.type.kind in ("struct", "union"):
                out.extend(walk(field.type, f"{prefix}{name}.", base + field.offset))
        return out

    return walk(f.typeof(ctype), "", 0)


def test_every_argument_block_has_the_same_layout_in_the_wdk_headers_and_the_harness(
    tmp_path: Path,
) -> None:
    """One layout per structure: the harness marshals wddm_native.h's, WDK code compiles
    against wdk/; the compiler must put every member the harness knows at the same offset
    and give each structure the same size."""
    f = abi.ffi()
    wdk_text = "\n".join(h.read_text() for h in wdk_include_dir().glob("*.h"))
    # The harness names some nested types the WDK leaves anonymous (the members of
    # BUILDPAGINGBUFFER's union): those are compared through the structure holding them.
    names = sorted(
        n
        for n in set(re.findall(r"\}\s*([A-Z_0-9]+)\s*(?:,|;)", abi.cdef_text()))
        if f.typeof(n).kind == "struct"
        and n not in HARNESS_ONLY
        and re.search(rf"(\}}\s*|typedef \w+ ){n}\b", wdk_text)
    )
    assert {
        "DXGKARG_RENDER",
        "DXGKARG_PATCH",
        "DXGKARG_BUILDPAGINGBUFFER",
        "DXGK_ALLOCATIONINFO",
        "DXGKARG_CREATEALLOCATION",
        "DXGK_ALLOCATIONLIST",
        "D3DDDI_PATCHLOCATIONLIST",
    } <= set(names)
    lines = ["#include <dispmprt.h>", "#include <stdio.h>", "int main(void) {"]
    expected = []
    labels = []
    for name in names:
        lines.append(f'printf("%zu\\n", sizeof({name}));')
        expected.append(f.sizeof(name))
        labels.append(f"sizeof({name})")
        for designator, offset in _designators(name):
            lines.append(f'printf("%zu\\n", offsetof({name}, {designator}));')
            expected.append(offset)
            labels.append(f"offsetof({name}, {designator})")
    # The runtime's views of the WDK-only structures the harness fills.
    views = [
        (
            "WDDM_WDK_START_INFO",
            "DXGK_START_INFO",
            [
                ("RequiredDmaQueueEntry", "RequiredDmaQueueEntry"),
                ("AdapterGuid", "AdapterGuid"),
                ("AdapterLuidLowPart", "AdapterLuid.LowPart"),
                ("AdapterLuidHighPart", "AdapterLuid.HighPart"),
                ("MemorySegmentSize", "MemorySegmentSize"),
                ("ApertureSegmentSize", "ApertureSegmentSize"),
            ],
        ),
        (
            "WDDM_WDK_DXGKRNL_INTERFACE",
            "DXGKRNL_INTERFACE",
            [
                ("Size", "Size"),
                ("Version", "Version"),
                ("DeviceHandle", "DeviceHandle"),
                ("Callbacks", "DxgkCbEvalAcpiMethod"),
            ],
        ),
    ]
    for view, wdk, pairs in views:
        lines.append(f'printf("%zu\\n", sizeof({wdk}));')
        expected.append(f.sizeof(view))
        labels.append(f"sizeof({wdk})")
        fields = dict(f.typeof(view).fields)
        for mine, theirs in pairs:
            lines.append(f'printf("%zu\\n", offsetof({wdk}, {theirs}));')
            expected.append(fields[mine].offset)
            labels.append(f"offsetof({wdk}, {theirs})")
    lines += ["return 0;", "}"]
    printed = _compile_and_run("\n".join(lines), tmp_path, wdk_cflags())
    assert dict(zip(labels, printed, strict=True)) == dict(zip(labels, expected, strict=True))
    assert f.sizeof("DXGK_ALLOCATIONLIST") == 24 and f.sizeof("D3DDDI_PATCHLOCATIONLIST") == 24


def test_the_runtime_kinds_are_the_headers() -> None:
    text = abi.runtime_header_path().read_text()
    for name in ("POOL", "IRQL", "ASSERT", "USERFAULT", "EXCEPTION", "DRIVER"):
        value = getattr(abi, f"WDK_KIND_{name}")
        assert re.search(rf"#define WDDM_WDK_KIND_{name} {value}\b", text), name


def test_cflags_prints_the_include_directory_and_the_runtime(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["native", "cflags"]) == 0
    flags = capsys.readouterr().out.split()
    assert f"-I{wdk_include_dir()}" in flags and "-Wno-multichar" in flags
    assert (wdk_include_dir() / "dispmprt.h").is_file()
    assert main(["native", "cflags", "--runtime"]) == 0
    assert capsys.readouterr().out.strip() == str(wdk_runtime_source())


def test_native_build_wdk_builds_a_driver_from_its_sources(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    include = tmp_path / "inc"
    include.mkdir()
    (include / "mytags.h").write_text("#define TAG_ADAPTER 'xdkW'\n")
    source = tmp_path / "drv.c"
    source.write_text(
        DRIVER.read_text().replace(
            "#define TAG_ADAPTER 'adkW' /* \"Wkda\" */", "#include <mytags.h>"
        )
    )
    code = main(
        [
            "native",
            "build",
            "--wdk",
            str(source),
            "-I",
            str(include),
            "-D",
            "WDK_BUG_NONE",
            "--name",
            "mydrv",
        ]
    )
    assert code == 0
    path = Path(capsys.readouterr().out.strip())
    assert path.name == "libmydrv.so"
    kernel = Kernel(f"native:{path}")
    assert any(b.tag_text == "Wkdx" for b in _adapter(kernel).pool_blocks())


# --------------------------------------------------------------------------- registration


def test_the_harness_calls_driver_entry_and_takes_the_ddis_it_registered() -> None:
    library = open_library(_library(), "native:wdkpool")
    assert library.registered is not None and library.name == "wdk-pool test driver"
    assert all(library.registered.values())
    kernel = _kernel()
    adapter = _adapter(kernel)
    assert list(adapter.debug_output)[:2] == [
        "[INFO] wdk_pool: DriverEntry",
        "[INFO] wdk_pool: started with 16777216 bytes of video memory",
    ]
    device = kernel.create_device()
    allocations = kernel.create_allocations(
        device, [AllocationRequest(4096), AllocationRequest(5000)]
    )
    assert [a.info.Size for a in allocations] == [4096, 8192]
    assert "[TRACE] wdk_pool: created 2 allocation(s)" in adapter.debug_output


def test_a_driver_that_registers_too_little_is_refused_in_one_line() -> None:
    with pytest.raises(DriverLoadError) as caught:
        Kernel(f"native:{_library('NO_PATCH')}")
    assert str(caught.value).endswith(
        "registered no DxgkDdiPatch in its DRIVER_INITIALIZATION_DATA (DxgkInitialize)"
    )
    assert "\n" not in str(caught.value)


def test_a_routine_the_set_does_not_provide_is_a_build_error_naming_it(tmp_path: Path) -> None:
    declared = tmp_path / "declared.c"
    declared.write_text(
        "#include <ntddk.h>\nPVOID IoAllocateMdl(PVOID, ULONG, BOOLEAN, BOOLEAN, PVOID);\n"
        "NTSTATUS DriverEntry(PDRIVER_OBJECT d, PUNICODE_STRING r) {\n"
        "  (void)d; (void)r; return IoAllocateMdl(0, 0, 0, 0, 0) ? STATUS_SUCCESS : STATUS_NO_MEMORY; }\n"
    )
    with pytest.raises(NativeBuildError, match="undefined reference to `IoAllocateMdl'"):
        build([declared], name="declared", wdk=True)
    undeclared = tmp_path / "undeclared.c"
    undeclared.write_text(
        declared.read_text().replace(
            "PVOID IoAllocateMdl(PVOID, ULONG, BOOLEAN, BOOLEAN, PVOID);\n", ""
        )
    )
    with pytest.raises(NativeBuildError, match="IoAllocateMdl"):
        build([undeclared], name="undeclared", wdk=True)


# --------------------------------------------------------------------------- pool


def test_pool_is_tracked_by_tag_size_and_call() -> None:
    kernel = _kernel()
    adapter = _adapter(kernel)
    assert [(b.tag_text, b.size) for b in adapter.pool_blocks()] == [("Wkda", 24)]
    device = kernel.create_device()
    allocations = kernel.create_allocations(device, [AllocationRequest(4096)] * 3)
    tags = sorted((b.tag_text, b.size) for b in adapter.pool_blocks())
    assert tags == [("Wkal", 8)] * 3 + [("Wkda", 24), ("Wkdv", 8)]
    for allocation in allocations:
        kernel.destroy_allocation(allocation)
    kernel.destroy_device(device)
    assert [b.tag_text for b in adapter.pool_blocks()] == ["Wkda"]
    adapter.remove_device()
    assert adapter.pool_blocks() == []


def test_a_failed_batch_that_keeps_its_pool_is_an_alc_atomic_leak_with_tag_and_size() -> None:
    good, bad = AllocationRequest(4096), b"\x00" * 24
    kernel = _kernel()
    assert kernel.create_allocations(kernel.create_device(), [good, bad], allow_failure=True) == []
    leaky = _kernel("LEAK_ON_FAILED_BATCH")
    with pytest.raises(DriverViolation) as caught:
        leaky.create_allocations(leaky.create_device(), [good, bad], allow_failure=True)
    assert caught.value.requirement == "ALC-ATOMIC"
    assert caught.value.ddi == "DxgkDdiCreateAllocation"
    assert "batch of 2 allocation(s) failed with STATUS_INVALID_PARAMETER" in str(caught.value)
    assert "1 pool block(s), 8 bytes: tag 'Wkal' 8 bytes at 0x" in str(caught.value)


def test_pool_left_when_its_allocations_are_destroyed_is_an_alc_adapter_leak() -> None:
    kernel = _kernel("LEAK_ALLOCATION")
    device = kernel.create_device()
    first, second = kernel.create_allocations(device, [AllocationRequest(4096)] * 2)
    kept = kernel.create_allocations(device, [AllocationRequest(4096)])[0]
    kernel.destroy_allocation(first)  # its batch still has a live allocation: not yet judged
    with pytest.raises(DriverViolation) as caught:
        kernel.destroy_allocation(second)
    assert (caught.value.requirement, caught.value.ddi) == (
        "ALC-ADAPTER",
        "DxgkDdiDestroyAllocation",
    )
    assert (
        "every allocation created with that pool is destroyed and the driver still holds "
        in str(caught.value)
    )
    assert "2 pool block(s), 16 bytes: tag 'Wkal' 8 bytes" in str(caught.value)
    assert kept.hAllocation in {b.address for b in _adapter(kernel).pool_blocks()}


def test_pool_left_when_its_device_or_adapter_is_destroyed_is_an_alc_adapter_leak() -> None:
    kernel = _kernel("LEAK_DEVICE")
    device = kernel.create_device()
    with pytest.raises(
        DriverViolation,
        match=r"device 0x[0-9A-F]+ is destroyed and the driver still "
        "holds 1 pool block.s., 8 bytes: tag 'Wkdv'",
    ) as caught:
        kernel.destroy_device(device)
    assert (caught.value.requirement, caught.value.ddi) == ("ALC-ADAPTER", "DxgkDdiDestroyDevice")
    kernel = _kernel("LEAK_ADAPTER")
    with pytest.raises(
        DriverViolation, match=r"adapter is removed .* tag 'Wkda' 24 bytes"
    ) as caught:
        _adapter(kernel).remove_device()
    assert (caught.value.requirement, caught.value.ddi) == ("ALC-ADAPTER", "DxgkDdiRemoveDevice")


@pytest.mark.parametrize(
    ("bug", "parameter1", "text"),
    [
        ("DOUBLE_FREE", 0x07, "that was already freed (a double free)"),
        ("FOREIGN_FREE", 0x42, "which is not pool"),
    ],
)
def test_a_bad_free_is_bug_check_0xc2_bad_pool_caller(bug: str, parameter1: int, text: str) -> None:
    kernel = _kernel(bug)
    allocation = kernel.create_allocations(kernel.create_device(), [AllocationRequest(4096)])[0]
    with pytest.raises(BugCheck) as caught:
        kernel.destroy_allocation(allocation)
    assert caught.value.code == 0xC2 and caught.value.parameters[0] == parameter1
    assert caught.value.requirement == "ALL-NORAISE" and text in str(caught.value)
    assert "BugCheck 0xC2" in str(caught.value)


# --------------------------------------------------------------------------- IRQL, locks, asserts


def test_returning_from_a_ddi_with_a_spin_lock_held_is_bug_check_0x4a_ren_irql() -> None:
    kernel = _kernel("LOCK_HELD")
    with pytest.raises(BugCheck) as caught:
        kernel.create_allocations(kernel.create_device(), [AllocationRequest(4096)])
    assert caught.value.code == 0x4A and caught.value.requirement == "REN-IRQL"
    assert caught.value.parameters[1] == 2  # DISPATCH_LEVEL
    assert re.search(
        r"returned holding spin lock 0x[0-9a-f]+ \(taken at .*wdk_pool.c:\d+\)", str(caught.value)
    )


def test_pageable_code_under_a_spin_lock_is_bug_check_0xd1_ren_irql() -> None:
    kernel = _kernel("PAGED_UNDER_LOCK")
    allocation = kernel.create_allocations(kernel.create_device(), [AllocationRequest(4096)])[0]
    with pytest.raises(BugCheck) as caught:
        kernel.destroy_allocation(allocation)
    assert caught.value.code == 0xD1 and caught.value.requirement == "REN-IRQL"
    assert caught.value.parameters[1:3] == (2, 8)  # at DISPATCH_LEVEL, an execute access
    assert "PAGED_CODE() in DestroyAllocation" in str(caught.value)


def test_a_failed_nt_assert_is_bug_check_0x1e_assertion_failure() -> None:
    kernel = _kernel("ASSERT_ON_VALID")
    with pytest.raises(BugCheck) as caught:
        kernel.create_allocations(kernel.create_device(), [AllocationRequest(4096)])
    assert caught.value.code == 0x1E and caught.value.parameters[0] == 0xC0000420
    assert caught.value.requirement == "ALL-NORAISE"
    assert "NT_ASSERT(size > (1u << 30))" in str(caught.value)


def _run_export(library_path: Path, export: str) -> int:
    """Run an exported test function of the driver through the runtime, as a DDI."""
    library = open_library(library_path, "native:wdkpool")
    other = cffi.FFI()
    other.cdef(f"int {export}(void *);")
    address = int(other.cast("uintptr_t", other.addressof(other.dlopen(str(library_path)), export)))
    assert library.registered is not None
    mine = dataclasses.replace(library, registered={export: address})
    return _wdk_invoke(mine, export, (abi.ffi().NULL,), None, set())


def test_exceptions_nest_and_a_filter_can_pass_one_on() -> None:
    assert _run_export(_library(), "WdkTestNested") == 0


def test_an_exception_no_try_covers_is_bug_check_0x1e_even_after_a_return_from_a_try() -> None:
    with pytest.raises(BugCheck) as caught:
        _run_export(_library(), "WdkTestReturnFromTry")
    assert caught.value.code == 0x1E and caught.value.parameters[0] == 0xC000000D
    assert "raised outside any __try" in str(caught.value)


def test_returning_at_raised_irql_is_bug_check_0x4a() -> None:
    with pytest.raises(BugCheck) as caught:
        _run_export(_library(), "WdkTestRaiseIrql")
    assert caught.value.code == 0x4A and caught.value.requirement == "REN-IRQL"
    assert "returned at IRQL 2, not at PASSIVE_LEVEL" in str(caught.value)


def _render_args(buffer: UserBuffer) -> DXGKARG_RENDER:
    return DXGKARG_RENDER(
        pCommand=Ptr(buffer, 0),
        CommandLength=buffer.size,
        pDmaBuffer=None,
        DmaSize=0,
        pDmaBufferPrivateData=None,
        DmaBufferPrivateDataSize=0,
        pAllocationList=None,
        AllocationListSize=0,
        pPatchLocationListIn=None,
        PatchLocationListInSize=0,
        pPatchLocationListOut=None,
        PatchLocationListOutSize=0,
    )


def test_a_plain_read_of_user_memory_faults_for_real_into_the_drivers_except() -> None:
    """WDK_DIRECT_COPY reads pCommand with memcpy inside __try: the injected fault is an
    inaccessible page, the processor faults, and the runtime raises into __except."""
    kernel = _kernel("DIRECT_COPY")
    device = kernel.create_device()
    clean = UserBuffer("command buffer", bytes(range(16)))
    assert kernel.caller.call("render", device.hDevice, _render_args(clean)) == 0xC00000BB
    for fault_at in (0, 4, 15):
        faulting = UserBuffer("command buffer", bytes(range(16)), fault_at=fault_at)
        assert kernel.caller.call("render", device.hDevice, _render_args(faulting)) == 0xC000000D
        assert (
            _adapter(kernel).debug_output[-1] == "[ERROR] wdk_pool: pCommand faulted (0xC0000005)"
        )


def test_a_real_fault_no_try_covers_is_bug_check_0x1e_ren_userfault() -> None:
    kernel = _kernel("NO_TRY")
    device = kernel.create_device()
    faulting = UserBuffer("command buffer", bytes(range(16)), fault_at=4)
    with pytest.raises(BugCheck) as caught:
        kernel.caller.call("render", device.hDevice, _render_args(faulting))
    code, instruction, access, address = caught.value.parameters
    assert (caught.value.code, code, access) == (0x1E, 0xC0000005, 0)
    assert caught.value.requirement == "REN-USERFAULT"
    assert address % 4096 == 0 and instruction != address  # the page the read reached


def test_a_fault_outside_user_memory_still_ends_the_process(tmp_path: Path) -> None:
    """The runtime's fault handler takes only faults on the call's user memory; others go
    to the handler before it (here Python's faulthandler), as before."""
    script = tmp_path / "crash.py"
    script.write_text(
        "import sys\n"
        "from tests.test_wdk_native import _kernel, _render_args\n"
        "from wddm_conformance.memory import UserBuffer\n"
        "kernel = _kernel('NULL_READ')\n"
        "device = kernel.create_device()\n"
        "guarded = UserBuffer('command buffer', bytes(16), fault_at=4)\n"
        "kernel.caller.call('render', device.hDevice, _render_args(guarded))\n"
        "print('handler installed', flush=True)\n"
        "kernel.caller.call('render', device.hDevice, _render_args(UserBuffer('c', bytes(7))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-X", "faulthandler", str(script)],
        cwd=HERE.parent,
        env={**os.environ, "PYTHONPATH": str(HERE.parent)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0 and "handler installed" in done.stdout
    assert "Segmentation fault" in done.stderr


def test_a_finalizer_under_cffis_lock_does_not_deadlock(tmp_path: Path) -> None:
    """A collection can run an adapter's finalizer (RemoveDevice) while cffi holds its
    non-reentrant lock (resolving a library name): the finalizer must need nothing cffi
    resolves under that lock."""
    script = tmp_path / "finalize.py"
    script.write_text(
        "from tests.test_wdk_native import _kernel\n"
        "from wddm_conformance.native import abi\n"
        "kernel = _kernel()\n"
        "with abi.ffi()._lock:\n"
        "    kernel.driver._finalizer()\n"
        "print('removed', flush=True)\n"
    )
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=HERE.parent,
        env={**os.environ, "PYTHONPATH": str(HERE.parent)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.stdout.strip() == "removed", done.stderr[-2000:]


def test_a_user_copy_that_faults_lands_in_the_drivers_except() -> None:
    kernel = _kernel()
    device = kernel.create_device()
    clean = UserBuffer("command buffer", bytes(range(16)))
    assert kernel.caller.call("render", device.hDevice, _render_args(clean)) == 0xC00000BB
    assert clean.reads == [(0, 16)]  # the copy went through the harness: logged
    faulting = UserBuffer("command buffer", bytes(range(16)), fault_at=4)
    assert kernel.caller.call("render", device.hDevice, _render_args(faulting)) == 0xC000000D
    assert _adapter(kernel).debug_output[-1] == "[ERROR] wdk_pool: pCommand faulted (0xC0000005)"


def test_the_wdk_sample_driver_passes_check(tmp_path: Path) -> None:
    """tests/wdk_driver/wdkdisp.c passes `check` (the kill matrix runs the whole suite on it)."""
    sample = HERE / "wdk_driver" / "wdkdisp.c"
    library = build([sample], name="wdkdisp", wdk=True)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "wddm_conformance",
            "check",
            f"--driver=native:{library}",
            "--mode",
            "default",
            "--mode",
            "tiny-buffers",
            "--isolate",
            "none",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed, 0 failed" in done.stdout


# --------------------------------------------------------------------------- direct reads

traced = pytest.mark.skipif(
    platform.machine() not in ("x86_64", "AMD64") or sys.platform != "linux",
    reason="direct reads of user memory are traced on x86-64 Linux only",
)
STATUS_NOT_SUPPORTED = 0xC00000BB
STATUS_INVALID_PARAMETER = 0xC000000D


def _direct(mode: int, buffer: UserBuffer) -> int:
    """Render on WDK_DIRECT_READS, which reads ``buffer`` directly as ``mode`` says."""
    kernel = _kernel("DIRECT_READS")
    device = kernel.create_device()
    args = _render_args(buffer)
    args.DmaSize = mode  # the driver's selector
    return int(kernel.caller.call("render", device.hDevice, args))


@traced
def test_plain_loads_of_user_memory_are_logged_in_order_and_a_reload_is_a_double_fetch() -> None:
    buffer = UserBuffer("command buffer", bytes(16))
    assert _direct(2, buffer) == STATUS_NOT_SUPPORTED
    assert buffer.reads == [(0, 4), (4, 4), (0, 4)]
    assert buffer.double_fetched() == [(0, 4)]


@traced
def test_a_loop_over_user_bytes_is_one_read() -> None:
    buffer = UserBuffer("command buffer", bytes(40))
    assert _direct(3, buffer) == STATUS_NOT_SUPPORTED
    assert buffer.reads == [(0, 40)]


@traced
@pytest.mark.parametrize("size", [3, 7, 16, 24, 100, 300, 1000, 5000, 9000])
def test_a_memcpy_of_user_memory_is_one_read_and_a_second_is_a_double_fetch(size: int) -> None:
    """The C library's memcpy loads overlapping and out of order: one call is one read."""
    once = UserBuffer("command buffer", bytes(size))
    assert _direct(0, once) == STATUS_NOT_SUPPORTED
    assert (once.reads, once.double_fetched()) == ([(0, size)], [])
    twice = UserBuffer("command buffer", bytes(size))
    assert _direct(1, twice) == STATUS_NOT_SUPPORTED
    assert (twice.reads, twice.double_fetched()) == ([(0, size), (0, size)], [(0, size)])


@traced
def test_a_load_across_a_page_boundary_is_one_read_and_stops_at_an_injected_fault() -> None:
    whole = UserBuffer("command buffer", bytes(8192))
    assert _direct(4, whole) == STATUS_NOT_SUPPORTED
    assert whole.reads == [(4092, 8)]
    cut = UserBuffer("command buffer", bytes(8192), fault_at=4096)
    assert _direct(4, cut) == STATUS_INVALID_PARAMETER  # the second page faulted: __except
    assert cut.reads == [(4092, 4)]


@traced
def test_a_direct_write_to_user_memory_is_not_a_read_and_is_still_judged() -> None:
    buffer = UserBuffer("command buffer", bytes(16))
    assert _direct(5, buffer) == STATUS_NOT_SUPPORTED
    assert buffer.reads == []
    assert [(v.kind, v.offset, v.length) for v in buffer.violations] == [
        (ViolationKind.WRITE_READONLY, 0, 1)
    ]


@traced
def test_a_toctou_race_changes_what_the_next_direct_read_sees() -> None:
    """Mode 2 sums +0, +4 and +0 again: 0xFFFFFFFF (STATUS_SUCCESS) only if the race the
    first read fired reached the memory the third read loads."""
    buffer = UserBuffer("command buffer", bytes(16), toctou=(0, b"\xff" * 4))
    assert _direct(2, buffer) == 0
    assert buffer.toctou_fired and buffer.violations == []  # memory and region agree


@traced
@pytest.mark.parametrize("mode", [6, 7], ids=["memcpy", "byte-loop"])
def test_a_race_fires_when_the_copy_that_triggered_it_is_over(mode: int) -> None:
    """memcpy(100 bytes) loads +40 twice (overlapping vectors), a loop reads +40 and then
    +41: the race fires after the whole copy, so the copy is not torn, and the load after
    it sees the new bytes (mode 6 and 7 return STATUS_SUCCESS only then)."""
    buffer = UserBuffer("command buffer", bytes(100), toctou=(40, b"\xff" * 4))
    assert _direct(mode, buffer) == 0
    assert buffer.reads == [(0, 100), (40, 4)]


@traced
def test_a_direct_read_of_user_memory_under_a_spin_lock_is_bug_check_0xd1_ren_irql() -> None:
    with pytest.raises(BugCheck) as caught:
        _direct(8, UserBuffer("command buffer", bytes(16)))
    assert (caught.value.code, caught.value.requirement) == (0xD1, "REN-IRQL")
    assert caught.value.parameters[1] == 2  # DISPATCH_LEVEL
    assert "touched at IRQL 2" in str(caught.value)


def test_where_direct_reads_are_not_traced_faults_still_land_in_except(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The fallback (not x86-64 Linux): only the injected fault's page is inaccessible."""
    monkeypatch.setattr(adapter, "_tracing_supported", lambda runtime: False)
    buffer = UserBuffer("command buffer", bytes(16))
    assert _direct(2, buffer) == STATUS_NOT_SUPPORTED
    assert buffer.reads == []
    cut = UserBuffer("command buffer", bytes(16), fault_at=4)
    assert _direct(2, cut) == STATUS_INVALID_PARAMETER


@pytest.mark.parametrize(
    ("system", "machine", "traced"),
    [("linux", "x86_64", True), ("linux", "aarch64", False), ("darwin", "x86_64", False)],
)
def test_the_report_header_says_where_direct_reads_are_traced(
    monkeypatch: pytest.MonkeyPatch, system: str, machine: str, traced: bool
) -> None:
    monkeypatch.setattr(adapter.sys, "platform", system)
    monkeypatch.setattr(adapter.platform, "machine", lambda: machine)
    note = adapter.direct_reads_note()
    assert note.startswith("direct reads of user memory (WDK-style driver): ")
    assert ("not traced" not in note) == traced


def test_the_name_a_wdk_driver_gives_itself_is_its_class_in_the_reports() -> None:
    """WDDM_WDK_DRIVER_INFO("wdkdisp (WDK-style sample)", ...): the report header, JSON and
    HTML name the driver's class, so the class carries that name beside the file's."""
    library = build([HERE / "wdk_driver" / "wdkdisp.c"], name="wdkdisp", wdk=True)
    spec = load_driver(f"native:{library}")
    assert spec.cls.__qualname__ == "Native[wdkdisp (WDK-style sample): libwdkdisp.so]"
