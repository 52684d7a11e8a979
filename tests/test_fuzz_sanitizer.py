"""Sanitizer reports turned into findings (wddm_conformance/fuzz/sanitizer.py): which DDI
the driver was in, and so which rule the memory error breaks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wddm_conformance.fuzz import sanitizer

#: An ASan report of a WDK-style driver: its DDI functions have names of its own.
WDK_REPORT = """\
INFO: Running with entropic power schedule (0xFF, 100).
==4242==ERROR: AddressSanitizer: heap-buffer-overflow on address 0x621000012900 at pc 0x7f WRITE
WRITE of size 1 at 0x621000012900 thread T0
    #0 0x7f1 in CommandStage::Refill(unsigned int, unsigned int, unsigned char const*, unsigned int) wdkdisp_cpp.cpp:650:26
    #1 0x7f2 in Render(Device&, _DXGKARG_RENDER&) wdkdisp_cpp.cpp:700:14
    #2 0x7f3 in DdiRender(void const*, _DXGKARG_RENDER*) wdkdisp_cpp.cpp:900:12
    #3 0x7f4 in WddmWdkInvoke wdk_runtime.c:1150:27

0x621000012900 is located 0 bytes to the right of 4096-byte region
allocated by thread T0 here:
    #0 0x7f5 in malloc
    #1 0x7f6 in ExAllocatePool2 wdk_runtime.c:480:5

SUMMARY: AddressSanitizer: heap-buffer-overflow wdkdisp_cpp.cpp:650:26 in CommandStage::Refill
{ddi_line}wddm-conformance: special pool: a 1-byte write 0 byte(s) past the end of a 4096-byte pool block (tag 'WdcS'): bug check 0xD6 DRIVER_PAGE_FAULT_BEYOND_END_OF_ALLOCATION
==4242==ABORTING
MS: 0 ; base unit: 0000000000000000000000000000000000000000
"""

#: The exported-name ABI: the DDI is a frame of its own.
EXPORTED_REPORT = """\
==7==ERROR: AddressSanitizer: heap-buffer-overflow on address 0x6 at pc 0x7 WRITE
WRITE of size 4 at 0x6 thread T0
    #0 0x1 in EmitFence refminiport.c:300:5
    #1 0x2 in DxgkDdiPatch refminiport.c:410:9

==7==ABORTING
"""


@pytest.mark.parametrize(
    ("ddi", "rule"),
    [
        ("DxgkDdiRender", "REN-CURSORS"),
        ("DxgkDdiBuildPagingBuffer", "PGB-CURSOR"),
        ("DxgkDdiPatch", "PAT-RANGE"),
        ("DxgkDdiDestroyAllocation", "ALL-NORAISE"),
        ("DriverEntry", "ALL-NORAISE"),
    ],
)
def test_the_runtimes_line_names_the_ddi_of_a_wdk_style_driver(ddi: str, rule: str) -> None:
    report = sanitizer.parse(WDK_REPORT.format(ddi_line=f"wddm-conformance: in {ddi}\n"))
    assert report is not None
    assert report.entry_point == ddi
    assert report.requirement == rule
    assert report.headline().endswith(f"(WRITE of size 1) in {ddi}")


def test_without_the_runtimes_line_a_wdk_style_drivers_error_names_no_ddi() -> None:
    report = sanitizer.parse(WDK_REPORT.format(ddi_line=""))
    assert report is not None
    assert report.entry_point is None and report.requirement == "ALL-NORAISE"


def test_an_exported_name_driver_is_named_by_its_dxgkddi_frame() -> None:
    report = sanitizer.parse(EXPORTED_REPORT)
    assert report is not None
    assert report.ddi == "" and report.entry_point == "DxgkDdiPatch"
    assert report.requirement == "PAT-RANGE"


def test_the_runtimes_line_beats_a_dxgkddi_frame() -> None:
    """A WDK-style driver may call its own functions DxgkDdi*: the runtime knows which DDI
    the harness called (a DxgkDdiRender helper called from BuildPagingBuffer is not Render)."""
    text = EXPORTED_REPORT.replace(
        "==7==ABORTING", "wddm-conformance: in DxgkDdiBuildPagingBuffer\n==7==ABORTING"
    )
    report = sanitizer.parse(text)
    assert report is not None and report.requirement == "PGB-CURSOR"


def test_a_line_of_a_later_report_is_not_this_ones() -> None:
    later = WDK_REPORT.format(ddi_line="wddm-conformance: in DxgkDdiPatch\n")
    report = sanitizer.parse(EXPORTED_REPORT.replace("DxgkDdiPatch", "Helper") + later)
    assert report is not None and report.entry_point is None


def test_the_record_names_the_runtimes_ddi_and_rule(tmp_path: Path) -> None:
    report = sanitizer.parse(WDK_REPORT.format(ddi_line="wddm-conformance: in DxgkDdiRender\n"))
    assert report is not None
    path = sanitizer.record(report, "render", "native:/x/libd.so", None, tmp_path)
    entry = json.loads(path.read_text())
    assert (entry["requirement"], entry["ddi"]) == ("REN-CURSORS", "DxgkDdiRender")
    assert path.name.startswith("render-REN-CURSORS-")


def test_an_empty_crash_input_is_recorded_under_its_own_hash(tmp_path: Path) -> None:
    """libFuzzer's first input is empty; the record's sha1 must be the input's, or the
    campaign replays the artifact again in-process (which cannot load a sanitizer build)."""
    report = sanitizer.parse(WDK_REPORT.format(ddi_line=""))
    assert report is not None
    artifact = tmp_path / "crash-da39a3ee5e6b4b0d3255bfef95601890afd80709"
    artifact.write_bytes(b"")
    path = sanitizer.record(report, "render", "native:/x/libd.so", artifact, tmp_path / "f")
    entry = json.loads(path.read_text())
    assert entry["sha1"] == "da39a3ee5e6b4b0d3255bfef95601890afd80709"
    assert (tmp_path / "f" / entry["input"]).read_bytes() == b""


def test_a_death_a_sanitizer_reported_is_named_by_the_ddi_the_harness_saw() -> None:
    """An isolated check or replay whose process a sanitizer stopped: the report names no
    DDI (no runtime line, no DxgkDdi* frame), the beacon does; the rule is that DDI's, as in
    a campaign's record, with the bug check 0x1E and the sanitizer's own words."""
    from wddm_conformance import isolation

    death = isolation.Death(
        isolation.DeathKind.EXIT,
        "DxgkDdiRender",
        True,
        exit_status=1,
        sanitizer=WDK_REPORT.format(ddi_line=""),
    )
    assert death.rule == "REN-CURSORS"
    assert death.bugcheck is not None and death.bugcheck.code == 0x1E
    assert death.describe("the replay's process").startswith(
        "AddressSanitizer: heap-buffer-overflow on address"
    )
    assert "(WRITE of size 1) in DxgkDdiRender: it stopped the replay's process" in death.describe(
        "the replay's process"
    )
    plain = isolation.Death(isolation.DeathKind.EXIT, "DxgkDdiRender", True, exit_status=1)
    assert (plain.rule, plain.bugcheck) == ("ALL-NORAISE", None)
    hung = isolation.Death(
        isolation.DeathKind.HUNG_DDI, "DxgkDdiRender", True, sanitizer=WDK_REPORT
    )
    assert hung.rule == "ALL-BOUNDED"
