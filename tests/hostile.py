"""Hostile and clumsy drivers: each does to the harness's process what a real driver's bug
could, one row of issue 16's table each (the rows about isolation).

Every driver is the reference miniport with one DDI turned hostile, so the checks that
never reach that DDI pass and the ones that do end as the row says.
``tests/test_isolation.py`` runs the suite and ``check`` on each; the C drivers that
segfault and abort in Render are ``tests/native_drivers/{segv,abort}_render.c``.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import threading
import time

from wddm_conformance.ddi import DXGKARG_BUILDPAGINGBUFFER, DXGKARG_PATCH, DXGKARG_RENDER
from wddm_conformance.reference.miniport import ReferenceMiniport

#: What :class:`HogsMemory` holds per instance (bytes).
HOG = 2 << 30
#: What a driver prints just before it dies (its report shows the driver's last output).
LAST_WORDS = "hostile driver's last words:"
#: What :class:`HugeStatus` returns from Render: no NTSTATUS, and 0 (SUCCESS) when masked.
HUGE = 2**70


class SwallowsWatchdog(ReferenceMiniport):
    """BuildPagingBuffer never returns: an endless loop that catches BaseException, so
    every DdiTimeout the watchdog raises in it is swallowed."""

    def build_paging_buffer(self, args: DXGKARG_BUILDPAGINGBUFFER) -> int:
        # Two nested handlers: a timeout raised between the inner one and the inner loop's
        # head lands in the outer one. (One handler around ``while True: pass`` is not
        # enough: CPython 3.11 raises at the loop's back edge, outside the handler.)
        while True:
            with contextlib.suppress(BaseException):
                while True:
                    with contextlib.suppress(BaseException):
                        time.sleep(3600)


class ExitsInPatch(ReferenceMiniport):
    """Patch ends the process with ``os._exit(3)``: no exception, no clean-up."""

    def patch(self, args: DXGKARG_PATCH) -> int:
        print(f"{LAST_WORDS} exiting", flush=True)
        os._exit(3)


class KeyboardInterruptInRender(ReferenceMiniport):
    """Render raises KeyboardInterrupt (no SIGINT arrived): an exception like any other."""

    def render(self, hContext: int, args: DXGKARG_RENDER) -> int:
        raise KeyboardInterrupt


class SystemExitInRender(ReferenceMiniport):
    """Render calls ``sys.exit(4)``: SystemExit escapes the DDI."""

    def render(self, hContext: int, args: DXGKARG_RENDER) -> int:
        raise SystemExit(4)


class SegfaultsInRender(ReferenceMiniport):
    """Render reads address 0 through ctypes: SIGSEGV in the driver's process."""

    def render(self, hContext: int, args: DXGKARG_RENDER) -> int:
        print(f"{LAST_WORDS} reading address 0", file=sys.stderr, flush=True)
        ctypes.string_at(0)
        return super().render(hContext, args)


class AbortsInRender(ReferenceMiniport):
    """Render calls ``os.abort()``: SIGABRT, as a failed C assert() would."""

    def render(self, hContext: int, args: DXGKARG_RENDER) -> int:
        os.abort()


class HogsMemory(ReferenceMiniport):
    """Holds 2 GiB per instance, every page written (resident, not merely reserved)."""

    def __init__(self) -> None:
        super().__init__()
        self.hog = bytearray(HOG)  # bytearray(n) zero-fills: every page is touched


class LeavesThread(ReferenceMiniport):
    """Starts a non-daemon thread per instance that outlives everything (an hour's sleep)."""

    def __init__(self) -> None:
        super().__init__()
        threading.Thread(target=time.sleep, args=(3600,), name="left-running").start()


class HugeStatus(ReferenceMiniport):
    """Render returns 2**70: not an NTSTATUS, and STATUS_SUCCESS if masked to 32 bits."""

    def render(self, hContext: int, args: DXGKARG_RENDER) -> int:
        super().render(hContext, args)
        return HUGE


class BlocksInRender(ReferenceMiniport):
    """Render blocks for an hour (in C: ``time.sleep``); the Ctrl-C test interrupts it."""

    def render(self, hContext: int, args: DXGKARG_RENDER) -> int:
        time.sleep(3600)
        return super().render(hContext, args)


class SegfaultsOnLongCommands(ReferenceMiniport):
    """Render segfaults only on command buffers longer than 200 bytes: set-up passes and a
    fuzz campaign meets the crash on an input."""

    def render(self, hContext: int, args: DXGKARG_RENDER) -> int:
        if args.CommandLength > 200:
            print(f"{LAST_WORDS} reading address 0", file=sys.stderr, flush=True)
            ctypes.string_at(0)
        return super().render(hContext, args)
