#!/usr/bin/env python3
"""libFuzzer calibration target: a fixed amount of instrumented dict and list work per input.

    python bench/fuzz_calibration.py [libFuzzer flags] [CORPUS_DIR...]

``bench/fuzz.py`` runs this next to every fuzz target of the harness, in the same run,
and quotes each target's exec/s as a ratio to this one's: the machines the benchmark
runs on are noisy, so a ratio tells more than exec/s alone. The work (a fixed number of
dict and list operations, 368, see ``_calibration_work.py``) is imported under
``atheris.instrument_imports()`` so it carries the same coverage instrumentation as a
driver's code under a real target; the count is tuned so that the target runs at about
16,000 exec/s on the 2-core reference machine. It never reports a finding.
"""

import sys

import atheris

with atheris.instrument_imports():
    from _calibration_work import work


def test_one_input(data: bytes) -> None:
    """libFuzzer's entry point: do the calibration work on ``data``."""
    work(data)


def main() -> None:
    """Hand the command line to libFuzzer and fuzz until its limits stop it."""
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
