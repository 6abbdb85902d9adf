"""Plain-text rendering shared by the CLI commands: tables and JSON on stdout, notices on
stderr."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import orjson
from pydantic import BaseModel, ValidationError

from halo_mcp.cli import EXIT_USAGE


def print_json(value: BaseModel | Any) -> None:
    """Write `value` as indented JSON to stdout (pydantic models dumped in JSON mode)."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json", exclude_none=True)
    sys.stdout.write(json_text(value))


def json_text(value: Any) -> str:
    """`value` (JSON-ready data) as indented JSON text, ending with a newline."""
    return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n"


def first_error_message(exc: Exception) -> str:
    """The readable part of a validation error (the first problem), or the error itself."""
    if isinstance(exc, ValidationError) and exc.errors():
        return str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
    return str(exc)


def fail(message: str, code: int = EXIT_USAGE) -> int:
    """Say on stderr why a command failed (the message says what to do instead); returns
    the exit code for the handler to return."""
    print(f"error: {message}", file=sys.stderr)
    return code


def notice(message: str) -> None:
    """A progress line on stderr (stdout stays the command's result, e.g. its JSON)."""
    print(message, file=sys.stderr, flush=True)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], max_width: int = 60) -> str:
    """A left-aligned text table; cells longer than `max_width` end with '…'."""

    def cell(value: Any) -> str:
        text = "" if value is None else str(value).replace("\n", " ")
        return text if len(text) <= max_width else text[: max_width - 1] + "…"

    cells = [[cell(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, text in enumerate(row):
            widths[i] = max(widths[i], len(text))
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += [
        "  ".join(t.ljust(w) for t, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    return "\n".join(lines)
