"""Attribute maps -> flat dicts with dotted keys, whether written as HALO dicts or OTLP lists.

OTLP writes `[{"key": k, "value": {"stringValue": ...}}]` (camelCase from the Collector,
snake_case from some protobuf printers), with int64 as strings; HALO writes plain dicts,
sometimes nested. Both come out as `{"a.b.c": scalar-or-list}`.
"""

from __future__ import annotations

import math
from typing import Any

MAX_DEPTH = 16


def _to_int_any(value: Any) -> Any:
    if type(value) is str:
        try:
            return int(value)
        except ValueError:
            return value
    return value


def _to_float_any(value: Any) -> Any:
    if type(value) is str:
        try:
            number = float(value)
        except ValueError:
            return value
        return number if math.isfinite(number) else value
    return value


def any_value(value: Any, depth: int = 0) -> Any:
    """Decode an OTLP AnyValue ({"stringValue": "x"} -> "x"); kvlists become dicts."""
    if type(value) is not dict:
        return value
    if depth > MAX_DEPTH:
        return None
    for key, inner in value.items():
        if key == "stringValue" or key == "string_value":
            return inner
        if key == "intValue" or key == "int_value":
            return _to_int_any(inner)
        if key == "doubleValue" or key == "double_value":
            return _to_float_any(inner)
        if key == "boolValue" or key == "bool_value":
            return inner
        if key == "arrayValue" or key == "array_value":
            values = inner.get("values") if type(inner) is dict else None
            if type(values) is not list:
                return []
            return [any_value(item, depth + 1) for item in values]
        if key == "kvlistValue" or key == "kvlist_value":
            values = inner.get("values") if type(inner) is dict else None
            return kv_list(values, depth + 1) if type(values) is list else {}
        if key == "bytesValue" or key == "bytes_value":
            return inner
    return None


def kv_list(items: list, depth: int = 0) -> dict[str, Any]:
    """OTLP [{key, value}] -> nested dict (flatten it with :func:`flatten`)."""
    out: dict[str, Any] = {}
    if depth > MAX_DEPTH:
        return out
    for item in items:
        try:  # the common item, {"key": str, "value": {"stringValue": str}}, in few steps
            key = item["key"]
            text = item["value"].get("stringValue")
        except (KeyError, TypeError, AttributeError):
            pass  # not that shape: the general steps below decide
        else:
            if type(text) is str and type(key) is str:
                out[key] = text
                continue
        if type(item) is not dict:
            continue
        key = item.get("key")
        if type(key) is not str:
            if key is None:
                continue
            key = str(key)
        value = item.get("value")
        if type(value) is dict:
            text = value.get("stringValue")  # the common case, inlined
            if type(text) is str:
                out[key] = text
                continue
        out[key] = any_value(value, depth)
    return out


def _flatten_into(out: dict[str, Any], prefix: str, value: dict, depth: int) -> None:
    for key, inner in value.items():
        full = f"{prefix}.{key}" if prefix else str(key)
        if type(inner) is dict:
            if depth >= MAX_DEPTH:
                out[full] = "…[nested too deep]"
            else:
                _flatten_into(out, full, inner, depth + 1)
        else:
            out[full] = inner


def flatten(value: dict[str, Any]) -> dict[str, Any]:
    """Nested dicts -> dotted keys. Returns `value` itself when already flat (the common case)."""
    if dict in map(type, value.values()):  # one C-level pass over the values
        out: dict[str, Any] = {}
        _flatten_into(out, "", value, 0)
        return out
    return value


def attribute_map(value: Any) -> dict[str, Any]:
    """Any attribute container (dict, OTLP list, junk) -> flat dict."""
    kind = type(value)
    if kind is dict:
        return flatten(value)
    if kind is list:
        return flatten(kv_list(value))
    return {}
