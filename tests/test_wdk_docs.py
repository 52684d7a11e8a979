"""docs/native.md lists every routine the WDK compatibility set provides, and a call to
one it does not provide is a link error naming it (issue 15)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from wddm_conformance.native.build import NativeBuildError, build, wdk_include_dir

from .test_wdk_native import CC

ROOT = Path(__file__).resolve().parent.parent
#: A routine's declaration or function-like macro in the headers, by the WDK's prefixes.
ROUTINE = re.compile(
    r"(?m)^(?:#define\s+|(?:DECLSPEC_NORETURN\s+)?[A-Za-z_][\w *]*?\b)"
    r"((?:Ke|Ex|Rtl|Dbg|Kd|Probe|Mm|Io|Nt|Zw|Ps|Ob|WPP_|DoTrace|NT_|ASSERT|PAGED_|"
    r"GetException|_exception)\w*)\s*\("
)


def test_docs_native_md_lists_every_routine_the_set_provides() -> None:
    headers = "\n".join(p.read_text() for p in sorted(wdk_include_dir().glob("*.h")))
    routines = set(ROUTINE.findall(headers))
    assert {"KeWaitForSingleObject", "ExAcquireFastMutex", "DoTraceMessage"} <= routines
    doc = (ROOT / "docs" / "native.md").read_text()
    # the kernel's callbacks the set models: members of DXGKRNL_INTERFACE with a real type
    modelled = set(re.findall(r"PDXGKCB_\w+ (DxgkCb\w+);", headers))
    assert modelled == {"DxgkCbGetHandleData", "DxgkCbGetHandleParent", "DxgkCbEnumHandleChildren"}
    missing = sorted(n for n in routines | modelled if f"`{n}" not in doc)
    assert missing == [], f"docs/native.md does not list {missing}"


@pytest.mark.skipif(CC is None, reason="no C compiler (install gcc, or set CC)")
def test_a_kernel_routine_the_set_does_not_provide_is_a_link_error_naming_it(
    tmp_path: Path,
) -> None:
    """Events and fast mutexes are provided; a kernel mutex (another dispatcher object) is
    not: declared by the driver itself, it fails at link time, named."""
    source = tmp_path / "mutex.c"
    source.write_text(
        "#include <ntddk.h>\n"
        "typedef struct _KMUTEX { DISPATCHER_HEADER Header; LIST_ENTRY MutantListEntry;\n"
        "  PVOID OwnerThread; BOOLEAN Abandoned; UCHAR ApcDisable; } KMUTEX;\n"
        "void KeInitializeMutex(KMUTEX *Mutex, ULONG Level);\n"
        "static KMUTEX Mutex;\n"
        "NTSTATUS DriverEntry(PDRIVER_OBJECT d, PUNICODE_STRING r) {\n"
        "  (void)d; (void)r; KeInitializeMutex(&Mutex, 0);\n"
        "  return KeWaitForSingleObject(&Mutex, Executive, KernelMode, FALSE, NULL); }\n"
    )
    with pytest.raises(NativeBuildError, match="undefined reference to `KeInitializeMutex'"):
        build([source], name="kmutex", wdk=True)
