"""Native (C) drivers: the header, the adapter, the C reference and its mutants.

The C reference miniport (wddm_conformance/reference/native/refminiport.c) is built with the
system C compiler on first use and cached; it must pass the whole conformance suite
through the cffi adapter, and each C mutant must fail exactly the rule it breaks.
"""

from __future__ import annotations

import gc
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests import killmatrix as km
from wddm_conformance import status as st
from wddm_conformance.ddi import (
    DXGK_ALLOCATIONINFOFLAGS,
    DXGK_DISCARDCONTENTFLAGS,
    DXGK_MAPAPERTUREFLAGS,
    DXGK_PATCHFLAGS,
    DXGK_SEGMENTFLAGS,
    DXGK_TRANSFERFLAGS,
)
from wddm_conformance.driver import load_driver
from wddm_conformance.errors import DriverLoadError, DriverViolation
from wddm_conformance.fuzz import TARGETS
from wddm_conformance.kernel import Kernel, KernelConfig
from wddm_conformance.native import abi
from wddm_conformance.native.build import MUTANTS, build, reference_library, reference_source
from wddm_conformance.suite.support import pair, program, run_checked

HERE = Path(__file__).resolve().parent
DRIVERS = HERE / "native_drivers"


def _structs() -> list[str]:
    """Every structure the header declares with a typedef name."""
    names = set(re.findall(r"\}\s*([A-Z_0-9]+)\s*(?:,|;)", abi.cdef_text()))
    return sorted(n for n in names if abi.ffi().typeof(n).kind == "struct")


def test_the_header_compiles_cleanly_as_c11_and_cpp(tmp_path: Path) -> None:
    cc = shutil.which("cc") or shutil.which("gcc")
    assert cc, "a C compiler is needed to build native drivers"
    source = tmp_path / "h.c"
    source.write_text('#include "wddm_native.h"\nint main(void) { return 0; }\n')
    for std in ("-std=c11", "-std=c17"):
        done = subprocess.run(
            [
                cc,
                std,
                "-Wall",
                "-Wextra",
                "-pedantic",
                "-Werror",
                f"-I{abi.header_path().parent}",
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


def test_cffi_and_the_compiler_agree_on_every_field_offset(tmp_path: Path) -> None:
    """The harness marshals with cffi's reading of the header; C code uses the compiler's."""
    f = abi.ffi()
    lines = [
        '#include "wddm_native.h"',
        "#include <stdio.h>",
        "#include <stddef.h>",
        "int main(void) {",
    ]
    expected = []
    for name in _structs():
        lines.append(f'printf("%zu\\n", sizeof({name}));')
        expected.append(f.sizeof(name))
        for field, info in f.typeof(name).fields:
            if info.bitsize != -1:
                continue
            lines.append(f'printf("%zu\\n", offsetof({name}, {field}));')
            expected.append(info.offset)
    lines += ["return 0;", "}"]
    source = tmp_path / "layout.c"
    source.write_text("\n".join(lines))
    exe = tmp_path / "layout"
    cc = shutil.which("cc") or "gcc"
    subprocess.run(
        [cc, "-std=c11", f"-I{abi.header_path().parent}", str(source), "-o", str(exe)], check=True
    )
    printed = [
        int(x)
        for x in subprocess.run(
            [str(exe)], capture_output=True, text=True, check=True
        ).stdout.split()
    ]
    assert printed == expected
    # The two arrays the driver reads as raw memory keep the x64 WDK size.
    assert f.sizeof("DXGK_ALLOCATIONLIST") == 24
    assert f.sizeof("D3DDDI_PATCHLOCATIONLIST") == 24


def test_header_constants_are_the_ddi_facts() -> None:
    text = abi.header_text()
    for code in st.NTSTATUS:
        assert re.search(rf"#define {code.name}\s+\(\(NTSTATUS\)0x{code.value:08X}L\)", text), (
            code.name
        )
    for prefix, flags in (
        ("DXGK_PATCHFLAGS", DXGK_PATCHFLAGS),
        ("DXGK_TRANSFERFLAGS", DXGK_TRANSFERFLAGS),
        ("DXGK_DISCARDCONTENTFLAGS", DXGK_DISCARDCONTENTFLAGS),
        ("DXGK_MAPAPERTUREFLAGS", DXGK_MAPAPERTUREFLAGS),
        ("DXGK_ALLOCATIONINFOFLAGS", DXGK_ALLOCATIONINFOFLAGS),
        ("DXGK_SEGMENTFLAGS", DXGK_SEGMENTFLAGS),
    ):
        for flag in flags:
            assert flag.name is not None
            define = f"{prefix}_{flag.name.upper()}"
            assert re.search(rf"#define {define}\s+0x{flag.value:X}u\b", text), define


# --------------------------------------------------------------------------- bad input


def _library(name: str) -> Path:
    return build([DRIVERS / f"{name}.c"], name=name)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Path("/nonexistent/libdriver.so"), "no such library '/nonexistent/libdriver.so'"),
        (lambda: HERE / "test_native.py", "cannot load the library: "),
        (lambda: _library("no_info"), "exports no WddmNativeQueryDriverInfo"),
        (
            lambda: _library("wrong_abi"),
            "was built against wddm_native.h ABI 3.0 (info size 32); this harness speaks ABI 2.0",
        ),
        (
            lambda: _library("partial"),
            "is not a display miniport, missing export(s): "
            "DxgkDdiStartDevice, DxgkDdiQueryAdapterInfo",
        ),
    ],
    ids=["missing", "not-a-library", "no-info", "wrong-abi", "missing-export"],
)
def test_a_bad_library_is_one_line_naming_it(make: object, message: str) -> None:
    path = make()  # type: ignore[operator]
    with pytest.raises(DriverLoadError) as info:
        load_driver(f"native:{path}")
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith(f"invalid --driver 'native:{path}")
    assert message in text


def test_the_cli_reports_a_bad_library_in_one_line_and_exit_2() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "wddm_conformance",
            "check",
            f"--driver=native:{_library('wrong_abi')}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "ABI 3.0" in done.stderr


def test_a_build_failure_is_one_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken.c"
    broken.write_text('#include "wddm_native.h"\nNTSTATUS DxgkDdiRender(void) { return 0 }\n')
    with pytest.raises(DriverLoadError) as info:
        build([broken], name="broken")
    assert "\n" not in str(info.value) and "failed" in str(info.value)


# --------------------------------------------------------------------------- the adapter


def test_the_c_reference_renders_what_the_program_means() -> None:
    k = Kernel("reference-c")
    ctx, a, b = pair(k)
    run_checked(k, ctx, [None, a, b], program(3), "C reference")


def test_a_write_past_dma_size_fails_naming_the_buffer_and_offset() -> None:
    k = Kernel(
        f"native:{reference_library('OVERFLOW_DMA')}", config=KernelConfig(dma_buffer_size=128)
    )
    ctx, a, b = pair(k)
    with pytest.raises(DriverViolation) as info:
        k.run_program(ctx, [None, a, b], program(4))
    assert info.value.requirement == "REN-CURSORS"
    assert re.search(
        r"write-outside-window in DMA buffer at \+1[23]\d \(\d+ byte\(s\)\)", str(info.value)
    )


# --------------------------------------------------------------------------- the suite


def test_the_c_reference_passes_the_whole_suite() -> None:
    report = km.run_suite("reference-c", *km.OPTIONS)
    statuses = {t["status"] for t in report["tests"]}
    assert km.caught(report) == {}, km.caught(report)
    assert "PASS" in statuses and len(report["tests"]) > 100


@pytest.mark.parametrize("mutant", sorted(MUTANTS))
def test_each_c_mutant_fails_exactly_the_rule_it_breaks(mutant: str) -> None:
    report = km.run_suite(f"native:{reference_library(mutant)}", *km.OPTIONS)
    found = km.caught(report)
    assert set(found) == {MUTANTS[mutant][1]}, {k: v[:3] for k, v in found.items()}


# --------------------------------------------------------------------------- sanitizers


def _clang() -> str | None:
    from wddm_conformance.native.build import NativeBuildError, find_compiler

    try:
        return find_compiler(sanitize=True)
    except NativeBuildError:
        if os.environ.get("CI"):
            raise  # .ci/run installs clang: in CI this test must run
        return None


def _campaign(target: str, driver: str, work: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WDDM_")}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "wddm_conformance",
            "fuzz",
            "run",
            target,
            f"--driver={driver}",
            "--work",
            str(work),
            *args,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _findings(work: Path) -> list[dict[str, object]]:
    return [json.loads(p.read_text()) for p in sorted((work / "findings").glob("*.json"))]


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_every_fuzz_target_runs_clean_on_the_c_reference(target: str, tmp_path: Path) -> None:
    runs = "30" if target == "statemachine" else "300"
    done = _campaign(target, "reference-c", tmp_path / "w", "--runs", runs)
    assert done.returncode == 0, done.stdout[-2000:]
    assert _findings(tmp_path / "w") == []


def test_a_fuzz_target_finds_a_c_mutant_under_its_id(tmp_path: Path) -> None:
    lib = reference_library("UNMAP_OLD_PAGE")
    done = _campaign("build_paging_buffer", f"native:{lib}", tmp_path / "w", "--time", "60")
    assert done.returncode == 1, done.stdout[-2000:]
    assert {f["requirement"] for f in _findings(tmp_path / "w")} == {"PGB-UNMAP"}


def test_the_sanitizer_campaign_reports_the_c_overflow_with_its_stack(tmp_path: Path) -> None:
    if _clang() is None:
        pytest.skip("no clang on this machine (CI installs it): apt-get install clang")
    lib = reference_library("OVERFLOW_DMA", sanitize=True)
    done = _campaign("render", f"native:{lib}", tmp_path / "w", "--time", "60")
    assert done.returncode == 1, done.stdout[-2000:]
    (finding,) = _findings(tmp_path / "w")
    assert finding["status"] == "CRASH" and finding["requirement"] == "REN-CURSORS"
    report = str(finding["sanitizer"])
    assert "ERROR: AddressSanitizer: heap-buffer-overflow" in report
    assert re.search(r"WRITE of size \d+", report)
    assert re.search(r"in DxgkDdiRender .*refminiport\.c:\d+", report)
    assert (tmp_path / "w" / "findings" / str(finding["input"])).is_file()
    assert "REN-CURSORS  DxgkDdiRender" in done.stdout


def test_the_sanitized_c_reference_fuzzes_clean(tmp_path: Path) -> None:
    """No false positives from the adapter's buffers under AddressSanitizer."""
    if _clang() is None:
        pytest.skip("no clang on this machine (CI installs it): apt-get install clang")
    lib = reference_library(sanitize=True)
    done = _campaign("render", f"native:{lib}", tmp_path / "w", "--runs", "500")
    assert done.returncode == 0, done.stdout[-2000:]
    assert "Loaded 1 modules" in (tmp_path / "w" / "fuzz.log").read_text()  # native coverage


def test_a_hung_c_ddi_is_a_tdr_not_a_hung_run() -> None:
    lib = build(
        [DRIVERS / "hang_render.c"],
        name="hang_render",
        extra_flags=[f"-I{reference_source().parent}"],
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "wddm_conformance",
            "check",
            f"--driver=native:{lib}",
            "--mode=default",
            "--ddi-timeout=0.5",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "TIMEOUT" in done.stdout and "ALL-BOUNDED" in done.stdout
    assert "DxgkDdiRender" in done.stdout


def test_adapters_are_removed_with_their_kernel_and_handles_never_cross() -> None:
    """Two live kernels get distinct handles; a collected kernel's adapter is removed (RemoveDevice)."""
    first, second = Kernel("reference-c"), Kernel("reference-c")
    d1, d2 = first.create_device(), second.create_device()
    assert d1.hDevice != d2.hDevice
    handle = d1.hDevice
    del first, d1
    gc.collect()  # the kernel's own object graph has cycles
    third = Kernel("reference-c")
    assert third.caller.call("destroy_device", handle) == st.STATUS_INVALID_HANDLE
