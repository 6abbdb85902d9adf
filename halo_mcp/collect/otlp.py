"""OTLP/HTTP trace payloads: decoding a request into OTLP JSON, and encoding the answers.

A request body (protobuf or JSON, as the OTLP/HTTP spec allows) becomes the
`resourceSpans` list of one OTLP JSON line, the format every halo-mcp reader takes.
Protobuf is converted field by field into the spec's JSON mapping (hex ids, 64-bit
integers as strings, enums as numbers). A span the index could not key (a missing or
malformed trace or span id) is left out and counted, so the answer can report it as a
partial success; a body that is not an OTLP trace request at all is a PayloadError (400).
"""

from __future__ import annotations

import base64
import re
import zlib
from dataclasses import dataclass, field
from typing import Any

import orjson

PROTOBUF = "application/x-protobuf"
JSON = "application/json"

_HEX_TRACE = re.compile(r"[0-9a-fA-F]{32}")
_HEX_SPAN = re.compile(r"[0-9a-fA-F]{16}")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


class PayloadError(ValueError):
    """The body is not an OTLP trace export request; the message says what was wrong."""


class PayloadTooLargeError(PayloadError):
    """The body, once decompressed, is larger than the limit."""


@dataclass
class Decoded:
    """What one request holds: the accepted resourceSpans, and the spans left out."""

    resource_spans: list[dict[str, Any]] = field(default_factory=list)
    accepted: int = 0
    rejected: int = 0
    first_reason: str | None = None

    def reject(self, reason: str) -> None:
        self.rejected += 1
        if self.first_reason is None:
            self.first_reason = reason

    def line(self) -> bytes:
        """The accepted spans as one OTLP JSON line (with its line end)."""
        return orjson.dumps({"resourceSpans": self.resource_spans}) + b"\n"


def media_type(content_type: str | None) -> str | None:
    """`application/x-protobuf` or `application/json` from a Content-Type header, else None."""
    base = (content_type or "").split(";", 1)[0].strip().lower()
    return base if base in (PROTOBUF, JSON) else None


def decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    """The body without its Content-Encoding (gzip, deflate or none), at most `limit` bytes."""
    name = (encoding or "identity").strip().lower()
    if name in ("", "identity"):
        return body
    if name not in ("gzip", "deflate"):
        raise PayloadError(
            f"unsupported Content-Encoding {encoding!r}: send gzip, deflate or no encoding"
        )
    wbits = 16 + zlib.MAX_WBITS if name == "gzip" else zlib.MAX_WBITS
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise PayloadError(f"body is not valid {name} data ({exc})") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise PayloadTooLargeError(f"decompressed body is larger than {limit} bytes")
    if not inflater.eof:
        raise PayloadError(f"{name} body is cut short")
    return out


def decode(body: bytes, kind: str) -> Decoded:
    """The request's spans as OTLP JSON; raises PayloadError for a body that is not one."""
    return _decode_protobuf(body) if kind == PROTOBUF else _decode_json(body)


# -- protobuf ---------------------------------------------------------------------------


def _decode_protobuf(body: bytes) -> Decoded:
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except DecodeError as exc:
        raise PayloadError(f"body is not a protobuf ExportTraceServiceRequest ({exc})") from None
    out = Decoded()
    for resource_spans in request.resource_spans:
        scopes = []
        for scope_spans in resource_spans.scope_spans:
            spans = []
            for span in scope_spans.spans:
                converted = _pb_span(span, out)
                if converted is not None:
                    spans.append(converted)
            if spans:
                scope: dict[str, Any] = {"spans": spans}
                if scope_spans.HasField("scope"):
                    scope["scope"] = _pb_scope(scope_spans.scope)
                if scope_spans.schema_url:
                    scope["schemaUrl"] = scope_spans.schema_url
                scopes.append(scope)
        if scopes:
            item: dict[str, Any] = {"scopeSpans": scopes}
            if resource_spans.HasField("resource"):
                item["resource"] = {
                    "attributes": _pb_attributes(resource_spans.resource.attributes)
                }
            if resource_spans.schema_url:
                item["schemaUrl"] = resource_spans.schema_url
            out.resource_spans.append(item)
    return out


def _pb_span(span: Any, out: Decoded) -> dict[str, Any] | None:
    trace_id, span_id = span.trace_id.hex(), span.span_id.hex()
    parent = span.parent_span_id.hex()
    problem = _id_problem(trace_id, span_id, parent)
    if problem is not None:
        out.reject(problem)
        return None
    item: dict[str, Any] = {
        "traceId": trace_id,
        "spanId": span_id,
        "name": span.name,
        "kind": span.kind,
        "startTimeUnixNano": str(span.start_time_unix_nano),
        "endTimeUnixNano": str(span.end_time_unix_nano),
    }
    if parent:
        item["parentSpanId"] = parent
    if span.trace_state:
        item["traceState"] = span.trace_state
    if span.flags:
        item["flags"] = span.flags
    if span.attributes:
        item["attributes"] = _pb_attributes(span.attributes)
    if span.events:
        item["events"] = [
            {
                "timeUnixNano": str(event.time_unix_nano),
                "name": event.name,
                "attributes": _pb_attributes(event.attributes),
            }
            for event in span.events
        ]
    if span.links:
        item["links"] = [
            {
                "traceId": link.trace_id.hex(),
                "spanId": link.span_id.hex(),
                "attributes": _pb_attributes(link.attributes),
            }
            for link in span.links
        ]
    if span.HasField("status"):
        status: dict[str, Any] = {"code": span.status.code}
        if span.status.message:
            status["message"] = span.status.message
        item["status"] = status
    for name in ("dropped_attributes_count", "dropped_events_count", "dropped_links_count"):
        count = getattr(span, name)
        if count:
            item[_camel(name)] = count
    out.accepted += 1
    return item


def _pb_scope(scope: Any) -> dict[str, Any]:
    item: dict[str, Any] = {"name": scope.name}
    if scope.version:
        item["version"] = scope.version
    if scope.attributes:
        item["attributes"] = _pb_attributes(scope.attributes)
    return item


def _pb_attributes(attributes: Any) -> list[dict[str, Any]]:
    return [{"key": kv.key, "value": _pb_value(kv.value)} for kv in attributes]


def _pb_value(value: Any) -> dict[str, Any]:
    which = value.WhichOneof("value")
    if which == "string_value":
        return {"stringValue": value.string_value}
    if which == "int_value":
        return {"intValue": str(value.int_value)}
    if which == "bool_value":
        return {"boolValue": value.bool_value}
    if which == "double_value":
        return {"doubleValue": value.double_value}
    if which == "array_value":
        return {"arrayValue": {"values": [_pb_value(v) for v in value.array_value.values]}}
    if which == "kvlist_value":
        return {"kvlistValue": {"values": _pb_attributes(value.kvlist_value.values)}}
    if which == "bytes_value":
        return {"bytesValue": base64.b64encode(value.bytes_value).decode()}
    return {}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


# -- JSON -------------------------------------------------------------------------------


def _decode_json(body: bytes) -> Decoded:
    try:
        request = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise PayloadError(f"body is not valid JSON ({exc})") from None
    if not isinstance(request, dict):
        raise PayloadError('body must be a JSON object like {"resourceSpans": [...]}')
    out = Decoded()
    for i, resource_spans in enumerate(_list(request, "resourceSpans", "resource_spans", "")):
        where = f"resourceSpans[{i}]"
        _object(resource_spans, where)
        scopes = []
        for j, scope_spans in enumerate(_list(resource_spans, "scopeSpans", "scope_spans", where)):
            inner = f"{where}.scopeSpans[{j}]"
            _object(scope_spans, inner)
            spans = []
            for k, span in enumerate(_list(scope_spans, "spans", "spans", inner)):
                _object(span, f"{inner}.spans[{k}]")
                if _json_span(span, out):
                    spans.append(span)
            if spans:
                scopes.append({**_without(scope_spans), "spans": spans})
        if scopes:
            out.resource_spans.append(
                {**_without(resource_spans, "scopeSpans", "scope_spans"), "scopeSpans": scopes}
            )
    return out


def _list(obj: dict[str, Any], camel: str, snake: str, where: str) -> list[Any]:
    value = obj.get(camel, obj.get(snake))
    if value is None:
        return []
    if not isinstance(value, list):
        place = f"{where}.{camel}" if where else camel
        raise PayloadError(f"{place} must be a JSON array, got {type(value).__name__}")
    return value


def _object(value: Any, where: str) -> None:
    if not isinstance(value, dict):
        raise PayloadError(f"{where} must be a JSON object, got {type(value).__name__}")


def _without(obj: dict[str, Any], *names: str) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in names and k != "spans"}


def _json_span(span: dict[str, Any], out: Decoded) -> bool:
    """Check one JSON span's ids (hex, any case: readers lowercase them); False = rejected."""
    trace_id = span.get("traceId", span.get("trace_id"))
    span_id = span.get("spanId", span.get("span_id"))
    parent = span.get("parentSpanId", span.get("parent_span_id")) or ""
    if not (isinstance(trace_id, str) and isinstance(span_id, str) and isinstance(parent, str)):
        out.reject("traceId, spanId and parentSpanId must be hex strings")
        return False
    problem = _id_problem(trace_id.lower(), span_id.lower(), parent.lower(), json=True)
    if problem is not None:
        out.reject(problem)
        return False
    out.accepted += 1
    return True


def _id_problem(trace_id: str, span_id: str, parent: str, json: bool = False) -> str | None:
    """Why a span's ids are unusable (OTLP: 16-byte trace id, 8-byte span ids, not zero)."""
    encoding = "32 hex characters" if json else "16 bytes"
    if not _HEX_TRACE.fullmatch(trace_id) or trace_id == _ZERO_TRACE:
        return f"span with an invalid traceId {trace_id[:40]!r} (needs {encoding}, not all zero)"
    if not _HEX_SPAN.fullmatch(span_id) or span_id == _ZERO_SPAN:
        half = "16 hex characters" if json else "8 bytes"
        return f"span with an invalid spanId {span_id[:40]!r} (needs {half}, not all zero)"
    if parent and not _HEX_SPAN.fullmatch(parent):
        return f"span with an invalid parentSpanId {parent[:40]!r}"
    return None


# -- answers ----------------------------------------------------------------------------


def export_response(kind: str, rejected: int, message: str | None) -> bytes:
    """ExportTraceServiceResponse, with partial_success when spans were rejected."""
    if kind == JSON:
        if not rejected:
            return b"{}"
        return orjson.dumps(
            {"partialSuccess": {"rejectedSpans": str(rejected), "errorMessage": message or ""}}
        )
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTracePartialSuccess,
        ExportTraceServiceResponse,
    )

    response = ExportTraceServiceResponse()
    if rejected:
        response.partial_success.CopyFrom(
            ExportTracePartialSuccess(rejected_spans=rejected, error_message=message or "")
        )
    return response.SerializeToString()


#: google.rpc.Code values used in error bodies.
INVALID_ARGUMENT, RESOURCE_EXHAUSTED, UNAUTHENTICATED, UNAVAILABLE = 3, 8, 16, 14


def status_body(kind: str, code: int, message: str) -> bytes:
    """A google.rpc.Status error body (the OTLP/HTTP error answer) in the request's encoding."""
    if kind == JSON:
        return orjson.dumps({"code": code, "message": message})
    text = message.encode()
    return b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


__all__ = [
    "JSON",
    "PROTOBUF",
    "Decoded",
    "PayloadError",
    "PayloadTooLargeError",
    "decode",
    "decompress",
    "export_response",
    "media_type",
    "status_body",
]
