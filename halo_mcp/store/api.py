"""What triage, check, the engine and the tools need from a store: its read API.

Two backends offer it: :class:`halo_mcp.store.store.TraceStore` (trace files behind a
SQLite index) and :class:`halo_mcp.store.clickhouse.store.ClickHouseTraceStore` (an
exporter table in ClickHouse). Both subclass :class:`TraceReader`, which
declares the paged reads and checks their arguments once; callers annotate with it and
with the protocol :class:`AggregateReader`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

from halo_mcp.store import query
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
from halo_mcp.store.filters import coerce_filter
from halo_mcp.store.models import (
    DEFAULT_SPAN_FIELDS,
    FilterArg,
    LoadReport,
    MatchCount,
    Overview,
    SearchQuery,
    SearchResult,
    SpanPage,
    SpanQuery,
    SpanSort,
    SqlQuery,
    TracePage,
    TraceQuery,
    TraceSort,
    TraceSummary,
    TraceTree,
    TreeQuery,
)
from halo_mcp.store.sql import (
    DEFAULT_MAX_CHARS,
    DEFAULT_ROW_LIMIT,
    DEFAULT_TIME_LIMIT_S,
    SqlResult,
)


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


Reader = TypeVar("Reader", bound="TraceReader")


class TraceReader(ABC):
    """The read API every store backend offers (see store.store.TraceStore for each
    method's contract), and the one place its paged reads are declared: each checks its
    arguments here, then hands a checked request (store.models: SpanQuery, TraceQuery,
    TreeQuery, SqlQuery, SearchQuery) to the backend's hook of the same name with a
    leading underscore."""

    report: LoadReport
    #: The trace files read, or the ClickHouse location (without secrets).
    paths: Sequence[Path | str]

    def query_spans(
        self,
        filter: FilterArg = None,
        *,
        sort: SpanSort = "start_time",
        limit: int = 50,
        cursor: str | None = None,
        fields: Sequence[str] = DEFAULT_SPAN_FIELDS,
        max_chars: int = 2000,
    ) -> SpanPage:
        """Spans matching `filter`, one page. Raises InvalidFilterError on bad input."""
        flt = coerce_filter(filter)
        checked = query.check_fields(fields)
        query.check_sort(sort, query.SPAN_SORT_SQL)
        query.check_limit(limit)
        query.check_max_chars(max_chars)
        return self._query_spans(SpanQuery(flt, sort, limit, cursor, checked, max_chars))

    @abstractmethod
    def count(self, filter: FilterArg = None) -> MatchCount: ...
    @abstractmethod
    def seen(self, filter: FilterArg = None) -> tuple[datetime | None, datetime | None]: ...

    def query_sql(
        self,
        sql: str,
        *,
        limit: int = DEFAULT_ROW_LIMIT,
        max_chars: int = DEFAULT_MAX_CHARS,
        time_limit_s: float = DEFAULT_TIME_LIMIT_S,
        max_steps: int | None = None,
    ) -> SqlResult:
        """One read-only SELECT over the documented `spans` and `traces` views (see
        store/sql.py), bounded in rows, characters and time. Raises SqlError."""
        return self._query_sql(SqlQuery(sql, limit, max_chars, time_limit_s, max_steps))

    def search(
        self,
        pattern: str,
        *,
        filter: FilterArg = None,
        limit: int = 20,
        context_chars: int = 120,
    ) -> SearchResult:
        """Regex search over span content, optionally within spans selected by `filter`."""
        query.check_limit(limit)
        return self._search(SearchQuery(pattern, coerce_filter(filter), limit, context_chars))

    @abstractmethod
    def raw_span(self, trace_id: str, span_id: str) -> dict[str, Any]: ...
    @abstractmethod
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
    ) -> TracePage:
        """Summaries of the traces having at least one span that matches `filter`."""
        flt = coerce_filter(filter)
        query.check_sort(sort, query.TRACE_SORT_SQL)
        query.check_limit(limit)
        return self._query_traces(TraceQuery(flt, sort, limit, cursor))

    @abstractmethod
    def trace_summary(self, trace_id: str) -> TraceSummary: ...

    def trace_tree(
        self,
        trace_id: str,
        *,
        fields: Sequence[str] = DEFAULT_SPAN_FIELDS,
        max_chars: int = 2000,
        limit: int = 500,
    ) -> TraceTree:
        """A trace's spans as a depth-first tree."""
        checked = query.check_fields(fields)
        query.check_limit(limit, 100_000)
        query.check_max_chars(max_chars)
        return self._trace_tree(TreeQuery(trace_id, checked, max_chars, limit))

    @abstractmethod
    def overview(self) -> Overview: ...
    @abstractmethod
    def aggregates(
        self, *, time_limit: float | None = None
    ) -> AbstractContextManager[AggregateReader]: ...
    @abstractmethod
    def inputs_changed(self) -> bool: ...
    @abstractmethod
    def release_memory(self) -> None: ...
    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self: Reader) -> Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- each backend implements the abstract methods above and these hooks, which get
    #    the checked arguments of the read of the same name ---------------------------------

    @abstractmethod
    def _query_spans(self, q: SpanQuery) -> SpanPage: ...
    @abstractmethod
    def _query_traces(self, q: TraceQuery) -> TracePage: ...
    @abstractmethod
    def _trace_tree(self, q: TreeQuery) -> TraceTree: ...
    @abstractmethod
    def _query_sql(self, q: SqlQuery) -> SqlResult: ...
    @abstractmethod
    def _search(self, q: SearchQuery) -> SearchResult: ...
