"""Regexes that users and LLM agents supply, compiled with RE2: matching takes time linear
in the text whatever the pattern, so no pattern can stall a server shared by many clients
(Python's `re` backtracks: `(a+)+$` over a long run of `a` never ends).

RE2 lacks the constructs that need backtracking (backreferences, lookaround, atomic
groups, possessive quantifiers); a pattern using one is refused with a message naming it
and what to write instead. Every place that compiles an untrusted pattern goes through
:func:`compile_pattern` (decoded text) or :func:`compile_raw` (raw file bytes).
"""

from __future__ import annotations

import functools
import re
from typing import Any, Protocol

import re2

#: Longest pattern accepted: RE2 bounds its own memory, this bounds the error messages
#: and the cache.
MAX_PATTERN_CHARS = 10_000

# Python-only escapes with an exact RE2 spelling.
_PY_UNICODE_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\(?:u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8}))")

# (what RE2 says, what the construct is, what to do instead), first match wins.
_UNSUPPORTED: tuple[tuple[str, str, str], ...] = (
    ("(?=", "lookahead (?=...)", "match the text itself, or narrow with other filter fields"),
    ("(?!", "negative lookahead (?!...)", "use other filter fields to exclude spans"),
    ("(?<=", "lookbehind (?<=...)", "include the preceding text in the match instead"),
    ("(?<!", "negative lookbehind (?<!...)", "use other filter fields to exclude spans"),
    ("(?P=", "named backreference (?P=name)", "repeat the text literally instead"),
    ("(?>", "atomic group (?>...)", "use a plain group (?:...): RE2 never backtracks"),
    ("(?#", "comment (?#...)", "remove the comment"),
    ("(?x", "verbose flag (?x)", "remove the flag and the whitespace it allowed"),
    ("(?a", "ASCII flag (?a)", "remove it"),
    ("(?u", "unicode flag (?u)", "remove it (patterns are Unicode already)"),
    ("(?L", "locale flag (?L)", "remove it"),
    ("++", "possessive quantifier ++", "use + : RE2 never backtracks"),
    ("*+", "possessive quantifier *+", "use * : RE2 never backtracks"),
    ("?+", "possessive quantifier ?+", "use ? : RE2 never backtracks"),
    ("}+", "possessive quantifier {m,n}+", "use {m,n} : RE2 never backtracks"),
    ("repetition size", "a repetition count above 1000", "use a count of at most 1000"),
    ("\\Z", r"\Z", r"use \z or $ for the end of the text"),
    ("\\G", r"\G", "remove it"),
    ("\\N", r"\N{name}", r"write the character itself or \x{hex code}"),
    ("\\e", r"\e", r"use \x1b"),
    ("pattern too large", "a pattern this large", "shorten it (fewer alternatives or repeats)"),
)
_SPECIAL = re.compile(r"[()\[\]{}?*+\-|^$\\.&~#]")
_CONTROL_ESCAPES = {"\t": "\\t", "\n": "\\n", "\r": "\\r", "\v": "\\v", "\f": "\\f"}
_BACKREFERENCE = re.compile(r"invalid escape sequence: \\[1-9]")


class Regex(Protocol):
    """A compiled pattern (RE2), as its users call it."""

    def search(self, text: Any, pos: int = ..., endpos: int = ...) -> Any: ...


class PatternError(ValueError):
    """A pattern that is not a valid RE2 regex; the message says why and what to write."""


def _options(*, ignore_case: bool, latin1: bool) -> Any:
    options = re2.Options()
    options.case_sensitive = not ignore_case
    options.log_errors = False  # errors are raised, not also printed to stderr
    if latin1:  # raw bytes: one byte is one character, whatever the file holds
        options.encoding = re2.Options.Encoding.LATIN1
    return options


def _explain(pattern: str, message: str) -> str:
    if _BACKREFERENCE.search(message):
        return (
            f"pattern {pattern!r} uses a backreference (\\1...), which linear-time matching "
            "(RE2) does not support; repeat the text literally or match a wider pattern"
        )
    for needle, construct, instead in _UNSUPPORTED:
        if needle in message:
            return (
                f"pattern {pattern!r} uses {construct}, which linear-time matching (RE2) does "
                f"not support; {instead}"
            )
    return (
        f"pattern {pattern!r} is not a valid regex (RE2: {message}); escape special "
        "characters like ( [ * . with a backslash"
    )


def _prepare(pattern: str) -> str:
    if len(pattern) > MAX_PATTERN_CHARS:
        raise PatternError(
            f"pattern is {len(pattern):,} characters; at most {MAX_PATTERN_CHARS:,} are allowed"
        )
    try:
        pattern.encode("utf-8")
    except UnicodeEncodeError:
        raise PatternError(
            "pattern holds a lone surrogate (like \\ud800), which is not valid Unicode; remove it"
        ) from None
    # Python spells code points \u00e9 / \U0001f600; RE2 spells them \x{e9}.
    return _PY_UNICODE_ESCAPE.sub(lambda m: f"{m[1]}\\x{{{m[2] or m[3]}}}", pattern)


@functools.lru_cache(maxsize=256)
def compile_pattern(pattern: str, ignore_case: bool = True) -> Regex:
    """The RE2 regex for a user's or an agent's pattern over decoded text. Raises
    PatternError naming an unsupported construct and what to write instead."""
    prepared = _prepare(pattern)
    try:
        return re2.compile(prepared, _options(ignore_case=ignore_case, latin1=False))
    except re2.error as exc:
        raise PatternError(_explain(pattern, _message(exc))) from None


@functools.lru_cache(maxsize=64)
def compile_raw(pattern: bytes, ignore_case: bool = True) -> Regex:
    """The RE2 regex for an ASCII bytes pattern run over raw file bytes (Latin-1: any
    byte sequence is text, a multi-byte UTF-8 character is several characters)."""
    try:
        return re2.compile(pattern, _options(ignore_case=ignore_case, latin1=True))
    except re2.error as exc:
        raise PatternError(_explain(pattern.decode("latin-1"), _message(exc))) from None


def check_pattern(pattern: str) -> str:
    """`pattern` unchanged when it compiles; PatternError otherwise (for validators)."""
    compile_pattern(pattern)
    return pattern


def escape(text: str) -> str:
    """`text` as a pattern matching itself (RE2 syntax; spaces stay readable)."""
    escaped = _SPECIAL.sub(lambda m: "\\" + m[0], text)
    return "".join(_CONTROL_ESCAPES.get(char, char) for char in escaped)


def _message(exc: BaseException) -> str:
    detail = exc.args[0] if exc.args else str(exc)
    return detail.decode("utf-8", "replace") if isinstance(detail, bytes) else str(detail)
