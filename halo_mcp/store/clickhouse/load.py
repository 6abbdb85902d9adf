"""Local trace files -> the exporter's `otel_traces` layout, on a server or in chDB.

What `halo-mcp load PATHS --to LOCATION` runs: every span of every format halo-mcp reads is
written as the OpenTelemetry Collector's ClickHouse exporter would have written it
(attribute values as strings, nanosecond timestamps, the OTel kind and status names), so
ClickHouse-backed reads see the same spans as the file store. Bad lines are skipped and
reported with file and line, like everywhere else.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import orjson
from pydantic import BaseModel, Field

from halo_mcp.store.clickhouse.client import INSERT_BATCH, ClickHouseClient
from halo_mcp.store.clickhouse.location import ClickHouseLocation
from halo_mcp.store.clickhouse.materialize import IndexResult
from halo_mcp.store.clickhouse.schema import TableShape, create_tables, table_shape
from halo_mcp.store.files import expand_paths, is_gz
from halo_mcp.store.formats.errors import BadLineError
from halo_mcp.store.formats.lines import OTLP, ROW_FIELDS, parse_line_report, walk_line
from halo_mcp.store.formats.payload import SpanPayload, span_payloads
from halo_mcp.store.formats.values import norm_id, otlp_id, to_ns, to_str
from halo_mcp.store.models import BadLine

#: Bad lines quoted in the report (all are counted).
BAD_LINE_EXAMPLES = 10

_ROW = {name: i for i, name in enumerate(ROW_FIELDS)}
#: OTel span kinds as the exporter names them (proto enum numbers and names accepted).
_OTEL_KINDS = {
    0: "Unspecified",
    1: "Internal",
    2: "Server",
    3: "Client",
    4: "Producer",
    5: "Consumer",
}
_STATUS_NAMES = {"ok": "Ok", "error": "Error", "unset": "Unset"}


class LoadResult(BaseModel):
    """What was written where."""

    location: str = Field(description="Where the spans went (no secret).")
    files: int
    spans: int
    bad_lines: int
    bad_line_examples: list[BadLine]
    index: IndexResult | None = Field(
        None, description="The companion table of normalized spans, extended after the load."
    )


def _otel_kind(value: Any) -> str:
    if isinstance(value, int):
        return _OTEL_KINDS.get(value, "Unspecified")
    text = to_str(value) or ""
    word = text.upper().removeprefix("SPAN_KIND_")
    for name in _OTEL_KINDS.values():
        if word == name.upper():
            return name
    return "Unspecified"


def _attr_text(value: Any) -> str:
    """An attribute value as the exporter stores it in a Map(String, String)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, float) else str(value)
    if value is None:
        return ""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS, default=str).decode()


def _string_map(values: dict[str, Any]) -> dict[str, str]:
    return {str(key): _attr_text(value) for key, value in values.items()}


def _seconds(ns: int) -> str:
    """DateTime64(9) as text ClickHouse parses exactly: seconds with nine decimals."""
    sign = "-" if ns < 0 else ""
    whole, frac = divmod(abs(ns), 1_000_000_000)
    return f"{sign}{whole}.{frac:09d}"


def _scope(flavor: str, item: dict[str, Any], context: Any) -> tuple[str, str]:
    scope = context[2] if flavor == OTLP and context is not None else item.get("scope")
    if not isinstance(scope, dict):
        return "", ""
    return to_str(scope.get("name")) or "", to_str(scope.get("version")) or ""


def exporter_row(row: tuple[Any, ...], payload: SpanPayload, scope: tuple[str, str]) -> dict:
    """One normalized row and its payload -> the exporter's columns."""
    raw = payload.raw
    attributes = dict(payload.attributes)
    if payload.input is not None and not any(k in attributes for k in ("input.value",)):
        attributes.setdefault("input.value", payload.input)
    if payload.output is not None and "output.value" not in attributes:
        attributes.setdefault("output.value", payload.output)
    start = row[_ROW["start_ns"]]
    end = row[_ROW["end_ns"]]
    events = payload.events
    event_times = [to_ns(event.get("time")) or start for event in events]
    trace_state = raw.get("trace_state", raw.get("traceState"))
    return {
        "Timestamp": _seconds(start),
        "TraceId": row[_ROW["trace_id"]],
        "SpanId": row[_ROW["span_id"]],
        "ParentSpanId": row[_ROW["parent_span_id"]] or "",
        "TraceState": to_str(trace_state) or "",
        "SpanName": row[_ROW["name"]],
        "SpanKind": _otel_kind(raw.get("kind")),
        "ServiceName": row[_ROW["service"]] or "",
        "ResourceAttributes": _string_map(payload.resource),
        "ScopeName": scope[0],
        "ScopeVersion": scope[1],
        "SpanAttributes": _string_map(attributes),
        "Duration": max(0, end - start),
        "StatusCode": _STATUS_NAMES.get(row[_ROW["status"]], "Unset"),
        "StatusMessage": payload.status_message or "",
        "Events.Timestamp": [_seconds(t) for t in event_times],
        "Events.Name": [str(event.get("name") or "event") for event in events],
        "Events.Attributes": [_string_map(event.get("attributes") or {}) for event in events],
        "Links.TraceId": [],
        "Links.SpanId": [],
        "Links.TraceState": [],
        "Links.Attributes": [],
    }


def _open(path: Path) -> BinaryIO:
    return gzip.open(path, "rb") if is_gz(path) else path.open("rb")  # type: ignore[return-value]


def _file_rows(path: Path, bad: list[BadLine], counts: list[int]) -> Iterator[dict]:
    with _open(path) as handle:
        try:
            for line_no, line in enumerate(handle, start=1):
                yield from _line_rows(path, line_no, line, bad, counts)
        except (OSError, EOFError) as exc:  # a damaged .gz: keep what came before
            counts[0] += 1
            if len(bad) < BAD_LINE_EXAMPLES:
                bad.append(BadLine(file=str(path), line=0, reason=f"stopped reading: {exc}"))


def _line_rows(
    path: Path, line_no: int, line: bytes, bad: list[BadLine], counts: list[int]
) -> Iterator[dict]:
    try:
        rows, bad_parts, reason = parse_line_report(line)
        payloads = dict(span_payloads(line))
        entries = walk_line(line)
    except BadLineError as exc:
        rows, bad_parts, reason, payloads, entries = [], 1, str(exc), {}, []
    if bad_parts:
        counts[0] += 1
        if len(bad) < BAD_LINE_EXAMPLES:
            bad.append(BadLine(file=str(path), line=line_no, reason=reason or "not a span"))
    scopes: dict[str, tuple[str, str]] = {}
    for flavor, item, context in entries:
        if isinstance(item, dict):
            span_id = norm_id(item.get("span_id")) or otlp_id(item.get("spanId"))
            if span_id is not None:
                scopes.setdefault(span_id, _scope(flavor, item, context))
    for row in rows:
        span_id = row[_ROW["span_id"]]
        payload = payloads.get(span_id)
        if payload is not None:
            yield exporter_row(row, payload, scopes.get(span_id, ("", "")))


def load_files(
    paths: Sequence[str | Path],
    client: ClickHouseClient,
    location: ClickHouseLocation,
    *,
    notify: Callable[[str], None] | None = None,
) -> LoadResult:
    """Write every span of `paths` into `location` (creating the exporter's tables when
    missing). Rows go in batches; the report counts spans and bad lines."""
    files, _ = expand_paths(paths)
    create_tables(client, location)
    shape: TableShape = table_shape(client, location)
    bad: list[BadLine] = []
    counts = [0]
    written = 0
    batch: list[dict] = []
    for path in files:
        for row in _file_rows(path, bad, counts):
            batch.append({k: v for k, v in row.items() if k in shape.columns})
            if len(batch) >= INSERT_BATCH:
                client.insert_json_rows(location.qualified_table, batch)
                written += len(batch)
                batch = []
                if notify is not None:
                    notify(f"{written} spans written to {location.display}")
    if batch:
        client.insert_json_rows(location.qualified_table, batch)
        written += len(batch)
    return LoadResult(
        location=location.display,
        files=len(files),
        spans=written,
        bad_lines=counts[0],
        bad_line_examples=bad,
    )
