"""A SpanExporter writing HALO's flat JSONL: the format halo-mcp itself ingests.

One span per line: trace_id, span_id, parent_span_id, name, kind ("SPAN_KIND_*"),
start_time/end_time (ISO-8601 with nanoseconds, UTC), status {code, message},
resource {attributes}, scope {name, version}, attributes (flat dotted keys), events.
So `halo-mcp` can be pointed at its own runs.

Export never raises: a failed write is logged once to stderr and the batch is dropped.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, StatusCode

log = logging.getLogger(__name__)

_KINDS = {
    SpanKind.INTERNAL: "SPAN_KIND_INTERNAL",
    SpanKind.SERVER: "SPAN_KIND_SERVER",
    SpanKind.CLIENT: "SPAN_KIND_CLIENT",
    SpanKind.PRODUCER: "SPAN_KIND_PRODUCER",
    SpanKind.CONSUMER: "SPAN_KIND_CONSUMER",
}
_STATUS = {
    StatusCode.OK: "STATUS_CODE_OK",
    StatusCode.ERROR: "STATUS_CODE_ERROR",
    StatusCode.UNSET: "STATUS_CODE_UNSET",
}


def iso_ns(ns: int | None) -> str | None:
    """Unix nanoseconds -> '2025-01-01T12:00:00.123456789Z'."""
    if ns is None:
        return None
    seconds, fraction = divmod(int(ns), 1_000_000_000)
    head = datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{head}.{fraction:09d}Z"


def _value(value: Any) -> Any:
    return list(value) if isinstance(value, tuple | list) else value


def _attrs(attributes: Any) -> dict[str, Any]:
    return {key: _value(value) for key, value in (attributes or {}).items()}


def _hex(value: int, width: int) -> str:
    return format(value, f"0{width}x")


def span_to_halo(span: ReadableSpan) -> dict[str, Any]:
    """One finished span as a HALO flat JSONL object."""
    ctx = span.context
    parent = span.parent
    scope = span.instrumentation_scope
    line: dict[str, Any] = {
        "trace_id": _hex(ctx.trace_id, 32),
        "span_id": _hex(ctx.span_id, 16),
        "parent_span_id": _hex(parent.span_id, 16) if parent is not None else None,
        "name": span.name,
        "kind": _KINDS.get(span.kind, "SPAN_KIND_INTERNAL"),
        "start_time": iso_ns(span.start_time),
        "end_time": iso_ns(span.end_time),
        "status": {
            "code": _STATUS.get(span.status.status_code, "STATUS_CODE_UNSET"),
            "message": span.status.description or "",
        },
        "resource": {"attributes": _attrs(span.resource.attributes if span.resource else {})},
        "scope": {"name": scope.name if scope else "", "version": scope.version if scope else ""},
        "attributes": _attrs(span.attributes),
    }
    if span.events:
        line["events"] = [
            {"name": e.name, "timestamp": iso_ns(e.timestamp), "attributes": _attrs(e.attributes)}
            for e in span.events
        ]
    return line


class HaloJsonlExporter(SpanExporter):
    """Appends finished spans to one JSONL file (created with its folders on first write)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.spans_written = 0
        self.failed = False
        self._lock = threading.Lock()
        self._warned = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            data = b"".join(orjson.dumps(span_to_halo(s), default=str) + b"\n" for s in spans)
            with self._lock:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("ab") as out:
                    out.write(data)
                self.spans_written += len(spans)
            return SpanExportResult.SUCCESS
        except Exception as exc:  # never let telemetry break a run
            self.failed = True
            if not self._warned:
                self._warned = True
                log.warning(
                    "telemetry: cannot write %s (%s: %s); spans are dropped. Set "
                    "HALO_TELEMETRY_PATH to a writable file or folder.",
                    self.path,
                    type(exc).__name__,
                    exc,
                )
            return SpanExportResult.FAILURE

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True
