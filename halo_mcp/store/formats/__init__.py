"""Trace formats: detect each line's format and normalize its spans to index rows.

The index calls :func:`parse_line` (or :func:`parse_line_report`) per line and
:func:`span_payload` / :func:`span_text` when it needs a span's content.
Supported: HALO flat JSONL, OTLP JSON (Collector file exporter), OpenAI Agents SDK
span exports; attribute conventions OpenInference, OpenTelemetry GenAI, HALO `inference.*`.
"""

from halo_mcp.store.formats.errors import BadLineError, SpanNotOnLineError
from halo_mcp.store.formats.lines import (
    ROW_FIELDS,
    detect_format,
    parse_line,
    parse_line_report,
)
from halo_mcp.store.formats.payload import SpanPayload, span_payload, span_payloads, span_text

__all__ = [
    "ROW_FIELDS",
    "BadLineError",
    "SpanNotOnLineError",
    "SpanPayload",
    "detect_format",
    "parse_line",
    "parse_line_report",
    "span_payload",
    "span_payloads",
    "span_text",
]
