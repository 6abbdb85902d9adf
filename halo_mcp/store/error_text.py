"""The informative part of an error message as frameworks write it.

Frameworks wrap the error that matters: in a dict repr (`Error in agent run: {'error':
'Error code: 429 - Rate limit…'}`, OpenAI Agents SDK via OpenInference), a JSON body
(`body: {"message": …}`), an exception repr followed by its traceback
(`FileNotFoundError(2, 'No such file or directory')Traceback (most recent call last): …`,
LangChain via OpenInference), or a phrase that only says where it surfaced (`Error
streaming response: …`). Signatures are computed on what this returns, so one error is
one signature whichever wrapper carried it, and titles can name it.

Only removals, plus " … " where something was cut out of the middle: every piece of the
result appears in the original text in the same order (matchers built from a signature's
literal parts, split at placeholders and at "…", still find the raw messages).
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any

#: Marks text cut out of the middle of a message.
ELISION = " … "
_TRACEBACK = "Traceback (most recent call last)"
#: Phrases that say where an error surfaced, not what it is (OpenAI Agents SDK).
_WRAPPERS = re.compile(
    r"^(?:Error (?:getting|streaming) response|Error in agent run|"
    r"Error running tool(?: \(non-fatal\))?|Error running output guardrail|"
    r"Error running input guardrail)\s*:\s*"
)
#: Keys under which a wrapped structure holds its message, most telling first.
_MESSAGE_KEYS = (
    "error",
    "message",
    "detail",
    "details",
    "error_message",
    "errorMessage",
    "msg",
    "description",
    "reason",
)
_CALL = re.compile(r"^([A-Z][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\((.*)\)$", re.S)
_MAX_PARSE = 4000
_MAX_DEPTH = 6


def informative_message(message: str) -> str:
    """The part of `message` that says what went wrong (see the module docstring)."""
    text = message
    if _TRACEBACK in text:
        text = _before_traceback(text)
    if "{" in text or "[" in text:
        text = _unwrap_structure(text)
    if "(" in text:
        text = _unwrap_call(text)
    if text.startswith("Error"):
        stripped = _WRAPPERS.sub("", text, count=1)
        if stripped.strip():
            text = stripped
    return text


def _before_traceback(text: str) -> str:
    head, _, tail = text.partition(_TRACEBACK)
    if head.strip():
        return head.rstrip()
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    return lines[-1] if lines else text  # the exception line ends a traceback


def _parse(text: str) -> Any:
    """A JSON document or a Python literal (dict repr), else None."""
    if len(text) > _MAX_PARSE:
        return None
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None


def _message_in(value: Any, depth: int = 0) -> str | None:
    """The message a parsed structure carries under a message key, searched depth-first."""
    if depth > _MAX_DEPTH:
        return None
    if isinstance(value, list):
        for item in value[:3]:
            found = _message_in(item, depth + 1)
            if found:
                return found
        return None
    if not isinstance(value, dict):
        return None
    for key in _MESSAGE_KEYS:
        inner = value.get(key)
        if isinstance(inner, str) and inner.strip():
            if inner[:1] in "{[":  # a JSON document inside a string
                return _message_in(_parse(inner), depth + 1) or inner
            return inner
        if isinstance(inner, (dict, list)):
            found = _message_in(inner, depth + 1)
            if found:
                return found
    return None


def _unwrap_structure(text: str) -> str:
    """`prefix {... 'error': 'X' ...}` -> `prefix … X` (or `X` when the prefix is empty)."""
    for opener in ("{", "["):
        start = text.find(opener)
        if start < 0:
            continue
        parsed = _parse(text[start:].strip())
        if parsed is None:
            continue
        inner = _message_in(parsed)
        if not inner:
            return text
        inner = informative_message(inner)
        prefix = text[:start].rstrip()
        if not prefix:
            return inner
        if _WRAPPERS.match(prefix + " "):
            return inner
        return prefix + ELISION + inner
    return text


def _unwrap_call(text: str) -> str:
    """`FileNotFoundError(2, 'No such file')` -> `FileNotFoundError … No such file`."""
    match = _CALL.match(text.strip())
    if match is None:
        return text
    try:
        args = ast.literal_eval(f"({match.group(2)},)") if match.group(2).strip() else ()
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text
    words = [informative_message(a) for a in args if isinstance(a, str) and a.strip()]
    if not words:
        return match.group(1)
    return f"{match.group(1)}{ELISION}{ELISION.join(words)}"
