"""Letting go of a failed check's objects once its failure has been reported.

An exception keeps its traceback, and the traceback keeps the frames it passed through
with all their locals: the kernel (its video memory, system memory, GPU and driver
instance), the driver's own frames and argument blocks, and, through each frame's
caller (``f_back``), hypothesis' frames with the example's data. Hypothesis keeps the
exception of every failing example it tries while shrinking, and Python keeps the last
reported one in ``sys.last_value``, so without this a failing property check held a
kernel per failing example (hundreds of them: gigabytes) until it had been reported.

:func:`release` clears the locals of the frames an exception reached, once they have
finished. What a report needs survives: the type, the message, the notes, and the
traceback's files, lines and code (it formats the same, without locals).

In the suite a failing example is released when the next example starts
(:func:`per_example`, :func:`defer`, :func:`release_deferred`), not at once: the last
one, the falsifying example hypothesis replays and pytest reports, keeps its locals for
the report (``--showlocals``) and for ``--pdb`` until its check ends, when the suite's
``conftest.py`` calls :func:`release_last`.

Not covered: a closure's variables are not its frame's locals, and a frame keeps its
function, so an exception raised inside a nested function that captured a kernel still
reaches that kernel; a check must not hand hypothesis such a failure (raise from a
plain function or method instead).
"""

from __future__ import annotations

import gc
import inspect
import sys
from collections.abc import Callable
from functools import wraps
from types import FrameType, TracebackType
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

#: Frames of generators and coroutines are never cleared: clearing a suspended one
#: would close it (Python 3.11, 3.12).
_SUSPENDABLE = (
    inspect.CO_GENERATOR
    | inspect.CO_COROUTINE
    | inspect.CO_ASYNC_GENERATOR
    | inspect.CO_ITERABLE_COROUTINE
)

#: Failures of examples that have ended, waiting for the next example (or the check's end).
_deferred: list[BaseException] = []


def release(exc: BaseException | None) -> None:
    """Clear the locals of every finished frame ``exc`` reached, and of the exceptions it
    carries: its ``__cause__`` and ``__context__`` chains and the members of exception
    groups, recursively. The frames are those of each traceback and their callers
    (``f_back``, which also reaches the frames a traceback was trimmed of), up to the
    first frame still running. Idempotent; None does nothing."""
    seen_exceptions: set[int] = set()
    seen_frames: set[int] = set()
    todo: list[BaseException] = [exc] if exc is not None else []
    while todo:
        current = todo.pop()
        if id(current) in seen_exceptions:
            continue
        seen_exceptions.add(id(current))
        tb: TracebackType | None = current.__traceback__
        while tb is not None:
            frame: FrameType | None = tb.tb_frame
            while frame is not None and id(frame) not in seen_frames:
                seen_frames.add(id(frame))
                if not _clear(frame):
                    break  # running (so are its callers) or a generator's: no further
                frame = frame.f_back
            tb = tb.tb_next
        todo += [e for e in (current.__cause__, current.__context__) if e is not None]
        if isinstance(current, BaseExceptionGroup):
            todo += current.exceptions


def _clear(frame: FrameType) -> bool:
    """Clear a finished frame's locals; False if it is running or a generator's.

    Python 3.11 and 3.12 also keep a copy of the locals in a frame whose ``f_locals``
    was read (pytest reads it of every frame it formats) and ``frame.clear()`` leaves
    that copy; reading ``f_locals`` of the cleared frame empties it (CPython gh-113939,
    fixed in 3.13)."""
    if frame.f_code.co_flags & _SUSPENDABLE:
        return False
    try:
        frame.clear()
    except RuntimeError:
        return False  # still running: only its caller can let go of it
    _ = frame.f_locals
    return True


def defer(exc: BaseException | None) -> None:
    """Keep ``exc``, the failure of an example that has just ended, for
    :func:`release_deferred`. None does nothing."""
    if exc is not None:
        _deferred.append(exc)


def release_deferred() -> None:
    """Release every deferred failure and forget them (at the start of an example).

    A released kernel is not freed at once: it sits in reference cycles (kernel and
    memory manager, the reference GPU and its dispatch table) until the collector runs.
    A young-generation collection after a release frees it while it is still young; a
    full one would cost about 0.1 s per failing example, a young one next to nothing."""
    if not _deferred:
        return
    while _deferred:
        release(_deferred.pop())
    gc.collect(1)


def release_last() -> None:
    """At the end of a check: release the deferred failures and the one Python keeps as
    ``sys.last_value`` (pytest sets it for every failed check)."""
    release_deferred()
    release(getattr(sys, "last_value", None))


def per_example(test: Callable[P, R]) -> Callable[P, R]:
    """Decorate a property check's body, between ``@given`` and the function: each example
    first releases the failures of the examples before it, and a failing example defers
    its own. The signature is the test's (``functools.wraps``), so ``@given`` and pytest
    see the test's own arguments."""

    @wraps(test)
    def example(*args: P.args, **kwargs: P.kwargs) -> R:
        release_deferred()
        try:
            return test(*args, **kwargs)
        except BaseException as exc:
            defer(exc)
            raise

    return example
