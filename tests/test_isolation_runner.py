"""wddm_conformance.isolation on its own: a job's bytes come back, every way a child can
die is a Death of the right kind, nothing the job started outlives it, and the parent's
state is the parent's.

The limits are generous where the job is honest and the jobs that must be stopped never
end by themselves (an hour's sleep), so no verdict depends on the machine's speed.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from wddm_conformance import isolation
from wddm_conformance.errors import KMODE_EXCEPTION_NOT_HANDLED, VIDEO_TDR_FAILURE

pytestmark = pytest.mark.skipif(not isolation.available(), reason="no os.fork here")

HOUR = 3600.0
#: An honest job's limits: it finishes long before them on any machine.
ROOMY = isolation.Limits(seconds=120.0, memory=None, grace=2.0)


def gone(pid: int) -> bool:
    """Whether process ``pid`` has ended: it does not exist, or it is a zombie (Linux)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    except OSError:  # no /proc: ask the kernel (a zombie counts as alive there)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False
    return stat.rpartition(")")[2].split()[0] in ("Z", "X")


def wait_gone(pid: int, seconds: float = 30.0) -> bool:
    """Whether ``pid`` has ended within ``seconds`` (a SIGKILL is delivered asynchronously)."""
    end = time.monotonic() + seconds
    while not gone(pid):
        if time.monotonic() > end:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture
def pids(tmp_path: Path) -> Iterator[Callable[[], list[int]]]:
    """A file the job writes the pids it wants checked into; returns a reader. Whatever is
    still alive at the end is killed (a failing test leaves no process behind)."""
    path = tmp_path / "pids"
    os.environ["ISOLATION_TEST_PIDS"] = str(path)

    def read() -> list[int]:
        return [int(x) for x in path.read_text().split()] if path.exists() else []

    yield read
    del os.environ["ISOLATION_TEST_PIDS"]
    for pid in read():
        if not gone(pid):
            os.kill(pid, signal.SIGKILL)


def note_pid(pid: int) -> None:
    with open(os.environ["ISOLATION_TEST_PIDS"], "a") as out:
        out.write(f"{pid}\n")


def hang() -> None:
    time.sleep(HOUR)


# ------------------------------------------------------------------------------ results


def test_a_job_s_bytes_come_back_unchanged() -> None:
    assert isolation.run(lambda: b"", ROOMY) == b""
    blob = bytes(range(256)) * 40_000  # 10 MB: more than a pipe holds
    assert isolation.run(lambda: blob, ROOMY) == blob


def test_the_parent_s_state_is_unchanged_by_the_child() -> None:
    state = {"calls": 0}
    items = [1, 2, 3]

    def job() -> bytes:
        state["calls"] += 1
        items.clear()
        os.environ["ISOLATION_TEST_LEAK"] = "child"
        sys.modules["isolation_test_leak"] = sys
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)
        os.chdir("/")
        return repr((state, items)).encode()

    before = (os.getcwd(), signal.getsignal(signal.SIGUSR1))
    assert isolation.run(job, ROOMY) == b"({'calls': 1}, [])"
    assert state == {"calls": 0} and items == [1, 2, 3]
    assert "ISOLATION_TEST_LEAK" not in os.environ
    assert "isolation_test_leak" not in sys.modules
    assert (os.getcwd(), signal.getsignal(signal.SIGUSR1)) == before
    assert isolation.current is None  # only the child has a beacon


def test_each_job_starts_from_the_parent_s_state_not_the_last_job_s() -> None:
    counter = [0]

    def job() -> bytes:
        counter[0] += 1
        return str(counter[0]).encode()

    assert [isolation.run(job, ROOMY) for _ in range(3)] == [b"1", b"1", b"1"]


# ------------------------------------------------------------------------------ deaths


def in_ddi(ddi: str, watchdog: float, then: Callable[[], object]) -> Callable[[], bytes]:
    """A job that enters ``ddi`` on its beacon (as the watchdog does) and runs ``then``."""

    def job() -> bytes:
        assert isolation.current is not None
        isolation.current.enter(ddi, watchdog)
        then()
        return b"returned"

    return job


def test_a_signal_is_a_death_by_that_signal() -> None:
    death = isolation.run(lambda: ctypes.string_at(0), ROOMY)
    assert isinstance(death, isolation.Death)
    assert (death.kind, death.signal, death.in_ddi, death.ddi) == (
        "signal",
        signal.SIGSEGV,
        False,
        "",
    )
    assert death.bugcheck is None and death.rule == ""  # not in a DDI: nothing Windows sees
    assert "SIGSEGV" in death.describe() and "before any DDI call" in death.describe()
    assert "Fatal Python error: Segmentation fault" in death.output  # faulthandler's stack


@pytest.mark.parametrize(
    ("fault", "sig", "code"),
    [
        (lambda: ctypes.string_at(0), signal.SIGSEGV, 0xC0000005),
        (os.abort, signal.SIGABRT, 0x80000003),
    ],
    ids=["segv", "abort"],
)
def test_a_signal_in_a_ddi_is_the_bug_check_of_its_exception(
    fault: Callable[[], object], sig: int, code: int
) -> None:
    death = isolation.run(in_ddi("DxgkDdiRender", HOUR, fault), ROOMY)
    assert isinstance(death, isolation.Death)
    assert (death.kind, death.signal, death.in_ddi, death.ddi) == (
        "signal",
        sig,
        True,
        "DxgkDdiRender",
    )
    assert death.bugcheck is not None
    assert (death.bugcheck.code, death.bugcheck.parameters[0]) == (
        KMODE_EXCEPTION_NOT_HANDLED,
        code,
    )
    assert death.rule == "ALL-NORAISE"
    assert death.describe().endswith("in DxgkDdiRender")


def test_an_exit_is_a_death_with_its_status() -> None:
    death = isolation.run(lambda: os._exit(3), ROOMY)
    assert isinstance(death, isolation.Death)
    assert (death.kind, death.exit_status, death.signal) == ("exit", 3, 0)
    assert death.bugcheck is None and not death.timed_out
    assert "exited with status 3" in death.describe()


def test_an_exit_0_without_a_result_is_a_death_too() -> None:
    death = isolation.run(lambda: os._exit(0), ROOMY)
    assert isinstance(death, isolation.Death)
    assert (death.kind, death.exit_status) == ("exit", 0)


def test_an_exit_after_a_ddi_returned_names_the_last_ddi() -> None:
    def job() -> bytes:
        assert isolation.current is not None
        isolation.current.enter("DxgkDdiPatch", HOUR)
        isolation.current.leave("DxgkDdiPatch")
        os._exit(5)

    death = isolation.run(job, ROOMY)
    assert isinstance(death, isolation.Death)
    assert (death.kind, death.ddi, death.in_ddi) == ("exit", "DxgkDdiPatch", False)
    assert "after DxgkDdiPatch returned" in death.describe()


def test_a_job_that_raises_is_a_harness_fault_with_its_traceback() -> None:
    def job() -> bytes:
        raise ValueError("the harness broke")

    death = isolation.run(job, ROOMY)
    assert isinstance(death, isolation.Death)
    assert death.kind == "raised" and death.rule == ""
    assert "Traceback" in death.output and "ValueError: the harness broke" in death.output
    assert death.describe().endswith("ValueError: the harness broke")


@pytest.mark.parametrize("exc", [KeyboardInterrupt, SystemExit], ids=lambda e: e.__name__)
def test_a_base_exception_from_the_job_is_a_harness_fault_not_the_end_of_the_parent(
    exc: type[BaseException],
) -> None:
    def job() -> bytes:
        raise exc

    death = isolation.run(job, ROOMY)
    assert isinstance(death, isolation.Death)
    assert death.kind == "raised" and exc.__name__ in death.output


def test_memory_past_the_limit_is_a_memory_death() -> None:
    limits = isolation.Limits(seconds=120.0, memory=64 << 20, grace=2.0)

    def job() -> bytes:
        hog = bytearray(1 << 30)  # 1 GiB against a 64 MiB limit: refused, never touched
        return bytes(hog[:1])

    death = isolation.run(job, limits)
    assert isinstance(death, isolation.Death)
    assert death.kind == "memory"
    assert "ran out of memory" in death.describe()
    # Under the limit the same process may allocate what it needs.
    assert isolation.run(lambda: bytes(bytearray(16 << 20)[:1]), limits) == b"\0"


@pytest.mark.skipif(not Path("/proc/self/oom_score_adj").exists(), reason="Linux only")
def test_the_machine_s_out_of_memory_killer_takes_the_child_before_the_harness() -> None:
    before = Path("/proc/self/oom_score_adj").read_text()
    job = Path("/proc/self/oom_score_adj").read_bytes
    assert isolation.run(job, ROOMY) == b"1000\n"
    assert Path("/proc/self/oom_score_adj").read_text() == before


def test_a_job_past_its_time_limit_is_a_timeout(pids: Callable[[], list[int]]) -> None:
    def job() -> bytes:
        note_pid(os.getpid())
        hang()
        return b""

    death = isolation.run(job, isolation.Limits(seconds=0.5, memory=None, grace=2.0))
    assert isinstance(death, isolation.Death)
    assert (death.kind, death.seconds, death.in_ddi) == ("timeout", 0.5, False)
    assert death.timed_out and death.bugcheck is None
    (child,) = pids()
    assert gone(child)  # killed and reaped


def test_a_ddi_that_outlives_its_watchdog_by_the_grace_is_a_hung_ddi() -> None:
    limits = isolation.Limits(seconds=None, memory=None, grace=0.2)
    death = isolation.run(in_ddi("DxgkDdiBuildPagingBuffer", 0.3, hang), limits)
    assert isinstance(death, isolation.Death)
    assert (death.kind, death.ddi, death.in_ddi, death.seconds) == (
        "hung-ddi",
        "DxgkDdiBuildPagingBuffer",
        True,
        0.3,
    )
    assert death.bugcheck is not None and death.bugcheck.code == VIDEO_TDR_FAILURE
    assert death.rule == "ALL-BOUNDED"
    assert "did not return within 0.3 s" in death.describe()


def test_a_ddi_without_a_watchdog_is_stopped_by_the_time_limit_as_a_tdr() -> None:
    limits = isolation.Limits(seconds=0.5, memory=None, grace=0.2)
    death = isolation.run(in_ddi("DxgkDdiRender", 0, hang), limits)
    assert isinstance(death, isolation.Death)
    assert (death.kind, death.ddi, death.in_ddi) == ("timeout", "DxgkDdiRender", True)
    assert death.bugcheck is not None and death.bugcheck.code == VIDEO_TDR_FAILURE


# ----------------------------------------------------------------- nothing outlives a job


def test_a_job_that_closes_its_inherited_files_is_still_stopped() -> None:
    """The parent must not take the end of its pipe for the end of the child."""

    def job() -> bytes:
        os.closerange(3, 65536)
        hang()
        return b""

    def run_it() -> None:
        box.append(isolation.run(job, isolation.Limits(seconds=1.0, memory=None, grace=2.0)))

    box: list[bytes | isolation.Death] = []
    waiter = threading.Thread(target=run_it, daemon=True)
    waiter.start()
    waiter.join(60)  # the limit is 1 s: a minute is a hang, not a slow machine
    assert box, "isolation.run did not return: it waited for a child past its time limit"
    (death,) = box
    assert isinstance(death, isolation.Death) and death.kind == "timeout"


@pytest.mark.parametrize("ending", ["killed", "returned"])
def test_no_process_the_job_started_outlives_it(ending: str, pids: Callable[[], list[int]]) -> None:
    def job() -> bytes:
        note_pid(os.getpid())
        grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
        note_pid(grandchild.pid)
        pid = os.fork()
        if pid == 0:  # a forked grandchild, holding the parent's pipe
            hang()
            os._exit(0)
        note_pid(pid)
        if ending == "killed":
            hang()
        return b"done"

    outcome = isolation.run(job, isolation.Limits(seconds=2.0, memory=None, grace=2.0))
    if ending == "killed":
        assert isinstance(outcome, isolation.Death) and outcome.kind == "timeout"
    else:
        assert outcome == b"done"
    child, *grandchildren = pids()
    assert len(grandchildren) == 2
    assert gone(child)
    alive = [pid for pid in grandchildren if not wait_gone(pid)]
    assert not alive, f"the job's processes {alive} outlived it"


def test_a_real_ctrl_c_kills_the_child_and_propagates(pids: Callable[[], list[int]]) -> None:
    def job() -> bytes:
        note_pid(os.getpid())
        hang()
        return b""

    # A real SIGINT arrives at the parent while it waits (a timer thread sends it once the
    # child has started, so the verdict does not depend on how fast the fork is).
    def interrupt() -> None:
        end = time.monotonic() + 60
        while not pids() and time.monotonic() < end:
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGINT)

    sender = threading.Thread(target=interrupt, daemon=True)
    sender.start()
    with pytest.raises(KeyboardInterrupt):
        isolation.run(job, isolation.Limits(seconds=120.0, memory=None, grace=2.0))
    sender.join()
    (child,) = pids()
    assert gone(child)


def test_a_ctrl_c_handled_earlier_in_the_process_does_not_stop_a_later_job(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only a SIGINT that arrives while the job runs stops it: an xdist worker that ran a
    test sending itself SIGINT goes on running isolated checks."""
    from wddm_conformance import watchdog

    monkeypatch.setattr(watchdog, "_sigints", watchdog.sigints() + 1)
    assert isolation.run(lambda: b"ok", isolation.Limits()) == b"ok"


def test_the_parent_never_reads_a_half_written_beacon() -> None:
    """A torn read (a new deadline with an old start) once killed a healthy check as
    hung-ddi with a negative duration: every record read is one the child wrote whole."""
    beacon = isolation.Beacon(grace=2.0)
    pid = os.fork()
    if pid == 0:  # the writer: records whose fields agree with each other
        try:
            for i in range(1, 200_000):
                beacon.enter(f"d{i % 97}", float(i % 97 + 1))
        finally:
            os._exit(0)
    try:
        torn = []
        while os.waitpid(pid, os.WNOHANG) == (0, 0):
            deadline, since, in_ddi, ddi = beacon.read()
            if in_ddi and round(deadline - since - 2.0) != int(ddi[1:]) + 1:
                torn.append((deadline, since, ddi))
        assert torn == []
    finally:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


def test_a_generation_of_zero_is_never_a_whole_record() -> None:
    """struct's pack_into zeroes the generation before storing it: a reader that saw 0
    before and after a torn record took it whole (in a DDI, with no name; CI saw it once)."""
    beacon = isolation.Beacon(grace=2.0)
    beacon.enter("DxgkDdiRender", 1.0)
    beacon._GENERATION.pack_into(beacon._page, 0, 0)
    assert beacon.read()[0] == math.inf


def test_a_beacon_left_mid_write_reads_as_no_deadline() -> None:
    beacon = isolation.Beacon(grace=2.0)
    beacon.enter("DxgkDdiRender", 1.0)
    beacon._GENERATION.pack_into(beacon._page, 0, 7)  # the child died between two stores
    assert beacon.read()[0] == math.inf
