"""Package the fuzz targets in the OSS-Fuzz / ClusterFuzzLite ``$OUT`` layout, for any driver.

    wddm-conformance fuzz package --out DIR [--driver module:Class] [--corpora DIR]
        [--regressions DIR] [--scripts DIR] [--no-executables]

(``python -m wddm_conformance.fuzz.package`` takes the same options.) For every target in
:data:`~wddm_conformance.fuzz.TARGETS` this writes into ``--out``:

``fuzz_<name>_seed_corpus.zip``
    The seeds in ``corpora/<name>/``, the inputs that once found a bug in
    ``corpora/regressions/<name>/`` and the driver repository's own in
    ``<regressions>/<name>/`` (default ``./wddm-regressions``; their ``.json`` records are
    not inputs), stored flat, so every fuzzing run starts from -- and keeps re-checking --
    the known bugs.
``fuzz_<name>.dict``
    A copy of ``corpora/<name>.dict``, when there is one.
``fuzz_<name>.options``
    libFuzzer options: ``max_len``, ``timeout`` and the dictionary when there is one.
``fuzz_<name>``
    Unless ``--no-executables``: a shell script that runs the target's script with this
    Python (and ``--driver``), standing in for the binary ``compile_python_fuzzer`` builds,
    so the layout can be run and checked locally without Docker.

``--driver`` is baked into what is built: the stand-ins pass it, and ``--scripts DIR``
writes one ``fuzz_<name>.py`` per target into ``DIR`` that runs the packaged target with
it, for ``compile_python_fuzzer`` to turn into ``$OUT/fuzz_<name>``. A ``--driver=...``
given to a built fuzzer on its command line still wins. Without ``--driver`` the fuzzers
run ``$WDDM_DRIVER`` or the reference driver, as the plain scripts do. The driver is
loaded once while packaging, so a misspelt one is an error here rather than in CI.

``.clusterfuzzlite/build.sh`` (this repository's, for the reference driver) and
``docs/examples/clusterfuzzlite/build.sh`` (a driver repository's) call this with
``--no-executables`` and only compile the fuzzers themselves, so the packaging rules are
written once. Missing corpus directories or dictionaries are skipped: whatever exists is
packaged. The zips are reproducible (sorted entries, fixed timestamps), so rebuilding an
unchanged corpus gives the same bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from ..driver import load_driver
from ..errors import DriverLoadError
from . import CORPORA, HERE, REGRESSIONS, TARGETS

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


def corpus_inputs(corpora: Path, name: str, regressions: Path | None = None) -> list[Path]:
    """The inputs of target ``name``: seeds, the corpora's regressions, then ``regressions``'.

    ``regressions`` is a driver repository's own directory (``<regressions>/<name>/``), as
    ``fuzz promote`` writes it; ``None`` or a missing directory adds nothing. Stable order.
    """
    seeds = list(_files(corpora / name))
    kept = [corpora / "regressions" / name]
    if regressions is not None:
        kept.append(regressions / name)
    found = [p for d in kept for p in _files(d) if p.suffix != SIDECAR_SUFFIX]
    return seeds + found


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


def _driver_args(driver: str | None) -> list[str]:
    return [] if driver is None else [f"--driver={driver}"]


def executable_text(name: str, driver: str | None = None) -> str:
    """The stand-in for ``compile_python_fuzzer``'s output: run the script with this Python.

    With ``driver``, the stand-in passes ``--driver=<driver>`` before its own arguments.
    """
    words = [sys.executable, str(target_script(name)), *_driver_args(driver)]
    what = fuzzer_name(name) if driver is None else f"{fuzzer_name(name)} for {driver}"
    return (
        "#!/bin/sh\n"
        f"# Local stand-in for the OSS-Fuzz build of {what}"
        " (written by wddm_conformance.fuzz.package).\n"
        f"exec {' '.join(_sh_double_quoted(w) for w in words)}"
        ' "$@"\n'
    )


def script_text(name: str, driver: str | None = None) -> str:
    """A ``fuzz_<name>.py`` for ``compile_python_fuzzer``: the packaged target, ``driver`` baked in.

    It imports the target's script as a module (so pyinstaller bundles it and the harness)
    and puts ``--driver=<driver>`` first on the command line, where a later ``--driver``
    given to the built fuzzer overrides it. The driver itself is imported by name at run
    time: pyinstaller bundles it only when told (``--hidden-import``, ``--collect-submodules``).
    """
    what = "the $WDDM_DRIVER or reference driver" if driver is None else f"driver {driver}"
    insert = "" if driver is None else f"    sys.argv[1:1] = {_driver_args(driver)!r}\n"
    return (
        f'"""{fuzzer_name(name)} on {what} (written by wddm_conformance.fuzz.package)."""\n'
        "\n"
        "import sys\n"
        "\n"
        f"from wddm_conformance.fuzz.{fuzzer_name(name)} import main\n"
        "\n"
        'if __name__ == "__main__":\n'
        f"{insert}"
        "    main()\n"
    )


def build(
    out: Path,
    corpora: Path,
    executables: bool = True,
    *,
    driver: str | None = None,
    regressions: Path | None = None,
    scripts: Path | None = None,
) -> list[Path]:
    """Write every target's zip, dictionary, options (and stand-in) into ``out``.

    ``out`` (and ``scripts``) are created if needed. A target with no inputs gets no zip and
    one without a dictionary gets no ``.dict``: OSS-Fuzz treats both as optional.
    ``driver`` is baked into the stand-ins and into the ``fuzz_<name>.py`` files written to
    ``scripts`` when it is given (see :func:`script_text`); ``regressions`` adds a driver
    repository's regression inputs to the seed zips. Returns the files written, in order.
    """
    out.mkdir(parents=True, exist_ok=True)
    if scripts is not None:
        scripts.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name in TARGETS:
        fuzzer = fuzzer_name(name)

        inputs = corpus_inputs(corpora, name, regressions)
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
            exe_path.write_text(executable_text(name, driver), encoding="utf-8")
            exe_path.chmod(0o755)
            written.append(exe_path)

        if scripts is not None:
            script_path = scripts / f"{fuzzer}.py"
            script_path.write_text(script_text(name, driver), encoding="utf-8")
            written.append(script_path)
    return written


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``fuzz package`` and ``python -m wddm_conformance.fuzz.package``."""
    parser.add_argument("--out", type=Path, required=True, help="directory to write into")
    parser.add_argument(
        "--driver",
        help="module:Class (or native:LIB, or a registry name) baked into the fuzzers "
        "(default: $WDDM_DRIVER or the reference driver at run time)",
    )
    parser.add_argument(
        "--corpora",
        type=Path,
        default=CORPORA,
        help="seed corpora, dictionaries and regressions/ (default: the packaged ones)",
    )
    parser.add_argument(
        "--regressions",
        type=Path,
        default=REGRESSIONS,
        help=f"your regression inputs, added to the seed zips (default: ./{REGRESSIONS})",
    )
    parser.add_argument(
        "--scripts",
        type=Path,
        help="also write fuzz_<name>.py files with the driver baked in, for compile_python_fuzzer",
    )
    parser.add_argument(
        "--no-executables",
        dest="executables",
        action="store_false",
        help="do not write the fuzz_<name> stand-ins (compile_python_fuzzer builds them)",
    )


def run(args: argparse.Namespace) -> int:
    """Build the layout ``args`` asks for; 2 with a one-line error for bad corpora or driver."""
    corpora: Path = args.corpora
    if not corpora.is_dir():
        print(f"error: corpora directory {corpora} does not exist", file=sys.stderr)
        return 2
    if args.driver is not None:
        try:
            load_driver(args.driver)
        except DriverLoadError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    build(
        args.out,
        corpora,
        executables=args.executables,
        driver=args.driver,
        regressions=args.regressions,
        scripts=args.scripts,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: build the ``$OUT`` layout (see the module's documentation)."""
    parser = argparse.ArgumentParser(
        prog="python -m wddm_conformance.fuzz.package",
        description="Package the fuzz targets in the OSS-Fuzz / ClusterFuzzLite $OUT layout.",
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
