"""Error signatures: the informative part of an error message (error_text) with its
volatile parts (ids, numbers, paths...) replaced by placeholders, so errors that differ
only by those parts group together. HTTP status codes stay: they say what the error is."""

from __future__ import annotations

import re
from collections.abc import Callable

from halo_mcp.store.error_text import informative_message

MAX_MESSAGE_CHARS = 300

Replacement = str | Callable[[re.Match[str]], str]


def _quoted(placeholder: str) -> Callable[[re.Match[str]], str]:
    """A quoted string becomes `placeholder`, unless a colon follows (a dict key)."""

    def replace(match: re.Match[str]) -> str:
        return match.group(0) if match.group(1) else placeholder

    return replace


#: The rules, in order: (pattern, placeholder, needles). Order matters: the most specific
#: shapes are replaced first. Each rule names strings of which a match must contain one
#: (none: always tried); a message holding none of them skips the rule (about half the
#: cost: most messages have no @, / or 0x). Placeholders add none of these strings, so
#: testing the original message is enough.
RULES: tuple[tuple[re.Pattern[str], Replacement, tuple[str, ...]], ...] = (
    (re.compile(r"https?://[^\s'\"<>)\]]+", re.I), "<URL>", ("://",)),
    (re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b"), "<EMAIL>", ("@",)),
    (
        re.compile(
            r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"
        ),
        "<TS>",
        ("-",),
    ),
    (re.compile(r"\b\d{1,2}:\d{2}:\d{2}(?:\.\d+)?\b"), "<TS>", (":",)),
    (
        re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I),
        "<UUID>",
        ("-",),
    ),
    (re.compile(r"\b0x[0-9a-f]+\b", re.I), "<ID>", ("0x", "0X")),
    (re.compile(r"\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{8,}\b", re.I), "<ID>", ()),
    (re.compile(r"\b(?=(?:[A-Za-z_-]*\d){4})[A-Za-z]+[_-][A-Za-z0-9_-]{6,}\b"), "<ID>", ("_", "-")),
    (
        re.compile(r"(?:(?<=\s)|(?<=^)|(?<=[='\"(]))(?:~|\.{1,2})?(?:/[\w.@%+-]+){2,}/?"),
        "<PATH>",
        ("/",),
    ),
    (re.compile(r"\b[A-Za-z]:\\[^\s'\"]+"), "<PATH>", (":\\",)),
    # Quoted strings, except dict keys ({'max_turns': 5} keeps its key).
    (re.compile(r"'[^'\n]{1,200}'(\s*:)?"), _quoted("'<S>'"), ("'",)),
    (re.compile(r'"[^"\n]{1,200}"(\s*:)?'), _quoted('"<S>"'), ('"',)),
    # Numbers, except an HTTP status after "Error code: " (openai) or "status_code: ".
    (
        re.compile(
            r"(?<![\w<.-])(?<!Error code: )(?<!status_code: )[-+]?\d+(?:[.,]\d+)*(?:e[-+]?\d+)?",
            re.I,
        ),
        "<N>",
        (),
    ),
)
#: Runs of whitespace, collapsed to one space.
SPACES = re.compile(r"\s+")


def normalize_message(message: str | None) -> str:
    """The message's signature: volatile parts replaced by <N>, <ID>, <UUID>, <PATH>, <URL>,
    <TS>, <EMAIL>, '<S>'; whitespace collapsed; cut at a bounded length."""
    if not message:
        return ""
    text = informative_message(message[: MAX_MESSAGE_CHARS * 16])[: MAX_MESSAGE_CHARS * 4]
    for pattern, placeholder, needles in RULES:
        if not needles or any(needle in text for needle in needles):
            text = pattern.sub(placeholder, text)
    text = SPACES.sub(" ", text).strip()
    return text[:MAX_MESSAGE_CHARS]
