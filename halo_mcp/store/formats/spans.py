"""One OTel-shaped span object (HALO flat JSONL or an OTLP JSON span) -> a normalized row.

HALO writes snake_case keys, ISO times, dict attributes and "STATUS_CODE_*" names; OTLP
writes camelCase keys, nanosecond strings, attribute lists and int enums. Both go through
the same function: HALO keys are tried first because HALO is the hot path.
"""

from __future__ import annotations

from typing import Any

from halo_mcp.store.formats.attributes import attribute_map
from halo_mcp.store.formats.compiled import compiled_semantics
from halo_mcp.store.formats.conventions import Facts, semantics
from halo_mcp.store.formats.errors import BadLineError
from halo_mcp.store.formats.values import norm_id, otlp_id, time_ns, to_str

UNNAMED = "(unnamed)"

_STATUS_CODES: dict[Any, str] = {
    "STATUS_CODE_OK": "ok",
    "STATUS_CODE_ERROR": "error",
    "STATUS_CODE_UNSET": "unset",
    "OK": "ok",
    "ERROR": "error",
    "UNSET": "unset",
    "ok": "ok",
    "error": "error",
    "unset": "unset",
    "Ok": "ok",
    "Error": "error",
    "Unset": "unset",
    "0": "unset",
    "1": "ok",
    "2": "error",
    0: "unset",
    1: "ok",
    2: "error",
    "": "unset",
}


def status_code(code: Any) -> str:
    """Any status code spelling (name, int, numeric string) -> ok / error / unset."""
    try:
        found = _STATUS_CODES.get(code)
    except TypeError:  # unhashable junk
        return "unset"
    if found is not None:
        return found
    if type(code) is str:
        low = code.lower()
        if "err" in low or "fail" in low:
            return "error"
        if "ok" in low or "success" in low:
            return "ok"
    return "unset"


def status_parts(status: Any) -> tuple[str, str | None]:
    """A span's status field -> (code, message)."""
    kind = type(status)
    if kind is dict:
        message = status.get("message")
        if message is None:
            message = status.get("description")
        return status_code(status.get("code")), (message if type(message) is str else None)
    if kind is str or kind is int:
        return status_code(status), None
    return "unset", None


def exception_of(events: Any) -> tuple[bool, str | None]:
    """(has an exception event, "Type: message" of the first one)."""
    if type(events) is not list:
        return False, None
    for event in events:
        if type(event) is not dict:
            continue
        attrs = attribute_map(event.get("attributes"))
        message = to_str(attrs.get("exception.message"))
        etype = to_str(attrs.get("exception.type"))
        if event.get("name") != "exception" and message is None and etype is None:
            continue
        if etype and message:
            return True, f"{etype}: {message}"
        return True, message or etype
    return False, None


#: Exception types that name no particular error (JavaScript's Error).
_BARE_TYPES = ("Error", "Exception")


def typed_message(message: str | None, exc_message: str | None) -> str | None:
    """The status message, or the exception's "Type: message" when the status only repeats
    the exception's message without its type (OpenInference's CrewAI spans) and the type
    says more than a bare Error: titles then name the error. (ClickHouse:
    expressions._TYPED_MESSAGE.)"""
    if not message:
        return exc_message
    if not exc_message or exc_message == message or not exc_message.endswith(": " + message):
        return message
    return message if exc_message[: -len(message) - 2] in _BARE_TYPES else exc_message


def error_outcome(
    status: str, message: str | None, events: Any, error_type: Any
) -> tuple[str, str | None]:
    """A span's final status and error message: an `exception` event or an `error.type`
    attribute makes it an error (and may give the message); a message on a span that is
    not an error is not an error message."""
    if events:
        has_exception, exc_message = exception_of(events)
        if has_exception:
            status = "error"
            message = typed_message(message, exc_message)
    if error_type:
        status = "error"
        if not message:
            message = to_str(error_type)
    if not message or status != "error":
        message = None
    return status, message


def service_of(resource: Any) -> str | None:
    """`service.name` from a resource ({attributes: dict|list} or a bare attribute dict)."""
    if type(resource) is not dict:
        return None
    attrs = resource.get("attributes")
    if attrs is None:
        return to_str(resource.get("service.name"))
    if type(attrs) is dict:
        value = attrs.get("service.name")
        if value is None:
            service = attrs.get("service")
            if type(service) is dict:
                value = service.get("name")
        return to_str(value)
    return to_str(attribute_map(attrs).get("service.name"))


def row(
    trace_id: str,
    span_id: str,
    parent_id: str | None,
    name: str,
    status: str,
    message: str | None,
    start: int,
    end: int,
    service: str | None,
    facts: Facts,
) -> tuple:
    """A span's index row, in ROW_FIELDS order: what each format reads from the span
    itself, and `facts` (what its attributes say: kind, agent, model, tool, tokens in and
    out, session), which fill the columns after `name` and after `service`."""
    kind, agent, model, tool, tokens_in, tokens_out, session = facts
    return (
        trace_id,
        span_id,
        parent_id,
        name,
        kind,
        status,
        message,
        start,
        end,
        service,
        agent,
        model,
        tool,
        tokens_in,
        tokens_out,
        session,
    )


def _pick(span: dict, *keys: str) -> Any:
    for key in keys:
        value = span.get(key)
        if value is not None:
            return value
    return None


def span_ids(span: dict, otlp: bool) -> tuple[str | None, str | None, str | None]:
    """(trace_id, span_id, parent_span_id), normalized the same way for rows and payloads."""
    if otlp:
        trace = _pick(span, "traceId", "trace_id")
        sid = _pick(span, "spanId", "span_id")
        parent = _pick(span, "parentSpanId", "parent_span_id", "parent_id")
        return otlp_id(trace), otlp_id(sid), otlp_id(parent) if parent is not None else None
    trace = _pick(span, "trace_id", "traceId")
    sid = _pick(span, "span_id", "spanId")
    parent = _pick(span, "parent_span_id", "parentSpanId", "parent_id")
    return norm_id(trace), norm_id(sid), norm_id(parent) if parent is not None else None


def span_row(span: dict, service: str | None, otlp: bool) -> tuple:
    """Normalize one span. Raises BadLineError naming what is missing.

    Written flat on purpose: this runs for every span of every file indexed.
    """
    get = span.get
    if otlp:
        # Lowercase hex ids of the usual lengths (nearly all OTLP ids) skip otlp_id.
        trace_id = get("traceId")
        span_id = get("spanId")
        if (
            type(trace_id) is not str
            or len(trace_id) != 32
            or not trace_id.islower()
            or type(span_id) is not str
            or len(span_id) != 16
            or not span_id.islower()
        ):
            trace_id, span_id, parent_id = span_ids(span, True)
        else:
            parent_id = get("parentSpanId")
            if type(parent_id) is not str or len(parent_id) != 16 or not parent_id.islower():
                parent_id = _pick(span, "parentSpanId", "parent_span_id", "parent_id")
                parent_id = otlp_id(parent_id) if parent_id is not None else None
    else:
        # Lowercase hex strings (nearly all ids) skip norm_id.
        trace_id = get("trace_id")
        if type(trace_id) is not str or not trace_id.islower():
            trace_id = norm_id(trace_id if trace_id is not None else get("traceId"))
        span_id = get("span_id")
        if type(span_id) is not str or not span_id.islower():
            span_id = norm_id(span_id if span_id is not None else get("spanId"))
        parent_id = get("parent_span_id")
        if parent_id is None:
            parent_id = _pick(span, "parentSpanId", "parent_id")
        if parent_id is not None and (type(parent_id) is not str or not parent_id.islower()):
            parent_id = norm_id(parent_id)
    if trace_id is None:
        raise BadLineError("span has no trace_id")
    if span_id is None:
        raise BadLineError("span has no span_id")

    start_raw = get("startTimeUnixNano" if otlp else "start_time")
    if start_raw is None:
        start_raw = _pick(
            span, "start_time", "startTimeUnixNano", "start_time_unix_nano", "startTime"
        )
    start = time_ns(start_raw)
    if start is None:
        if start_raw is None:
            raise BadLineError("span has no start time")
        raise BadLineError(f"start time not understood: {str(start_raw)[:40]!r}")
    end_raw = get("endTimeUnixNano" if otlp else "end_time")
    if end_raw is None:
        end_raw = _pick(span, "end_time", "endTimeUnixNano", "end_time_unix_nano", "endTime")
    end = time_ns(end_raw) if end_raw is not None else None
    if end is None:
        end = start

    name = get("name")
    if type(name) is not str or not name:
        name = to_str(name) or UNNAMED

    attrs = attribute_map(get("attributes"))

    status_field: Any = get("status")
    code = status_field.get("code") if type(status_field) is dict else None
    status = _STATUS_CODES.get(code) if type(code) is str or type(code) is int else None
    if status is not None:
        message = status_field.get("message")
        if type(message) is not str:
            message = status_parts(status_field)[1]
    else:
        status, message = status_parts(status_field)
    status, message = error_outcome(status, message, get("events"), attrs.get("error.type"))

    if service is None and not otlp:
        resource = get("resource")
        if type(resource) is dict:
            resource_attrs = resource.get("attributes")
            if type(resource_attrs) is dict:
                service = resource_attrs.get("service.name")
                if type(service) is not str or not service:
                    service = service_of(resource)
            else:
                service = service_of(resource)
    run = compiled_semantics(tuple(attrs))
    facts = semantics(attrs, name) if run is None else run(attrs, name)[0]
    return row(trace_id, span_id, parent_id, name, status, message, start, end, service, facts)
