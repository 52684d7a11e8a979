#!/bin/bash -eu
# ClusterFuzzLite build for a driver repository: one fuzzer per wddm-conformance fuzz target,
# each running this repository's driver. Copy to .clusterfuzzlite/build.sh and set DRIVER
# and DRIVER_PACKAGE. Runs in the build image, from the repository's root (the WORKDIR).

# module:Class of your miniport, as for `pytest --driver=...` and `fuzz run --driver=...`.
DRIVER=mydrv.miniport:Miniport
# The top-level package of your driver. The harness imports the driver by name at run
# time, which pyinstaller cannot see: it must be told to bundle it.
DRIVER_PACKAGE=mydrv

if grep -q '^[^#]*YOUR-ORG' .clusterfuzzlite/requirements.txt; then
  echo "build.sh: say where the harness comes from in .clusterfuzzlite/requirements.txt" >&2
  exit 1
fi
pip3 install -r .clusterfuzzlite/requirements.txt
# If your driver is itself a Python package with dependencies, install it too: pip3 install .

# Into $OUT: the seed corpus zips (the packaged seeds and regressions, plus your own in
# ./wddm-regressions), the dictionaries and the .options files. Into $SRC/wddm-fuzzers: one
# fuzz_<target>.py per target with --driver baked in. `python3 -m` puts this directory on
# sys.path, so the driver is found, and a misspelt DRIVER fails here.
python3 -m wddm_conformance fuzz package --driver "$DRIVER" --out "$OUT" \
  --scripts "$SRC/wddm-fuzzers" --no-executables

# pyinstaller bundles the harness (its targets are imported by name too, and its
# requirement catalogue, seeds and dictionaries are package data) and the driver:
# --paths finds it here, --hidden-import names its module, --collect-submodules takes the
# rest of its package.
for fuzzer in "$SRC"/wddm-fuzzers/fuzz_*.py; do
  compile_python_fuzzer "$fuzzer" \
    --collect-submodules wddm_conformance \
    --collect-data wddm_conformance \
    --paths "$PWD" \
    --hidden-import "${DRIVER%%:*}" \
    --collect-submodules "$DRIVER_PACKAGE"
done
