"""DDI invokers: how the kernel calls into the driver, and where wall-clock time lives.

The simulated kernel is deterministic and never reads a clock. A hung DDI is caught
here, outside it: :class:`WatchdogInvoker` arms a real-time interval timer around the
call, and the signal handler raises :class:`~wddm_conformance.errors.DdiTimeout`
inside the driver's frame, which the kernel reports as a TDR (bug check 0x116).
Signals only reach the main thread; elsewhere the call runs without a watchdog.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any, Protocol

from .errors import DdiTimeout

_armed = 0


def armed() -> bool:
    """True while a WatchdogInvoker's timer runs: code that blocks in C must stay interruptible."""
    return _armed > 0


class Invoker(Protocol):
    """Calls ``fn(*args)`` for DDI ``ddi``; may raise DdiTimeout."""

    def __call__(self, ddi: str, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any: ...


def direct_invoker(ddi: str, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    """No watchdog: for fuzzing hot paths where libFuzzer's own -timeout guards the process."""
    return fn(*args)


class WatchdogInvoker:
    """Times each DDI call with SIGALRM; ``seconds <= 0`` disables the watchdog."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._usable = seconds > 0 and hasattr(signal, "setitimer")

    def __call__(self, ddi: str, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        if not self._usable or threading.current_thread() is not threading.main_thread():
            return fn(*args)
        seconds = self.seconds
        fired = False

        def expired(signum: int, frame: FrameType | None) -> None:
            nonlocal fired
            fired = True
            raise DdiTimeout(seconds, ddi)

        global _armed
        previous = signal.signal(signal.SIGALRM, expired)
        # Re-armed every `seconds`: a driver that swallows one DdiTimeout gets another.
        signal.setitimer(signal.ITIMER_REAL, seconds, seconds)
        _armed += 1
        try:
            result = fn(*args)
        finally:
            _armed -= 1
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        if fired:  # the driver caught the timeout and returned late: still a TDR
            raise DdiTimeout(seconds, ddi)
        return result
