"""C++ WDK drivers and the whole of SEH: `.cpp` sources build with the C++ compiler of the
C build's family and link without a C++ runtime; `__finally`, `__leave`,
`AbnormalTermination()` and `GetExceptionInformation()` behave as MSVC defines them, in C
and C++, with gcc and clang (whichever are installed).

The SEH checks are tests/native_drivers/wdk_seh.c (and wdk_seh.cpp, the same as C++ plus
destructors), linked into wdk_pool.c's library.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
from functools import cache
from pathlib import Path

import cffi
import pytest

from wddm_conformance.errors import BugCheck
from wddm_conformance.kernel import Kernel
from wddm_conformance.memory import UserBuffer
from wddm_conformance.native import abi
from wddm_conformance.native.abi import open_library
from wddm_conformance.native.adapter import NativeMiniport, _wdk_invoke
from wddm_conformance.native.build import NativeBuildError, build, cxx_compiler

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
@pytest.mark.parametrize(
    "check", ["WdkSehNormal", "WdkSehUnwind", "WdkSehInformation"]
)
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
