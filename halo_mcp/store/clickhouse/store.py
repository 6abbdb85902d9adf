"""ClickHouseTraceStore: the TraceStore API over an exporter `otel_traces` table.

Every read runs inside ClickHouse; only bounded results (a page, a tree, counts, top-N
groups) come back. Spans are normalized with the same rules as file ingestion: read from
the companion table (`materialize.py`: normalized once, agent/service inherited once) when
it covers the window, else in SQL by `expressions.py` in each statement, agent/service
inherited per trace only for the traces a query can touch (`notes` says which, and how to
build the companion table).

Scans cover a time window: by default the 7 days up to the newest span in the table
(`DEFAULT_WINDOW`), or what the caller gives (`since`/`until`). Spans outside it are not
seen, as if they were not in the table.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from halo_mcp.store import query
from halo_mcp.store import sql as sql_views
from halo_mcp.store.api import TraceReader
from halo_mcp.store.clickhouse import sql as clickhouse_sql
from halo_mcp.store.clickhouse.aggregates import ClickHouseAggregates
from halo_mcp.store.clickhouse.client import ClickHouseClient, connect
from halo_mcp.store.clickhouse.filters import CompiledFilter, Params, compile_filter
from halo_mcp.store.clickhouse.location import ClickHouseLocation
from halo_mcp.store.clickhouse.materialize import build_index, index_status
from halo_mcp.store.clickhouse.schema import table_shape
from halo_mcp.store.clickhouse.sources import SpanSource
from halo_mcp.store.errors import (
    QueryTimeoutError,
    StoreError,
    UnknownIdError,
)
from halo_mcp.store.filters import coerce_filter
from halo_mcp.store.formats.payload import SpanPayload, otel_payload, span_text
from halo_mcp.store.models import (
    ErrorSignature,
    FilterArg,
    FirstError,
    LoadReport,
    MatchCount,
    NameCount,
    Overview,
    SearchMatch,
    SearchQuery,
    SearchResult,
    SpanFilter,
    SpanNode,
    SpanPage,
    SpanQuery,
    SqlQuery,
    TokenTotals,
    ToolStats,
    TracePage,
    TraceQuery,
    TraceSummary,
    TraceTree,
    TreeQuery,
)
from halo_mcp.store.signatures import normalize_message
from halo_mcp.store.span_queries import excerpt
from halo_mcp.store.time_limit import DEFAULT_QUERY_TIME_LIMIT, NARROW_HINT

#: The window scanned when the caller gives none: this long, ending at the newest span.
DEFAULT_WINDOW = timedelta(days=7)
#: Distinct (span name, message) error groups read to build signatures (top by count).
SIGNATURE_GROUPS = 2000
TOP_NAMES = 50
TOP_TOOLS = 100
TOP_SIGNATURES = 20
SAMPLE_TRACES = 5
SIGNATURE_EXAMPLES = 3

# The normalized row in the file index's column layout (query.COL), so the file store's
# view building applies unchanged.
_ROW_EXPR = {
    "trace_id": "trace_id",
    "span_id": "span_id",
    "parent_span_id": "parent_span_id",
    "name": "name",
    "kind": "kind",
    "status": "status",
    "error_message": "error_message",
    "start_ns": "start_ns",
    "end_ns": "end_ns",
    "service": "service",
    "agent": "agent",
    "model": "model",
    "tool_name": "tool_name",
    "input_tokens": "input_tokens",
    "output_tokens": "output_tokens",
    "session_id": "session_id",
    "duration_ns": "greatest(0, end_ns - start_ns)",
    "tokens": "ifNull(input_tokens, 0) + ifNull(output_tokens, 0)",
}
_ROW_NAMES = [name for name in query.ROW_COLUMNS if name in _ROW_EXPR]
_ROW_SELECT = ", ".join(f"{_ROW_EXPR[name]} AS {name}" for name in _ROW_NAMES)
_SORT = query.sort_columns(start_time="start_ns", duration="duration_ns", tokens="tokens")
_TRACE_SORT = query.sort_columns(start_time="t_start", duration="t_duration", errors="t_errors")


P = ParamSpec("P")
R = TypeVar("R")


def _request(
    method: Callable[Concatenate[ClickHouseTraceStore, P], R],
) -> Callable[Concatenate[ClickHouseTraceStore, P], R]:
    """One request of the read API: its statements share the store's time limit (each gets
    what is left of it as max_execution_time), so a request with several statements is
    bounded as a whole, like the file store's."""

    @functools.wraps(method)
    def wrapped(self: ClickHouseTraceStore, *args: P.args, **kwargs: P.kwargs) -> R:
        state = self._requests
        outer = getattr(state, "started", None) is None
        if outer:
            state.started = time.monotonic()
        try:
            return method(self, *args, **kwargs)
        finally:
            if outer:
                state.started = None

    return wrapped


def _as_row(values: Sequence[Any]) -> tuple[Any, ...]:
    """A ClickHouse row (in _ROW_NAMES order) -> a tuple in query.ROW_COLUMNS layout."""
    by_name = dict(zip(_ROW_NAMES, values, strict=True))
    return tuple(by_name.get(name) for name in query.ROW_COLUMNS)


def _from_ns(ns: int) -> datetime:
    seconds, rest = divmod(ns, 1_000_000_000)
    return datetime.fromtimestamp(seconds, tz=timezone.utc).replace(microsecond=rest // 1000)


def _ns(value: datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return int(value.timestamp()) * 1_000_000_000 + value.microsecond * 1000


class ClickHouseTraceStore(TraceReader):
    """The store's read API over one ClickHouse trace table (`open_clickhouse` opens one).

    `query_time_limit` (seconds, None for none) is each statement's max_execution_time:
    ClickHouse stops a longer one and QueryTimeoutError says how to narrow it."""

    def __init__(
        self,
        location: ClickHouseLocation,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        query_time_limit: float | None = DEFAULT_QUERY_TIME_LIMIT,
        companion: bool = True,
    ) -> None:
        """Connect, check the table's layout, and open the store over its window: from the
        companion table (materialize.py) when it covers the window, extended first when it
        lags behind; else, or with `companion` False, from the exporter table in place."""
        self._client = connect(location)
        try:
            self._open(location, since, until, query_time_limit, companion)
        except StoreError:
            self._client.close()
            raise

    def _open(
        self,
        location: ClickHouseLocation,
        since: datetime | None,
        until: datetime | None,
        query_time_limit: float | None,
        companion: bool,
    ) -> None:
        client = self._client
        self.location = location
        self.shape = table_shape(client, location)
        self.query_time_limit = query_time_limit
        self._lock = threading.Lock()
        self._requests = threading.local()
        self.table = location.qualified_table
        newest = client.rows(f"SELECT toUnixTimestamp64Nano(max(Timestamp)) FROM {self.table}")
        end = _ns(until) if until is not None else int(newest[0][0] or 0)
        start = _ns(since) if since is not None else end - int(DEFAULT_WINDOW.total_seconds() * 1e9)
        self.window_ns = (start, end)
        self.window = (
            "Timestamp >= fromUnixTimestamp64Nano(toInt64({ws:Int64})) "
            "AND Timestamp <= fromUnixTimestamp64Nano(toInt64({we:Int64}))"
        )
        self.notes: list[str] = []
        self._companion = companion
        self._counted = self.table  # the table whose rows are counted: the source's
        self.source: SpanSource = (
            self._choose_source(client, location, min(end, int(newest[0][0] or 0)))
            if companion
            else SpanSource(raw_table=self.table)
        )
        totals = self._rows(
            f"SELECT count(), uniqExact(TraceId) FROM {self._counted} WHERE {self.window}",
            self._params(),
        )
        self._span_total, self._trace_total = int(totals[0][0]), int(totals[0][1])
        self.paths: list[Path | str] = [location.display]
        self.report = LoadReport(
            files=[],
            spans=self._span_total,
            bad_lines=0,
            bad_line_examples=[],
            index_path=self._counted if self.source.materialized else None,
        )

    def _choose_source(
        self, client: ClickHouseClient, location: ClickHouseLocation, end: int
    ) -> SpanSource:
        """The companion table when it holds every span started by `end` (extending it
        first when it exists and lags behind), else the exporter table in place, saying why
        in `notes`."""
        status = index_status(client, location, end)
        if status.behind:
            try:
                build_index(client, location)
            except StoreError as exc:  # read-only access: read in place
                self.notes.append(f"could not extend {status.table} ({exc})")
            status = index_status(client, location, end)
        if status.ready:
            self._counted = status.table
            return SpanSource(raw_table=self.table, table=status.table)
        self.notes.append(status.reason)
        return SpanSource(raw_table=self.table)

    # -- plumbing ------------------------------------------------------------------------

    def _params(self) -> Params:
        params = Params()
        params.values.update({"ws": self.window_ns[0], "we": self.window_ns[1]})
        return params

    def _rows(self, sql: str, params: Params) -> list[tuple[Any, ...]]:
        limit = self.query_time_limit
        started = getattr(self._requests, "started", None)
        if limit is not None and started is not None:
            left = limit - (time.monotonic() - started)
            if left <= 0:
                raise QueryTimeoutError(
                    f"the request ran past the time limit of {limit:g}s and was stopped; "
                    f"{NARROW_HINT}"
                )
            limit = left
        return self._client.rows(sql, params.values, time_limit=limit)

    def _compile(self, flt: SpanFilter, params: Params) -> CompiledFilter:
        return compile_filter(flt, params, self.source, self.window)

    def _inherits(self, compiled: CompiledFilter) -> bool:
        """Whether a read gets agent/service inherited in SQL: always from the companion
        table (stored), else only when the filter needs them."""
        return compiled.needs_inheritance or self.source.materialized

    def _spans_source(self, compiled: CompiledFilter, inherit: bool) -> str:
        """A subquery of normalized spans that can match: with inherited agent/service when
        `inherit`, else the rows alone (agent/service are then the spans' own)."""
        traces = compiled.trace_where()
        if self.source.materialized:
            # No trace needs to stay whole: every condition narrows the rows read.
            where = " AND ".join([self.window, traces, *compiled.started])
            return self.source.inherited(where, compiled.matches)
        if inherit:
            rows = self.source.spans(f"{self.window} AND {traces}", compiled.matches)
            candidates = (
                f"SELECT DISTINCT trace_id FROM ({rows}) WHERE {compiled.span_where(False)}"
            )
            where = f"{self.window} AND TraceId IN ({candidates})"
            return self.source.inherited(where, compiled.matches)
        inner = self.source.spans(f"{self.window} AND {traces}", compiled.matches)
        return f"SELECT *, own_agent AS agent, own_service AS service FROM ({inner})"

    def _select_rows(
        self, compiled: CompiledFilter, tail: str, params: Params, extra_where: str = "1"
    ) -> list[tuple[Any, ...]]:
        """Matching spans (in query.ROW_COLUMNS layout) with inherited agent/service. When
        the filter does not need inheritance, rows are chosen first and only their traces
        are walked."""
        inherit = self._inherits(compiled)
        source = self._spans_source(compiled, inherit)
        where = f"{compiled.span_where(inherit)} AND {extra_where}"
        rows = self._rows(f"SELECT {_ROW_SELECT} FROM ({source}) WHERE {where} {tail}", params)
        rows = [_as_row(r) for r in rows]
        return rows if inherit else self._with_inherited(rows)

    def _with_inherited(self, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        if not rows:
            return rows
        col = query.COL
        params = self._params()
        traces = params.add(sorted({r[col["trace_id"]] for r in rows}), "Array(String)")
        found = self._rows(
            f"SELECT trace_id, span_id, agent, service FROM "
            f"({self.source.inherited(f'{self.window} AND TraceId IN {traces}')})",
            params,
        )
        by_id = {(t, s): (a, sv) for t, s, a, sv in found}
        out = []
        for row in rows:
            agent, service = by_id.get((row[col["trace_id"]], row[col["span_id"]]), (None, None))
            values = list(row)
            values[col["agent"]], values[col["service"]] = agent, service
            out.append(tuple(values))
        return out

    def _payloads(self, rows: Sequence[Sequence[Any]]) -> dict[tuple[str, str], SpanPayload]:
        """The content of these spans, read from their exporter columns."""
        if not rows:
            return {}
        col = query.COL
        params = self._params()
        pairs = params.add(
            [(r[col["trace_id"]], r[col["span_id"]]) for r in rows], "Array(Tuple(String, String))"
        )
        # The rows' own start times and trace ids let ClickHouse skip all but a few parts
        # and granules (partitions by day, the bloom filter on TraceId).
        starts = [int(r[col["start_ns"]]) for r in rows]
        first, last = params.add(min(starts), "Int64"), params.add(max(starts), "Int64")
        traces = params.add(sorted({r[col["trace_id"]] for r in rows}), "Array(String)")
        found = self._rows(
            "SELECT TraceId, SpanId, SpanAttributes, ResourceAttributes, StatusMessage, "
            "arrayMap(t -> toString(toUnixTimestamp64Nano(t)), `Events.Timestamp`), "
            f"`Events.Name`, `Events.Attributes` FROM {self.table} WHERE {self.window} "
            f"AND Timestamp >= fromUnixTimestamp64Nano(toInt64({first})) "
            f"AND Timestamp <= fromUnixTimestamp64Nano(toInt64({last})) "
            f"AND TraceId IN {traces} AND (TraceId, SpanId) IN {pairs}",
            params,
        )
        out: dict[tuple[str, str], SpanPayload] = {}
        for trace_id, span_id, attrs, resource, message, times, names, event_attrs in found:
            span = {
                "attributes": dict(attrs),
                "status": {"message": message} if message else None,
                "events": [
                    {"timeUnixNano": t, "name": n, "attributes": dict(a)}
                    for t, n, a in zip(times, names, event_attrs, strict=False)
                ],
            }
            out.setdefault((trace_id, span_id), otel_payload(span, {"attributes": dict(resource)}))
        return out

    def _views(
        self, rows: Sequence[Sequence[Any]], fields: Sequence[str], max_chars: int
    ) -> tuple[list[Any], int]:
        clipper = query.Clipper(max_chars)
        needs_content = any(f in query.CONTENT_FIELDS for f in fields)
        payloads = self._payloads(rows) if needs_content else {}
        col = query.COL
        views = [
            query.make_view(
                row,
                [f for f in fields if f != "source"],
                clipper,
                lambda r: None,  # no source file: the span lives in ClickHouse
                lambda r: payloads.get((r[col["trace_id"]], r[col["span_id"]])),
            )
            for row in rows
        ]
        return views, clipper.clipped

    # -- spans ---------------------------------------------------------------------------

    @_request
    def _query_spans(self, q: SpanQuery) -> SpanPage:
        flt, sort, limit, cursor, max_chars = q.filter, q.sort, q.limit, q.cursor, q.max_chars
        column, direction = _SORT[sort]
        params = self._params()
        compiled = self._compile(flt, params)
        total = self._count(compiled, params)[0]
        qkey = query.query_key("ch", flt.model_dump(mode="json"), sort)
        after = (_ROW_EXPR[column], "trace_id", "span_id")
        extra = _after(cursor, sort, qkey, direction, after, params) or "1"
        tail = (
            f"ORDER BY {_ROW_EXPR[column]} {direction}, trace_id {direction}, span_id {direction} "
            f"LIMIT {limit + 1}"
        )
        rows = self._select_rows(compiled, tail, params, extra)
        more = len(rows) > limit
        rows = rows[:limit]
        views, clipped = self._views(rows, q.fields, max_chars)
        next_cursor = None
        if more:
            last = rows[-1]
            col = query.COL
            next_cursor = query.encode_cursor(
                sort, last[col[column]], (last[col["trace_id"]], last[col["span_id"]]), qkey
            )
        return SpanPage(
            spans=views, total=total, next_cursor=next_cursor, max_chars=max_chars,
            clipped_values=clipped,
        )  # fmt: skip

    def _count(self, compiled: CompiledFilter, params: Params) -> tuple[int, int]:
        inherit = self._inherits(compiled)
        source = self._spans_source(compiled, inherit)
        rows = self._rows(
            f"SELECT count(), uniqExact(trace_id) FROM ({source}) "
            f"WHERE {compiled.span_where(inherit)}",
            params,
        )
        return int(rows[0][0]), int(rows[0][1])

    @_request
    def count(self, filter: FilterArg = None) -> MatchCount:
        """How many spans and traces `filter` selects, and how many traces exist."""
        params = self._params()
        spans, traces = self._count(self._compile(coerce_filter(filter), params), params)
        return MatchCount(spans=spans, traces=traces, traces_in_scope=self._trace_total)

    @_request
    def seen(self, filter: FilterArg = None) -> tuple[datetime | None, datetime | None]:
        """When the first and the last of the spans `filter` selects started; (None, None)
        when none match."""
        params = self._params()
        compiled = self._compile(coerce_filter(filter), params)
        inherit = self._inherits(compiled)
        first, last, spans = self._rows(
            f"SELECT min(start_ns), max(start_ns), count() FROM "
            f"({self._spans_source(compiled, inherit)}) WHERE {compiled.span_where(inherit)}",
            params,
        )[0]
        if not spans:
            return None, None
        return query.from_ns(int(first)), query.from_ns(int(last))

    def _query_sql(self, q: SqlQuery) -> sql_views.SqlResult:
        """One read-only SELECT over the documented views of this window's spans, inside
        ClickHouse (clickhouse/sql.py), bounded in rows, characters and time; `max_steps`
        (SQLite's instruction budget) has no ClickHouse counterpart. Raises SqlError."""
        return clickhouse_sql.run_sql(
            self._client, self.source, self.window, self._params().values, q
        )

    # -- traces --------------------------------------------------------------------------

    def _summaries(self, trace_condition: str, params: Params, tail: str) -> list[TraceSummary]:
        inner = self.source.spans(f"{self.window} AND {trace_condition}")
        rows = self._rows(
            "SELECT trace_id, "
            "argMinIf(name, start_ns, parent_span_id IS NULL) AS root_name, "
            "countIf(parent_span_id IS NULL) > 0 AS has_root, "
            "argMinIf(own_service, start_ns, parent_span_id IS NULL) AS root_service, "
            "argMinIf(own_service, start_ns, own_service IS NOT NULL) AS any_service, "
            "arraySort(groupUniqArrayIf(assumeNotNull(own_agent), own_agent IS NOT NULL)), "
            "arraySort(groupUniqArrayIf(assumeNotNull(model), model IS NOT NULL)), "
            "count() AS span_count, countIf(status = 'error') AS t_errors, "
            "min(start_ns) AS t_start, greatest(0, max(end_ns) - min(start_ns)) AS t_duration, "
            "sum(ifNull(input_tokens, 0)), sum(ifNull(output_tokens, 0)), "
            "argMinIf(span_id, start_ns, status = 'error'), "
            "argMinIf(name, start_ns, status = 'error'), "
            "argMinIf(error_message, start_ns, status = 'error') "
            f"FROM ({inner}) GROUP BY trace_id {tail}",
            params,
        )
        out = []
        for (
            trace_id, root_name, has_root, root_service, any_service, agents, models,
            spans, errors, start, duration, tin, tout, err_span, err_name, err_message,
        ) in rows:  # fmt: skip
            out.append(
                TraceSummary(
                    trace_id=trace_id,
                    root_name=root_name if has_root else None,
                    service=(root_service if has_root else None) or any_service,
                    agents=list(agents),
                    models=list(models),
                    span_count=int(spans),
                    error_count=int(errors),
                    start_time=_from_ns(int(start)),
                    duration_ms=int(duration) / 1e6,
                    input_tokens=int(tin),
                    output_tokens=int(tout),
                    first_error=FirstError(
                        span_id=err_span, name=err_name or "", message=err_message
                    )
                    if errors
                    else None,
                )
            )
        return out

    @_request
    def _query_traces(self, q: TraceQuery) -> TracePage:
        flt, sort, limit, cursor = q.filter, q.sort, q.limit, q.cursor
        column, direction = _TRACE_SORT[sort]
        params = self._params()
        compiled = self._compile(flt, params)
        inherit = self._inherits(compiled)
        matching = (
            f"SELECT DISTINCT trace_id FROM ({self._spans_source(compiled, inherit)}) "
            f"WHERE {compiled.span_where(inherit)}"
        )
        total = int(self._rows(f"SELECT count() FROM ({matching})", params)[0][0])
        qkey = query.query_key("ch-traces", flt.model_dump(mode="json"), sort)
        after = _after(cursor, sort, qkey, direction, (column, "trace_id"), params)
        having = f"HAVING {after}" if after else ""
        summaries = self._summaries(
            f"TraceId IN ({matching})",
            params,
            f"{having} ORDER BY {column} {direction}, trace_id {direction} LIMIT {limit + 1}",
        )
        more = len(summaries) > limit
        summaries = summaries[:limit]
        next_cursor = None
        if more:
            last = summaries[-1]
            key = {
                "t_start": _ns(last.start_time),
                "t_duration": round(last.duration_ms * 1e6),
                "t_errors": last.error_count,
            }[column]
            next_cursor = query.encode_cursor(sort, key, (last.trace_id, ""), qkey)
        return TracePage(traces=summaries, total=total, next_cursor=next_cursor)

    @_request
    def trace_summary(self, trace_id: str) -> TraceSummary:
        """One trace's summary. Raises UnknownIdError naming how to find valid ids."""
        params = self._params()
        found = self._summaries(f"TraceId = {params.add(trace_id)}", params, "")
        if not found:
            raise UnknownIdError(
                f"trace id {trace_id!r} is not in {self.location.display} within the window "
                f"({self._trace_total} traces); list valid ids with query_traces, or see "
                "overview().sample_trace_ids"
            )
        return found[0]

    @_request
    def _trace_tree(self, q: TreeQuery) -> TraceTree:
        trace_id = q.trace_id
        summary = self.trace_summary(trace_id)
        params = self._params()
        bound = params.add(trace_id)
        source = self.source.inherited(f"{self.window} AND TraceId = {bound}")
        rows = [
            _as_row(r)
            for r in self._rows(
                f"SELECT {_ROW_SELECT} FROM ({source}) ORDER BY start_ns, span_id", params
            )
        ]
        col = query.COL
        ordered, children = query.depth_first(rows, q.limit)
        views, _ = self._views([r for r, _ in ordered], q.fields, q.max_chars)
        nodes = [
            SpanNode(span=view, depth=depth, children=len(children.get(row[col["span_id"]], [])))
            for (row, depth), view in zip(ordered, views, strict=True)
        ]
        return TraceTree(
            trace_id=trace_id, summary=summary, nodes=nodes, truncated=len(ordered) < len(rows)
        )

    @_request
    def raw_span(self, trace_id: str, span_id: str) -> dict[str, Any]:
        """The span as the exporter stored it (one row of the table, as a dict)."""
        params = self._params()
        columns = [c for c in self.shape.columns if not c.startswith(("Events.", "Links."))]
        rows = self._rows(
            f"SELECT {', '.join(columns)} FROM {self.table} WHERE {self.window} "
            f"AND TraceId = {params.add(trace_id)} AND SpanId = {params.add(span_id)} LIMIT 1",
            params,
        )
        if not rows:
            raise UnknownIdError(
                f"span {span_id!r} of trace {trace_id!r} is not in {self.location.display} "
                "within the window; find span ids with query_spans or trace_tree"
            )
        return {
            name: (dict(value) if isinstance(value, dict) else value)
            for name, value in zip(columns, rows[0], strict=True)
        }

    @_request
    def _search(self, q: SearchQuery) -> SearchResult:
        """RE2, inside ClickHouse; excerpts by Python's re."""
        pattern, base, limit = q.pattern, q.filter, q.limit
        flt = base.model_copy(update={"text": pattern}) if base.text is None else base
        params = self._params()
        compiled = self._compile(flt, params)
        if base.text is not None:
            compiled.raw.append(f"match({_content()}, {params.add('(?i)' + pattern)})")
        total = self._count(compiled, params)[0]
        rows = self._select_rows(
            compiled, f"ORDER BY start_ns, trace_id, span_id LIMIT {limit}", params
        )
        payloads = self._payloads(rows)
        rx = _python_regex(pattern)
        col = query.COL
        matches = []
        for row in rows:
            payload = payloads.get((row[col["trace_id"]], row[col["span_id"]]))
            text = span_text(payload) if payload is not None else ""
            found = rx.search(text) if rx is not None else None
            start, end = (found.start(), found.end()) if found else (0, 0)
            matches.append(
                SearchMatch(
                    trace_id=row[col["trace_id"]],
                    span_id=row[col["span_id"]],
                    span_name=row[col["name"]] or "",
                    excerpt=excerpt(text, start, end, q.context_chars),
                )
            )
        return SearchResult(
            pattern=pattern, matches=matches, spans_matched=total, truncated=total > len(matches)
        )

    @_request
    def known_ids(
        self, trace_ids: Sequence[str] = (), span_ids: Sequence[str] = ()
    ) -> tuple[set[str], set[str]]:
        """The subsets of the given trace and span ids that exist within the window."""
        found_traces: set[str] = set()
        found_spans: set[str] = set()
        for column, ids, out in (
            ("TraceId", list(dict.fromkeys(trace_ids)), found_traces),
            ("SpanId", list(dict.fromkeys(span_ids)), found_spans),
        ):
            if ids:
                params = self._params()
                rows = self._rows(
                    f"SELECT DISTINCT {column} FROM {self.table} WHERE {self.window} "
                    f"AND {column} IN {params.add(ids, 'Array(String)')}",
                    params,
                )
                out.update(r[0] for r in rows)
        return found_traces, found_spans

    # -- overview ------------------------------------------------------------------------

    @_request
    def overview(self) -> Overview:
        """Counts, time range, services, agents, models, tools, kinds, tokens and the top
        error signatures of the window, each a bounded aggregate inside ClickHouse."""
        params = self._params()
        # Only services and agents need inheritance (the costly pass): everything else
        # reads the spans' own columns. Names of several columns share one pass.
        spans = self.source.spans(self.window)
        rows = self._rows(
            "SELECT count(), countIf(status = 'error'), "
            "uniqExactIf(trace_id, status = 'error'), min(start_ns), max(end_ns), "
            "sum(ifNull(input_tokens, 0)), sum(ifNull(output_tokens, 0)) "
            f"FROM ({spans})",
            params,
        )
        n_spans, err_spans, err_traces, start, end, tin, tout = rows[0]
        n_traces = self._trace_total  # counted when the store opened, over the same window
        if self.source.materialized:  # all four are stored: one pass
            names = self._top_names(
                self.source.inherited(self.window, columns=("model", "kind")),
                ("model", "kind", "service", "agent"),
                params,
            )
        else:
            names = {
                **self._top_names(spans, ("model", "kind"), params),
                **self._top_names(
                    self.source.inherited(self.window, columns=()), ("service", "agent"), params
                ),
            }
        tools = [
            ToolStats(name=str(n), calls=int(c), errors=int(e))
            for n, c, e in self._rows(
                f"SELECT tool_name AS n, count() AS c, countIf(status = 'error') FROM ({spans}) "
                f"WHERE n IS NOT NULL GROUP BY n ORDER BY c DESC, n LIMIT {TOP_TOOLS}",
                params,
            )
        ]
        signatures = self._signatures(params, spans)
        sample: list[str] = []
        for signature in signatures[:SAMPLE_TRACES]:
            if signature.example_trace_ids and signature.example_trace_ids[0] not in sample:
                sample.append(signature.example_trace_ids[0])
            if len(sample) >= 2:
                break
        for (trace_id,) in self._rows(
            f"SELECT DISTINCT TraceId FROM {self._counted} WHERE {self.window} ORDER BY TraceId "
            "LIMIT 10",
            params,
        ):
            if len(sample) < SAMPLE_TRACES and trace_id not in sample:
                sample.append(trace_id)
        return Overview(
            files=[],
            traces=int(n_traces),
            spans=int(n_spans),
            error_spans=int(err_spans),
            error_traces=int(err_traces),
            bad_lines=0,
            start_time=query.from_ns(int(start)) if n_spans else None,
            end_time=query.from_ns(int(end)) if n_spans else None,
            services=names["service"],
            agents=names["agent"],
            models=names["model"],
            tools=tools,
            span_kinds=names["kind"],
            tokens=TokenTotals(input=int(tin), output=int(tout)),
            error_signatures=signatures,
            sample_trace_ids=sample,
            notes=list(self.notes),
        )

    def _top_names(
        self, spans: str, columns: Sequence[str], params: Params
    ) -> dict[str, list[NameCount]]:
        """The TOP_NAMES most frequent values of each column, in one statement: in one pass
        over `spans` read in place (normalizing is the cost), else one light GROUP BY per
        column (each reads one stored column)."""
        if self.source.materialized:
            groups = " UNION ALL ".join(
                f"SELECT '{c}' AS w, CAST({c} AS Nullable(String)) AS n, count() AS c "
                f"FROM ({spans}) WHERE n IS NOT NULL GROUP BY n"
                for c in columns
            )
        else:
            pairs = ", ".join(f"('{c}', CAST({c} AS Nullable(String)))" for c in columns)
            groups = (
                f"SELECT pair.1 AS w, pair.2 AS n, count() AS c FROM ({spans}) "
                f"ARRAY JOIN [{pairs}] AS pair WHERE n IS NOT NULL GROUP BY w, n"
            )
        found = self._rows(
            f"SELECT w, n, c FROM ({groups}) ORDER BY w, c DESC, n LIMIT {TOP_NAMES} BY w",
            params,
        )
        out: dict[str, list[NameCount]] = {c: [] for c in columns}
        for which, name, count in found:
            out[which].append(NameCount(name=str(name), count=int(count)))
        return out

    def _signatures(self, params: Params, spans: str) -> list[ErrorSignature]:
        """Error signatures as ingestion groups them: by (tool or span name, normalized
        message). ClickHouse lists the distinct raw messages (top SIGNATURE_GROUPS), Python
        normalizes them, and ClickHouse groups again by the normalized text, so trace counts
        are exact and only the top groups come back."""
        name = "ifNull(tool_name, name)"
        raw = self._rows(
            f"SELECT DISTINCT ifNull(error_message, '') AS m FROM ({spans}) "
            f"WHERE status = 'error' LIMIT {SIGNATURE_GROUPS}",
            params,
        )
        messages = [str(m) for (m,) in raw]
        normalized = [normalize_message(m) if m else "" for m in messages]
        signature = (
            f"transform(ifNull(error_message, ''), {params.add(messages, 'Array(String)')}, "
            f"{params.add(normalized, 'Array(String)')}, ifNull(error_message, ''))"
        )
        k = SIGNATURE_EXAMPLES
        # Per trace first, then per signature: the earliest k traces (by their first error)
        # hold the earliest k error spans, so both example lists stay exact and small.
        rows = self._rows(
            f"SELECT n, sig, count() AS traces, sum(c) AS spans, "
            f"groupArraySorted({k})((first, trace_id)), "
            f"arraySlice(arraySort(arrayFlatten(arrayMap(x -> x.2, "
            f"groupArraySorted({k})((first, first_spans))))), 1, {k}) "
            f"FROM (SELECT {name} AS n, {signature} AS sig, trace_id, min(start_ns) AS first, "
            f"count() AS c, groupArraySorted({k})((start_ns, span_id)) AS first_spans "
            f"FROM ({spans}) WHERE status = 'error' GROUP BY n, sig, trace_id) "
            f"GROUP BY n, sig ORDER BY traces DESC, spans DESC, n, sig LIMIT {TOP_SIGNATURES}",
            params,
        )
        out = []
        for n, sig, traces, count, first_traces, first_spans in rows:
            trace_ids = [trace_id for _, trace_id in first_traces]
            out.append(
                ErrorSignature(
                    span_name=str(n or ""),
                    message=str(sig),
                    traces=int(traces),
                    spans=int(count),
                    example_trace_ids=trace_ids,
                    example_span_ids=[span_id for _, span_id in first_spans],
                )
            )
        return out

    def within(self, since: datetime | None, until: datetime | None) -> ClickHouseTraceStore:
        """Another store over the same table with the window [since, until] (a bound left
        None keeps the default: the newest span, and 7 days before `until`)."""
        return open_clickhouse(
            self.location,
            since=since,
            until=until,
            query_time_limit=self.query_time_limit,
            companion=self._companion,
        )

    @contextlib.contextmanager
    def aggregates(self, *, time_limit: float | None = None) -> Iterator[ClickHouseAggregates]:
        """Whole-set aggregate reads (triage, re-checks) over the window, each inside
        ClickHouse. Unlimited in time unless `time_limit` (seconds) is given."""
        yield ClickHouseAggregates(
            self._client, self.source, self.window, self.window_ns, self._trace_total, time_limit
        )

    def inputs_changed(self) -> bool:
        """A ClickHouse table is read live: every query sees what is there now."""
        return False

    def release_memory(self) -> None:
        """Nothing to give back: the data and its caches live in ClickHouse."""

    def close(self) -> None:
        with self._lock:
            self._client.close()


def _content() -> str:
    from halo_mcp.store.clickhouse.filters import CONTENT

    return CONTENT


def _python_regex(pattern: str) -> Any:
    """The pattern for excerpts (the match itself was decided by ClickHouse)."""
    import re

    try:
        return re.compile(pattern, re.IGNORECASE)
    except re.error:
        return None


def _after(
    cursor: str | None, sort: str, qkey: str, direction: str, columns: Sequence[str], params: Params
) -> str | None:
    """The keyset condition selecting the rows after the cursor's: `columns` are the sort
    key, then the ids that break ties (as many as the cursor holds); None without one."""
    if not cursor:
        return None
    key, ids = query.decode_cursor(cursor, sort, qkey, _ids)
    op = ">" if direction == "ASC" else "<"
    values = [params.add(key, "Int64"), *(params.add(i) for i in ids[: len(columns) - 1])]
    return f"({', '.join(columns)}) {op} ({', '.join(values)})"


def _ids(tie: object) -> tuple[str, str]:
    """The tie-breaker of a ClickHouse cursor: (trace id, span id)."""
    if not isinstance(tie, list) or len(tie) != 2:
        raise ValueError("not a pair of ids")
    return str(tie[0]), str(tie[1])


#: Open a store over a ClickHouse table (see ClickHouseTraceStore.__init__).
open_clickhouse = ClickHouseTraceStore
