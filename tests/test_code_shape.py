"""The shape of the code: what a reviewer would otherwise have to count by hand."""

from __future__ import annotations

import ast
import re
from collections import Counter
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


REPO = PACKAGE.parent
#: Where a name counts as used: every text file of the checkout but these folders.
NOT_READ = {".git", ".venv", "corpora", "__pycache__", "build", "dist"}


def _top_level_names(tree: ast.Module) -> Iterator[str]:
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            yield node.name
        elif isinstance(node, ast.Assign):
            yield from (t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            yield node.target.id


def _words_of_the_checkout() -> Counter[str]:
    words: Counter[str] = Counter()
    for path in REPO.rglob("*"):
        if NOT_READ.isdisjoint(path.relative_to(REPO).parts) and path.is_file():
            try:
                words.update(re.findall(r"\w+", path.read_text()))
            except (UnicodeDecodeError, OSError):
                continue
    return words


def test_every_top_level_name_of_the_package_is_used_somewhere() -> None:
    """A function, class or constant no code, test, benchmark or document names is dead.
    Names pytest finds by themselves (hooks, checks) are used by being defined."""
    words = _words_of_the_checkout()
    dead = [
        f"{path.relative_to(REPO)}:{name}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if NOT_READ.isdisjoint(path.relative_to(REPO).parts)
        for name in _top_level_names(ast.parse(path.read_text(), str(path)))
        if not name.startswith(("__", "pytest_", "test_")) and words[name] < 2
    ]
    assert not dead, "defined but named nowhere else (remove, or use it):\n" + "\n".join(dead)


#: Fields that hold a StrEnum member (object states, fault, violation, death and verdict
#: kinds): compared with a member, a misspelt name is an AttributeError; with a string
#: literal, a misspelt value is a silent mismatch.
ENUM_FIELDS = frozenset({"state", "kind", "fault_kind"})


def _string_literal(node: ast.expr) -> bool:
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return any(_string_literal(e) for e in node.elts)
    return False


def string_comparisons(path: Path, root: Path) -> Iterator[str]:
    """``file:line: code`` of each comparison of an :data:`ENUM_FIELDS` attribute (or
    ``x["verdict"]``) with a string literal in the Python file ``path``."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.Compare):
            continue
        sides = [node.left, *node.comparators]
        fields = [
            s
            for s in sides
            if (isinstance(s, ast.Attribute) and s.attr in ENUM_FIELDS)
            or (
                isinstance(s, ast.Subscript)
                and isinstance(s.slice, ast.Constant)
                and s.slice.value == "verdict"
            )
        ]
        if fields and any(_string_literal(s) for s in sides):
            yield f"{path.relative_to(root)}:{node.lineno}: {ast.unparse(node)}"


def test_enum_fields_are_compared_with_members_not_string_literals() -> None:
    found = [
        line for path in sorted(PACKAGE.rglob("*.py")) for line in string_comparisons(path, REPO)
    ]
    assert not found, "compare with the enum's member:\n" + "\n".join(found)


def test_a_string_comparison_of_a_state_is_named(tmp_path: Path) -> None:
    source = tmp_path / "states.py"
    source.write_text(
        "if a.state == 'residnet' or d.kind in ('lost', X.Y) or r['verdict'] != 'ok':\n"
        "    pass\n"
        "if a.state is State.RESIDENT or a.name == 'x':\n    pass\n"
    )
    assert list(string_comparisons(source, tmp_path)) == [
        "states.py:1: a.state == 'residnet'",
        "states.py:1: d.kind in ('lost', X.Y)",
        "states.py:1: r['verdict'] != 'ok'",
    ]
