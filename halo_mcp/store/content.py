"""Matching span content (text regex, attribute equality), which the index does not hold.

Two ways to find the spans whose content matches a regex:
- scan: run the regex over the raw file bytes in big blocks (RE2 over bytes),
  then confirm each matching line's spans on their decoded text. Only valid when the
  pattern cannot miss a match because of JSON escaping (see :func:`raw_safe`).
- candidates: read the lines of SQL-selected spans by offset and test each span.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from halo_mcp.store.errors import InvalidFilterError
from halo_mcp.store.gzip_stream import decompressed_chunks
from halo_mcp.text_patterns import PatternError, Regex, compile_pattern, compile_raw

if TYPE_CHECKING:
    from halo_mcp.store.formats import SpanPayload

#: Raw bytes scanned per step: big enough that per-block costs vanish, small enough that
#: a few concurrent scans hold little memory (each step copies its block a time or two).
BLOCK_BYTES = 2 << 20


def compile_text(pattern: str) -> Regex:
    """The case-insensitive RE2 regex for a text filter or search (linear time)."""
    try:
        return compile_pattern(pattern)
    except PatternError as exc:
        raise InvalidFilterError(f"text: {exc}") from None


# How one decoded character may appear in a raw JSON line: itself, an escape (\n, \", six
# bytes for \u00e9) or 2-4 UTF-8 bytes. Each widening is a plain byte class (no nested
# alternation under a quantifier), so the raw scan stays linear.
_WIDE = {
    ".": (rb".", rb"(?:.{1,6})"),
    "S": (rb"\S", rb"(?:\S{1,6})"),
    "w": (rb"[\w\\\x80-\xff]", rb"(?:[\w\\\x80-\xff]{1,6})"),
    "W": (rb".", rb"(?:.{1,6})"),
    "D": (rb".", rb"(?:.{1,6})"),
}
_SPACE = rb"(?:[ \t\r\f\v]|\\[nrtfb]|\\u[0-9a-fA-F]{4}|[\x80-\xff]{2,3})"
_OUTSIDE = {
    "^": b"",
    "$": b"",
    '"': rb'\\"',
    "/": rb"\\?/",
    "<": rb"(?:<|\\u003c)",
    ">": rb"(?:>|\\u003e)",
    "&": rb"(?:&|\\u0026)",
}
_ESCAPES = {
    "s": _SPACE,
    "d": rb"\d",
    "b": b"",
    "B": b"",
    "n": rb"\\n",
    "t": rb"\\t",
    "r": rb"\\r",
    '"': rb'\\"',
    "\\": rb"\\\\",
    "/": rb"\\?/",
}
_CLASS_ESCAPES = set("d.-[]()*+?{}|$^ ")
_CLASS_UNSAFE = set('"/<>&\\:')


def raw_safe(pattern: str) -> bytes | None:
    r"""A bytes pattern that matches a raw JSON line wherever `pattern` could match the
    span's decoded text (a superset: matches are confirmed on the decoded text), or None
    when no such rewrite is known (then spans are tested one by one).

    Constructs that could match an escaped character (`.`, `\s`, `"`...) are widened to
    also match its escape; anchors and word boundaries are dropped; `key: value` (how the
    decoded view renders attributes) also matches `"key":"value"`. Non-ASCII text, negated
    classes, lookarounds and backreferences are not rewritten. Known blind spot: a match
    spanning the `role: content` rendering of flattened chat messages."""
    if pattern.startswith("(?i)"):
        pattern = pattern[4:]  # texts are always matched ignoring case
    if not pattern or not pattern.isascii() or "(?" in pattern.replace("(?:", ""):
        return None
    out = bytearray()
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        if char == "\\":
            if i + 1 >= n:
                return None
            nxt = pattern[i + 1]
            if nxt in _WIDE:
                out += _widen(nxt, pattern, i + 2)
            elif nxt in _ESCAPES:
                out += _ESCAPES[nxt]
            elif nxt.isalnum() or nxt == "_":
                return None  # \A, \Z, \1, \x41, \u00e9...: not rewritten
            else:
                out += ("\\" + nxt).encode()
            i += 2
        elif char == "[":
            end = _class_end(pattern, i)
            if end is None:
                return None
            out += pattern[i : end + 1].encode()
            i = end + 1
        elif pattern.startswith("(?:", i):
            out += b"(?:"
            i += 3
        elif char == ":":
            # The decoded view renders attributes as `key: value`; raw JSON has "key":"value".
            out += rb'"?\s*:\s*"?'
            i += 2 if pattern[i + 1 : i + 2] == " " else 1
        elif ord(char) < 32:
            return None
        elif char == ".":
            out += _widen(".", pattern, i + 1)
            i += 1
        else:
            out += _OUTSIDE.get(char, char.encode())
            i += 1
    if not out:
        return None
    try:
        compile_raw(bytes(out))
    except PatternError:
        return None  # a rewrite RE2 refuses: test the spans one by one instead
    return bytes(out)


def _widen(atom: str, pattern: str, after: int) -> bytes:
    """The raw form of `.`/`\\S`/`\\w`/...: one byte class when a * or + follows (any number
    of raw bytes), else a group of 1 to 6 raw bytes."""
    repeated, single = _WIDE[atom]
    return repeated if pattern[after : after + 1] in ("*", "+") else single


def _class_end(pattern: str, start: int) -> int | None:
    """Index of the `]` closing a safe character class starting at `start`, else None."""
    i = start + 1
    if i < len(pattern) and pattern[i] == "^":
        return None
    if i < len(pattern) and pattern[i] == "]":
        i += 1
    while i < len(pattern):
        char = pattern[i]
        if char == "]":
            return i
        if char == "\\":
            if i + 1 >= len(pattern) or pattern[i + 1] not in _CLASS_ESCAPES:
                return None
            i += 2
            continue
        if char in _CLASS_UNSAFE:
            return None
        i += 1
    return None


def blocks(path: Path, gz: bool) -> Iterator[tuple[int, bytes]]:
    """(offset, bytes) blocks of the (decompressed) file, each ending at a line end."""
    offset = 0
    rest = b""
    for chunk in _chunks(path, gz):
        data = rest + chunk if rest else chunk
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            rest = data
            continue
        yield offset, data[:cut] if cut < len(data) else data
        offset += cut
        rest = data[cut:]
    if rest:
        yield offset, rest


def _chunks(path: Path, gz: bool) -> Iterator[bytes]:
    """The file's (decompressed) bytes in blocks; a damaged .gz ends where it breaks (its
    lines past that point were never indexed either)."""
    if gz:
        yield from decompressed_chunks(path, BLOCK_BYTES)
        return
    with open(path, "rb") as handle:
        while chunk := handle.read(BLOCK_BYTES):
            yield chunk


def block_matcher(raw_pattern: bytes) -> Callable[[bytes], Iterator[int]]:
    """A function giving, in order, positions in a block where the (raw-safe) pattern
    matches case-insensitively, at most one per line.

    RE2 over the raw bytes, for plain words too: it is linear in the block, faster than
    lowercasing the block and finding each word, and it releases the GIL while it runs, so
    the other threads of a busy server keep going during a scan."""
    rx = compile_raw(raw_pattern)
    return lambda data: _positions(rx, data)


def _positions(rx: Regex, data: bytes) -> Iterator[int]:
    pos = 0
    while True:
        match = rx.search(data, pos)
        if match is None:
            return
        yield match.start()
        end = data.find(b"\n", match.end())
        if end < 0:
            return
        pos = end + 1


def matching_lines(
    path: Path, gz: bool, matcher: Callable[[bytes], Iterator[int]]
) -> Iterator[tuple[int, bytes]]:
    """(offset, line) of each line where the matcher hits the raw bytes; one pass."""
    for base, data in blocks(path, gz):
        last_start = -1
        for position in matcher(data):
            start = data.rfind(b"\n", 0, position) + 1
            if start == last_start:
                continue
            last_start = start
            end = data.find(b"\n", position)
            if end < 0:
                end = len(data)
            line = data[start:end]
            if line.endswith(b"\r"):
                line = line[:-1]
            offset = base + start
            if offset == 0 and line.startswith(b"\xef\xbb\xbf"):
                line = line[3:]
                offset = 3
            yield offset, line


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def values_equal(actual: Any, wanted: Any) -> bool:
    """Attribute equality, lenient on representation: 3 == "3", True == "true"."""
    if isinstance(actual, bool) or isinstance(wanted, bool):
        return str(actual).lower() == str(wanted).lower()
    if actual == wanted:
        return True
    a, b = _number(actual), _number(wanted)
    if a is not None and b is not None:
        return a == b
    return str(actual) == str(wanted)


def attributes_match(payload: SpanPayload, wanted: Mapping[str, Any]) -> bool:
    """Whether every wanted attribute (or resource attribute) equals the span's value."""
    for key, value in wanted.items():
        if key in payload.attributes:
            actual = payload.attributes[key]
        elif key in payload.resource:
            actual = payload.resource[key]
        else:
            return False
        if not values_equal(actual, value):
            return False
    return True
