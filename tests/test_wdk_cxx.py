"""C++ WDK drivers and the whole of SEH: `.cpp` sources build with the C++ compiler of the
C build's family and link without a C++ runtime; `__finally`, `__leave`,
`AbnormalTermination()` and `GetExceptionInformation()` behave as MSVC defines them, in C
and C++, with gcc and clang (whichever are installed).

The SEH checks are tests/native_drivers/wdk_seh.c (and wdk_seh.cpp, the same as C++ plus
destructors), linked into wdk_pool.c's library.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

import cffi
import pytest

from wddm_conformance.cli import main
from wddm_conformance.driver import AllocationRequest
from wddm_conformance.errors import BugCheck
from wddm_conformance.kernel import Kernel
from wddm_conformance.memory import UserBuffer
from wddm_conformance.native import abi
from wddm_conformance.native.abi import open_library
from wddm_conformance.native.adapter import NativeMiniport, _wdk_invoke
from wddm_conformance.native.build import (
    KERNEL_CXX_FLAGS,
    NativeBuildError,
    build,
    cxx_compiler,
    wdk_cflags,
)

from .test_wdk_native import _render_args

HERE = Path(__file__).resolve().parent
DRIVERS = HERE / "native_drivers"

#: (C compiler, language) pairs of what is installed.
COMPILERS = [
    pytest.param(
        cc,
        lang,
        id=f"{cc}-{lang}",
        marks=pytest.mark.skipif(
            shutil.which(cc) is None or (lang == "c++" and shutil.which(cxx) is None),
            reason=f"{cc if shutil.which(cc) is None else cxx} is not installed",
        ),
    )
    for cc, cxx in (("gcc", "g++"), ("clang", "clang++"))
    for lang in ("c", "c++")
]


@cache
def _seh_library(cc: str, lang: str) -> Path:
    seh = DRIVERS / ("wdk_seh.cpp" if lang == "c++" else "wdk_seh.c")
    return build(
        [DRIVERS / "wdk_pool.c", seh],
        name=f"wdkseh-{cc}-{lang.replace('+', 'x')}",
        defines=["WDK_SEH_RENDER"],
        wdk=True,
        compiler=cc,
    )


def _run_export(path: Path, export: str) -> int:
    """Run an exported check of the library through the runtime, as a DDI."""
    library = open_library(path, "native:wdkseh")
    other = cffi.FFI()
    other.cdef(f"int {export}(void *);")
    address = int(other.cast("uintptr_t", other.addressof(other.dlopen(str(path)), export)))
    mine = dataclasses.replace(library, registered={export: address})
    return _wdk_invoke(mine, export, (abi.ffi().NULL,), None, set())


# --------------------------------------------------------------------------- SEH


@pytest.mark.parametrize(("cc", "lang"), COMPILERS)
@pytest.mark.parametrize("check", ["WdkSehNormal", "WdkSehUnwind", "WdkSehInformation"])
def test_finally_leave_abnormal_termination_and_exception_information(
    cc: str, lang: str, check: str
) -> None:
    """0 = every step of the check landed where MSVC's SEH would put it (wdk_seh.c)."""
    assert _run_export(_seh_library(cc, lang), check) == 0


@pytest.mark.parametrize(("cc", "lang"), COMPILERS)
def test_an_exception_no_except_handles_is_bug_check_0x1e_before_any_finally_runs(
    cc: str, lang: str
) -> None:
    path = _seh_library(cc, lang)
    with pytest.raises(BugCheck) as caught:
        _run_export(path, "WdkSehUnhandled")
    assert (caught.value.code, caught.value.parameters[0]) == (0x1E, 0xC00000EF)
    assert _run_export(path, "WdkSehFinallyRuns") == 0  # Windows bug checks before unwinding


@pytest.mark.parametrize(("cc", "lang"), COMPILERS)
def test_return_out_of_a_try_with_a_finally_is_reported_as_the_harness_limit(
    cc: str, lang: str
) -> None:
    with pytest.raises(BugCheck) as caught:
        _run_export(_seh_library(cc, lang), "WdkSehReturnOverFinally")
    assert caught.value.code == 0x1E
    assert "__finally the harness cannot run" in str(caught.value)
    assert "leave the __try with __leave" in str(caught.value)


@pytest.mark.parametrize(("cc", "lang"), COMPILERS)
def test_a_real_fault_unwinds_a_finally_and_its_record_names_the_address(
    cc: str, lang: str
) -> None:
    kernel = Kernel(f"native:{_seh_library(cc, lang)}")
    assert isinstance(kernel.driver, NativeMiniport)
    device = kernel.create_device()
    clean = UserBuffer("command buffer", bytes(range(16)))
    assert kernel.caller.call("render", device.hDevice, _render_args(clean)) == 0xC00000BB
    assert kernel.driver.debug_output[-1] == "[INFO] seh: no fault, abnormal 0, last byte 15"
    for fault_at in (0, 4, 15):
        faulting = UserBuffer("command buffer", bytes(range(16)), fault_at=fault_at)
        assert kernel.caller.call("render", device.hDevice, _render_args(faulting)) == 0xC000000D
        assert kernel.driver.debug_output[-1] == (
            f"[ERROR] seh: 0xC0000005 access 0 at +{fault_at} abnormal 1 address set"
        )


@pytest.mark.parametrize("cc", [p.values[0] for p in COMPILERS[1::2]])
def test_cxx_destructors_of_frames_a_fault_unwinds_do_not_run(cc: str) -> None:
    if shutil.which(cc) is None or shutil.which(cxx_compiler(cc)) is None:
        pytest.skip(f"{cc} and its C++ compiler are not both installed")
    assert _run_export(_seh_library(cc, "c++"), "WdkSehDestructors") == 0


# --------------------------------------------------------------------------- C++ builds

CPP_SAMPLE = HERE / "wdk_driver" / "wdkdisp_cpp.cpp"


@pytest.mark.parametrize("cxx", ["g++", "clang++"])
def test_the_wdk_headers_compile_cleanly_as_cxx(cxx: str, tmp_path: Path) -> None:
    """Kernel routines and DriverEntry keep C linkage; the SEH macros build as C++."""
    path = shutil.which(cxx)
    if path is None:
        pytest.skip(f"{cxx} is not installed")
    source = tmp_path / "h.cpp"
    source.write_text(
        "#include <ntddk.h>\n#include <dispmprt.h>\n#include <d3dkmddi.h>\n"
        'extern "C" DRIVER_INITIALIZE DriverEntry;\n'
        "static NTSTATUS Probe(PVOID p) { volatile NTSTATUS s = 0;\n"
        "  __try { ProbeForRead(p, 1, 1); } __except (EXCEPTION_EXECUTE_HANDLER) { s = GetExceptionCode(); }\n"
        "  __try { __leave; } __finally { s = s + AbnormalTermination(); }\n"
        "  return s; }\n"
        "NTSTATUS DriverEntry(PDRIVER_OBJECT d, PUNICODE_STRING r) { (void)r; return Probe(d); }\n"
    )
    done = subprocess.run(
        [
            path,
            *KERNEL_CXX_FLAGS,
            "-Wall",
            "-Wextra",
            "-Werror",
            *(f for f in wdk_cflags() if "implicit-function-declaration" not in f),
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
    symbols = subprocess.run(
        ["nm", str(tmp_path / "h.o")], capture_output=True, text=True, check=True
    ).stdout
    assert re.search(r" T DriverEntry$", symbols, re.MULTILINE)  # not mangled
    assert re.search(r" U ProbeForRead$", symbols, re.MULTILINE)


def test_native_build_wdk_builds_cxx_and_c_sources_together(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(
        [
            "native",
            "build",
            "--wdk",
            str(DRIVERS / "wdk_pool.c"),
            str(DRIVERS / "wdk_seh.cpp"),
            "-D",
            "WDK_SEH_RENDER",
            "--name",
            "mixed",
        ]
    )
    assert code == 0
    path = Path(capsys.readouterr().out.strip())
    assert _run_export(path, "WdkSehDestructors") == 0  # the C++ half is in the library


def test_cxx_sources_need_wdk_and_the_cxx_compiler_of_the_c_family(tmp_path: Path) -> None:
    with pytest.raises(NativeBuildError, match=r"drv\.cpp: C\+\+ sources build only as WDK-style"):
        build([tmp_path / "drv.cpp"], name="drv")
    tools = tmp_path / "bin"
    tools.mkdir()
    for name in ("x86_64-linux-gnu-gcc-12", "x86_64-linux-gnu-g++-12", "clang-14"):
        (tools / name).write_text("#!/bin/sh\n")
        (tools / name).chmod(0o755)
    assert cxx_compiler(str(tools / "x86_64-linux-gnu-gcc-12")) == str(
        tools / "x86_64-linux-gnu-g++-12"
    )
    with pytest.raises(NativeBuildError, match=r"no C\+\+ compiler .*clang\+\+-14 beside"):
        cxx_compiler(str(tools / "clang-14"))


def test_a_missing_operator_new_is_a_link_error_naming_it(tmp_path: Path) -> None:
    """The kernel has no C++ runtime: a driver that uses new must define it (on pool)."""
    source = tmp_path / "nonew.cpp"
    source.write_text(
        "#include <ntddk.h>\n"
        'extern "C" DRIVER_INITIALIZE DriverEntry;\n'
        "struct Thing { int x; };\n"
        "Thing *Kept;\n"
        "NTSTATUS DriverEntry(PDRIVER_OBJECT d, PUNICODE_STRING r) {\n"
        "  (void)d; (void)r; Kept = new Thing; return STATUS_SUCCESS; }\n"
    )
    with pytest.raises(
        NativeBuildError, match=r"undefined reference to `operator new\(unsigned long\)'"
    ):
        build([source], name="nonew", wdk=True)


def test_operator_new_on_pool_is_tracked_by_tag_and_freed_by_delete() -> None:
    """The C++ sample's objects come from its operator new on ExAllocatePool2: the runtime
    tracks each by its class's tag, and delete returns it."""
    kernel = Kernel(f"native:{build([CPP_SAMPLE], name='wdkdispcpp', wdk=True)}")
    adapter = kernel.driver
    assert isinstance(adapter, NativeMiniport)

    def tags() -> list[str]:
        return sorted(b.tag_text for b in adapter.pool_blocks())

    assert tags() == ["WdcA"]
    device = kernel.create_device()
    assert tags() == ["WdcA", "WdcD"]
    allocations = kernel.create_allocations(
        device, [AllocationRequest(4096), AllocationRequest(5000)]
    )
    assert tags() == ["WdcA", "WdcD", "WdcL", "WdcL"]
    render = UserBuffer("command buffer", bytes(16))
    kernel.caller.call("render", device.hDevice, _render_args(render))
    assert tags() == ["WdcA", "WdcD", "WdcL", "WdcL"]  # the staging buffer (new[]) is freed
    kernel.destroy_allocations(allocations)
    kernel.destroy_device(device)
    assert tags() == ["WdcA"]


# --------------------------------------------------------------------------- ASan (special pool)

SAMPLES = {"c": HERE / "wdk_driver" / "wdkdisp.c", "c++": CPP_SAMPLE}


def _asan_build(lang: str, *bugs: str) -> tuple[Path, dict[str, str]]:
    """The sample built with --sanitize, and the environment that loads it (the ASan
    runtime preloaded: it cannot be loaded into a running Python, so the run is a child)."""
    from wddm_conformance.fuzz import sanitizer
    from wddm_conformance.native.build import find_compiler

    try:
        find_compiler(sanitize=True)
    except NativeBuildError as exc:
        pytest.skip(str(exc))
    library = build(
        [SAMPLES[lang]],
        name=f"wdkdisp-{lang.replace('+', 'x')}-asan" + "".join(f"-{b.lower()}" for b in bugs),
        defines=[f"WDKDISP_BUG_{b}" for b in bugs],
        wdk=True,
        sanitize=True,
    )
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "HYPOTHESIS_PROFILE")}
    env["PYTHONPATH"] = str(HERE.parent)
    try:
        return library, sanitizer.environment(f"native:{library}", env)
    except RuntimeError as exc:  # atheris without its ASan runtime
        pytest.skip(str(exc))


@pytest.mark.parametrize("lang", ["c", "c++"])
def test_the_samples_built_with_asan_pass_the_whole_suite(lang: str, tmp_path: Path) -> None:
    library, env = _asan_build(lang)
    report = tmp_path / "report.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--pyargs",
            "wddm_conformance.suite",
            f"--driver=native:{library}",
            f"--report-json={report}",
            "--hypothesis-profile=quick",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:randomly",
            "-o",
            "addopts=",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    statuses = {t["status"] for t in json.loads(report.read_text())["tests"]}
    assert statuses <= {"PASS", "SKIP"}


@pytest.mark.parametrize(
    ("bug", "headline", "line", "ddi", "rule"),
    [
        (
            "POOL_OVERRUN",
            "heap-buffer-overflow",
            "a 1-byte write 0 byte(s) past the end of a 4096-byte pool block (tag 'WdcS'): "
            "bug check 0xD6 DRIVER_PAGE_FAULT_BEYOND_END_OF_ALLOCATION",
            "DxgkDdiRender",
            "REN-CURSORS",
        ),
        (
            "USE_AFTER_FREE",
            "use-after-poison",
            "a 8-byte read at +16 of a 24-byte pool block already freed (tag 'WdcL'): "
            "bug check 0xCC PAGE_FAULT_IN_FREED_SPECIAL_POOL",
            "DxgkDdiDestroyAllocation",
            "ALL-NORAISE",
        ),
    ],
)
def test_a_memory_error_on_the_drivers_own_pool_is_caught_under_asan_and_named(
    bug: str, headline: str, line: str, ddi: str, rule: str, tmp_path: Path
) -> None:
    """POOL_OVERRUN writes one byte past its 4096-byte staging buffer, USE_AFTER_FREE reads
    an allocation object it has deleted: the plain build cannot see either (malloc's slack,
    the runtime's quarantine), ASan stops at the access and the runtime names the pool
    block, as special pool would, and the DDI (the sample's are DdiRender, ...), so the
    report is filed under that DDI's rule."""
    from wddm_conformance.fuzz import sanitizer

    library, env = _asan_build("c++", bug)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "wddm_conformance",
            "check",
            f"--driver=native:{library}",
            "--mode",
            "default",
            "--isolate",
            "none",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode != 0
    assert f"ERROR: AddressSanitizer: {headline}" in done.stderr, done.stderr[-3000:]
    assert f"wddm-conformance: special pool: {line}\n" in done.stderr, done.stderr[-3000:]
    report = sanitizer.parse(done.stderr)
    assert report is not None
    assert (report.entry_point, report.requirement) == (ddi, rule), done.stderr[-3000:]


def test_a_campaign_files_a_wdk_drivers_memory_error_under_its_ddis_rule(tmp_path: Path) -> None:
    """The C++ sample's DDI functions are DdiRender, ...: no DxgkDdi* frame in ASan's stack.
    The runtime names the DDI, so the overrun in Render is REN-CURSORS, not ALL-NORAISE."""
    library, env = _asan_build("c++", "POOL_OVERRUN")
    work = tmp_path / "w"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "wddm_conformance",
            "fuzz",
            "run",
            "render",
            f"--driver=native:{library}",
            "--work",
            str(work),
            "--time",
            "60",
        ],
        cwd=tmp_path,
        env={k: v for k, v in env.items() if k != "LD_PRELOAD"},  # the campaign preloads it
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    (path,) = sorted((work / "findings").glob("*.json"))
    finding = json.loads(path.read_text())
    assert (finding["requirement"], finding["ddi"]) == ("REN-CURSORS", "DxgkDdiRender")
    assert "REN-CURSORS  DxgkDdiRender" in done.stdout
    replayed = subprocess.run(
        [sys.executable, "-m", "wddm_conformance", "fuzz", "repro", str(path.with_suffix(""))],
        cwd=tmp_path,
        env={k: v for k, v in env.items() if k != "LD_PRELOAD"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    # The replay names what the record does, and shows the report it was stopped with.
    assert replayed.returncode == 1, replayed.stdout[-3000:] + replayed.stderr[-3000:]
    assert "CRASH  REN-CURSORS" in replayed.stdout, replayed.stdout[-3000:]
    assert "sanitizer report:\n" in replayed.stdout
    assert "ERROR: AddressSanitizer: heap-buffer-overflow" in replayed.stdout


def test_an_isolated_check_a_sanitizer_stops_is_named_by_its_ddis_rule(tmp_path: Path) -> None:
    """The suite's checks run in processes of their own: when ASan stops one, the report
    goes to the parent, and the check's verdict is the rule of the DDI it stopped in
    (REN-CURSORS for the overrun in Render), as a campaign files it, not ALL-NORAISE."""
    library, env = _asan_build("c++", "POOL_OVERRUN")
    report = tmp_path / "report.json"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--pyargs",
            "wddm_conformance.suite",
            f"--driver=native:{library}",
            f"--report-json={report}",
            "--hypothesis-profile=quick",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:randomly",
            "-o",
            "addopts=",
            "-k",
            "test_fuzz_inputs_replay_cleanly and render",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    (failed,) = [t for t in json.loads(report.read_text())["tests"] if t["status"] != "PASS"]
    assert (failed["status"], failed["violated"], failed["ddi"]) == (
        "CRASH",
        "REN-CURSORS",
        "DxgkDdiRender",
    )
    assert "AddressSanitizer: heap-buffer-overflow" in failed["message"]


def test_the_build_cache_covers_the_headers_beside_the_sources(tmp_path: Path) -> None:
    (tmp_path / "tags.h").write_text("#define TAG 'AxdW'\n")
    source = tmp_path / "drv.c"
    source.write_text(
        '#include <ntddk.h>\n#include "tags.h"\nULONG Tag(void) { return TAG; }\n'
        "NTSTATUS DriverEntry(PDRIVER_OBJECT d, PUNICODE_STRING r) {\n"
        "  (void)d; (void)r; return STATUS_SUCCESS; }\n"
    )
    first = build([source], name="tags", wdk=True)
    (tmp_path / "tags.h").write_text("#define TAG 'BxdW'\n")
    assert build([source], name="tags", wdk=True) != first


def test_the_cxx_sample_passes_check_in_every_mode(tmp_path: Path) -> None:
    """tests/wdk_driver/wdkdisp_cpp.cpp passes `check --mode all` (the kill matrix runs the
    whole suite on it in every kernel mode: tests.mutants:WdkCppSample)."""
    library = build([CPP_SAMPLE], name="wdkdispcpp", wdk=True)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "wddm_conformance",
            "check",
            f"--driver=native:{library}",
            "--mode",
            "all",
            "--isolate",
            "none",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"\b\d+ passed, 0 failed", done.stdout), done.stdout


def test_repro_of_a_finding_on_an_asan_build_preloads_the_runtime_itself(tmp_path: Path) -> None:
    """A campaign on a sanitizer build prints ``fuzz repro FILE``; that command (and minimize
    and promote) runs itself again with the sanitizer runtime preloaded, as the campaign did."""
    library, env = _asan_build("c")
    plain = {
        k: v for k, v in env.items() if k not in ("LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS")
    }
    finding = tmp_path / "render-REN-COPYFIRST-000000000000"
    finding.write_bytes(b"")  # the empty render input: passes on the conforming sample
    finding.with_suffix(".json").write_text(
        json.dumps({"target": "render", "driver": f"native:{library}"})
    )
    done = subprocess.run(
        [sys.executable, "-m", "wddm_conformance", "fuzz", "repro", str(finding)],
        capture_output=True,
        text=True,
        env=plain,
        cwd=tmp_path,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "cannot load the library" not in done.stderr
