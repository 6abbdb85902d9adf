"""A span's content (attributes, events, input, output), read on demand from its line.

The index keeps only the normalized row; when a caller wants to see or regex-search a
span's content, the line is re-read by offset and handed here.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from halo_mcp.store.formats.agents_sdk import error_message, span_id_of
from halo_mcp.store.formats.attributes import attribute_map, flatten
from halo_mcp.store.formats.errors import SpanNotOnLineError
from halo_mcp.store.formats.lines import AGENTS, OTLP, SPAN, Entry, walk_line
from halo_mcp.store.formats.spans import exception_of, span_ids, status_parts, typed_message
from halo_mcp.store.formats.values import ns_to_iso, to_ns, to_str


@dataclass
class SpanPayload:
    """The content of one span, in the same shape whatever the source format."""

    attributes: dict[str, Any] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    input: str | None = None
    output: str | None = None
    resource: dict[str, Any] = field(default_factory=dict)
    status_message: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)


# Where each convention puts a span's input and output, first found wins: OpenInference,
# OTel GenAI (current and older), pydantic-ai (instrumentation v1-2 tool spans; the agent
# run's `final_result`), the Vercel AI SDK (`ai.*`).
_INPUT_KEYS = (
    "input.value",
    "gen_ai.tool.call.arguments",
    "tool_arguments",
    "ai.toolCall.args",
    "gen_ai.input.messages",
    "gen_ai.prompt",
    "llm.prompts",
    "ai.prompt.messages",
    "ai.prompt",
)
_OUTPUT_KEYS = (
    "output.value",
    "gen_ai.tool.call.result",
    "tool_response",
    "ai.toolCall.result",
    "final_result",
    "gen_ai.output.messages",
    "gen_ai.completion",
    "ai.response.text",
    "ai.result.text",
)
_INPUT_MESSAGE_PREFIXES = ("llm.input_messages.", "gen_ai.prompt.")
_OUTPUT_MESSAGE_PREFIXES = ("llm.output_messages.", "gen_ai.completion.")
_INPUT_EVENTS = (
    "gen_ai.system.message",
    "gen_ai.user.message",
    "gen_ai.assistant.message",
    "gen_ai.tool.message",
)
_OUTPUT_EVENTS = ("gen_ai.choice",)


#: What in a model call's output asks for a tool instead of answering: OpenAI's tool_calls
#: (as JSON, or as OpenInference's flattened messages), GenAI and Anthropic tool parts and
#: the Responses API's function calls. The ClickHouse backend matches the same pattern.
TOOL_CALL_PATTERN = (
    r'"tool_calls"\s*:\s*\[\s*\{|tool_calls\.[0-9]'
    r'|"type"\s*:\s*"(?:tool_call|function_call|tool_use)"'
)
_TOOL_CALL = re.compile(TOOL_CALL_PATTERN)


def is_answer(output: str | None) -> bool:
    """Whether a model call's output answers the user: non-blank, asking for no tool."""
    return output is not None and bool(output.strip()) and _TOOL_CALL.search(output) is None


def as_text(value: Any) -> str | None:
    """Content value -> str; structures become compact JSON."""
    if value is None:
        return None
    if type(value) is str:
        return value
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except (TypeError, orjson.JSONEncodeError):
        pass  # big ints, NaN, or nesting beyond orjson's limit
    try:
        return json.dumps(value, default=str, ensure_ascii=False)
    except (RecursionError, ValueError):
        return "…[nested too deep]"


def _index_key(index: str) -> tuple[int, int, str]:
    return (0, int(index), "") if index.isdigit() else (1, 0, index)


def _messages(attrs: dict[str, Any], prefix: str) -> str | None:
    """Flattened messages (`llm.input_messages.0.message.role` ...) -> 'role: content' lines."""
    grouped: dict[str, list[tuple[str, Any]]] = {}
    size = len(prefix)
    for key, value in attrs.items():
        if key.startswith(prefix):
            index, _, rest = key[size:].partition(".")
            grouped.setdefault(index, []).append((rest, value))
    if not grouped:
        return None
    lines = []
    for index in sorted(grouped, key=_index_key):
        role = "message"
        parts: list[str] = []
        for rest, value in grouped[index]:
            short = rest[8:] if rest.startswith("message.") else rest
            if short == "role":
                role = str(value)
            elif short == "content":
                parts.insert(0, as_text(value) or "")
            else:
                parts.append(f"{short}={as_text(value)}")
        lines.append(f"{role}: {' '.join(parts)}")
    return "\n".join(lines)


def _content(attrs: dict[str, Any], keys: tuple[str, ...], prefixes: tuple[str, ...]) -> str | None:
    for key in keys:
        value = attrs.get(key)
        if value is not None and value != "":
            return as_text(value)
    for prefix in prefixes:
        text = _messages(attrs, prefix)
        if text:
            return text
    return None


def _events(raw: Any) -> list[dict[str, Any]]:
    if type(raw) is not list:
        return []
    events = []
    for event in raw:
        if type(event) is not dict:
            continue
        when = event.get("time")
        for key in ("timeUnixNano", "time_unix_nano", "timestamp"):
            if when is not None:
                break
            when = event.get(key)
        ns = to_ns(when)
        events.append(
            {
                "name": to_str(event.get("name")) or "event",
                "time": ns_to_iso(ns) if ns is not None else None,
                "attributes": attribute_map(event.get("attributes")),
            }
        )
    return events


def _event_content(events: list[dict[str, Any]], names: tuple[str, ...]) -> str | None:
    lines = []
    for event in events:
        if event["name"] in names:
            attrs = event["attributes"]
            body = attrs.get("content")
            if body is None:
                body = attrs.get("message", attrs.get("gen_ai.event.content"))
            if body is not None:
                role = event["name"][7:].removesuffix(".message")
                role = "assistant" if role == "choice" else role
                lines.append(f"{role}: {as_text(body)}")
    return "\n".join(lines) or None


def _event_attribute(events: list[dict[str, Any]], key: str) -> str | None:
    """An attribute carried by an event rather than the span: the current GenAI
    conventions put gen_ai.input.messages / gen_ai.output.messages on a
    `gen_ai.client.inference.operation.details` event (Strands Agents does)."""
    for event in events:
        value = event["attributes"].get(key)
        if value is not None and value != "":
            return as_text(value)
    return None


def otel_payload(span: dict, resource: Any) -> SpanPayload:
    """Payload of a HALO or OTLP span; `resource` is the OTLP block's, else the span's own."""
    attrs = attribute_map(span.get("attributes"))
    if resource is None:
        resource = span.get("resource")
    resource_attrs = attribute_map(resource.get("attributes")) if type(resource) is dict else {}
    if type(resource) is dict and "attributes" not in resource:
        resource_attrs = flatten(resource)
    events = _events(span.get("events"))
    _, message = status_parts(span.get("status"))
    has_exception, exc_message = exception_of(span.get("events"))
    if has_exception:
        message = typed_message(message, exc_message)
    elif not message:
        message = to_str(attrs.get("error.type"))
    payload_input = _content(attrs, _INPUT_KEYS, _INPUT_MESSAGE_PREFIXES)
    payload_output = _content(attrs, _OUTPUT_KEYS, _OUTPUT_MESSAGE_PREFIXES)
    if events and payload_input is None:
        payload_input = _event_content(events, _INPUT_EVENTS)
    if events and payload_output is None:
        payload_output = _event_content(events, _OUTPUT_EVENTS)
    if events and payload_input is None:
        payload_input = _event_attribute(events, "gen_ai.input.messages")
    if events and payload_output is None:
        payload_output = _event_attribute(events, "gen_ai.output.messages")
    return SpanPayload(
        attributes=attrs,
        events=events,
        input=payload_input,
        output=payload_output,
        resource=resource_attrs,
        status_message=message or None,
        raw=span,
    )


def agents_payload(obj: dict) -> SpanPayload:
    """Payload of an OpenAI Agents SDK span: span_data flattened, input/output as text."""
    data = obj.get("span_data")
    data = data if type(data) is dict else {}
    rest = {key: value for key, value in data.items() if key not in ("input", "output")}
    attrs = flatten(rest)
    error = obj.get("error")
    message = error_message(error) if error else None
    if type(error) is dict and error.get("data") is not None:
        attrs = {**attrs, "error.data": as_text(error.get("data"))}
    return SpanPayload(
        attributes=attrs,
        events=[],
        input=as_text(data.get("input")),
        output=as_text(data.get("output")),
        resource={},
        status_message=message,
        raw=obj,
    )


def _entry_span_id(flavor: str, item: dict) -> str | None:
    if flavor == AGENTS:
        return span_id_of(item)
    return span_ids(item, flavor == OTLP)[1]


def _payload(flavor: str, item: dict, context: Any) -> SpanPayload:
    if flavor == AGENTS:
        return agents_payload(item)
    resource = context[1] if flavor == OTLP and context is not None else None
    return otel_payload(item, resource)


def _entries(line: bytes | str) -> list[Entry]:
    return [entry for entry in walk_line(line) if entry[0] in (SPAN, OTLP, AGENTS)]


def span_payloads(line: bytes | str) -> list[tuple[str, SpanPayload]]:
    """(span_id, payload) for every span on the line: one parse for many spans.

    Raises BadLineError when the line is not JSON.
    """
    out = []
    for flavor, item, context in _entries(line):
        try:
            span_id = _entry_span_id(flavor, item)
            if span_id is not None:
                out.append((span_id, _payload(flavor, item, context)))
        except (RecursionError, TypeError, ValueError, AttributeError):
            continue
    return out


# Span id -> entry for the last line asked about, so asking for several spans of one
# OTLP envelope walks it once. Matched by identity, like the parse cache in lines.py.
_last_index: tuple[Any, dict[str, Entry]] = (None, {})


def _index(line: bytes | str) -> dict[str, Entry]:
    global _last_index
    last_line, index = _last_index
    if last_line is line:
        return index
    index = {}
    for entry in _entries(line):
        try:
            span_id = _entry_span_id(entry[0], entry[1])
        except (RecursionError, TypeError, ValueError, AttributeError):
            continue
        if span_id is not None and span_id not in index:
            index[span_id] = entry
    if type(line) is bytes or type(line) is str:  # immutable: identity means same content
        _last_index = (line, index)
    return index


def span_payload(line: bytes | str, span_id: str) -> SpanPayload:
    """The content of span `span_id` (normalized id, as in the row) on this line.

    Raises BadLineError when the line is not JSON, SpanNotOnLineError when the span is
    not on it (the file changed since indexing: rebuild the index).
    """
    entry = _index(line).get(span_id)
    if entry is not None:
        try:
            return _payload(*entry)
        except (RecursionError, TypeError, ValueError, AttributeError):
            pass
    raise SpanNotOnLineError(
        f"span {span_id} is not on this line; the file changed since it was indexed, "
        "so rebuild the index"
    )


def span_text(payload: SpanPayload) -> str:
    """The searchable content: input, output, status, attributes ('key: value'), events.

    This is what a regex `text` filter and search match against.
    """
    parts: list[str] = []
    if payload.input:
        parts.append(payload.input)
    if payload.output:
        parts.append(payload.output)
    if payload.status_message:
        parts.append(payload.status_message)
    # Flattened messages already rendered as input/output are not repeated.
    skip = (_INPUT_MESSAGE_PREFIXES if payload.input else ()) + (
        _OUTPUT_MESSAGE_PREFIXES if payload.output else ()
    )
    for key, value in payload.attributes.items():
        if value is None or value is payload.input or value is payload.output:
            continue
        if skip and key.startswith(skip):
            continue
        parts.append(f"{key}: {as_text(value)}")
    for event in payload.events:
        parts.append(event["name"])
        for key, value in event["attributes"].items():
            if value is not None:
                parts.append(f"{key}: {as_text(value)}")
    return "\n".join(parts)
