"""Package the fuzz targets in the OSS-Fuzz / ClusterFuzzLite ``$OUT`` layout.

    python -m wddm_conformance.fuzz.package --out DIR [--corpora DIR] [--no-executables]

For every target in :data:`~wddm_conformance.fuzz.TARGETS` this writes into ``--out``:

``fuzz_<name>_seed_corpus.zip``
    The seeds in ``corpora/<name>/`` and the inputs that once found a bug in
    ``corpora/regressions/<name>/`` (their ``.json`` records are not inputs), stored flat,
    so every fuzzing run starts from -- and keeps re-checking -- the known bugs.
``fuzz_<name>.dict``
    A copy of ``corpora/<name>.dict``, when there is one.
``fuzz_<name>.options``
    libFuzzer options: ``max_len``, ``timeout`` and the dictionary when there is one.
``fuzz_<name>``
    Unless ``--no-executables``: a shell script that runs the target's script with this
    Python, standing in for the binary ``compile_python_fuzzer`` builds, so the layout can
    be run and checked locally without Docker.

``.clusterfuzzlite/build.sh`` calls this module with ``--no-executables`` and only compiles
the fuzzers itself, so the packaging rules are written once. Missing corpus directories or
dictionaries are skipped: whatever exists is packaged. The zips are reproducible (sorted
entries, fixed timestamps), so rebuilding an unchanged corpus gives the same bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from . import CORPORA, HERE, TARGETS

#: libFuzzer's largest input; the targets' decoders read no more than this.
MAX_LEN = 8192
#: Seconds one input may run before libFuzzer reports a timeout.
TIMEOUT = 25
#: Timestamp of every zip entry (the earliest a zip can hold), for reproducible zips.
ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)
#: Suffix of the records kept next to regression inputs; they are not inputs.
SIDECAR_SUFFIX = ".json"


def fuzzer_name(name: str) -> str:
    """The OSS-Fuzz name of target ``name``: its script's name without ``.py``."""
    return f"fuzz_{name}"


def target_script(name: str) -> Path:
    """The absolute path of target ``name``'s standalone script.

    Computed from the package directory rather than :func:`~wddm_conformance.fuzz.script`,
    which imports the target's implementation: packaging needs neither it nor atheris.
    """
    return HERE / f"{fuzzer_name(name)}.py"


def _files(directory: Path) -> Iterator[Path]:
    """Every regular file under ``directory`` (recursively), sorted; none if it is missing."""
    if not directory.is_dir():
        return iter(())
    return iter(sorted(p for p in directory.rglob("*") if p.is_file()))


def corpus_inputs(corpora: Path, name: str) -> list[Path]:
    """The seed and regression inputs of target ``name``, seeds first, in a stable order."""
    seeds = list(_files(corpora / name))
    regressions = [p for p in _files(corpora / "regressions" / name) if p.suffix != SIDECAR_SUFFIX]
    return seeds + regressions


def write_seed_zip(path: Path, inputs: Sequence[Path]) -> None:
    """Write ``inputs`` to the zip ``path`` flat, sorted, with fixed timestamps.

    Entries are named by file name; when two inputs share a name (a seed and a regression,
    or files in different subdirectories) and differ, the later one gets its content's
    SHA-1 appended, and an identical duplicate is left out, so no input is lost or repeated.
    """
    entries: dict[str, bytes] = {}
    for source in inputs:
        data = source.read_bytes()
        arcname = source.name
        if arcname in entries:
            if entries[arcname] == data:
                continue
            arcname = f"{arcname}-{hashlib.sha1(data).hexdigest()}"
        entries[arcname] = data
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for arcname in sorted(entries):
            info = zipfile.ZipInfo(arcname, date_time=ZIP_DATE_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, entries[arcname])


def options_text(name: str, has_dict: bool) -> str:
    """The ``.options`` file of target ``name``: libFuzzer flags OSS-Fuzz passes to it."""
    lines = ["[libfuzzer]", f"max_len = {MAX_LEN}", f"timeout = {TIMEOUT}"]
    if has_dict:
        lines.append(f"dict = {fuzzer_name(name)}.dict")
    return "\n".join(lines) + "\n"


def _sh_double_quoted(text: str) -> str:
    """``text`` as a double-quoted POSIX shell word: backslash, quote, dollar, backquote escaped."""
    for char in ("\\", '"', "$", "`"):
        text = text.replace(char, "\\" + char)
    return f'"{text}"'


def executable_text(name: str) -> str:
    """The stand-in for ``compile_python_fuzzer``'s output: run the script with this Python."""
    return (
        "#!/bin/sh\n"
        f"# Local stand-in for the OSS-Fuzz build of {fuzzer_name(name)}"
        " (written by wddm_conformance.fuzz.package).\n"
        f"exec {_sh_double_quoted(sys.executable)} {_sh_double_quoted(str(target_script(name)))}"
        ' "$@"\n'
    )


def build(out: Path, corpora: Path, executables: bool = True) -> list[Path]:
    """Write every target's zip, dictionary, options (and stand-in) into ``out``.

    ``out`` is created if needed. A target with no inputs gets no zip and one without a
    dictionary gets no ``.dict``: OSS-Fuzz treats both as optional. Returns the files
    written, in the order written.
    """
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name in TARGETS:
        fuzzer = fuzzer_name(name)

        inputs = corpus_inputs(corpora, name)
        if inputs:
            zip_path = out / f"{fuzzer}_seed_corpus.zip"
            write_seed_zip(zip_path, inputs)
            written.append(zip_path)

        dictionary = corpora / f"{name}.dict"
        has_dict = dictionary.is_file()
        if has_dict:
            dict_path = out / f"{fuzzer}.dict"
            shutil.copyfile(dictionary, dict_path)
            written.append(dict_path)

        options_path = out / f"{fuzzer}.options"
        options_path.write_text(options_text(name, has_dict), encoding="utf-8")
        written.append(options_path)

        if executables:
            exe_path = out / fuzzer
            exe_path.write_text(executable_text(name), encoding="utf-8")
            exe_path.chmod(0o755)
            written.append(exe_path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: build the ``$OUT`` layout; 2 with a one-line error if corpora is missing."""
    parser = argparse.ArgumentParser(
        prog="python -m wddm_conformance.fuzz.package",
        description="Package the fuzz targets in the OSS-Fuzz / ClusterFuzzLite $OUT layout.",
    )
    parser.add_argument("--out", type=Path, required=True, help="directory to write into")
    parser.add_argument(
        "--corpora",
        type=Path,
        default=CORPORA,
        help=f"corpora directory (default: {CORPORA})",
    )
    parser.add_argument(
        "--no-executables",
        dest="executables",
        action="store_false",
        help="do not write the fuzz_<name> stand-ins (compile_python_fuzzer builds them)",
    )
    args = parser.parse_args(argv)
    corpora: Path = args.corpora
    if not corpora.is_dir():
        print(f"error: corpora directory {corpora} does not exist", file=sys.stderr)
        return 2
    build(args.out, corpora, executables=args.executables)
    return 0


if __name__ == "__main__":
    sys.exit(main())
