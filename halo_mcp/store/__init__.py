"""Trace ingestion, the on-disk index, and span queries. Knows nothing of MCP or LLMs."""

from halo_mcp.store.errors import (
    InvalidFilterError,
    NoSpansError,
    QueryTimeoutError,
    StoreError,
    TraceFileNotFoundError,
    UnknownIdError,
)
from halo_mcp.store.models import (
    DEFAULT_SPAN_FIELDS,
    SPAN_FIELDS,
    LoadReport,
    MatchCount,
    Overview,
    SearchResult,
    Span,
    SpanFilter,
    SpanKind,
    SpanPage,
    SpanView,
    StatusCode,
    TracePage,
    TraceRule,
    TraceSummary,
    TraceTree,
)
from halo_mcp.store.store import TraceStore, open_store
from halo_mcp.store.time_limit import DEFAULT_QUERY_TIME_LIMIT

__all__ = [
    "DEFAULT_QUERY_TIME_LIMIT",
    "DEFAULT_SPAN_FIELDS",
    "SPAN_FIELDS",
    "InvalidFilterError",
    "LoadReport",
    "MatchCount",
    "NoSpansError",
    "Overview",
    "QueryTimeoutError",
    "SearchResult",
    "Span",
    "SpanFilter",
    "SpanKind",
    "SpanPage",
    "SpanView",
    "StatusCode",
    "StoreError",
    "TraceFileNotFoundError",
    "TracePage",
    "TraceRule",
    "TraceStore",
    "TraceSummary",
    "TraceTree",
    "UnknownIdError",
    "open_store",
]
