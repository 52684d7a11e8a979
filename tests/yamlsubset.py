"""Just enough YAML to read the project's example workflows, without a YAML dependency.

Block mappings and sequences by indentation, ``- key: value`` items, literal block scalars
(``|``), plain, single- and double-quoted scalars, ``[a, b]`` flow sequences, ``true`` /
``false`` and integers, comments. Anything else (anchors, flow mappings, folded scalars,
tabs, a duplicate key, a bad indentation) is a :class:`YamlSubsetError` naming the line, so a
file this reads is a file any YAML loader reads the same way -- except that keys stay
strings (YAML 1.1 loaders read the key ``on`` as ``True``).
"""

from __future__ import annotations

import json
import re
from typing import Any

_INT = re.compile(r"[-+]?[0-9]+")
_UNSUPPORTED = ("&", "*", "!", "{", ">", "%", "@", "`")


class YamlSubsetError(ValueError):
    """The text is outside the subset (or is not YAML): line number and reason."""


def _strip_comment(text: str) -> str:
    """``text`` without a trailing `` # comment`` that is outside quotes."""
    quote = ""
    for i, char in enumerate(text):
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"" and (i == 0 or text[i - 1] in " [,"):
            quote = char
        elif char == "#" and (i == 0 or text[i - 1] in " \t"):
            return text[:i].rstrip()
    return text.rstrip()


def _split_key(text: str) -> tuple[str, str] | None:
    """``key: rest`` or ``key:`` into (key, rest); None when the text is not a mapping entry."""
    if text.startswith(("'", '"')):
        end = text.find(text[0], 1)
        if end < 0 or not text[end + 1 :].startswith(":"):
            return None
        key, rest = text[1:end], text[end + 2 :]
    else:
        match = re.match(r"([^\s:#'\"][^:]*?):(?:\s+|$)", text)
        if match is None:
            return None
        key, rest = match.group(1), text[match.end() :]
    return key, rest.strip()


class _Parser:
    def __init__(self, text: str) -> None:
        if "\t" in text:
            line = text[: text.index("\t")].count("\n") + 1
            raise YamlSubsetError(f"line {line}: tab character")
        self.lines = text.splitlines()
        self.i = 0

    def fail(self, reason: str) -> YamlSubsetError:
        return YamlSubsetError(f"line {self.i + 1}: {reason}: {self.lines[self.i].strip()!r}")

    def peek(self) -> tuple[int, str] | None:
        """Indentation and content of the next line that is neither blank nor a comment."""
        while self.i < len(self.lines):
            raw = self.lines[self.i]
            content = _strip_comment(raw.strip())
            if content:
                if content in ("---", "..."):
                    raise self.fail("documents")
                return len(raw) - len(raw.lstrip(" ")), content
            self.i += 1
        return None

    def document(self) -> Any:
        first = self.peek()
        if first is None:
            return None
        value = self.block(first[0])
        if self.peek() is not None:
            raise self.fail("bad indentation")
        return value

    def block(self, indent: int) -> Any:
        line = self.peek()
        assert line is not None
        if line[1] == "-" or line[1].startswith("- "):
            return self.sequence(indent)
        if _split_key(line[1]) is None:
            raise self.fail("expected 'key: value'")
        return self.mapping(indent)

    def mapping(self, indent: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        while (line := self.peek()) is not None and line[0] == indent:
            entry = _split_key(line[1])
            if entry is None:
                raise self.fail("expected 'key: value'")
            key, rest = entry
            if key in out:
                raise self.fail(f"duplicate key {key!r}")
            self.i += 1
            out[key] = self.value(indent, rest, in_sequence=False)
        if line is not None and line[0] > indent:
            raise self.fail("bad indentation")
        return out

    def sequence(self, indent: int) -> list[Any]:
        out: list[Any] = []
        while (line := self.peek()) is not None and line[0] == indent:
            if not (line[1] == "-" or line[1].startswith("- ")):
                break
            rest = line[1][1:].strip()
            if rest and _split_key(rest) is not None:
                # "- key: value": a mapping whose first entry sits where "key" starts.
                raw = self.lines[self.i]
                dash = raw.index("-")
                self.lines[self.i] = " " * (dash + 1) + raw[dash + 1 :]
                out.append(self.mapping(self.peek()[0]))  # type: ignore[index]
            else:
                self.i += 1
                out.append(self.value(indent, rest, in_sequence=True))
        if line is not None and line[0] > indent:
            raise self.fail("bad indentation")
        return out

    def value(self, indent: int, rest: str, in_sequence: bool) -> Any:
        if rest in ("|", "|-"):
            return self.literal(indent, keep_newline=rest == "|")
        if rest:
            return self.scalar(rest)
        line = self.peek()
        if line is None:
            return None
        if line[0] > indent:
            return self.block(line[0])
        if not in_sequence and line[0] == indent and (line[1] == "-" or line[1].startswith("- ")):
            return self.sequence(indent)  # "key:" then "- item" at the key's indentation
        return None

    def literal(self, indent: int, keep_newline: bool) -> str:
        lines: list[str] = []
        block_indent: int | None = None
        while self.i < len(self.lines):
            raw = self.lines[self.i]
            if raw.strip():
                here = len(raw) - len(raw.lstrip(" "))
                if here <= indent:
                    break
                block_indent = here if block_indent is None else block_indent
                if here < block_indent:
                    raise self.fail("bad indentation in a block scalar")
                lines.append(raw[block_indent:])
            else:
                lines.append("")
            self.i += 1
        while lines and not lines[-1]:
            lines.pop()
        return "\n".join(lines) + ("\n" if keep_newline and lines else "")

    def scalar(self, text: str) -> Any:
        if text.startswith(_UNSUPPORTED):
            raise self.fail("unsupported YAML")
        if text.startswith('"'):
            try:
                value, end = json.JSONDecoder().raw_decode(text)
            except json.JSONDecodeError:
                raise self.fail("bad double-quoted string") from None
            if text[end:].strip():
                raise self.fail("text after a quoted string")
            return value
        if text.startswith("'"):
            if not text.endswith("'") or len(text) < 2:
                raise self.fail("bad single-quoted string")
            return text[1:-1].replace("''", "'")
        if text.startswith("["):
            if not text.endswith("]"):
                raise self.fail("bad flow sequence")
            inner = text[1:-1].strip()
            return [self.scalar(item.strip()) for item in inner.split(",")] if inner else []
        if text.lower() in ("true", "false"):
            return text.lower() == "true"
        if text.lower() in ("yes", "no", "on", "off", "y", "n"):
            raise self.fail("a YAML 1.1 boolean: quote it")
        if text in ("null", "~"):
            return None
        if _INT.fullmatch(text):
            return int(text)
        if ": " in text or text.endswith(":"):
            raise self.fail("a plain scalar with ': '")
        return text


def load(text: str) -> Any:
    """The data in ``text`` (one YAML document in the subset the module describes)."""
    return _Parser(text).document()
