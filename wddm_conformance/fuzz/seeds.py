"""Seed corpora and dictionaries, generated from a driver's command encoder.

    python -m wddm_conformance.fuzz.seeds [--driver=module:Class] [--out corpora] [--check]
                                          [--target NAME]

writes ``<out>/<target>/<name>`` for every seed each target builds (valid programs of
every operation kind, every kernel variant, placement, patch-list and fault case) and
``<out>/<target>.dict`` in libFuzzer's dictionary format. The output depends only on
the driver, so the committed corpora can be checked (``--check``) against a fresh run.
``<out>/regressions/<target>/`` is never touched: inputs that once found a bug live there.
A campaign on a driver other than the reference builds that driver's own seeds this way
(:func:`~wddm_conformance.fuzz.campaign.own_seeds`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..driver import load_driver
from ..errors import DriverLoadError
from . import CORPORA, TARGETS, target_class


def dictionary_text(tokens: Sequence[bytes]) -> str:
    """libFuzzer dictionary lines (``name="\\x01\\x02"``), one per distinct non-empty token."""
    lines: list[str] = []
    seen: set[bytes] = set()
    for token in tokens:
        if not token or token in seen:
            continue
        seen.add(token)
        escaped = "".join(f"\\x{b:02x}" for b in token)
        lines.append(f'token{len(lines)}="{escaped}"')
    return "\n".join(lines) + "\n" if lines else ""


def generate(
    driver: str = "reference", targets: Iterable[str] = tuple(TARGETS)
) -> dict[str, bytes]:
    """Relative path -> content of every seed and dictionary file of ``targets``."""
    spec = load_driver(driver)
    files: dict[str, bytes] = {}
    for name in targets:
        target = target_class(name)(spec)  # type: ignore[call-arg]
        for seed, data in target.seeds():
            files[f"{name}/{seed}"] = data
        text = dictionary_text(target.dictionary())
        if text:
            files[f"{name}.dict"] = text.encode()
    return files


def write(out: Path, files: dict[str, bytes], targets: Iterable[str] = tuple(TARGETS)) -> None:
    """Replace the seed directories and dictionaries of ``targets`` under ``out`` with ``files``."""
    for name in targets:
        folder = out / name
        if folder.is_dir():
            for old in folder.iterdir():
                if old.is_file():
                    old.unlink()
        (out / f"{name}.dict").unlink(missing_ok=True)
    for rel, data in files.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def differences(
    out: Path, files: dict[str, bytes], targets: Iterable[str] = tuple(TARGETS)
) -> list[str]:
    """What differs between ``out`` and a fresh generation of ``targets`` (empty when they match)."""
    found = {
        str(p.relative_to(out)): p.read_bytes()
        for name in targets
        for p in [*(out / name).glob("*"), out / f"{name}.dict"]
        if p.is_file()
    }
    problems = [f"missing {rel}" for rel in files if rel not in found]
    problems += [f"stale {rel}" for rel in found if rel not in files]
    problems += [f"differs {rel}" for rel in files if rel in found and found[rel] != files[rel]]
    return sorted(problems)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m wddm_conformance.fuzz.seeds", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--driver", default="reference", help="driver whose encoder builds the seeds"
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="corpora directory (default: the packaged corpora, which hold the reference "
        "driver's seeds; another driver's seeds need --out)",
    )
    parser.add_argument(
        "--check", action="store_true", help="only compare --out with a fresh generation"
    )
    parser.add_argument(
        "--target", choices=TARGETS, help="only this target's seeds (default: every target)"
    )
    args = parser.parse_args(argv)
    targets = tuple(TARGETS) if args.target is None else (args.target,)
    if args.out is None:
        if args.driver != "reference":
            parser.exit(2, f"error: give --out DIR for {args.driver}'s seeds\n")
        args.out = CORPORA
    try:
        files = generate(args.driver, targets)
    except DriverLoadError as exc:
        parser.exit(2, f"error: {exc}\n")
    if args.check:
        problems = differences(args.out, files, targets)
        for line in problems:
            print(line)
        if problems:
            print(
                f"{args.out} is out of date: run python -m wddm_conformance.fuzz.seeds --out {args.out}"
            )
        return 1 if problems else 0
    write(args.out, files, targets)
    print(f"wrote {len(files)} files to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
