"""WPP tracing in WDK-style native drivers: `native build --wdk` generates the .tmh files
the sources include, the trace macros compile to captured debug output, and the format
specifiers of docs/native.md ("WPP") are understood."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import cffi
import pytest

from wddm_conformance.native import abi
from wddm_conformance.native.abi import drain_debug_output, open_library
from wddm_conformance.native.build import NativeBuildError, build, wpp_trace_headers

from .test_wdk_native import CC, DRIVER, HERE

WPP = HERE / "native_drivers" / "wdk_wpp.c"

pytestmark = pytest.mark.skipif(CC is None, reason="no C compiler (install gcc, or set CC)")


@cache
def _library() -> Path:
    return build([DRIVER, WPP], name="wdkwpp", wdk=True)


def _trace(library_path: Path, export: str) -> tuple[int, list[str]]:
    """Run ``export`` through the runtime as a DDI; its status and what it printed."""
    library = open_library(library_path, "native:wdkwpp")
    other = cffi.FFI()
    other.cdef(f"int {export}(void *);")
    address = other.cast("uintptr_t", other.addressof(other.dlopen(str(library_path)), export))
    f = abi.ffi()
    call = f.new("WDDM_WDK_CALL *")
    call.Function = f.cast("void *", int(address))
    call.ArgumentCount = 1
    call.CheckReturn = 1
    drain_debug_output(library.lib)
    assert int(library.lib.WddmWdkInvoke(call)) == 0, abi.runtime_stop_text(call)
    return int(call.Status), drain_debug_output(library.lib)


def test_trace_messages_go_to_the_captured_debug_output() -> None:
    status, printed = _trace(_library(), "WdkWppTrace")
    assert status == 0
    assert printed == [
        "[WPP TRACE_DRIVER] WdkWppTrace: 3 allocation(s) of 4096 bytes, 0xC000000D",
        "[WPP TRACE_ALLOCATION ERROR] wdk_wpp.c text|   0a|z  |123456789|wide|unicode|TRUE|44",
        "[WPP TRACE_DRIVER] fixed flag 7%",
        "[WPP TRACE_DRIVER] pointer 0x1234",
        "[WPP TRACE_DRIVER INFORMATION] %!IPADDR! (not supported: the rest is not formatted)",
    ]


def test_the_build_generates_each_tmh_with_the_config_blocks_functions(tmp_path: Path) -> None:
    traces = wpp_trace_headers([WPP])
    assert list(traces) == ["wdk_wpp.tmh"]
    text = traces["wdk_wpp.tmh"]
    assert "#include <wddm_wpp.h>" in text
    assert "#define TraceEvents(LEVEL, FLAGS, ...)" in text
    assert "#define TraceDriver(...)" in text and "WDDM_WPP_FLAG(TRACE_DRIVER)" in text
    assert wpp_trace_headers([DRIVER]) == {}  # no .tmh included: nothing generated


def test_a_flag_no_wpp_define_bit_declared_does_not_compile(tmp_path: Path) -> None:
    source = tmp_path / "wdk_wpp.c"
    source.write_text(
        WPP.read_text().replace('TraceDriver("fixed', 'DoTraceMessage(TRACE_NOPE, "fixed')
    )
    with pytest.raises(NativeBuildError, match="WPP_BIT_TRACE_NOPE"):
        build([DRIVER, source], name="wdkwpp-nope", wdk=True)
    source.write_text(
        WPP.read_text().replace("#define WPP_CONTROL_GUIDS", "#define NO_CONTROL_GUIDS")
    )
    with pytest.raises(NativeBuildError, match="define WPP_CONTROL_GUIDS"):
        build([DRIVER, source], name="wdkwpp-noguids", wdk=True)
