"""Matching span content (text regex, attribute equality), which the index does not hold.

Two ways to find the spans whose content matches a regex:
- scan: run the regex over the raw file bytes in big blocks (as fast as `re` itself),
  then confirm each matching line's spans on their decoded text. Only valid when the
  pattern cannot miss a match because of JSON escaping (see :func:`raw_safe`).
- candidates: read the lines of SQL-selected spans by offset and test each span.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from halo_mcp.store.errors import InvalidFilterError

BLOCK_BYTES = 8 << 20
_UNSAFE_ESCAPES = set("sSwWbBAZzntrfv0uUxN\\\"'/")
_UNSAFE_CHARS = set('.^$"<>&/:\\')


def compile_text(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        raise InvalidFilterError(
            f"text is not a valid regex ({exc}); escape special characters like ( [ * ."
        ) from None


def raw_safe(pattern: str) -> bytes | None:
    """The pattern as bytes when matching it on raw JSON lines cannot miss a match on the
    decoded text (no construct that could match an escaped character, a line end, or
    text that the decoded view adds); else None."""
    if (
        not pattern
        or not pattern.isascii()
        or "[^" in pattern
        or "(?" in pattern.replace("(?:", "")
    ):
        return None
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            if i + 1 >= len(pattern) or pattern[i + 1] in _UNSAFE_ESCAPES:
                return None
            i += 2
            continue
        if char in _UNSAFE_CHARS or ord(char) < 32:
            return None
        i += 1
    return pattern.encode()


def blocks(path: Path, gz: bool) -> Iterator[tuple[int, bytes]]:
    """(offset, bytes) blocks of the (decompressed) file, each ending at a line end."""
    opener = gzip.open if gz else open
    offset = 0
    rest = b""
    with opener(path, "rb") as handle:
        while True:
            try:
                chunk = handle.read(BLOCK_BYTES)
            except (OSError, EOFError):
                chunk = b""
            if not chunk:
                if rest:
                    yield offset, rest
                return
            data = rest + chunk if rest else chunk
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                rest = data
                continue
            yield offset, data[:cut] if cut < len(data) else data
            offset += cut
            rest = data[cut:]


_REGEX_META = set(".^$*+?{}[]|()\\")


def block_matcher(raw_pattern: bytes) -> Callable[[bytes], Iterator[int]]:
    """A function giving, in order, positions in a block where the (raw-safe) pattern
    matches case-insensitively, at most one per line.

    Plain words (or words joined by |) are found with bytes.find on the lowercased block;
    a pattern without escapes runs case-sensitively on the lowercased block; anything else
    runs with re.IGNORECASE. All three agree on ASCII, and raw-safe patterns are ASCII."""
    pattern = raw_pattern.decode("ascii")
    words = pattern.split("|")
    if all(w and not (_REGEX_META & set(w)) for w in words):
        needles = [w.lower().encode() for w in dict.fromkeys(words)]

        def find_words(data: bytes) -> Iterator[int]:
            low = data.lower()
            hits: list[int] = []
            for needle in needles:
                i = low.find(needle)
                while i >= 0:
                    hits.append(i)
                    end = low.find(b"\n", i)
                    if end < 0:
                        break
                    i = low.find(needle, end + 1)
            if len(needles) > 1:
                hits.sort()
            return iter(hits)

        return find_words
    if "\\" not in pattern:
        rx = re.compile(pattern.lower().encode())
        return lambda data: _positions(rx, data.lower())
    rx = re.compile(raw_pattern, re.IGNORECASE)
    return lambda data: _positions(rx, data)


def _positions(rx: re.Pattern[bytes], data: bytes) -> Iterator[int]:
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


def attributes_match(payload: Any, wanted: dict[str, Any]) -> bool:
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
