#!/usr/bin/env python3
"""libFuzzer target: the suite's hypothesis state machine (DriverLife), driven by libFuzzer.

    python fuzz_statemachine.py [--driver=module:Class] [--findings=DIR] [libFuzzer flags] [CORPUS_DIR...]

The decoding and oracles live in wddm_conformance.fuzz; see docs/fuzzing.md.
"""

import sys

import atheris

from wddm_conformance.fuzz.runner import prepare


def main() -> None:
    test_one_input, argv = prepare("statemachine", sys.argv)
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
