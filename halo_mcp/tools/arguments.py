"""Invalid tool arguments as a ToolError a coding agent can act on.

The SDK reports a call whose arguments fail the input schema with pydantic's raw dump ("1
validation error for query_spansArguments ... visit https://errors.pydantic.dev"). The server
turns it into one line per bad argument: its name, what was wrong, what is allowed (from the
tool's input schema), and what to do next.
"""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver.exceptions import ToolError
from pydantic import ValidationError

from halo_mcp.text import clip

MAX_PROBLEMS = 5
VALUE_CHARS = 80
ALLOWED_CHARS = 400


def invalid_arguments(tool: str, exc: ValidationError, schema: dict[str, Any] | None) -> ToolError:
    """One ToolError naming every bad argument (at most MAX_PROBLEMS) and the next step."""
    properties = (schema or {}).get("properties", {})
    problems: list[str] = []
    names: list[str] = []
    for err in exc.errors()[:MAX_PROBLEMS]:
        loc = [str(part) for part in err.get("loc", ())]
        name = loc[0] if loc else "arguments"
        where = ".".join(loc) or "arguments"
        if name not in names:
            names.append(name)
        problems.append(_problem(where, err, properties.get(name)))
    more = len(exc.errors()) - MAX_PROBLEMS
    if more > 0:
        problems.append(f"and {more} more")
    fix = ", ".join(f"`{name}`" for name in names)
    return ToolError(
        f"Invalid arguments for {tool}: {'; '.join(problems)}. Correct {fix} and call {tool} "
        "again (tools/list shows every argument with its type and bounds)."
    )


def _problem(where: str, err: Any, prop: dict[str, Any] | None) -> str:
    if err.get("type") == "missing":
        text = f"`{where}` is required"
    else:
        text = f"`{where}`: {err.get('msg', 'invalid value')} (got {_short(err.get('input'))})"
    if err.get("type") in ("literal_error", "enum"):
        return text  # pydantic's message already lists the allowed values
    allowed = _allowed(prop)
    if allowed:
        text += f"; allowed: {allowed}"
    return text


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= VALUE_CHARS else text[:VALUE_CHARS] + "…"


def _allowed(prop: dict[str, Any] | None) -> str:
    """What the schema allows for an argument: its enum values or its bounds, briefly."""
    if not prop:
        return ""
    variants = [prop, *prop.get("anyOf", [])]
    for variant in variants:
        items = variant.get("items") or {}
        for source in (variant, items):
            if "enum" in source:
                values = ", ".join(repr(v) for v in source["enum"])
                prefix = "a list of " if source is items else "one of "
                return clip(prefix + values, ALLOWED_CHARS)[0]
    for variant in variants:
        bounds = [
            f"{label} {variant[key]}"
            for key, label in (
                ("minimum", ">="),
                ("exclusiveMinimum", ">"),
                ("maximum", "<="),
                ("exclusiveMaximum", "<"),
            )
            if key in variant
        ]
        if bounds:
            return f"{variant.get('type', 'a value')} {' and '.join(bounds)}"
    types = [_type_text(variant) for variant in variants if "type" in variant]
    return " or ".join(t for t in types if t)


def _type_text(variant: dict[str, Any]) -> str:
    kind = variant.get("type", "")
    if kind == "array":
        return f"array of {(variant.get('items') or {}).get('type', 'values')}"
    return "" if kind == "null" else str(kind)


def invalid_unicode(tool: str, arguments: Any) -> ToolError | None:
    """A ToolError naming the first argument that holds a lone surrogate (JSON allows
    `"\\ud800"`, UTF-8 does not: SQLite, file paths and every reply would fail on it)."""
    stack: list[tuple[str, Any]] = [("arguments", arguments)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return ToolError(
                    f"{tool}: {where} holds a lone surrogate (like \\ud800), which is not valid "
                    "Unicode; remove it or send the intended character"
                )
        elif isinstance(value, dict):
            for key, item in value.items():
                name = str(key).encode("utf-8", "backslashreplace").decode("utf-8")
                inner = name if where == "arguments" else f"{where}.{name}"
                stack.extend(((inner, key), (inner, item)))
        elif isinstance(value, list):
            stack.extend((f"{where}[{i}]", item) for i, item in enumerate(value))
    return None
