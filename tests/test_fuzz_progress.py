"""Unit tests for wddm_conformance.fuzz.progress: libFuzzer lines, status, CSV, plot, summary."""

from __future__ import annotations

import builtins
import sys
from pathlib import Path
from typing import Any

import pytest

from wddm_conformance.fuzz.progress import (
    CSV_HEADER,
    ForkJobs,
    ProgressParser,
    Sample,
    plot,
    read_csv,
    status_line,
    summarize,
    write_csv,
)

NEW = (
    "#2892\tNEW    cov: 158 ft: 573 corp: 50/252b lim: 11 exec/s: 1446 rss: 50Mb "
    "L: 11/11 MS: 5 ChangeByte-CrossOver-ShuffleBytes-InsertByte-CopyPart-"
)
DONE = "#3000\tDONE   cov: 160 ft: 585 corp: 52/271b lim: 11 exec/s: 1500 rss: 50Mb"
PULSE = "#4096\tpulse  cov: 160 ft: 585 corp: 52/271b lim: 43 exec/s: 2048 rss: 51Mb"
INITED = "#52\tINITED cov: 98 ft: 190 corp: 20/1034b exec/s: 0 rss: 48Mb"
REDUCE = (
    "#5120\tREDUCE cov: 161 ft: 590 corp: 53/25Kb lim: 48 exec/s: 1706 rss: 52Mb "
    "L: 7/48 MS: 1 EraseBytes-"
)
FORK = (
    "#12345: cov: 210 ft: 900 corp: 80 exec/s 3500 oom/timeout/crash: 0/0/2 "
    "time: 34s job: 7 dft_time: 0"
)
FORK_COLON = (
    "#20000: cov: 215 ft: 950 corp: 85 exec/s: 3600 oom/timeout/crash: 1/3/1 "
    "time: 50s job: 9 dft_time: 0"
)


def sample(elapsed: float = 0.0, execs: int = 0, eps: int = 0, cov: int = 0) -> Sample:
    return Sample(
        elapsed=elapsed,
        execs=execs,
        coverage=cov,
        features=cov * 3,
        corpus=cov // 4,
        exec_per_sec=eps,
        rss_mb=50,
    )


# -- parsing ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (NEW, (2892, 158, 573, 50, 1446, 50)),
        (DONE, (3000, 160, 585, 52, 1500, 50)),
        (PULSE, (4096, 160, 585, 52, 2048, 51)),
        (INITED, (52, 98, 190, 20, 0, 48)),
        (REDUCE, (5120, 161, 590, 53, 1706, 52)),
        (FORK, (12345, 210, 900, 80, 3500, 0)),
        (FORK_COLON, (20000, 215, 950, 85, 3600, 0)),
    ],
    ids=["NEW", "DONE", "pulse", "INITED", "REDUCE", "fork", "fork-colon"],
)
def test_feed_parses_progress_lines(line: str, expected: tuple[int, ...]) -> None:
    parser = ProgressParser()
    got = parser.feed(line + "\n", 12.5)
    assert got is not None
    assert got.elapsed == 12.5
    assert (
        got.execs,
        got.coverage,
        got.features,
        got.corpus,
        got.exec_per_sec,
        got.rss_mb,
    ) == expected
    assert parser.samples == [got]
    assert parser.last is got


def test_feed_line_without_coverage_gives_zeroes() -> None:
    got = ProgressParser().feed("#2\tINITED exec/s: 0 rss: 46Mb", 0.0)
    assert got == Sample(0.0, 2, 0, 0, 0, 0, 46)


@pytest.mark.parametrize(
    "line",
    [
        "INFO: Seed: 1234567",
        "#0\tREAD units: 20",
        "INFO: -fork=2: fuzzing in separate process(s)",
        "\tNEW_FUNC[1/1]: 0x7f render.py:42",
        "MERGE-OUTER: 10 files, 0 in the initial corpus",
        "==1234== ERROR: libFuzzer: deadly signal",
        "",
    ],
)
def test_feed_ignores_other_lines(line: str) -> None:
    parser = ProgressParser()
    assert parser.feed(line, 1.0) is None
    assert parser.samples == []
    assert parser.last is None


def test_dictionary_text_in_mutation_sequence_does_not_fool_parser() -> None:
    line = (
        '#77\tNEW    cov: 5 ft: 6 corp: 2/3b lim: 4 exec/s: 7 rss: 8Mb L: 3/3 MS: 1 DE: "cov: 999"-'
    )
    got = ProgressParser().feed(line, 0.0)
    assert got is not None
    assert got.coverage == 5


def test_last_is_newest_sample_in_order() -> None:
    parser = ProgressParser()
    for t, line in enumerate([INITED, "INFO: noise", NEW, DONE]):
        parser.feed(line, float(t))
    assert [s.execs for s in parser.samples] == [52, 2892, 3000]
    assert [s.elapsed for s in parser.samples] == [0.0, 2.0, 3.0]
    assert parser.last == parser.samples[-1]


def test_artifacts_and_crash_count_from_artifacts() -> None:
    parser = ProgressParser()
    lines = [
        "==1234== ERROR: libFuzzer: deadly signal",
        "artifact_prefix='./out/'; Test unit written to ./out/crash-0123abcd",
        "Base64: AAEC",
        "artifact_prefix='./out/'; Test unit written to ./out/timeout-4567ef",
        "artifact_prefix='./out/'; Test unit written to ./out/crash-89abcdef",
        "artifact_prefix='./out/'; Test unit written to ./out/crash-0123abcd",
        "artifact_prefix='./'; Test unit written to ./oom-11",
    ]
    for line in lines:
        assert parser.feed(line, 0.0) is None
    assert parser.artifacts == [
        "./out/crash-0123abcd",
        "./out/timeout-4567ef",
        "./out/crash-89abcdef",
        "./oom-11",
    ]
    assert parser.crashes == 2
    assert parser.errors == ["==1234== ERROR: libFuzzer: deadly signal"]


def test_crash_count_from_fork_counter_is_max_seen() -> None:
    parser = ProgressParser()
    parser.feed(FORK, 1.0)
    assert parser.crashes == 2
    parser.feed(FORK_COLON, 2.0)
    assert parser.crashes == 2
    assert parser.ooms == 1
    assert parser.timeouts == 3


def test_uncaught_exception_and_alarm_recorded() -> None:
    parser = ProgressParser()
    parser.feed("=== Uncaught Python exception: ===", 0.0)
    parser.feed("ALARM: working on the last Unit for 12 seconds", 0.0)
    parser.feed("ALARM: working on the last Unit for 3 seconds", 0.0)
    assert parser.errors == ["=== Uncaught Python exception: ==="]
    assert parser.max_alarm_seconds == 12


def test_final_stats_collected() -> None:
    parser = ProgressParser()
    for line in [
        "stat::number_of_executed_units: 3000",
        "stat::average_exec_per_sec:     1500",
        "stat::new_units_added:          32",
        "stat::slowest_unit_time_sec:    0",
        "stat::peak_rss_mb:              50",
    ]:
        assert parser.feed(line, 9.0) is None
    assert parser.final_stats == {
        "number_of_executed_units": 3000,
        "average_exec_per_sec": 1500,
        "new_units_added": 32,
        "slowest_unit_time_sec": 0,
        "peak_rss_mb": 50,
    }
    assert parser.samples == []


# -- status line --------------------------------------------------------------------


def test_status_line_with_budget() -> None:
    got = ProgressParser().feed(NEW, 72.0)
    line = status_line("render", got, 0, 72.0, 300.0)
    assert line == (
        "[render] 00:01:12/00:05:00  exec/s 1,446  cov 158  ft 573  corpus 50  findings 0"
    )


def test_status_line_without_budget() -> None:
    got = ProgressParser().feed(NEW, 72.0)
    line = status_line("render", got, 3, 3725.9, None)
    assert line == "[render] 01:02:05  exec/s 1,446  cov 158  ft 573  corpus 50  findings 3"
    assert "/" not in line.split()[1]


def test_status_line_before_first_sample() -> None:
    line = status_line("patch", None, 0, 0.0, 60.0)
    assert line.startswith("[patch] 00:00:00/00:01:00  exec/s -")
    assert line.endswith("findings 0")


def test_status_line_fits_100_columns_for_large_values() -> None:
    longest_name = Sample(30000.0, 99_999_999, 4_321, 23_456, 1_234, 12_345, 2048)
    line = status_line("build_paging_buffer", longest_name, 12, 86399.0, 86400.0)
    assert len(line) <= 100
    assert line.startswith("[build_paging_buffer] 23:59:59/24:00:00")
    assert line.endswith("exec/s 12,345 cov 4,321 ft 23,456 corpus 1,234 findings 12")

    big_numbers = Sample(30000.0, 99_999_999, 12_345, 123_456, 12_345, 123_456, 2048)
    line = status_line("statemachine", big_numbers, 123, 359999.0, 360000.0)
    assert len(line) <= 100
    assert "[statemachine] 99:59:59/100:00:00" in line
    assert "exec/s 123,456" in line


# -- CSV ----------------------------------------------------------------------------


def test_csv_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "progress.csv"
    samples = [sample(0.25, 52, 0, 98), sample(1.0 / 3.0, 2892, 1446, 158)]
    write_csv(samples, path)
    assert path.read_text().splitlines()[0] == ",".join(CSV_HEADER)
    assert CSV_HEADER == (
        "elapsed",
        "execs",
        "coverage",
        "features",
        "corpus",
        "exec_per_sec",
        "rss_mb",
    )
    assert read_csv(path) == samples


def test_csv_write_without_append_replaces(tmp_path: Path) -> None:
    path = tmp_path / "progress.csv"
    write_csv([sample(1.0, 1)], path)
    write_csv([sample(2.0, 2)], path)
    assert read_csv(path) == [sample(2.0, 2)]


def test_csv_append_continues_previous_campaign(tmp_path: Path) -> None:
    path = tmp_path / "progress.csv"
    first = [sample(1.0, 100, 100, 10), sample(60.0, 6000, 100, 20)]
    resumed = [sample(61.0, 50, 50, 20), sample(120.0, 5000, 90, 25)]
    write_csv(first, path)
    write_csv(resumed, path, append=True)
    text = path.read_text()
    assert text.count("elapsed,") == 1
    assert read_csv(path) == first + resumed


def test_csv_append_to_missing_file_writes_header(tmp_path: Path) -> None:
    path = tmp_path / "new.csv"
    write_csv([sample(5.0, 5)], path, append=True)
    assert path.read_text().startswith(",".join(CSV_HEADER) + "\n")
    assert read_csv(path) == [sample(5.0, 5)]


def test_csv_append_refuses_foreign_file(tmp_path: Path) -> None:
    path = tmp_path / "other.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not a progress CSV"):
        write_csv([sample()], path, append=True)
    assert path.read_text() == "a,b\n1,2\n"


def test_read_csv_rejects_malformed_rows(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(",".join(CSV_HEADER) + "\n1.0,2,3\n")
    with pytest.raises(ValueError, match=":2:"):
        read_csv(path)
    path.write_text(",".join(CSV_HEADER) + "\n1.0,2,3,4,5,six,7\n")
    with pytest.raises(ValueError, match=":2:"):
        read_csv(path)


def test_read_csv_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("")
    assert read_csv(path) == []


# -- plot ---------------------------------------------------------------------------


def test_plot_writes_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    path = tmp_path / "progress.png"
    samples = [sample(float(t), t * 1000, 1000 + t * 10, 100 + t) for t in range(20)]
    plot(samples, path, "render on wddm_conformance.reference")
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 1000


def test_plot_without_samples_writes_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    path = tmp_path / "empty.png"
    plot([], path, "render")
    assert path.read_bytes().startswith(b"\x89PNG")


def test_plot_without_matplotlib_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_matplotlib(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    with pytest.raises(RuntimeError, match=r"fuzz extra\): pip install 'matplotlib>=3\.7'$"):
        plot([sample()], tmp_path / "x.png", "t")
    assert not (tmp_path / "x.png").exists()


# -- summary ------------------------------------------------------------------------


def finding(requirement: str, ddi: str, input_: str) -> dict[str, object]:
    return {
        "requirement": requirement,
        "ddi": ddi,
        "status": "FAIL",
        "input": input_,
        "message": "boom",
    }


def test_summarize_groups_findings() -> None:
    samples = [
        sample(1.0, 52, 0, 98),
        sample(10.0, 1000, 1000, 150),
        sample(20.0, 3000, 3000, 158),
        sample(30.0, 6000, 2000, 160),
    ]
    findings = [
        finding("REN-CURSORS", "DxgkDdiRender", "render-REN-CURSORS-0123abcd"),
        finding("PAT-BOUNDS", "DxgkDdiPatch", "render-PAT-BOUNDS-ffff0000"),
        finding("REN-CURSORS", "DxgkDdiRender", "render-REN-CURSORS-4567ef01"),
        finding("REN-CURSORS", "DxgkDdiRender", "render-REN-CURSORS-89abcdef"),
        finding("REN-CURSORS", "DxgkDdiPresent", "render-REN-CURSORS-22222222"),
    ]
    text = summarize("render", "wddm_conformance.reference", samples, findings, 312.0)
    lines = text.splitlines()
    assert "render" in lines[0]
    assert "wddm_conformance.reference" in lines[1]
    assert "00:05:12" in text
    assert "6,000" in text
    assert "2,000" in text
    assert "cov 160" in text and "ft 480" in text and "corpus 40" in text
    assert any(line.startswith("findings:") and line.endswith(" 5") for line in lines)

    groups = [line for line in lines if line.startswith("  ")]
    assert len(groups) == 3
    assert groups[0].split() == [
        "REN-CURSORS",
        "DxgkDdiRender",
        "x3",
        "first:",
        "render-REN-CURSORS-0123abcd",
    ]
    assert sorted(g.split()[1] for g in groups[1:]) == ["DxgkDdiPatch", "DxgkDdiPresent"]
    assert all(g.split()[2] == "x1" for g in groups[1:])


def test_summarize_total_execs_across_resumed_runs() -> None:
    samples = [sample(1.0, 100, 10), sample(2.0, 5000, 10), sample(3.0, 10, 10)]
    samples.append(sample(4.0, 2000, 10))
    text = summarize("patch", "d", samples, [], 4.0)
    assert "7,000" in text


def test_summarize_without_samples_or_findings() -> None:
    text = summarize("patch", "d", [], [], 0.0)
    assert "no samples" in text
    assert "findings:    0" in text
    assert not [line for line in text.splitlines() if line.startswith("  ")]


def test_summarize_finding_without_requirement_uses_status() -> None:
    findings: list[dict[str, object]] = [
        {"requirement": None, "ddi": "", "status": "ERROR", "input": "x-1", "message": ""}
    ]
    text = summarize("t", "d", [sample()], findings, 1.0)
    assert text.splitlines()[-1].split() == ["ERROR", "-", "x1", "first:", "x-1"]


def test_fork_jobs_count_running_jobs_from_their_logs(tmp_path: Path) -> None:
    """The fork parent counts a job once merged; a running job counts from its own log."""
    jobs = ForkJobs()
    jobs.feed(f"INFO: -fork=2: 24 seed inputs, starting to fuzz in {tmp_path}\n")
    (tmp_path / "1.log").write_text("INFO: Seed: 1\n#2\tINITED cov: 4 exec/s: 0\n#1024\tpulse\n")
    (tmp_path / "2.log").write_text("#512\tpulse  cov: 9 exec/s: 100\n#700\tNEW cov: 10\n")
    (tmp_path / "2.seeds").write_text("#99999 is not a log\n")
    jobs.poll()
    assert jobs.executions == 1024 + 700  # nothing merged yet: the parent would say 0
    # job 1 ends and is merged (the parent deletes its log); job 2 goes on
    jobs.feed(
        "#1500: cov: 10 ft: 12 corp: 5 exec/s 300 oom/timeout/crash: 0/0/0 time: 4s job: 1 dft_time: 0\n"
    )
    (tmp_path / "1.log").unlink()
    (tmp_path / "2.log").write_text("#512\tpulse\n#700\tNEW\nDone 900 runs in 3 second(s)\n")
    jobs.poll()
    assert jobs.executions == 1500 + 900
    (tmp_path / "2.log").unlink()  # a log gone before its merge line was read keeps its count
    jobs.poll()
    assert jobs.executions == 1500 + 900


def test_fork_jobs_without_a_fork_directory_count_the_parent_only() -> None:
    jobs = ForkJobs()
    jobs.poll()
    jobs.feed(
        "#40: cov: 1 ft: 1 corp: 1 exec/s 4 oom/timeout/crash: 0/0/0 time: 1s job: 3 dft_time: 0\n"
    )
    assert jobs.executions == 40


def test_summarize_names_finding_files_and_how_to_replay_one(tmp_path: Path) -> None:
    findings: list[dict[str, object]] = [
        {"requirement": "REN-VALIDATE", "ddi": "DxgkDdiRender", "input": "render-a", "status": ""},
        {"requirement": "REN-VALIDATE", "ddi": "DxgkDdiRender", "input": "render-b", "status": ""},
        {"requirement": "PAT-RANGE", "ddi": "DxgkDdiPatch", "input": "render-c", "status": ""},
    ]
    lines = summarize("render", "d", [sample()], findings, 1.0, tmp_path / "f").splitlines()
    assert f"first: {tmp_path / 'f' / 'render-a'}" in lines[-3]
    assert lines[-1] == f"reproduce:   wddm-conformance fuzz repro {tmp_path / 'f' / 'render-a'}"
