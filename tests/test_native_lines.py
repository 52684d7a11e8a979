"""A native driver's bug check names the source line it stopped at (wdkdisp.c:689 (Stage)),
not only raw instruction addresses: wddm_conformance/native/symbolize.py.

Expected lines come from marker comments in the sources ("/* wrong: ... */"), never from
line numbers written here.
"""

from __future__ import annotations

import platform
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from wddm_conformance.driver import AllocationRequest
from wddm_conformance.errors import BugCheck, DriverViolation
from wddm_conformance.kernel import Kernel
from wddm_conformance.memory import UserBuffer
from wddm_conformance.native import symbolize
from wddm_conformance.native.build import build
from wddm_conformance.oracles import expect_single_fetch
from wddm_conformance.suite.support import pair, program, run_checked

from .mutants import WDK_CPP_SAMPLE, WDK_SAMPLE
from .test_wdk_native import DRIVER, _render_args, _run_export

NO_TRY_MARKER = "/* wrong: a fault on user memory is not caught */"


def _line(source: Path, marker: str) -> int:
    (line,) = [n for n, text in enumerate(source.read_text().splitlines(), 1) if marker in text]
    return line


@pytest.fixture(autouse=True)
def _fresh_symbols() -> Iterator[None]:
    symbolize._symbolize.cache_clear()
    yield
    symbolize._symbolize.cache_clear()


@pytest.fixture
def tool() -> tuple[str, tuple[str, ...]]:
    found = symbolize.symbolizer()
    if found is None:
        pytest.skip("neither addr2line nor llvm-symbolizer is installed")
    return found


def _no_try_bug_check(mutant: str) -> BugCheck:
    kernel = Kernel(f"tests.mutants:{mutant}")
    ctx, a, b = pair(kernel)
    with pytest.raises(BugCheck) as caught:
        kernel.run_program(ctx, [None, a, b], program(), fault_at=0)
    return caught.value


@pytest.mark.usefixtures("tool")
@pytest.mark.parametrize(
    ("mutant", "source"), [("WdkSampleNoTry", WDK_SAMPLE), ("WdkCppSampleNoTry", WDK_CPP_SAMPLE)]
)
def test_an_unhandled_fault_names_the_drivers_source_line(mutant: str, source: Path) -> None:
    """NO_TRY copies the command buffer with the C library's memcpy: the fault is in libc,
    the line is the driver's call of it (the frame below the signal)."""
    bug = _no_try_bug_check(mutant)
    line = _line(source, NO_TRY_MARKER)
    assert (bug.code, bug.parameters[0], bug.requirement) == (0x1E, 0xC0000005, "REN-USERFAULT")
    assert f"raised outside any __try at {source.name}:{line} (" in str(bug), str(bug)
    assert "\n" not in str(bug)


@pytest.mark.parametrize(
    "name", [name for name, _ in symbolize._SYMBOLIZERS], ids=lambda name: name
)
def test_each_symbolizer_finds_the_same_line(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    args = dict(symbolize._SYMBOLIZERS)[name]
    path = symbolize.shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed")
    monkeypatch.setattr(symbolize, "symbolizer", lambda: (path, args))
    bug = _no_try_bug_check("WdkSampleNoTry")
    assert f"at wdkdisp.c:{_line(WDK_SAMPLE, NO_TRY_MARKER)} (Stage)" in str(bug), str(bug)


@pytest.mark.usefixtures("tool")
def test_a_bad_pool_call_names_the_line_of_the_call() -> None:
    """0xC2 comes from inside the runtime's ExFreePoolWithTag: its frames are skipped."""
    kernel = Kernel("tests.mutants:WdkSampleDoubleFree")
    _, a, _ = pair(kernel)
    with pytest.raises(BugCheck) as caught:
        kernel.destroy_allocation(a)
    line = _line(WDK_SAMPLE, "/* wrong: freed twice */")
    assert caught.value.code == 0xC2
    assert f"at wdkdisp.c:{line} (" in str(caught.value), str(caught.value)


def test_without_a_symbolizer_the_message_says_so_in_one_clause(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(symbolize, "symbolizer", lambda: None)
    bug = _no_try_bug_check("WdkSampleNoTry")
    assert str(bug).endswith(
        "raised outside any __try (no source line: neither addr2line nor llvm-symbolizer "
        "is installed)"
    ), str(bug)


@pytest.mark.usefixtures("tool")
def test_a_library_without_debug_information_says_so() -> None:
    library = build(
        [DRIVER],
        name="wdkpool-no_try-g0",
        defines=["WDK_BUG_NO_TRY"],
        wdk=True,
        extra_flags=["-g0"],
    )
    kernel = Kernel(f"native:{library}")
    device = kernel.create_device()
    with pytest.raises(BugCheck) as caught:
        kernel.caller.call(
            "render", device.hDevice, _render_args(UserBuffer("c", bytes(16), fault_at=4))
        )
    assert str(caught.value).endswith(
        f"(no source line: {library.name} has no debug information (build it with -g))"
    ), str(caught.value)


def test_a_bug_check_when_the_ddi_returned_names_no_line() -> None:
    """Returning with a spin lock held is found after the DDI's last instruction: the
    stack is the runtime's only, and the message has its own file:line (taken at)."""
    kernel = Kernel("tests.mutants:WdkSampleReturnsHoldingLock")
    device = kernel.create_device()
    with pytest.raises(BugCheck) as caught:
        kernel.create_allocations(device, [AllocationRequest(4096)])
    assert caught.value.code == 0x4A
    assert str(caught.value).count("wdkdisp.c:") == 1, str(caught.value)
    assert "no source line" not in str(caught.value)


def test_native_builds_keep_debug_information() -> None:
    """`native build` compiles with -g (the lines above come from it)."""
    library = build([DRIVER], name="wdkpool", wdk=True)
    assert b".debug_line" in library.read_bytes()


@pytest.mark.usefixtures("tool")
@pytest.mark.skipif(
    not (sys.platform.startswith("linux") and platform.machine() == "x86_64"),
    reason="direct reads of user memory are traced on x86-64 Linux only",
)
def test_a_direct_double_fetch_names_the_line_of_the_drivers_read() -> None:
    """DOUBLE_FETCH loads each chunk's opcode byte in user memory, then memcpy copies it
    again: the first read is the driver's own instruction (its line), the second the C
    library's copy."""
    kernel = Kernel("tests.mutants:WdkSampleDirectDoubleFetch")
    ctx, a, b = pair(kernel)
    result = run_checked(kernel, ctx, [None, a, b], program(2), "program")
    with pytest.raises(DriverViolation) as caught:
        expect_single_fetch(result)
    line = _line(WDK_SAMPLE, "/* the first fetch */")
    assert f"more than once (reads: wdkdisp.c:{line} (" in str(caught.value), str(caught.value)
    assert "a copy)" in str(caught.value)


def test_fetch_sites_are_the_reads_of_the_doubled_range_in_its_call() -> None:
    buffer = UserBuffer("c", bytes(32))
    buffer.read(0, 4)  # an earlier call: not paired with the next
    buffer.new_epoch()
    buffer.read(8, 1)
    buffer.sites[1] = 0x1234
    buffer.read(0, 16)  # a copy routine's read: no site
    buffer.locate = lambda address: f"drv.c:{address:x} (F)"
    assert buffer.double_fetched() == [(8, 9)]
    assert buffer.fetch_sites(8, 9) == ["drv.c:1234 (F)", "a copy"]
    buffer.locate = lambda address: None  # not the driver's code: nothing to say
    assert buffer.fetch_sites(8, 9) == []


@pytest.mark.usefixtures("tool")
def test_ke_bug_check_ex_names_the_line_of_its_call(tmp_path: Path) -> None:
    source = tmp_path / "bugcheck.c"
    source.write_text(
        "#include <ntddk.h>\n"
        "int WdkTestBugCheck(void *p) {\n"
        "    UNREFERENCED_PARAMETER(p);\n"
        "    KeBugCheckEx(0xDEAD, 1, 2, 3, 4); /* here */\n"
        "    return 0;\n"
        "}\n"
    )
    library = build([DRIVER, source], name="wdkpool-bugcheck", wdk=True)
    with pytest.raises(BugCheck) as caught:
        _run_export(library, "WdkTestBugCheck")
    assert caught.value.parameters == (1, 2, 3, 4)
    assert str(caught.value).endswith(
        f"the driver called KeBugCheckEx at bugcheck.c:{_line(source, '/* here */')} "
        "(WdkTestBugCheck)"
    ), str(caught.value)
