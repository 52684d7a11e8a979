#!/usr/bin/env python3
"""libFuzzer target: DxgkDdiBuildPagingBuffer: every classic operation, tiny buffers, busy/idle.

    python fuzz_build_paging_buffer.py [--driver=module:Class] [--findings=DIR] [libFuzzer flags] [CORPUS_DIR...]

The decoding and oracles live in wddm_conformance.fuzz; see docs/fuzzing.md.
"""

import sys

import atheris

from wddm_conformance.fuzz.runner import prepare


def main() -> None:
    test_one_input, argv = prepare("build_paging_buffer", sys.argv)
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
