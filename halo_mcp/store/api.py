"""What triage, check, the engine and the tools need from a store, as typed protocols.

Two backends satisfy them: :class:`halo_mcp.store.store.TraceStore` (trace files behind a
SQLite index) and :class:`halo_mcp.store.clickhouse.store.ClickHouseTraceStore` (an
exporter table in ClickHouse). Callers annotate with :class:`TraceReader` and
:class:`AggregateReader`, so mypy holds both backends to the same reads.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from halo_mcp.store.aggregates import (
    AgentCalls,
    AtLeast,
    CallHistograms,
    ErrorSpan,
    GroupedKind,
    Metric,
    MetricSample,
    RepeatedCall,
    RootAnswer,
    SpanTotals,
    SpanValue,
    ThresholdPlan,
    TimeRange,
    ToolCalls,
)
from halo_mcp.store.models import (
    FilterArg,
    LoadReport,
    MatchCount,
    Overview,
    SearchResult,
    SpanPage,
    SpanSort,
    TracePage,
    TraceSort,
    TraceSummary,
    TraceTree,
)
from halo_mcp.store.sql import SqlResult


class AggregateReader(Protocol):
    """Whole-set aggregates for triage and re-checks (store.aggregates.Aggregates)."""

    def trace_total(self) -> int: ...
    def span_totals(self) -> SpanTotals: ...
    def model_names(self) -> list[str]: ...
    def kind_count(self, kind: str) -> int: ...
    def tool_calls(self) -> list[ToolCalls]: ...
    def time_range(self) -> TimeRange: ...
    def starts_per_window(self, start_ns: int, width_ns: int, windows: int) -> list[int]: ...
    def error_spans(self) -> Iterator[ErrorSpan]: ...
    def tool_error_traces(self) -> dict[str, int]: ...
    def failing_tool_traces(self, tool_name: str) -> set[str]: ...
    def failing_tool_calls(self, tool_name: str, limit: int) -> list[ErrorSpan]: ...
    def repeated_calls(self, min_repeats: int) -> Iterator[RepeatedCall]: ...
    def metric_samples(
        self, kinds: tuple[GroupedKind, ...], max_rows: int
    ) -> dict[GroupedKind, MetricSample]: ...
    def over_thresholds(
        self, plan: ThresholdPlan
    ) -> dict[tuple[GroupedKind, Metric], dict[str, list[SpanValue]]]: ...
    def at_least(
        self, kind: GroupedKind, group: str, metric: Metric, threshold: int, examples: int
    ) -> AtLeast: ...
    def llm_calls_per_agent(self) -> Iterator[AgentCalls]: ...
    def llm_call_histograms(self) -> CallHistograms: ...
    def root_answered(
        self, every: int = 1, known: Mapping[tuple[str, str], bool] | None = None
    ) -> Iterator[RootAnswer]: ...


class TraceReader(Protocol):
    """The read API every store backend offers (see store.store.TraceStore for each
    method's contract)."""

    report: LoadReport

    @property
    def paths(self) -> Sequence[Path | str]:
        """The trace files read, or the ClickHouse location (without secrets)."""
        ...

    def query_spans(
        self,
        filter: FilterArg = None,
        *,
        sort: SpanSort = "start_time",
        limit: int = 50,
        cursor: str | None = None,
        fields: Sequence[str] = ...,
        max_chars: int = 2000,
    ) -> SpanPage: ...
    def count(self, filter: FilterArg = None) -> MatchCount: ...
    def seen(self, filter: FilterArg = None) -> tuple[datetime | None, datetime | None]: ...
    def query_sql(
        self,
        sql: str,
        *,
        limit: int = ...,
        max_chars: int = ...,
        time_limit_s: float = ...,
        max_steps: int | None = None,
    ) -> SqlResult: ...
    def search(
        self,
        pattern: str,
        *,
        filter: FilterArg = None,
        limit: int = 20,
        context_chars: int = 120,
    ) -> SearchResult: ...
    def raw_span(self, trace_id: str, span_id: str) -> dict[str, Any]: ...
    def known_ids(
        self, trace_ids: Sequence[str] = (), span_ids: Sequence[str] = ()
    ) -> tuple[set[str], set[str]]: ...
    def query_traces(
        self,
        filter: FilterArg = None,
        *,
        sort: TraceSort = "start_time",
        limit: int = 50,
        cursor: str | None = None,
    ) -> TracePage: ...
    def trace_summary(self, trace_id: str) -> TraceSummary: ...
    def trace_tree(
        self,
        trace_id: str,
        *,
        fields: Sequence[str] = ...,
        max_chars: int = 2000,
        limit: int = 500,
    ) -> TraceTree: ...
    def overview(self) -> Overview: ...
    def aggregates(
        self, *, time_limit: float | None = None
    ) -> AbstractContextManager[AggregateReader]: ...
    def inputs_changed(self) -> bool: ...
    def release_memory(self) -> None: ...
    def close(self) -> None: ...
    def __enter__(self) -> TraceReader: ...
    def __exit__(self, *exc: object) -> None: ...
