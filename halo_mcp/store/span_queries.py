"""The span queries behind TraceStore: pages of spans, counts, regex search, one raw span,
known ids. Each takes the request's Session (connection, hit tables, files, totals)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from halo_mcp.store import content, query
from halo_mcp.store.errors import StoreError, UnknownIdError
from halo_mcp.store.filters import Where, coerce_filter, compile_filter, traces_matching
from halo_mcp.store.formats import SpanPayload, span_text
from halo_mcp.store.models import (
    FilterArg,
    MatchCount,
    SearchMatch,
    SearchQuery,
    SearchResult,
    SpanFilter,
    SpanPage,
    SpanQuery,
    SpanSource,
    SpanView,
)
from halo_mcp.store.query import COL, ROW_SELECT, Clipper
from halo_mcp.store.raw_lines import LineReader
from halo_mcp.store.session import Session
from halo_mcp.store.shards import count_where, spans_where


def query_spans(s: Session, q: SpanQuery) -> SpanPage:
    """Spans matching the query's filter, one page (arguments checked by TraceReader)."""
    flt, sort, limit, cursor, max_chars = q.filter, q.sort, q.limit, q.cursor, q.max_chars
    column, direction = query.SPAN_SORT_SQL[sort]
    where = compile_filter(s, flt)
    total = _count_spans(s, flt, where)
    qkey = query.query_key(flt.model_dump(mode="json"), sort)
    page_clauses, page_params = list(where[0]), list(where[1])
    if cursor:
        key, row_id = query.decode_cursor(cursor, sort, qkey, int)
        clause, extra = query.keyset(column, direction, key, row_id, "s")
        page_clauses.append(clause)
        page_params += extra
    source, page_params = spans_where(s.conn, page_clauses, page_params)
    sql = (
        f"{ROW_SELECT} FROM {source} ORDER BY s.{column} {direction}, s.id {direction} "
        f"LIMIT {limit + 1}"
    )
    rows = s.conn.execute(sql, page_params).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    views, clipped = views_of(s, rows, q.fields, max_chars)
    next_cursor = None
    if more:
        last = rows[-1]
        next_cursor = query.encode_cursor(sort, last[COL[column]], last[0], qkey)
    return SpanPage(
        spans=views, total=total, next_cursor=next_cursor, max_chars=max_chars,
        clipped_values=clipped,
    )  # fmt: skip


def count(s: Session, filter: FilterArg = None) -> MatchCount:
    """How many spans and traces `filter` selects, and how many traces exist."""
    flt = coerce_filter(filter)
    where = compile_filter(s, flt)
    clauses, params = where
    if not clauses:
        return MatchCount(spans=s.span_total, traces=s.trace_total, traces_in_scope=s.trace_total)
    if query.tally_covers(flt):  # spans from the tally, traces kept for pages
        spans = _count_spans(s, flt, where)
        traces = traces_matching(s, flt, where)[1]
        return MatchCount(spans=spans, traces=traces, traces_in_scope=s.trace_total)
    source, params = spans_where(s.conn, clauses, params, "s.trace_id")
    spans, traces = s.conn.execute(
        f"SELECT COUNT(*), COUNT(DISTINCT s.trace_id) FROM {source}", params
    ).fetchone()
    return MatchCount(spans=spans, traces=traces, traces_in_scope=s.trace_total)


def seen(s: Session, filter: FilterArg = None) -> tuple[datetime | None, datetime | None]:
    """When the first and the last of the spans `filter` selects started (a finding's
    first_seen / last_seen); (None, None) when none match."""
    clauses, params = compile_filter(s, coerce_filter(filter))
    source, params = spans_where(s.conn, clauses, params, "s.start_ns")
    first, last = s.conn.execute(
        f"SELECT MIN(s.start_ns), MAX(s.start_ns) FROM {source}", params
    ).fetchone()
    return query.from_ns(first), query.from_ns(last)


def search(s: Session, q: SearchQuery) -> SearchResult:
    """Regex search over span content, optionally within spans the query's filter selects."""
    pattern, flt, limit = q.pattern, q.filter, q.limit
    rx = content.compile_text(pattern)
    if flt.text is None:
        # One filter: a narrow filter (a trace id...) then tests its few spans instead
        # of scanning every file for the pattern first.
        clauses, params = compile_filter(s, flt.model_copy(update={"text": pattern}))
    else:
        clauses, params = compile_filter(s, flt)
        more, more_params = compile_filter(s, SpanFilter(text=pattern))
        clauses += more[-1:]
        params += more_params
    total = count_where(s.conn, clauses, params)
    source, params = spans_where(s.conn, clauses, params)
    rows = s.conn.execute(
        f"{ROW_SELECT} FROM {source} ORDER BY s.start_ns, s.id LIMIT {limit}", params
    ).fetchall()
    matches = []
    with s.lines() as lines:
        for row in rows:
            payload = _payload(row, lines)
            text = span_text(payload) if payload is not None else ""
            found = rx.search(text)
            if found is None:
                continue
            matches.append(
                SearchMatch(
                    trace_id=row[COL["trace_id"]],
                    span_id=row[COL["span_id"]],
                    span_name=row[COL["name"]] or "",
                    excerpt=excerpt(text, found.start(), found.end(), q.context_chars),
                )
            )
    return SearchResult(
        pattern=pattern, matches=matches, spans_matched=total, truncated=total > len(matches)
    )


def raw_span(s: Session, trace_id: str, span_id: str) -> dict[str, Any]:
    """The span's raw payload as parsed from its source line (read by offset)."""
    row = s.conn.execute(
        f"{ROW_SELECT} FROM spans s WHERE s.trace_id = ? AND s.span_id = ?", (trace_id, span_id)
    ).fetchone()
    if row is None:
        raise UnknownIdError(
            f"span {span_id!r} of trace {trace_id!r} is not in this trace set; find span "
            "ids with query_spans(SpanFilter(trace_ids=[...])) or trace_tree"
        )
    with s.lines() as lines:
        payload = _payload(row, lines)
    if payload is None:
        path = s.files.path_of(row[COL["file_id"]])
        raise StoreError(
            f"span {span_id!r} could not be read back from {path}"
            "; open the store again to re-index the file"
        )
    return payload.raw


def known_ids(
    s: Session, trace_ids: Sequence[str] = (), span_ids: Sequence[str] = ()
) -> tuple[set[str], set[str]]:
    """The subsets of the given trace and span ids that exist in the store."""
    found_traces: set[str] = set()
    found_spans: set[str] = set()
    for table, column, ids, out in (
        ("traces", "trace_id", list(dict.fromkeys(trace_ids)), found_traces),
        ("spans", "span_id", list(dict.fromkeys(span_ids)), found_spans),
    ):
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            out.update(
                r[0]
                for r in s.conn.execute(
                    f"SELECT DISTINCT {column} FROM {table} WHERE {column} IN ({marks})", chunk
                )
            )
    return found_traces, found_spans


def views_of(
    s: Session, rows: Sequence[Sequence[Any]], fields: Sequence[str], max_chars: int
) -> tuple[list[SpanView], int]:
    """Span rows as views holding `fields` (content read from the lines), and how many
    values were clipped at `max_chars`."""
    clipper = Clipper(max_chars)

    def source(row: Sequence[Any]) -> SpanSource:
        return s.files.source(
            row[COL["id"]], row[COL["file_id"]], row[COL["line"]], row[COL["offset"]],
            row[COL["length"]],
        )  # fmt: skip

    with s.lines() as lines:
        views = [
            query.make_view(row, fields, clipper, source, lambda r: _payload(r, lines))
            for row in rows
        ]
    return views, clipper.clipped


def _count_spans(s: Session, flt: SpanFilter, where: Where) -> int:
    """The exact number of spans `flt` selects: from the span-group tally when the
    filter is only kinds, errors, service, agent, model or tool (broad filters such
    as "every LLM span" would otherwise count 100k's of rows), else by counting."""
    clauses, params = where
    if not clauses:
        return s.span_total
    if query.tally_covers(flt):
        sql = f"SELECT COALESCE(SUM(s.spans), 0) FROM {query.TALLY_SOURCE} WHERE "
        return int(s.conn.execute(sql + " AND ".join(clauses), params).fetchone()[0])
    return count_where(s.conn, clauses, params)


def _payload(row: Sequence[Any], lines: LineReader) -> SpanPayload | None:
    return lines.payload(
        row[COL["file_id"]], row[COL["offset"]], row[COL["length"]], row[COL["span_id"]]
    )


def excerpt(text: str, start: int, end: int, context: int) -> str:
    end = min(end, start + max(200, context * 2))
    left = max(0, start - context)
    right = min(len(text), end + context)
    return ("…" if left else "") + text[left:right] + ("…" if right < len(text) else "")
