#!/bin/bash
# ClusterFuzzLite / OSS-Fuzz build: one fuzzer per wddm_conformance.fuzz target in $OUT.
#
# compile_python_fuzzer (pyinstaller) is the only step done here. The seed corpus zips,
# dictionaries and .options files are written by wddm_conformance.fuzz.package, the same
# code that builds this layout locally (python -m wddm_conformance.fuzz.package --out DIR),
# so the packaging rules exist once.
set -euo pipefail

cd "$SRC/wddm-conformance"

# atheris is preinstalled in base-builder-python.
pip3 install .

# The targets and the driver are imported by name at run time (TARGETS, --driver), and the
# requirement catalogue is package data, so pyinstaller must be told to bundle them.
for name in render patch build_paging_buffer create_allocation lifecycle statemachine; do
  compile_python_fuzzer "wddm_conformance/fuzz/fuzz_${name}.py" \
    --collect-submodules wddm_conformance \
    --collect-data wddm_conformance
done

python3 -m wddm_conformance.fuzz.package \
  --out "$OUT" --corpora "$SRC/wddm-conformance/wddm_conformance/fuzz/corpora" --no-executables
