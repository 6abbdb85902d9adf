"""Replace one TOML table in existing text without disturbing anything else.

Python 3.10 has no TOML parser and we add no dependency, so this works on the text: a
small scanner finds table headers and keys (tracking strings, comments and multi-line
arrays so that a `[` inside a value is never taken for a header), the target table's
block is rewritten in place, and every other byte of the file is kept. When `tomllib`
exists (3.11+) it double-checks the input and the result.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only: no check that the result parses
    tomllib = None

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


class TomlEditError(ValueError):
    """The file cannot be edited safely; the message says what to do instead."""


# ----------------------------------------------------------------------------- emitter


def emit_key(key: str) -> str:
    """A bare key when TOML allows it, else a quoted one."""
    return key if _BARE_KEY.fullmatch(key) else emit_string(key)


def emit_string(text: str) -> str:
    """A TOML basic string (double quotes) with every needed escape."""
    out = []
    for ch in text:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def emit_value(value: object) -> str:
    """A TOML value: strings, booleans, integers, finite floats, arrays, inline tables."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TomlEditError(f"cannot write the non-finite number {value!r}")
        return repr(value)
    if isinstance(value, str):
        return emit_string(value)
    if isinstance(value, Mapping):
        if not value:
            return "{}"
        items = ", ".join(f"{emit_key(str(k))} = {emit_value(v)}" for k, v in value.items())
        return "{ " + items + " }"
    if isinstance(value, Sequence):
        return "[" + ", ".join(emit_value(v) for v in value) + "]"
    raise TomlEditError(f"cannot write a value of type {type(value).__name__}")


def emit_table(path: Sequence[str], values: Mapping[str, object], newline: str = "\n") -> str:
    """`[a.b]` followed by one `key = value` line per entry (nested maps inline)."""
    lines = ["[" + ".".join(emit_key(k) for k in path) + "]"]
    lines += [f"{emit_key(k)} = {emit_value(v)}" for k, v in values.items()]
    return newline.join(lines) + newline


# ----------------------------------------------------------------------------- scanner


@dataclass
class Line:
    """One physical line and what it is at the top level of the document."""

    text: str
    kind: str  # "header", "keyval", "blank", "comment", "continuation"
    key: tuple[str, ...] = ()  # header path, or the key of a key/value line
    array_table: bool = False  # `[[...]]`
    table: tuple[str, ...] = ()  # the table a key/value line belongs to


def _parse_key(text: str, pos: int) -> tuple[tuple[str, ...], int]:
    """A dotted key starting at `pos` (whitespace around dots allowed); returns its end."""
    parts: list[str] = []
    while True:
        while pos < len(text) and text[pos] in " \t":
            pos += 1
        if pos >= len(text):
            raise TomlEditError("a key ends unexpectedly")
        ch = text[pos]
        if ch == '"':
            end = pos + 1
            while end < len(text) and text[end] != '"':
                end += 2 if text[end] == "\\" else 1
            if end >= len(text):
                raise TomlEditError("a quoted key is not closed")
            try:
                parts.append(json.loads(text[pos : end + 1]))
            except ValueError:
                parts.append(text[pos + 1 : end])
            pos = end + 1
        elif ch == "'":
            end = text.find("'", pos + 1)
            if end < 0:
                raise TomlEditError("a quoted key is not closed")
            parts.append(text[pos + 1 : end])
            pos = end + 1
        else:
            match = _BARE_KEY.match(text, pos)
            if not match:
                raise TomlEditError(f"unexpected character {ch!r} in a key")
            parts.append(match.group())
            pos = match.end()
        while pos < len(text) and text[pos] in " \t":
            pos += 1
        if pos < len(text) and text[pos] == ".":
            pos += 1
            continue
        return tuple(parts), pos


@dataclass
class _ValueState:
    """Where the scanner is inside values that span lines."""

    depth: int = 0  # open [ and { of a value
    multiline: str | None = None  # '"""' or "'''" while inside a multi-line string

    @property
    def inside(self) -> bool:
        return self.depth > 0 or self.multiline is not None


def _scan_value(text: str, pos: int, state: _ValueState) -> None:
    """Advance `state` over a value's characters (strings, comments, brackets)."""
    while pos < len(text):
        if state.multiline:
            end = text.find(state.multiline, pos)
            while end > 0 and state.multiline == '"""' and _escaped(text, end):
                end = text.find(state.multiline, end + 1)
            if end < 0:
                return
            pos = end + 3
            while pos < len(text) and text[pos] == state.multiline[0]:
                pos += 1  # up to two quotes may end the string content itself
            state.multiline = None
            continue
        ch = text[pos]
        if ch == "#":
            return
        if text.startswith('"""', pos) or text.startswith("'''", pos):
            state.multiline = text[pos : pos + 3]
            pos += 3
        elif ch == '"':
            pos += 1
            while pos < len(text) and text[pos] not in '"\n':
                pos += 2 if text[pos] == "\\" else 1
            pos += 1
        elif ch == "'":
            end = text.find("'", pos + 1)
            pos = len(text) if end < 0 else end + 1
        elif ch in "[{":
            state.depth += 1
            pos += 1
        elif ch in "]}":
            state.depth = max(0, state.depth - 1)
            pos += 1
        else:
            pos += 1


def _escaped(text: str, pos: int) -> bool:
    """Whether the character at `pos` is preceded by an odd number of backslashes."""
    count = 0
    while pos - count - 1 >= 0 and text[pos - count - 1] == "\\":
        count += 1
    return count % 2 == 1


def scan(text: str) -> list[Line]:
    """Classify each line of a TOML document (keeps the line endings in `text`)."""
    lines: list[Line] = []
    state = _ValueState()
    table: tuple[str, ...] = ()
    for number, raw in enumerate(text.splitlines(keepends=True), start=1):
        if state.inside:
            _scan_value(raw, 0, state)
            lines.append(Line(raw, "continuation", table=table))
            continue
        stripped = raw.strip()
        try:
            if not stripped:
                lines.append(Line(raw, "blank", table=table))
            elif stripped.startswith("#"):
                lines.append(Line(raw, "comment", table=table))
            elif stripped.startswith("["):
                array = stripped.startswith("[[")
                start = raw.index("[") + (2 if array else 1)
                path, end = _parse_key(raw, start)
                closing = "]]" if array else "]"
                if not raw.startswith(closing, end):
                    raise TomlEditError("a table header is not closed")
                table = path
                lines.append(Line(raw, "header", key=path, array_table=array, table=path))
            else:
                key, end = _parse_key(raw, len(raw) - len(raw.lstrip()))
                if not raw.startswith("=", end):
                    raise TomlEditError("expected '=' after a key")
                _scan_value(raw, end + 1, state)
                lines.append(Line(raw, "keyval", key=key, table=table))
        except TomlEditError as exc:
            raise TomlEditError(f"line {number}: {exc}; fix the file or edit it by hand") from exc
    return lines


# ----------------------------------------------------------------------------- upsert


def _starts_with(path: tuple[str, ...], prefix: tuple[str, ...]) -> bool:
    return path[: len(prefix)] == prefix


def table_blocks(lines: list[Line], path: tuple[str, ...]) -> list[tuple[int, int]]:
    """(start, end) line ranges of the tables at `path` or below it, trailing blank and
    comment lines left out (they usually introduce whatever comes next)."""
    ranges = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.kind == "header" and _starts_with(line.key, path):
            end = i + 1
            while end < len(lines) and lines[end].kind != "header":
                end += 1
            last = end
            while last > i + 1 and lines[last - 1].kind in ("blank", "comment"):
                last -= 1
            ranges.append((i, last))
            i = end
        else:
            i += 1
    return ranges


def _conflicts(lines: list[Line], path: tuple[str, ...], skip: set[int]) -> list[int]:
    """Line numbers defining `path` (or a parent of it) in a way we cannot rewrite:
    dotted keys, inline tables, arrays of tables."""
    found = []
    for index, line in enumerate(lines):
        if index in skip:
            continue
        if line.kind == "header" and line.array_table:
            if _starts_with(path, line.key) or _starts_with(line.key, path):
                found.append(index + 1)
        elif line.kind == "keyval":
            full = line.table + line.key
            if _starts_with(path, full) or _starts_with(full, path):
                found.append(index + 1)
    return found


def _kept_lines(lines: list[Line], block: tuple[int, int], managed: Iterable[str]) -> list[str]:
    """Key/value lines of the main table block whose key we do not manage (with their
    continuation lines): the user's own settings for this server survive a rewrite."""
    managed = set(managed)
    kept: list[str] = []
    keep = False
    for line in lines[block[0] + 1 : block[1]]:
        if line.kind == "keyval":
            keep = line.key[0] not in managed
        elif line.kind != "continuation":
            keep = False
        if keep:
            kept.append(line.text if line.text.endswith(("\n", "\r")) else line.text + "\n")
    return kept


def upsert_table(
    text: str,
    path: Sequence[str],
    values: Mapping[str, object],
    managed: Iterable[str] | None = None,
) -> str:
    """`text` with the table at `path` set to `values`, everything else untouched.

    The table keeps its place in the file (appended at the end when new). Sub-tables of
    `path` whose first key is managed are dropped; other keys the user added to the table
    (not in `managed`, default: the keys of `values`) are kept. Running it twice gives the
    same text. Raises TomlEditError, with what to do instead, when the file is not valid
    TOML or defines the table in a form this editor does not rewrite.
    """
    path = tuple(path)
    managed = set(values) if managed is None else set(managed)
    if tomllib is not None:
        try:
            tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise TomlEditError(f"not valid TOML ({exc}); fix it first, then run again") from exc
    newline = "\r\n" if "\r\n" in text else "\n"
    lines = scan(text)
    every_block = table_blocks(lines, path)
    blocks = [
        (start, end)
        for start, end in every_block
        if lines[start].key == path or lines[start].key[len(path)] in managed
    ]
    conflicts = _conflicts(lines, path, {i for s, e in every_block for i in range(s, e)})
    if conflicts:
        where = ", ".join(str(n) for n in conflicts[:5])
        raise TomlEditError(
            f"the file already defines {'.'.join(path)} (or its parent) with dotted keys, an"
            f" inline table or an array of tables (line {where}); edit that entry by hand"
        )
    main = next((b for b in blocks if lines[b[0]].key == path), None)
    kept = _kept_lines(lines, main, managed) if main else []
    block = emit_table(path, values, newline) + "".join(
        k.replace("\r\n", "\n").replace("\n", newline) for k in kept
    )

    out: list[str] = []
    removed = {i for start, end in blocks for i in range(start, end)}
    inserted = False
    for index, line in enumerate(lines):
        if index in removed:
            if not inserted:
                out.append(block)
                inserted = True
            continue
        out.append(line.text)
    result = "".join(out)
    if not inserted:
        if result and not result.endswith(("\n", "\r")):
            result += newline
        if result.strip() and not result.endswith(newline * 2):
            result += newline
        result += block
    _check(result, path, values)
    return result


def _check(result: str, path: tuple[str, ...], values: Mapping[str, object]) -> None:
    """With tomllib available, prove the result parses and holds exactly `values`."""
    if tomllib is None:
        return
    try:
        table: object = tomllib.loads(result)
    except tomllib.TOMLDecodeError as exc:  # pragma: no cover - a bug in this module
        raise TomlEditError(
            f"the edit would make the file invalid ({exc}); edit it by hand"
        ) from exc
    for key in path:
        table = table.get(key) if isinstance(table, dict) else None
    if not isinstance(table, dict) or any(table.get(k) != _plain(v) for k, v in values.items()):
        raise TomlEditError(f"could not place {'.'.join(path)} safely; edit the file by hand")


def _plain(value: object) -> object:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def read_table(text: str, path: Sequence[str]) -> dict | None:
    """The table at `path` as parsed by tomllib, or None (also when tomllib is missing)."""
    if tomllib is None:
        return None
    try:
        table: object = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return None
    for key in path:
        table = table.get(key) if isinstance(table, dict) else None
    return table if isinstance(table, dict) else None
