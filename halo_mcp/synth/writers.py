"""Serialize one simulated run as the lines a real exporter would write.

- HALO flat JSONL: one span per line, keys exactly as HALO reads them.
- OTLP JSON lines: one ExportTraceServiceRequest per line, as the OpenTelemetry Collector
  file exporter writes it (hex ids, string nanosecond times, int enums, AnyValue lists).
- OpenAI Agents SDK: the native `trace` record, then one `trace.span` record per span.

Spans are written in end order (children before parents), as exporters emit them.

`messy=True` writes the same run the way sloppy exporters do, still valid: numbers as
strings, `null` or `""` where a string or id was expected, enum names instead of ints,
base64 ids in OTLP (as protobuf JSON writes them).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import orjson

from halo_mcp.synth.content import iso_ns, iso_us
from halo_mcp.synth.conventions import attributes, span_name
from halo_mcp.synth.scenario import SimSpan, SimTrace

FORMATS = ("halo", "otlp", "agents-sdk")

_SCOPES = {
    "openinference": {"name": "openinference.instrumentation.openai_agents", "version": "1.2.0"},
    "genai": {"name": "opentelemetry.instrumentation.openai_agents", "version": "0.4b0"},
    "genai-legacy": {"name": "opentelemetry.instrumentation.openai", "version": "0.33.9"},
}
_resource_cache: dict[tuple[str, bool], dict[str, str]] = {}


def _resource(service: str, tiny: bool) -> dict[str, str]:
    key = (service, tiny)
    found = _resource_cache.get(key)
    if found is None:
        found = {"service.name": service}
        if not tiny:
            found |= {
                "service.version": "1.4.2",
                "deployment.environment": "production",
                "telemetry.sdk.language": "python",
                "telemetry.sdk.name": "opentelemetry",
                "telemetry.sdk.version": "1.38.0",
            }
        _resource_cache[key] = found
    return found


def _by_end(trace: SimTrace) -> list[SimSpan]:
    return sorted(trace.spans, key=lambda s: s.end_ns)


def trace_key(trace_id: str, format: str) -> str:
    """The trace id as it appears in the written file."""
    return f"trace_{trace_id}" if format == "agents-sdk" else trace_id


# -- HALO flat JSONL -------------------------------------------------------------------


def _stringify_numbers(attrs: dict[str, Any]) -> dict[str, Any]:
    return {k: str(v) if type(v) is int else v for k, v in attrs.items()}


def halo_lines(trace: SimTrace, convention: str, tiny: bool, messy: bool = False) -> list[bytes]:
    resource = {"attributes": _resource(trace.service, tiny)}
    scope = _SCOPES[convention]
    ok = "STATUS_CODE_OK" if convention == "openinference" else "STATUS_CODE_UNSET"
    lines = []
    for span in _by_end(trace):
        if span.error is None:
            status = {"code": ok, "message": None if messy else ""}
        else:
            status = {"code": "STATUS_CODE_ERROR", "message": span.error}
        attrs = attributes(span, trace, convention, tiny)
        if messy:
            attrs = _stringify_numbers(attrs)
        record = {
            "trace_id": trace.trace_id,
            "span_id": span.span_id,
            "parent_span_id": "" if messy and span.parent_id is None else span.parent_id,
            "name": span_name(span, convention),
            "kind": "SPAN_KIND_CLIENT" if span.kind == "llm" else "SPAN_KIND_INTERNAL",
            "start_time": iso_ns(span.start_ns),
            "end_time": iso_ns(span.end_ns),
            "status": status,
            "resource": resource,
            "scope": scope,
            "attributes": attrs,
        }
        lines.append(orjson.dumps(record))
    return lines


# -- OTLP JSON (Collector file exporter) -----------------------------------------------


def _any_value(value: Any, messy: bool = False) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": value if messy else str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, list):
        return {"arrayValue": {"values": [_any_value(v) for v in value]}}
    return {"stringValue": value}


def _key_values(attrs: dict[str, Any], messy: bool = False) -> list[dict[str, Any]]:
    return [{"key": key, "value": _any_value(value, messy)} for key, value in attrs.items()]


def otlp_lines(trace: SimTrace, convention: str, tiny: bool, messy: bool = False) -> list[bytes]:
    ok: dict[str, Any] = {"code": 1} if convention == "openinference" else {}
    spans = []
    for span in _by_end(trace):
        record: dict[str, Any] = {
            "traceId": trace.trace_id,
            "spanId": span.span_id,
            "name": span_name(span, convention),
            "kind": 3 if span.kind == "llm" else 1,
            "startTimeUnixNano": str(span.start_ns),
            "endTimeUnixNano": str(span.end_ns),
            "attributes": _key_values(attributes(span, trace, convention, tiny), messy),
            "status": dict(ok),
        }
        if span.parent_id is not None:
            record["parentSpanId"] = span.parent_id
        if span.error is not None:
            record["status"] = {"code": 2, "message": span.error}
            record["events"] = [
                {
                    "timeUnixNano": str(span.end_ns),
                    "name": "exception",
                    "attributes": _key_values(
                        {
                            "exception.type": span.error_type or "Exception",
                            "exception.message": span.error.split(": ", 1)[-1],
                        }
                    ),
                }
            ]
        if messy:  # protobuf-JSON style: base64 ids, enum names
            for key in ("traceId", "spanId", "parentSpanId"):
                if key in record:
                    record[key] = base64.b64encode(bytes.fromhex(record[key])).decode()
            record["kind"] = "SPAN_KIND_CLIENT" if span.kind == "llm" else "SPAN_KIND_INTERNAL"
            code = record["status"].get("code")
            if code is not None:
                record["status"]["code"] = ("", "STATUS_CODE_OK", "STATUS_CODE_ERROR")[code]
        spans.append(record)
    request = {
        "resourceSpans": [
            {
                "resource": {"attributes": _key_values(_resource(trace.service, tiny))},
                "scopeSpans": [{"scope": _SCOPES[convention], "spans": spans}],
                "schemaUrl": "https://opentelemetry.io/schemas/1.27.0",
            }
        ]
    }
    return [orjson.dumps(request)]


# -- OpenAI Agents SDK native export ---------------------------------------------------


def _sdk_span_id(trace: SimTrace, span_id: str | None) -> str | None:
    return None if span_id is None else f"span_{span_id}{trace.trace_id[:8]}"


def _span_data(span: SimSpan, trace: SimTrace, tiny: bool) -> dict[str, Any]:
    spec = trace.agent
    if span.kind == "agent":
        is_root = span.parent_id is None
        return {
            "type": "agent",
            "name": span.name,
            "handoffs": [spec.sub_agent] if is_root else [],
            "tools": list(spec.tools if is_root else spec.sub_tools),
            "output_type": "str",
        }
    if span.kind == "llm":
        output: list[dict[str, Any]] = []
        if span.error is None:
            message: dict[str, Any] = {"role": "assistant", "content": span.output_text or ""}
            if span.tool_calls:
                message["tool_calls"] = [
                    {
                        "id": c["id"],
                        "type": "function",
                        "function": {"name": c["name"], "arguments": c["arguments"]},
                    }
                    for c in span.tool_calls
                ]
            output.append(message)
        usage = None
        if span.error is None:
            usage = {"input_tokens": span.input_tokens, "output_tokens": span.output_tokens}
        return {
            "type": "generation",
            "input": span.messages or [],
            "output": output,
            "model": span.model,
            "model_config": {} if tiny else {"temperature": 0.2, "max_tokens": 4096},
            "usage": usage,
        }
    if span.kind == "tool":
        return {
            "type": "function",
            "name": span.name,
            "input": span.input_text,
            "output": span.output_text,
            "mcp_data": None,
        }
    if span.kind == "handoff":
        return {"type": "handoff", "from_agent": span.agent, "to_agent": span.name}
    return {"type": "guardrail", "name": span.name, "triggered": False}


def agents_sdk_lines(
    trace: SimTrace, convention: str, tiny: bool, messy: bool = False
) -> list[bytes]:
    trace_id = trace_key(trace.trace_id, "agents-sdk")
    lines = [
        orjson.dumps(
            {
                "object": "trace",
                "id": trace_id,
                "workflow_name": trace.agent.name,
                "group_id": trace.session_id,
                "metadata": None
                if messy
                else {"service.name": trace.service, "user_id": trace.user_id},
            }
        )
    ]
    for span in _by_end(trace):
        error: dict[str, object] | None = None
        if span.error is not None:
            data = {"error_type": span.error_type}
            if span.kind == "tool":
                data["tool_name"] = span.name
            error = {"message": span.error, "data": data}
        span_data = _span_data(span, trace, tiny)
        usage = span_data.get("usage")
        if messy and usage:
            span_data["usage"] = _stringify_numbers(usage)
        record = {
            "object": "trace.span",
            "id": _sdk_span_id(trace, span.span_id),
            "trace_id": trace_id,
            "parent_id": _sdk_span_id(trace, span.parent_id),
            "started_at": iso_us(span.start_ns),
            "ended_at": iso_us(span.end_ns),
            "span_data": span_data,
            "error": error,
        }
        lines.append(orjson.dumps(record))
    return lines


Writer = Callable[[SimTrace, str, bool, bool], list[bytes]]
WRITERS: dict[str, Writer] = {
    "halo": halo_lines,
    "otlp": otlp_lines,
    "agents-sdk": agents_sdk_lines,
}
