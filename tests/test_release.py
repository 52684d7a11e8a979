"""wddm_conformance.release on its own: a released failure reaches none of the objects its
frames held, keeps what a report shows, and hypothesis still shrinks, prints its blob and
replays from its database through :func:`per_example`."""

from __future__ import annotations

import ast
import gc
import re
import traceback
import weakref
from collections.abc import Callable, Generator
from typing import Any

import pytest
from hypothesis import given, reproduce_failure, settings
from hypothesis import strategies as st
from hypothesis.database import InMemoryExampleDatabase

from wddm_conformance.errors import DriverViolation
from wddm_conformance.release import (
    defer,
    per_example,
    release,
    release_deferred,
    release_last,
)


class Big:
    """Stands for a kernel: what a failure must not keep alive."""


def fail_holding(obj: object) -> None:
    held = obj  # noqa: F841 -- the frame's local is the point
    raise ValueError("the driver broke a rule")


def caught(fn: Callable[..., object], *args: object) -> BaseException:
    try:
        fn(*args)
    except BaseException as exc:
        return exc
    raise AssertionError(f"{fn.__name__} did not raise")


def alive(ref: weakref.ref[Any]) -> bool:
    gc.collect()
    return ref() is not None


def test_a_released_failure_keeps_its_text_and_none_of_its_frames_locals() -> None:
    big = Big()
    ref = weakref.ref(big)
    exc = caught(fail_holding, big)
    del big
    text = "".join(traceback.format_exception(exc))
    # pytest reads f_locals of every frame it formats: Python 3.11 then keeps a copy of
    # the locals that frame.clear() alone leaves behind.
    for frame, _ in traceback.walk_tb(exc.__traceback__):
        assert frame.f_locals is not None
    assert alive(ref)
    release(exc)
    assert not alive(ref)
    assert "".join(traceback.format_exception(exc)) == text
    assert "fail_holding" in text and "the driver broke a rule" in text
    release(exc)  # idempotent


def test_causes_contexts_and_exception_groups_are_released_too() -> None:
    refs = []

    def chained() -> None:
        big = Big()
        refs.append(weakref.ref(big))
        try:
            fail_holding(big)
        except ValueError as inner:
            try:
                fail_holding(Big())
            except ValueError:
                raise RuntimeError("the harness's own failure") from inner

    def grouped() -> None:
        members = [caught(chained), caught(fail_holding, big := Big())]
        refs.append(weakref.ref(big))
        del big
        raise ExceptionGroup("several failures", members)  # type: ignore[type-var]

    exc = caught(grouped)
    assert all(alive(r) for r in refs)
    release(exc)
    assert not any(alive(r) for r in refs)


def test_callers_a_trimmed_traceback_left_out_are_released() -> None:
    """Hypothesis trims its own frames from the traceback it reports; they stay reachable
    as the callers (``f_back``) of the frames it kept."""

    def caller(big: Big) -> None:
        fail_holding(big)

    big = Big()
    ref = weakref.ref(big)
    exc = caught(caller, big)
    del big
    assert exc.__traceback__ is not None and exc.__traceback__.tb_next is not None
    trimmed = exc.__traceback__.tb_next.tb_next  # fail_holding's frame only
    exc = exc.with_traceback(trimmed)
    release(exc)
    assert not alive(ref)


def test_running_frames_and_suspended_generators_are_left_alone() -> None:
    mine = Big()
    failures: list[BaseException] = []

    def generator() -> Generator[int, None, None]:
        held = Big()
        while True:
            failures.append(caught(fail_holding, held))
            yield 1

    steps = generator()
    next(steps)
    try:
        raise ValueError("raised in a running frame")
    except ValueError as exc:
        release(exc)
    release(failures[0])  # its caller, the generator, is suspended
    assert isinstance(mine, Big)  # this frame kept its locals
    assert next(steps) == 1  # the generator was not closed


def test_a_deferred_failure_is_released_at_the_next_example_or_the_checks_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    big = Big()
    ref = weakref.ref(big)
    defer(caught(fail_holding, big))
    del big
    assert alive(ref)
    release_deferred()
    assert not alive(ref)

    last = Big()
    ref = weakref.ref(last)
    monkeypatch.setattr("sys.last_value", caught(fail_holding, last), raising=False)
    del last
    release_last()
    assert not alive(ref)


def test_hypothesis_shrinks_prints_its_blob_and_replays_through_per_example() -> None:
    made: weakref.WeakSet[Big] = weakref.WeakSet()
    database = InMemoryExampleDatabase()
    first: list[int] = []

    def body(n: int) -> None:
        big = Big()
        made.add(big)
        first.append(n)
        assert n < 10, big

    def prop() -> Callable[[], None]:
        return settings(database=database, derandomize=False, print_blob=True, max_examples=200)(
            given(st.integers(0, 1000))(per_example(body))
        )

    failure = caught(prop())
    notes = "\n".join(getattr(failure, "__notes__", []))
    assert "n=10" in notes  # shrunk to the smallest failing example
    release_deferred()
    release(failure)
    assert not list(made), "a failing example's object is still alive"

    first.clear()
    caught(prop())  # the database's failing example is tried first
    assert first[0] == 10

    blob = re.search(r"@reproduce_failure\('([^']+)', (b'[^']*')\)", notes)
    assert blob is not None, notes
    version, data = blob.group(1), ast.literal_eval(blob.group(2))
    first.clear()
    replay = reproduce_failure(version, data)(given(st.integers(0, 1000))(per_example(body)))
    assert isinstance(caught(replay), AssertionError)
    assert first == [10]
    release_deferred()


def test_a_violations_details_hold_no_live_object() -> None:
    class Live:
        def __str__(self) -> str:
            return "allocation #3"

    live = Live()
    ref = weakref.ref(live)
    exc = DriverViolation(
        "REN-TRANSLATE", "DxgkDdiRender", "m", {"where": live, "runs": [(1, 2)], "n": 3}
    )
    del live
    assert exc.details == {"where": "allocation #3", "runs": [(1, 2)], "n": 3}
    assert not alive(ref)
