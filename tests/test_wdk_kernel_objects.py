"""WDK-style native drivers: the kernel objects of the runtime beyond pool and spin locks
(events and fast mutexes), each driven through the runtime like a DDI.

The functions live in tests/native_drivers/wdk_sync.c, built beside wdk_pool.c.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest

from wddm_conformance.errors import BugCheck, Tdr
from wddm_conformance.native.build import build

from .test_wdk_native import CC, DRIVER, HERE, _run_export

SYNC = HERE / "native_drivers" / "wdk_sync.c"

pytestmark = pytest.mark.skipif(CC is None, reason="no C compiler (install gcc, or set CC)")


@cache
def _sync_library() -> Path:
    return build([DRIVER, SYNC], name="wdksync", wdk=True)


def _run(export: str) -> int:
    return _run_export(_sync_library(), export)


# --------------------------------------------------------------------------- events


def test_events_signal_reset_and_time_out_as_documented() -> None:
    assert _run("WdkSyncEvents") == 0


def test_a_wait_that_nothing_can_satisfy_is_the_tdr_it_would_be() -> None:
    with pytest.raises(Tdr) as caught:
        _run("WdkSyncWaitForever")
    assert caught.value.code == 0x116 and caught.value.requirement == "ALL-BOUNDED"
    assert "KeWaitForSingleObject with no timeout" in str(caught.value)


def test_a_wait_with_a_timeout_under_a_spin_lock_is_bug_check_0xa() -> None:
    with pytest.raises(BugCheck) as caught:
        _run("WdkSyncWaitUnderSpinLock")
    assert caught.value.code == 0xA and caught.value.requirement == "REN-IRQL"
    assert caught.value.parameters[1] == 2  # at DISPATCH_LEVEL
    assert "KeWaitForSingleObject at IRQL 2 (allowed up to 1)" in str(caught.value)


# --------------------------------------------------------------------------- fast mutexes


def test_a_fast_mutex_raises_to_apc_level_and_restores_the_irql() -> None:
    assert _run("WdkSyncMutex") == 0


def test_acquiring_a_fast_mutex_twice_is_verifiers_deadlock_bug_check() -> None:
    with pytest.raises(BugCheck) as caught:
        _run("WdkSyncMutexTwice")
    assert (caught.value.code, caught.value.parameters[0]) == (0xC4, 0x1001)
    assert caught.value.requirement == "ALL-BOUNDED"
    assert "is acquired again at" in str(caught.value) and "wdk_sync.c:" in str(caught.value)


def test_returning_from_a_ddi_owning_a_fast_mutex_is_bug_check_0x4a() -> None:
    with pytest.raises(BugCheck) as caught:
        _run("WdkSyncMutexHeld")
    assert caught.value.code == 0x4A and caught.value.requirement == "REN-IRQL"
    assert caught.value.parameters[1] == 1  # APC_LEVEL
    assert "returned owning fast mutex" in str(caught.value)


def test_a_fast_mutex_above_apc_level_is_bug_check_0xc4_0x20005() -> None:
    with pytest.raises(BugCheck) as caught:
        _run("WdkSyncMutexAtDispatch")
    assert (caught.value.code, caught.value.parameters[0]) == (0xC4, 0x20005)
    assert caught.value.requirement == "REN-IRQL"


def test_releasing_a_fast_mutex_not_owned_is_bug_check_0xe3() -> None:
    with pytest.raises(BugCheck) as caught:
        _run("WdkSyncReleaseUnowned")
    assert caught.value.code == 0xE3 and "does not own" in str(caught.value)
