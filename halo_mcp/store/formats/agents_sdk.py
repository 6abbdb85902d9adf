"""OpenAI Agents SDK spans as its own tracing exports them.

One object per span: {"object": "trace.span", "id": "span_…", "trace_id": "trace_…",
"parent_id": …, "started_at": ISO, "ended_at": ISO, "span_data": {"type": …}, "error": …}.
Trace records ({"object": "trace"}) describe a whole trace and hold no span.
"""

from __future__ import annotations

from typing import Any

from halo_mcp.store.formats.conventions import AGENTS_SDK_TYPES, kind_from_name
from halo_mcp.store.formats.errors import BadLineError
from halo_mcp.store.formats.spans import UNNAMED, row
from halo_mcp.store.formats.values import norm_id, to_int, to_ns, to_str


def is_agents_sdk(obj: dict) -> bool:
    return "span_data" in obj or obj.get("object") == "trace.span"


def span_id_of(obj: dict) -> str | None:
    sid = obj.get("id")
    if sid is None:
        sid = obj.get("span_id")
    return norm_id(sid)


def _span_name(kind_type: str | None, data: dict) -> str:
    name = to_str(data.get("name"))
    if kind_type == "handoff":
        source = to_str(data.get("from_agent")) or "?"
        target = to_str(data.get("to_agent")) or "?"
        return f"handoff: {source} -> {target}"
    if kind_type == "mcp_tools":
        server = to_str(data.get("server"))
        return f"mcp_tools: {server}" if server else "mcp_tools"
    if name:
        return name
    return kind_type or UNNAMED


def _usage(data: dict) -> tuple[int | None, int | None]:
    usage = data.get("usage")
    if type(usage) is not dict:
        response = data.get("response")
        usage = response.get("usage") if type(response) is dict else None
        if type(usage) is not dict:
            return None, None
    tokens_in = usage.get("input_tokens")
    if tokens_in is None:
        tokens_in = usage.get("prompt_tokens")
    tokens_out = usage.get("output_tokens")
    if tokens_out is None:
        tokens_out = usage.get("completion_tokens")
    return to_int(tokens_in), to_int(tokens_out)


def error_message(error: Any) -> str | None:
    """The SDK's {"message": "Error running tool", "data": {"error": "…"}} -> one line."""
    if type(error) is not dict:
        return to_str(error) or ("error" if error else None)
    message = to_str(error.get("message")) or to_str(error.get("type")) or "error"
    data = error.get("data")
    detail = to_str(data.get("error")) if type(data) is dict else None
    return f"{message}: {detail}" if detail and detail not in message else message


def agents_row(obj: dict) -> tuple:
    """Normalize one Agents SDK span. Raises BadLineError naming what is missing."""
    trace_id = norm_id(obj.get("trace_id"))
    if trace_id is None:
        raise BadLineError("span has no trace_id")
    span_id = span_id_of(obj)
    if span_id is None:
        raise BadLineError("span has no span id ('id')")
    start_raw = obj.get("started_at")
    start = to_ns(start_raw)
    if start is None:
        if start_raw is None:
            raise BadLineError("span has no start time ('started_at')")
        raise BadLineError(f"start time not understood: {str(start_raw)[:40]!r}")
    end_raw = obj.get("ended_at")
    end = to_ns(end_raw) if end_raw is not None else None
    if end is None:
        end = start

    data = obj.get("span_data")
    if type(data) is not dict:
        data = {}
    span_type = data.get("type")
    span_type = span_type if type(span_type) is str else None
    name = _span_name(span_type, data)
    kind = AGENTS_SDK_TYPES.get(span_type) if span_type else None
    if kind is None:
        kind = kind_from_name(name)

    error = obj.get("error")
    if error:
        status, message = "error", error_message(error)
    else:
        status, message = ("ok" if end_raw is not None else "unset"), None

    agent = to_str(data.get("name")) if span_type == "agent" else None
    model = to_str(data.get("model"))
    if model is None:
        response = data.get("response")
        if type(response) is dict:
            model = to_str(response.get("model"))
    tool = to_str(data.get("name")) if span_type == "function" else None
    tokens_in, tokens_out = _usage(data)
    session = to_str(obj.get("group_id")) or to_str(data.get("session_id"))
    facts = (kind, agent, model, tool, tokens_in, tokens_out, session)
    parent_id = norm_id(obj.get("parent_id"))
    return row(trace_id, span_id, parent_id, name, status, message, start, end, None, facts)
