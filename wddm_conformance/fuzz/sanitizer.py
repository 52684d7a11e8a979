"""Sanitizer-backed campaigns: run a native driver built with ASan/UBSan, and keep what they report.

A library built by ``wddm-conformance native build --sanitize`` needs the sanitizer
runtime loaded before Python starts; atheris ships one with libFuzzer linked in
(``asan_with_fuzzer.so``), which also collects the library's edge coverage. When
AddressSanitizer or UndefinedBehaviorSanitizer stops the process, the harness never
gets to write its own finding record, so the campaign turns the report into one
afterwards: status CRASH (bug check 0x1E: memory corruption in kernel mode), the
requirement of the DDI in the report's stack (the same rule a write past a guard zone
breaks in that DDI), the report itself and the input libFuzzer saved.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ..kernel.ddicall import CURSOR_RULE
from ..native import PREFIX
from ..native.abi import ENTRY_POINTS, is_sanitized

#: The rule a memory error breaks, by the DDI it happened in (as for a write past a guard zone).
CURSOR_RULE_BY_ENTRY_POINT: Final = {ENTRY_POINTS[m]: rule for m, rule in CURSOR_RULE.items()}

#: libFuzzer's crash handling must run, leaks in a Python process are noise, and UBSan stops.
ASAN_OPTIONS: Final = "detect_leaks=0:allocator_may_return_null=1:handle_abort=1"
UBSAN_OPTIONS: Final = "halt_on_error=1:print_stacktrace=1"
_HEADLINE = re.compile(r"==\d+==ERROR: (AddressSanitizer|UndefinedBehaviorSanitizer): (.*)")
_UBSAN = re.compile(r"^(\S+:\d+:\d+): runtime error: (.*)$", re.MULTILINE)
_ACCESS = re.compile(r"^(READ|WRITE) of size (\d+) at (0x[0-9a-f]+)", re.MULTILINE)
_FRAME = re.compile(r"^\s+#(\d+) 0x[0-9a-f]+ in (\S+)(?: (\S+))?", re.MULTILINE)
#: The WDK runtime's line naming the DDI the driver was in (wdk_runtime.c, OnSanitizerReport).
_RUNTIME_DDI = re.compile(r"^wddm-conformance: in (DxgkDdi\w+|DriverEntry)$", re.MULTILINE)


def native_library(driver: str) -> Path | None:
    """The library a ``native:`` driver spec names (None for a Python driver or @reference)."""
    if not driver.startswith(PREFIX) or driver[len(PREFIX) :].startswith("@"):
        return None
    return Path(driver[len(PREFIX) :]).expanduser()


def environment(driver: str, env: dict[str, str]) -> dict[str, str]:
    """``env`` plus the sanitizer runtime when ``driver`` is a sanitizer-built library."""
    path = native_library(driver)
    if path is None or not is_sanitized(path):
        return env
    import atheris

    runtime = Path(atheris.path()) / "asan_with_fuzzer.so"
    if not runtime.is_file():
        raise RuntimeError(
            f"{path} was built with AddressSanitizer, but atheris has no {runtime.name} in "
            f"{runtime.parent}; reinstall atheris from source with clang available"
        )
    out = dict(env)
    out["LD_PRELOAD"] = " ".join(filter(None, [str(runtime), env.get("LD_PRELOAD", "")]))
    out.setdefault("ASAN_OPTIONS", ASAN_OPTIONS)
    out.setdefault("UBSAN_OPTIONS", UBSAN_OPTIONS)
    return out


def preloaded(driver: str) -> bool:
    """Whether this process can load ``driver``: it is no sanitizer build, or the sanitizer
    runtime :func:`environment` gives it is preloaded here already."""
    wanted = environment(driver, {}).get("LD_PRELOAD")
    return not wanted or wanted in os.environ.get("LD_PRELOAD", "").split()


@dataclass(frozen=True)
class SanitizerReport:
    """What a sanitizer said: which one, the error, the access, and the stack.

    ``ddi`` is the DDI the WDK runtime says the driver was in ("" when it printed no
    ``wddm-conformance: in DxgkDdi...`` line: an exported-name driver, or no ASan report).
    """

    tool: str
    error: str
    access: str
    frames: tuple[str, ...]
    text: str
    ddi: str = ""

    @property
    def entry_point(self) -> str | None:
        """The DDI the driver was in: the runtime's line (a WDK-style driver, whose DDI
        functions have names of its own), else the innermost DxgkDdi* frame."""
        if self.ddi:
            return self.ddi
        for frame in self.frames:
            if frame.startswith("DxgkDdi"):
                return frame
        return None

    @property
    def requirement(self) -> str:
        """The rule a memory error in this DDI breaks (as for a write past a guard zone)."""
        return self.rule_in("")

    def rule_in(self, ddi: str) -> str:
        """:attr:`requirement`, with ``ddi`` (the DDI the harness saw running, e.g.
        ``DxgkDdiRender``) where the report names none."""
        return CURSOR_RULE_BY_ENTRY_POINT.get(self.entry_point or ddi, "ALL-NORAISE")

    def headline(self, ddi: str = "") -> str:
        """One line: tool, error, access and the DDI (the report's, else ``ddi``)."""
        entry = self.entry_point or ddi
        where = f" in {entry}" if entry else ""
        access = f" ({self.access})" if self.access else ""
        return f"{self.tool}: {self.error}{access}{where}"


def parse(text: str) -> SanitizerReport | None:
    """The first sanitizer report in a log, or None."""
    match = _HEADLINE.search(text)
    if match is None:
        ub = _UBSAN.search(text)
        if ub is None:
            return None
        start = ub.start()
        tool, error = "UndefinedBehaviorSanitizer", f"{ub.group(2)} at {ub.group(1)}"
    else:
        start = match.start()
        tool, error = match.group(1), match.group(2).strip()
    body = text[start:]
    end = body.find("==ABORTING")
    body = body[: end + len("==ABORTING")] if end >= 0 else body[:8000]
    access = _ACCESS.search(body)
    first_stack = (
        body.split("\n\n", 1)[0] if access is None else body[access.end() :].split("\n\n", 1)[0]
    )
    frames = tuple(m.group(2) for m in _FRAME.finditer(first_stack))
    ddi = _RUNTIME_DDI.search(body)
    return SanitizerReport(
        tool=tool,
        error=error,
        access=f"{access.group(1)} of size {access.group(2)}" if access else "",
        frames=frames,
        text=body,
        ddi=ddi.group(1) if ddi else "",
    )


def record(
    report: SanitizerReport, target: str, driver: str, artifact: Path | None, findings: Path
) -> Path:
    """Write the report as a finding record beside the harness's own; returns the record."""
    saved = artifact is not None and artifact.is_file()
    data = artifact.read_bytes() if artifact is not None and saved else b""
    # The input's own hash (an empty input too): record_deaths knows the artifact by it.
    digest = hashlib.sha1(data if saved else report.text.encode()).hexdigest()
    name = f"{target}-{report.requirement}-{digest[:12]}"
    findings.mkdir(parents=True, exist_ok=True)
    if saved:
        (findings / name).write_bytes(data)
    entry = {
        "target": target,
        "driver": driver,
        "status": "CRASH",
        "requirement": report.requirement,
        "ddi": report.entry_point or "",
        "bugcheck": "0x1E KMODE_EXCEPTION_NOT_HANDLED (memory corruption found by the sanitizer)",
        "message": report.headline(),
        "sanitizer": report.text,
        "sha1": digest,
        "input": name if saved else "",
        "artifact": str(artifact) if artifact is not None else "",
    }
    path = findings / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    with open(tmp, "w", encoding="utf-8") as out:
        json.dump(entry, out, indent=2)
        out.write("\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    return path
