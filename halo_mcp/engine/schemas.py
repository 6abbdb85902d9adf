"""Chat Completions tool schemas from pydantic argument models, and argument parsing.

Schemas are inlined (no $ref) and stripped of titles: smaller prompts, and providers with
partial JSON-schema support accept them. Parsing never raises: a bad call becomes a
message telling the model how to fix it.
"""

from __future__ import annotations

import copy
import json
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


def tool_schema(name: str, description: str, args: type[BaseModel]) -> dict[str, Any]:
    """The `tools=[...]` entry for a function tool taking `args`."""
    schema = _inline(args.model_json_schema())
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
        return None, (
            "the arguments do not match the tool's parameters: "
            + "; ".join(problems)
            + f". Parameters: {allowed}. Fix these and call again."
        )
