"""DDI invokers: how the kernel calls into the driver, and where wall-clock time lives.

The simulated kernel is deterministic and never reads a clock. A hung DDI is caught
here, outside it: :class:`WatchdogInvoker` arms a real-time interval timer around the
call, and the signal handler raises :class:`~wddm_conformance.errors.DdiTimeout`
inside the driver's frame, which the kernel reports as a TDR (bug check 0x116).
Signals only reach the main thread; elsewhere the call runs without a watchdog.
In an isolated child (:mod:`wddm_conformance.isolation`) each call is also announced
on the child's beacon, so the parent kills a call that outlives its watchdog.

A ``KeyboardInterrupt`` is a real Ctrl-C only when :func:`watch_interrupts` saw the
SIGINT arrive (:func:`real_interrupt`); one a driver raises is an exception like any
other (0x1E).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any, Protocol

from . import isolation
from .errors import DdiTimeout

_armed = 0
_interrupts_watched = False
_sigints = 0
_example = ""
#: Set on the KeyboardInterrupt that :func:`watch_interrupts`' handler raises.
REAL = "wddm_real_interrupt"


def watch_interrupts() -> None:
    """From now on, tell a real Ctrl-C (SIGINT) from a KeyboardInterrupt raised by code.

    Installs a SIGINT handler that notes the signal, then raises KeyboardInterrupt as
    Python's default does. Nothing happens off the main thread or when another
    handler than Python's default is installed.
    """
    global _interrupts_watched
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        return
    signal.signal(signal.SIGINT, _on_sigint)
    _interrupts_watched = True


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    global _sigints
    _sigints += 1
    interrupt = KeyboardInterrupt()
    setattr(interrupt, REAL, True)
    raise interrupt


def sigints() -> int:
    """How many real Ctrl-Cs (SIGINT) have arrived since :func:`watch_interrupts`."""
    return _sigints


def real_interrupt(exc: BaseException) -> bool:
    """Whether ``exc`` is a real Ctrl-C: raised by the SIGINT handler, or nobody watches."""
    return isinstance(exc, KeyboardInterrupt) and (
        getattr(exc, REAL, False) or not _interrupts_watched
    )


def armed() -> bool:
    """True while a WatchdogInvoker's timer runs: code that blocks in C must stay interruptible."""
    return _armed > 0


class Invoker(Protocol):
    """Calls ``fn(*args)`` for DDI ``ddi``; may raise DdiTimeout."""

    def __call__(self, ddi: str, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any: ...


def note_example(text: str) -> None:
    """Record what the running check is trying now (a hypothesis example's arguments), for
    the message of a TDR that abandons the check (:class:`~.errors.CheckAbandoned`)."""
    global _example
    _example = text


def current_example() -> str:
    """What :func:`note_example` last recorded ("" when nothing was)."""
    return _example


def direct_invoker(ddi: str, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    """No watchdog: for fuzzing hot paths where libFuzzer's own -timeout guards the process."""
    return fn(*args)


class WatchdogInvoker:
    """Times each DDI call with SIGALRM; ``seconds <= 0`` disables the watchdog."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._usable = seconds > 0 and hasattr(signal, "setitimer")

    def __call__(self, ddi: str, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        beacon = isolation.current
        if beacon is None:
            return self._call(ddi, fn, args)
        usable = self._usable and threading.current_thread() is threading.main_thread()
        beacon.enter(ddi, self.seconds if usable else 0)
        try:
            return self._call(ddi, fn, args)
        finally:
            beacon.leave(ddi)

    def _call(self, ddi: str, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
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
