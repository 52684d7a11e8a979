"""The shape of the code: what a reviewer would otherwise have to count by hand."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import wddm_conformance

PACKAGE = Path(wddm_conformance.__file__).parent
#: Lines a function of kernel/ may span, from its ``def`` to its last line (docstring included).
MAX_FUNCTION_LINES = 60


def long_functions(path: Path, limit: int, root: Path | None = None) -> Iterator[str]:
    """``file:function:length`` of every function (nested ones and methods too, by qualified
    name) in the Python file ``path`` longer than ``limit`` lines; ``file`` is relative to
    ``root`` when given."""
    shown = path.relative_to(root) if root is not None else path

    def walk(node: ast.AST, prefix: str) -> Iterator[str]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    assert child.end_lineno is not None
                    length = child.end_lineno - child.lineno + 1
                    if length > limit:
                        yield f"{shown}:{name}:{length}"
                yield from walk(child, f"{name}.")
            else:
                yield from walk(child, prefix)

    yield from walk(ast.parse(path.read_text(), str(path)), "")


def test_no_function_in_the_kernel_is_longer_than_60_lines() -> None:
    files = sorted((PACKAGE / "kernel").rglob("*.py"))
    assert files
    too_long = [
        line for path in files for line in long_functions(path, MAX_FUNCTION_LINES, PACKAGE.parent)
    ]
    assert not too_long, "split into readable steps:\n" + "\n".join(too_long)


def test_a_long_function_is_named_with_its_file_and_length(tmp_path: Path) -> None:
    source = tmp_path / "shape.py"
    body = "".join(f"    x{i} = {i}\n" for i in range(60))
    source.write_text(
        f"def short():\n    pass\n\nclass K:\n    def long(self):\n{body.replace('    ', '        ')}"
        f"\ndef outer():\n    def inner():\n{body.replace('    ', '        ')}"
    )
    assert list(long_functions(source, 60, tmp_path)) == [
        "shape.py:K.long:61",
        "shape.py:outer:62",
        "shape.py:outer.inner:61",
    ]
