"""Running untrusted driver code in a process the harness can stop by force.

The driver under test is the least trustworthy code in the run. Each isolated job (one
conformance check, one ``check`` mode) runs in a child process forked from the harness,
so whatever the driver does there -- a segfault or an abort in C, ``os._exit``, a hang
that swallows the watchdog's interrupt or blocks in C, a flood of memory, a thread left
running -- ends that job with a :class:`Death` the caller reports (CRASH or TIMEOUT), and
the run goes on. The parent never runs driver code; every job starts from the same
pristine state, so one job cannot change another's verdict (docs/INTERPRETING.md, §6).

Limits (:class:`Limits`):

* a hard wall-clock limit for the whole job (``seconds``);
* a DDI that has not returned ``grace`` seconds after its watchdog fired: the
  :class:`Beacon`, a page shared with the child, says which DDI runs and until when;
* a memory limit (``RLIMIT_DATA``, bytes above what the child inherits), so an
  allocation past it fails inside the driver instead of waking the system's
  out-of-memory killer. It is not applied under AddressSanitizer, whose shadow memory
  needs terabytes of address space. Should the machine run out all the same, its
  out-of-memory killer picks the child first (Linux: ``oom_score_adj`` 1000).

The child leads a process group of its own, and the whole group is killed when the job
ends, however it ends: a process the driver started (forked or spawned) does not outlive
its job. One that leaves the group (``setsid``) is beyond reach.

POSIX only (``os.fork``); :func:`available` says whether it can be used.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import functools
import gc
import math
import os
import resource
import select
import shutil
import signal
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from mmap import mmap
from pathlib import Path
from typing import TYPE_CHECKING

from . import watchdog
from .defaults import ISOLATED_GRACE, ISOLATED_MEMORY_MIB, ISOLATED_SECONDS
from .errors import (
    KMODE_EXCEPTION_NOT_HANDLED,
    STATUS_ACCESS_VIOLATION,
    VIDEO_TDR_FAILURE,
    BugCheck,
    BugCheckData,
    DriverFailure,
    ProcessDied,
    Tdr,
)
from .status import STATUS_ILLEGAL_INSTRUCTION

if TYPE_CHECKING:
    from .fuzz.sanitizer import SanitizerReport

#: Exit status of a child whose job raised instead of returning (a harness fault).
JOB_RAISED = 70
#: Exit status of a child that ran out of memory (its limit, or the machine's).
OUT_OF_MEMORY = 71
#: The child's /proc/self/oom_score_adj (Linux): when the machine runs out of memory
#: anyway (limits x workers above its memory), its out-of-memory killer kills the job,
#: which is reported, rather than the harness.
OOM_SCORE_ADJ = 1000
#: How often the parent reads the beacon while it waits (seconds).
POLL = 0.25
#: How often, at most, it asks whether the child has ended once the child's pipe is closed.
SHORT_POLL = 0.01

STATUS_BREAKPOINT = 0x80000003
STATUS_INTEGER_DIVIDE_BY_ZERO = 0xC0000094

#: The exception a signal stands for in a kernel-mode driver: the code of the
#: KMODE_EXCEPTION_NOT_HANDLED bug check Windows raises for it (DDI_FACTS.md: 0x1E).
SIGNAL_EXCEPTIONS = {
    signal.SIGSEGV: STATUS_ACCESS_VIOLATION,
    signal.SIGBUS: STATUS_ACCESS_VIOLATION,
    signal.SIGILL: STATUS_ILLEGAL_INSTRUCTION,
    signal.SIGFPE: STATUS_INTEGER_DIVIDE_BY_ZERO,
    signal.SIGABRT: STATUS_BREAKPOINT,  # abort()/assert(): NT_ASSERT breaks in, as in a checked build
    signal.SIGTRAP: STATUS_BREAKPOINT,
}


def available() -> bool:
    """Whether jobs can be isolated here (``os.fork`` exists)."""
    return hasattr(os, "fork")


@dataclass(frozen=True)
class Limits:
    """How far an isolated job may go.

    ``seconds``: wall-clock limit of the whole job (None: none). ``memory``: bytes the
    child may allocate above what it inherits (None: no limit). ``grace``: seconds a
    DDI may run past its watchdog's deadline before the child is killed.
    """

    seconds: float | None = ISOLATED_SECONDS
    memory: int | None = ISOLATED_MEMORY_MIB << 20
    grace: float = ISOLATED_GRACE


class Beacon:
    """A page shared by the parent and its isolated child: which DDI the child is in,
    and the monotonic time (``time.monotonic``, system-wide) by which it must return.

    The child's watchdog writes it around every DDI call (:meth:`enter`, :meth:`leave`);
    the parent reads it while it waits (:meth:`read`). ``grace``: seconds a DDI may run
    past its watchdog's deadline.
    """

    _GENERATION = struct.Struct("Q")  # odd while the child writes (a seqlock)
    _FORMAT = struct.Struct("dd?64s")  # deadline, since, in a DDI, DDI name
    _READ_TRIES = 1000

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self._generation = 0
        self._page = mmap(-1, self._GENERATION.size + self._FORMAT.size)
        self._write(math.inf, 0.0, False, "")

    def _write(self, deadline: float, since: float, in_ddi: bool, ddi: str) -> None:
        """Write the fields between two generation stores (odd before, even after), so a
        reader never takes a half-written record for a whole one."""
        self._generation += 1
        self._GENERATION.pack_into(self._page, 0, self._generation)
        self._FORMAT.pack_into(
            self._page, self._GENERATION.size, deadline, since, in_ddi, ddi.encode()[:64]
        )
        self._generation += 1
        self._GENERATION.pack_into(self._page, 0, self._generation)

    def enter(self, ddi: str, seconds: float) -> None:
        """``ddi`` starts; its watchdog fires after ``seconds`` (<= 0: it has none)."""
        now = time.monotonic()
        self._write(now + seconds + self.grace if seconds > 0 else math.inf, now, True, ddi)

    def leave(self, ddi: str) -> None:
        self._write(math.inf, time.monotonic(), False, ddi)

    def read(self) -> tuple[float, float, bool, str]:
        """``(deadline, since, in_ddi, ddi)``; ``ddi`` is the running or the last DDI.

        A record the child is writing is read again; one that stays torn (the child died
        mid-write) reads as no deadline.
        """
        for _ in range(self._READ_TRIES):
            (before,) = self._GENERATION.unpack_from(self._page, 0)
            fields = self._FORMAT.unpack_from(self._page, self._GENERATION.size)
            (after,) = self._GENERATION.unpack_from(self._page, 0)
            # 0 is never a finished write's generation: struct's pack_into zeroes its bytes
            # before it stores, so a read during two stores can see 0 twice around a torn record.
            if before == after and before and not before % 2:
                deadline, since, in_ddi, name = fields
                return deadline, since, in_ddi, name.rstrip(b"\0").decode(errors="replace")
        return math.inf, 0.0, False, ""


#: The beacon of this process when it is an isolated child (set by :func:`run`).
current: Beacon | None = None


class DeathKind(StrEnum):
    """How an isolated job died (:class:`Death`)."""

    #: Killed by a signal (``Death.signal``).
    SIGNAL = "signal"
    #: Exited with ``Death.exit_status`` without a result.
    EXIT = "exit"
    #: The job itself raised: a harness fault; ``Death.output`` is the traceback.
    RAISED = "raised"
    #: It ran out of memory: ``Limits.memory`` or the machine's.
    MEMORY = "memory"
    #: The job outlived ``Limits.seconds``.
    TIMEOUT = "timeout"
    #: ``Death.ddi`` did not return ``grace`` seconds after its watchdog fired.
    HUNG_DDI = "hung-ddi"


@dataclass(frozen=True)
class Death:
    """How an isolated job ended without a result.

    ``kind``: see :class:`DeathKind`. ``ddi``: the DDI that was
    running, or the last one called (``in_ddi`` says which). ``output``: what the child
    wrote to the crash file (faulthandler's traceback), possibly empty. ``sanitizer``: the
    report AddressSanitizer or UndefinedBehaviorSanitizer wrote when it stopped the child
    (a native driver built with ``--sanitize``), else "".
    """

    kind: DeathKind
    ddi: str = ""
    in_ddi: bool = False
    signal: int = 0
    exit_status: int = 0
    seconds: float = 0.0
    output: str = ""
    sanitizer: str = ""

    @property
    def timed_out(self) -> bool:
        return self.kind in (DeathKind.TIMEOUT, DeathKind.HUNG_DDI)

    def sanitizer_report(self) -> SanitizerReport | None:
        """The sanitizer's report, parsed (None when no sanitizer stopped the child)."""
        if not self.sanitizer or self.timed_out:
            return None
        from .fuzz.sanitizer import parse  # the sanitizer module imports the kernel

        return parse(self.sanitizer)

    @property
    def rule(self) -> str:
        """The requirement the driver broke by dying in a DDI: ALL-BOUNDED when it was
        killed for hanging; for a memory error a sanitizer found, the rule a write past a
        guard zone breaks in that DDI (the same as a fuzz campaign's record of it);
        ALL-NORAISE otherwise; "" outside a DDI or for a harness fault."""
        if not self.in_ddi or self.kind == DeathKind.RAISED:
            return ""
        if self.timed_out:
            return "ALL-BOUNDED"
        report = self.sanitizer_report()
        return report.rule_in(self.ddi) if report is not None else "ALL-NORAISE"

    @property
    def bugcheck(self) -> BugCheckData | None:
        """The bug check Windows would raise for this death, if there is one."""
        if self.timed_out and self.in_ddi:
            return BugCheckData(VIDEO_TDR_FAILURE, (0, 0, 0, 0))
        if self.in_ddi and self.sanitizer_report() is not None:
            return BugCheckData(KMODE_EXCEPTION_NOT_HANDLED, (STATUS_ACCESS_VIOLATION, 0, 0, 0))
        code = SIGNAL_EXCEPTIONS.get(signal.Signals(self.signal)) if self.signal else None
        if code is not None and self.in_ddi:
            return BugCheckData(KMODE_EXCEPTION_NOT_HANDLED, (code, 0, 0, 0))
        return None

    def failure(self, process: str = "the check's process") -> DriverFailure:
        """The death as the driver failure a report records: a TDR, a bug check, or
        :class:`~wddm_conformance.errors.ProcessDied`."""
        message = self.describe(process)
        bugcheck = self.bugcheck
        if self.timed_out:
            return Tdr(VIDEO_TDR_FAILURE, (0, 0, 0, 0), self.rule, self.ddi, message)
        if bugcheck is not None:
            return BugCheck(bugcheck.code, bugcheck.parameters, self.rule, self.ddi, message)
        return ProcessDied(self.rule, self.ddi, message)

    def describe(self, process: str = "the check's process") -> str:
        """One line: what happened, where; ``process`` names the process that died."""
        where = (
            f"in {self.ddi}"
            if self.in_ddi
            else (f"after {self.ddi} returned" if self.ddi else "before any DDI call")
        )
        if self.kind == DeathKind.HUNG_DDI:
            return (
                f"{self.ddi} did not return within {self.seconds:g} s and did not stop when "
                "interrupted (it swallowed the watchdog's DdiTimeout or blocked outside "
                f"Python): {process} was killed"
            )
        if self.kind == DeathKind.TIMEOUT:
            return (
                f"it did not finish within {self.seconds:g} s (its time limit) {where}: "
                f"{process} was killed"
            )
        if self.kind == DeathKind.MEMORY:
            return f"{process} ran out of memory {where} (see --check-memory)"
        report = self.sanitizer_report()
        if report is not None:
            return f"{report.headline(self.ddi if self.in_ddi else '')}: it stopped {process}"
        if self.kind == DeathKind.RAISED:
            last = self.output.strip().splitlines()[-1:] or ["?"]
            return f"the harness failed in {process} {where}: {last[0]}"
        if self.kind == DeathKind.SIGNAL:
            name = signal.Signals(self.signal).name
            return f"{process} was killed by {name} (signal {self.signal}) {where}"
        return f"{process} exited with status {self.exit_status} {where}"


@functools.cache
def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def _asan_loaded() -> bool:
    return hasattr(_libc(), "__asan_init")


def _report_sanitizer_errors_to(prefix: Path) -> None:
    """A sanitizer in this process writes its report to ``prefix.PID``, not to stderr,
    so the parent can read what stopped the child."""
    set_path = getattr(_libc(), "__sanitizer_set_report_path", None)
    if set_path is not None:
        set_path.argtypes = [ctypes.c_char_p]
        set_path(os.fsencode(prefix))


def _data_segment() -> int:
    """Bytes of this process's data segment (VmData), 0 when /proc is missing."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmData:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _limit_memory(extra: int) -> None:
    if _asan_loaded():
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    want = _data_segment() + extra
    if hard != resource.RLIM_INFINITY:
        want = min(want, hard)
    if soft == resource.RLIM_INFINITY or want < soft:
        resource.setrlimit(resource.RLIMIT_DATA, (want, hard))


def _die_with_parent(parent: int) -> None:
    """Linux: the child gets SIGKILL when the parent dies (no orphan keeps a hang going)."""
    libc = _libc()
    if sys.platform.startswith("linux") and libc is not None:
        with contextlib.suppress(AttributeError):
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os._exit(1)


def _child(
    job: Callable[[], bytes],
    result: Path,
    crash: Path,
    limits: Limits,
    parent: int,
    sanitizer: Path,
) -> None:
    """The child's side: never returns."""
    status = JOB_RAISED
    try:
        os.setpgid(0, 0)  # the job's processes are one group, killed with it (_kill)
        # Out of the terminal's foreground group: its Ctrl-C reaches the parent alone, and
        # output to the terminal never stops the child (SIGTTOU under `stty tostop`).
        signal.signal(signal.SIGTTOU, signal.SIG_IGN)
        signal.signal(signal.SIGTTIN, signal.SIG_IGN)
        with contextlib.suppress(OSError):  # Linux: the machine's OOM killer takes the job first
            Path("/proc/self/oom_score_adj").write_text(f"{OOM_SCORE_ADJ}\n")
        gc.freeze()  # the inherited heap is never traversed, so never copied on write
        _die_with_parent(parent)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if limits.memory is not None:
            _limit_memory(limits.memory)
        if _asan_loaded():
            _report_sanitizer_errors_to(sanitizer)
        import faulthandler

        crash_file = open(crash, "w")  # noqa: SIM115 (open until os._exit)
        faulthandler.enable(crash_file, all_threads=False)
        data = job()
        with open(result, "wb") as out:
            out.write(data)
        status = 0
    except MemoryError:
        status = OUT_OF_MEMORY
    except BaseException:
        import traceback

        with contextlib.suppress(BaseException), open(result, "w") as out:
            out.write(traceback.format_exc())
    finally:
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(status)


def run(job: Callable[[], bytes], limits: Limits) -> bytes | Death:
    """Run ``job`` in a forked child under ``limits``; its return value, or how it died.

    ``job`` runs in the child only; it returns bytes the parent gets back unchanged.
    A ``KeyboardInterrupt`` in the parent (a real Ctrl-C) kills the child and propagates.
    """
    global current
    beacon = Beacon(limits.grace)
    sigints = watchdog.sigints()
    _libc(), _asan_loaded()  # looked up once, in the parent
    tmp = _scratch()
    result, crash = tmp / f"result-{os.getpid()}", tmp / f"crash-{os.getpid()}"
    sanitizer_prefix = tmp / f"sanitizer-{os.getpid()}"
    sanitizer: Path | None = None
    for stale in (result, crash):
        stale.unlink(missing_ok=True)
    try:
        done_r, done_w = os.pipe()
        parent = os.getpid()
        start = time.monotonic()
        pid = os.fork()
        if pid == 0:
            os.close(done_r)
            current = beacon
            _child(job, result, crash, limits, parent, sanitizer_prefix)
        os.close(done_w)
        with contextlib.suppress(OSError):  # the child does it too; whoever is first
            os.setpgid(pid, pid)
        try:
            killed = _wait(pid, done_r, beacon, limits, start, sigints)
        except BaseException:
            _kill(pid)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
            raise
        finally:
            os.close(done_r)
        _kill(pid)  # what the job left running in its group (the child itself has ended)
        _, wait_status = os.waitpid(pid, 0)
        _, _, in_ddi, ddi = beacon.read()
        output = crash.read_text(errors="replace") if crash.exists() else ""
        sanitizer = sanitizer_prefix.with_name(f"{sanitizer_prefix.name}.{pid}")
        report = sanitizer.read_text(errors="replace") if sanitizer.exists() else ""
        if killed is not None:
            return Death(killed[0], ddi, in_ddi, seconds=killed[1], output=output)
        exited = os.WEXITSTATUS(wait_status) if os.WIFEXITED(wait_status) else None
        if exited == 0 and result.exists():
            return result.read_bytes()
        if exited == OUT_OF_MEMORY:
            return Death(DeathKind.MEMORY, ddi, in_ddi, output=output)
        if exited == JOB_RAISED and result.exists():
            return Death(DeathKind.RAISED, ddi, in_ddi, output=result.read_text(errors="replace"))
        if os.WIFSIGNALED(wait_status):
            signum = os.WTERMSIG(wait_status)
            return Death(
                DeathKind.SIGNAL, ddi, in_ddi, signal=signum, output=output, sanitizer=report
            )
        code = os.waitstatus_to_exitcode(wait_status)
        return Death(DeathKind.EXIT, ddi, in_ddi, exit_status=code, output=output, sanitizer=report)
    finally:
        for done_with in (result, crash, sanitizer):
            if done_with is not None:
                done_with.unlink(missing_ok=True)


@functools.cache
def _scratch() -> Path:
    """This process's directory for its children's result and crash files."""
    path = Path(tempfile.mkdtemp(prefix="wddm-isolated-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def _wait(
    pid: int, done: int, beacon: Beacon, limits: Limits, start: float, sigints: int
) -> tuple[DeathKind, float] | None:
    """Wait until the child ends (None; it is left unreaped) or must be killed:
    ``(kind, seconds)``.

    ``done`` is the read end of a pipe only the child holds open: its end of file wakes
    the parent at once when the child exits. The job may have closed it, though, or a
    process it started may hold it, so the child's exit is always asked of the kernel.
    """
    watched = [done]
    pause = 0.0001  # after the end of file: the child is most likely exiting right now
    while True:
        now = time.monotonic()
        timeout = POLL
        if limits.seconds is not None:
            left = start + limits.seconds - now
            if left <= 0:
                _kill(pid)
                return DeathKind.TIMEOUT, limits.seconds
            timeout = min(timeout, left)
        if watchdog.sigints() != sigints:
            # A Ctrl-C that arrived during fork was raised, and lost, in an at-fork hook
            # (logging's lock release): the handler noted it all the same.
            raise KeyboardInterrupt
        if watched:
            if select.select(watched, [], [], timeout)[0]:
                watched = []  # end of file: from now on it is always ready
        else:
            time.sleep(min(timeout, pause))
            pause = min(pause * 2, SHORT_POLL)
        if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
            return None
        deadline, since, _, _ = beacon.read()
        if time.monotonic() > deadline >= since + limits.grace and beacon.read()[0] == deadline:
            _kill(pid)
            return DeathKind.HUNG_DDI, round(deadline - since - limits.grace, 3)


def _kill(pid: int) -> None:
    """SIGKILL the child ``pid`` and every process of its group."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)  # not yet its own group's leader
