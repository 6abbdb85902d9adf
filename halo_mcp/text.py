"""Bounded strings: every value that can grow is cut at a stated limit, with a visible marker."""

from __future__ import annotations

import json
from typing import Any


def truncation_marker(total_chars: int) -> str:
    return f"…[truncated: {total_chars} chars]"


def clip(text: str, limit: int) -> tuple[str, bool]:
    """Cut `text` to at most `limit` characters plus a marker giving its full length.

    Returns the (possibly cut) text and whether it was cut, so callers can count cuts.
    """
    if limit < 0 or len(text) <= limit:
        return text, False
    return text[:limit] + truncation_marker(len(text)), True


def json_object(text: str) -> dict[str, Any] | None:
    """The JSON object `text` holds, else None (not JSON, or JSON that is not an object):
    for strings that may or may not carry a serialized object (tool results, attributes)."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None
