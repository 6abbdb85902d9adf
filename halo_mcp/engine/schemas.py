"""Chat Completions tool schemas from pydantic argument models, and argument parsing.

Schemas are inlined (no $ref) and stripped of titles: smaller prompts, and providers with
partial JSON-schema support accept them. Parsing never raises: a bad call becomes a
message telling the model how to fix it.
"""

from __future__ import annotations

import copy
import functools
import json
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from halo_mcp.store.models import TRACE_RULE_PARAMS, filter_help

M = TypeVar("M", bound=BaseModel)


#: Properties whose full schema would repeat in many tools: sent as a short stand-in that
#: points at the system prompt, which documents them once (they are still validated in
#: full when a call arrives, with errors naming the valid fields).
COMPACT_PROPERTIES: dict[str, dict[str, Any]] = {
    "trace_rule": {
        "type": "object",
        "description": "A condition on the whole trace ({kind, ...params}); only spans of "
        "the traces satisfying it. Kinds and params: see 'Trace rules' in your instructions.",
        "properties": {"kind": {"type": "string", "enum": list(TRACE_RULE_PARAMS)}},
        "required": ["kind"],
    },
    "matcher": {
        "type": "object",
        "description": "A span filter (the same fields as query_spans' filter, trace_rule "
        "included) selecting exactly the spans affected by this failure and every cited span.",
    },
}


@functools.lru_cache(maxsize=64)
def tool_schema(name: str, description: str, args: type[BaseModel]) -> dict[str, Any]:
    """The `tools=[...]` entry for a function tool taking `args` (made once: pydantic's
    schema generation takes milliseconds per tool, and agents are made on the event loop)."""
    schema = _compact(_inline(args.model_json_schema()))
    schema.setdefault("properties", {})
    schema["type"] = "object"
    return {
        "type": "function",
        "function": {"name": name, "description": description, "parameters": schema},
    }


def _inline(schema: dict[str, Any]) -> dict[str, Any]:
    defs = schema.pop("$defs", {})

    def resolve(node: Any, depth: int = 0) -> Any:
        if isinstance(node, dict):
            node = _drop_optional_null(node)
            if "$ref" in node and depth < 20:
                target = copy.deepcopy(defs.get(node["$ref"].rsplit("/", 1)[-1], {}))
                target.pop("description", None)  # class docstrings: long, repeated, unneeded
                extra = {k: v for k, v in node.items() if k != "$ref"}
                return resolve({**target, **extra}, depth + 1)
            # Schema titles are strings; a *property* named "title" is a dict: keep it.
            return {
                k: resolve(v, depth)
                for k, v in node.items()
                if not (k == "title" and isinstance(v, str))
            }
        if isinstance(node, list):
            return [resolve(v, depth) for v in node]
        return node

    return resolve(schema)


def _compact(node: Any) -> Any:
    """Replace every property named in COMPACT_PROPERTIES by its stand-in."""
    if isinstance(node, list):
        return [_compact(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "properties" and isinstance(value, dict):
            out[key] = {
                name: copy.deepcopy(COMPACT_PROPERTIES[name])
                if name in COMPACT_PROPERTIES
                else _compact(prop)
                for name, prop in value.items()
            }
        else:
            out[key] = _compact(value)
    return out


def _drop_optional_null(node: dict[str, Any]) -> dict[str, Any]:
    """`anyOf: [X, null]` with default null -> X: optional fields are simply not required,
    and the shorter schema saves prompt tokens on every call."""
    options = node.get("anyOf")
    if not (isinstance(options, list) and len(options) == 2 and {"type": "null"} in options):
        return node
    if "default" in node and node["default"] is not None:
        return node
    other = options[0] if options[1] == {"type": "null"} else options[1]
    rest = {k: v for k, v in node.items() if k not in ("anyOf", "default")}
    return {**other, **rest}


def parse_arguments(model: type[M], raw: str | None) -> tuple[M | None, str | None]:
    """(args, None) on success, else (None, an error message for the model)."""
    text = (raw or "").strip() or "{}"
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, (
            f"the arguments are not valid JSON ({exc.msg} at char {exc.pos}). Send one JSON "
            "object matching the tool's parameters, with double-quoted keys and strings."
        )
    if not isinstance(data, dict):
        return None, 'the arguments must be a JSON object, e.g. {"name": value}.'
    try:
        return model.model_validate(data), None
    except ValidationError as exc:
        problems = []
        for err in exc.errors()[:6]:
            where = ".".join(str(p) for p in err.get("loc", ())) or "arguments"
            problems.append(f"{where}: {err.get('msg')}")
        allowed = ", ".join(model.model_fields)
        about_filter = any(
            str(part) in ("filter", "matcher", "trace_rule")
            for err in exc.errors()
            for part in err.get("loc", ())
        )
        return None, (
            "the arguments do not match the tool's parameters: "
            + "; ".join(problems)
            + f". Parameters: {allowed}."
            + (f" {filter_help()}" if about_filter else "")
            + " Fix these and call again."
        )
