"""Progress of a fuzz campaign, read from libFuzzer's stderr: parsing, status, CSV, plots, summary.

A campaign runs atheris (libFuzzer for Python) as a subprocess, so everything known about
its progress is what libFuzzer prints. :class:`ProgressParser` turns those lines into
:class:`Sample` rows -- both the single-process format (``#N  NEW  cov: ...``) and the
``-fork=N`` parent's format (``#N: cov: ...``) -- and collects the artifacts, crash count
and ``-print_final_stats=1`` numbers on the way. The rest of the module presents the
samples: a one-line live status, a CSV that a resumed campaign appends to, a PNG of
coverage and speed over time, and a plain-text summary with the findings grouped by
requirement.

The parser never reads a clock: the caller passes each line's elapsed time, so replaying
a saved log or resuming a campaign gives the same samples as the live run did.
"""

from __future__ import annotations

import csv
import re
import shlex
import statistics
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import astuple, dataclass, fields
from pathlib import Path

__all__ = [
    "CSV_HEADER",
    "ForkJobs",
    "ProgressParser",
    "Sample",
    "plot",
    "read_csv",
    "status_line",
    "summarize",
    "write_csv",
]


@dataclass(frozen=True)
class Sample:
    """One progress report of libFuzzer, stamped with the campaign's elapsed time.

    ``elapsed`` is seconds since the campaign started (including earlier runs of a resumed
    campaign), as supplied by the caller. The other fields are libFuzzer's own numbers;
    one that a line does not report is 0 (fork-mode lines never report ``rss``).
    """

    elapsed: float
    execs: int
    coverage: int
    features: int
    corpus: int
    exec_per_sec: int
    rss_mb: int


#: Column names of the CSV files, in the order of :class:`Sample`'s fields.
CSV_HEADER: tuple[str, ...] = tuple(f.name for f in fields(Sample))

_STATS_LINE = re.compile(
    r"^#(?P<execs>\d+)\s+(?P<event>[A-Za-z_]\w*)"
    r"(?:\s+cov: (?P<cov>\d+))?"
    r"(?:\s+ft: (?P<ft>\d+))?"
    r"(?:\s+corp: (?P<corp>\d+)(?:/\S+)?)?"
    r"(?:\s+focus: \d+)?"
    r"(?:\s+lim: \d+)?"
    r"(?:\s+units: \d+)?"
    r"\s+exec/s: (?P<eps>\d+)"
    r"(?:\s+rss: (?P<rss>\d+)Mb)?"
)
_FORK_LINE = re.compile(
    r"^#(?P<execs>\d+):"
    r"\s+cov: (?P<cov>\d+)"
    r"\s+ft: (?P<ft>\d+)"
    r"\s+corp: (?P<corp>\d+)"
    r"\s+exec/s:? (?P<eps>\d+)"
    r"\s+oom/timeout/crash: (?P<ooms>\d+)/(?P<timeouts>\d+)/(?P<crashes>\d+)"
)
_ARTIFACT = re.compile(r"Test unit written to (?P<path>.+?)\s*$")
_FINAL_STAT = re.compile(r"^stat::(?P<name>\w+):\s*(?P<value>-?\d+)\s*$")
_ALARM = re.compile(r"ALARM: working on the last Unit for (?P<seconds>\d+) seconds")
_ERROR_MARKERS = ("ERROR: libFuzzer:", "=== Uncaught Python exception: ===")


def _int(value: str | None) -> int:
    return int(value) if value is not None else 0


class ProgressParser:
    """Parses libFuzzer's stderr one line at a time and keeps what it learned.

    Attributes, all updated by :meth:`feed`:

    * ``samples`` -- every progress line, as a :class:`Sample`; ``last`` is the newest.
    * ``artifacts`` -- paths from ``Test unit written to PATH`` (crash-, timeout-, oom-,
      leak-, slow-unit- ...), each once, in the order written.
    * ``final_stats`` -- the ``stat::name: value`` lines of ``-print_final_stats=1``,
      keyed by name without the ``stat::`` prefix.
    * ``errors`` -- libFuzzer's ``ERROR:`` lines and atheris's uncaught-exception banners.
    * ``ooms``, ``timeouts`` -- the largest counts the ``-fork`` parent reported.
    * ``max_alarm_seconds`` -- the longest ``ALARM: working on the last Unit`` seen.
    """

    def __init__(self) -> None:
        self.samples: list[Sample] = []
        self.last: Sample | None = None
        self.artifacts: list[str] = []
        self.final_stats: dict[str, int] = {}
        self.errors: list[str] = []
        self.ooms = 0
        self.timeouts = 0
        self.max_alarm_seconds = 0
        self._fork_crashes = 0

    @property
    def crashes(self) -> int:
        """How many crashes the campaign found so far.

        The ``-fork`` parent counts crashes itself (``oom/timeout/crash: a/b/c``), but does
        not relay the children's artifact lines when it ignores crashes; a single process
        writes one ``crash-`` artifact per crash. Whichever source says more is right.
        """
        written = sum(1 for a in self.artifacts if Path(a).name.startswith("crash-"))
        return max(self._fork_crashes, written)

    def feed(self, line: str, elapsed: float) -> Sample | None:
        """Take one line of stderr; return its :class:`Sample` if it is a progress line.

        ``elapsed`` is the campaign's time in seconds when the line was read. Lines that
        are not progress lines return None, but artifacts, final stats, errors and alarms
        in them are still recorded.
        """
        text = line.strip()
        sample = self._progress(text, elapsed)
        if sample is not None:
            self.samples.append(sample)
            self.last = sample
            return sample
        self._other(text)
        return None

    def _progress(self, text: str, elapsed: float) -> Sample | None:
        fork = _FORK_LINE.match(text)
        if fork is not None:
            self.ooms = max(self.ooms, int(fork["ooms"]))
            self.timeouts = max(self.timeouts, int(fork["timeouts"]))
            self._fork_crashes = max(self._fork_crashes, int(fork["crashes"]))
            return Sample(
                elapsed=elapsed,
                execs=int(fork["execs"]),
                coverage=int(fork["cov"]),
                features=int(fork["ft"]),
                corpus=int(fork["corp"]),
                exec_per_sec=int(fork["eps"]),
                rss_mb=0,
            )
        stats = _STATS_LINE.match(text)
        if stats is None:
            return None
        return Sample(
            elapsed=elapsed,
            execs=int(stats["execs"]),
            coverage=_int(stats["cov"]),
            features=_int(stats["ft"]),
            corpus=_int(stats["corp"]),
            exec_per_sec=int(stats["eps"]),
            rss_mb=_int(stats["rss"]),
        )

    def _other(self, text: str) -> None:
        artifact = _ARTIFACT.search(text)
        if artifact is not None:
            path = artifact["path"]
            if path not in self.artifacts:
                self.artifacts.append(path)
            return
        stat = _FINAL_STAT.match(text)
        if stat is not None:
            self.final_stats[stat["name"]] = int(stat["value"])
            return
        alarm = _ALARM.search(text)
        if alarm is not None:
            self.max_alarm_seconds = max(self.max_alarm_seconds, int(alarm["seconds"]))
            return
        if any(marker in text for marker in _ERROR_MARKERS):
            self.errors.append(text)


_FORK_DIR = re.compile(r"^INFO: -fork=\d+: .*starting to fuzz in (?P<dir>\S+)\s*$")
_MERGED_JOB = re.compile(r"^#(?P<execs>\d+):.*\sjob: (?P<job>\d+)\b")
_JOB_EXECS = re.compile(r"^(?:#(?P<execs>\d+)\s|Done (?P<done>\d+) runs in )", re.MULTILINE)


class ForkJobs:
    """Executions of a ``-fork=N`` run counted while its jobs run, from the jobs' own logs.

    The fork parent adds a job's executions to its ``#N:`` lines only once the job has
    ended and been merged, and never counts the jobs still running when it stops, so its
    figure lags and ends short. Each job writes libFuzzer's output to
    ``<dir>/<job>.log`` (the parent names ``<dir>`` in its ``starting to fuzz in`` line,
    and deletes a job's log once it has merged it). :attr:`executions` is the parent's
    count plus, for each job not merged yet, the last ``#N`` (or ``Done N runs``) its log
    shows: a running job's ``#N`` lines come at new coverage and at powers of two, so it
    still lags, by less than half of that job's executions.

    :meth:`feed` takes the parent's lines and :meth:`poll` reads the logs; both may be
    called from different threads.
    """

    def __init__(self) -> None:
        self.directory: Path | None = None
        self.merged_execs = 0
        self.merged: set[int] = set()
        self.running: dict[int, int] = {}
        self._lock = threading.Lock()

    def feed(self, line: str) -> None:
        """Take one line of the fork parent's output."""
        text = line.strip()
        with self._lock:
            where = _FORK_DIR.match(text)
            if where is not None:
                self.directory = Path(where["dir"])
                return
            merged = _MERGED_JOB.match(text)
            if merged is not None:
                job = int(merged["job"])
                self.merged.add(job)
                self.running.pop(job, None)
                self.merged_execs = max(self.merged_execs, int(merged["execs"]))

    def poll(self) -> None:
        """Read the logs of the jobs not merged yet."""
        with self._lock:
            directory, merged = self.directory, set(self.merged)
        if directory is None:
            return
        try:
            logs = list(directory.glob("*.log"))
        except OSError:
            return
        seen: dict[int, int] = {}
        for log in logs:
            if not log.stem.isdigit() or int(log.stem) in merged:
                continue
            try:
                text = log.read_text(encoding="utf-8", errors="replace")
            except OSError:  # merged and deleted since the glob
                continue
            counts = [int(m["execs"] or m["done"]) for m in _JOB_EXECS.finditer(text)]
            if counts:
                seen[int(log.stem)] = max(counts)
        with self._lock:
            for job, count in seen.items():
                if job not in self.merged:
                    self.running[job] = max(self.running.get(job, 0), count)

    @property
    def executions(self) -> int:
        """Executions so far: merged jobs' (the parent's ``#N``) plus running jobs' own."""
        with self._lock:
            return self.merged_execs + sum(self.running.values())


def _clock(seconds: float) -> str:
    """``seconds`` as ``HH:MM:SS`` (hours grow past 99; negative counts as 0)."""
    whole = max(0, int(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}"


def status_line(
    target: str, sample: Sample | None, findings: int, elapsed: float, budget: float | None
) -> str:
    """One line of live status for a terminal, at most 100 characters for typical values.

    ``[render] 00:01:12/00:05:00  exec/s 1,446  cov 158  ft 573  corpus 50  findings 0``;
    without a ``budget`` the ``/00:05:00`` is left out, and before the first sample the
    numbers are ``-``. Fields are separated by two spaces, or one if that keeps the line
    within 100 characters.
    """
    clock = _clock(elapsed) if budget is None else f"{_clock(elapsed)}/{_clock(budget)}"
    if sample is None:
        numbers = ["exec/s -", "cov -", "ft -", "corpus -"]
    else:
        numbers = [
            f"exec/s {sample.exec_per_sec:,}",
            f"cov {sample.coverage:,}",
            f"ft {sample.features:,}",
            f"corpus {sample.corpus:,}",
        ]
    parts = [f"[{target}] {clock}", *numbers, f"findings {findings:,}"]
    line = "  ".join(parts)
    return line if len(line) <= 100 else " ".join(parts)


def write_csv(samples: Sequence[Sample], path: Path, append: bool = False) -> None:
    """Write ``samples`` to the CSV file ``path``, with a header row.

    With ``append`` the rows are added to an existing file (a resumed campaign continues
    its earlier file; its samples' ``elapsed`` already include the earlier time), and the
    header is written only if the file is missing or empty. Appending to a file whose
    header is not :data:`CSV_HEADER` raises ValueError rather than mixing formats.
    """
    fresh = not append or not path.exists() or path.stat().st_size == 0
    unterminated = False
    if not fresh:
        with path.open(newline="") as f:
            first = next(csv.reader(f), None)
        if first is None or tuple(first) != CSV_HEADER:
            raise ValueError(f"{path}: not a progress CSV (header {first!r}); not appending")
        with path.open("rb") as raw:
            raw.seek(-1, 2)
            unterminated = raw.read(1) != b"\n"
    with path.open("w" if fresh else "a", newline="") as f:
        if unterminated:
            f.write("\n")
        writer = csv.writer(f, lineterminator="\n")
        if fresh:
            writer.writerow(CSV_HEADER)
        for sample in samples:
            writer.writerow(repr(value) for value in astuple(sample))


def read_csv(path: Path) -> list[Sample]:
    """The samples in a CSV file written by :func:`write_csv`.

    Blank lines and repeated header rows are skipped; an empty file has no samples. A
    file with another header or a malformed row raises ValueError naming the line.
    """
    samples: list[Sample] = []
    with path.open(newline="") as f:
        reader = csv.reader(f)
        first = next(reader, None)
        if first is None:
            return samples
        if tuple(first) != CSV_HEADER:
            raise ValueError(f"{path}:1: expected header {','.join(CSV_HEADER)}, got {first!r}")
        for row in reader:
            if not row or tuple(row) == CSV_HEADER:
                continue
            if len(row) != len(CSV_HEADER):
                raise ValueError(
                    f"{path}:{reader.line_num}: expected {len(CSV_HEADER)} columns, got {row!r}"
                )
            elapsed, execs, coverage, features, corpus, exec_per_sec, rss_mb = row
            try:
                sample = Sample(
                    elapsed=float(elapsed),
                    execs=int(execs),
                    coverage=int(coverage),
                    features=int(features),
                    corpus=int(corpus),
                    exec_per_sec=int(exec_per_sec),
                    rss_mb=int(rss_mb),
                )
            except ValueError as exc:
                raise ValueError(f"{path}:{reader.line_num}: {exc}") from None
            samples.append(sample)
    return samples


def plot(samples: Sequence[Sample], path: Path, title: str) -> None:
    """Draw coverage and speed over time into the PNG file ``path``.

    Two stacked panels share the x axis (elapsed seconds): coverage (``cov``, with
    features ``ft`` on a secondary axis) above, exec/s below. With no samples the PNG
    says "no samples", so a report can always link to it. matplotlib is an optional
    dependency, imported here; without it this raises RuntimeError.
    """
    try:
        import matplotlib
        from matplotlib.figure import Figure
    except ImportError:
        raise RuntimeError(
            "matplotlib is not installed (the harness's fuzz extra): pip install 'matplotlib>=3.7'"
        ) from None
    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")

    fig = Figure(figsize=(9.0, 6.0), dpi=100)
    fig.suptitle(title)
    if not samples:
        ax = fig.add_subplot()
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no samples", ha="center", va="center", fontsize=16)
        fig.savefig(path, format="png")
        return

    elapsed = [s.elapsed for s in samples]
    top, bottom = fig.subplots(2, 1, sharex=True)
    (cov_line,) = top.plot(elapsed, [s.coverage for s in samples], color="tab:blue", label="cov")
    top.set_ylabel("cov")
    features = top.twinx()
    (ft_line,) = features.plot(
        elapsed, [s.features for s in samples], color="tab:orange", label="ft"
    )
    features.set_ylabel("ft")
    top.legend(handles=[cov_line, ft_line], loc="lower right")
    top.grid(True, alpha=0.3)

    bottom.plot(elapsed, [s.exec_per_sec for s in samples], color="tab:green", label="exec/s")
    bottom.set_ylabel("exec/s")
    bottom.set_xlabel("elapsed (s)")
    bottom.set_ylim(bottom=0)
    bottom.grid(True, alpha=0.3)

    fig.tight_layout()
    fig.savefig(path, format="png")


def _total_execs(samples: Sequence[Sample]) -> int:
    """Executions over all runs: libFuzzer's counter restarts at 0 when a campaign resumes."""
    total = 0
    previous = 0
    for sample in samples:
        if sample.execs < previous:
            total += previous
        previous = sample.execs
    return total + previous


def _text(value: object) -> str:
    return "" if value is None else str(value)


def summarize(
    target: str,
    driver: str,
    samples: Sequence[Sample],
    findings: Sequence[Mapping[str, object]],
    elapsed: float,
    findings_dir: Path | None = None,
) -> str:
    """A plain-text summary of a campaign, for the terminal and for reports.

    Gives the target, driver, time, total executions (summed over resumed runs), the
    median exec/s of the samples that report a speed (libFuzzer's first lines say 0
    before a second has passed), the final coverage, features and corpus, and the
    findings grouped by (requirement, DDI) with their count and first input, most
    frequent first. A finding without a requirement is grouped by its status. With
    ``findings_dir`` each first input is its path there, and a last line gives the command
    that replays the most frequent one.
    """
    speeds = [s.exec_per_sec for s in samples if s.exec_per_sec > 0]
    median = statistics.median(speeds) if speeds else 0
    last = samples[-1] if samples else None
    lines = [
        f"target:      {target}",
        f"driver:      {driver}",
        f"time:        {_clock(elapsed)} ({elapsed:.1f} s)",
        f"executions:  {_total_execs(samples):,}",
        f"exec/s:      {round(median):,} (median of {len(speeds)} samples)",
    ]
    if last is None:
        lines.append("coverage:    no samples")
    else:
        lines.append(
            f"coverage:    cov {last.coverage:,}  ft {last.features:,}  corpus {last.corpus:,}"
        )
    lines.append(f"findings:    {len(findings)}")

    groups: dict[tuple[str, str], list[str]] = {}
    for finding in findings:
        rule = _text(finding.get("requirement")) or _text(finding.get("status")) or "?"
        ddi = _text(finding.get("ddi")) or "-"
        name = _text(finding.get("input"))
        where = str(findings_dir / name) if findings_dir is not None and name else name
        groups.setdefault((rule, ddi), []).append(where)
    if groups:
        ranked = sorted(groups.items(), key=lambda item: -len(item[1]))
        rule_width = max(len(rule) for rule, _ in groups)
        ddi_width = max(len(ddi) for _, ddi in groups)
        count_width = max(len(str(len(inputs))) for inputs in groups.values())
        for (rule, ddi), inputs in ranked:
            lines.append(
                f"  {rule:<{rule_width}}  {ddi:<{ddi_width}}  "
                f"x{len(inputs):<{count_width}}  first: {inputs[0] or '-'}"
            )
        first = ranked[0][1][0]
        if findings_dir is not None and first:
            lines.append(f"reproduce:   wddm-conformance fuzz repro {shlex.quote(first)}")
    return "\n".join(lines)
