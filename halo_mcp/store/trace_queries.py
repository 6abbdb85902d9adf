"""The trace queries behind TraceStore: pages of trace summaries, one summary, one trace
as a tree. Each takes the request's Session."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from halo_mcp.store import query
from halo_mcp.store.errors import UnknownIdError
from halo_mcp.store.filters import compile_filter, traces_matching
from halo_mcp.store.models import (
    FirstError,
    SpanNode,
    TracePage,
    TraceQuery,
    TraceSummary,
    TraceTree,
    TreeQuery,
)
from halo_mcp.store.query import COL, ROW_SELECT
from halo_mcp.store.session import Session
from halo_mcp.store.span_queries import views_of

_TRACE_COLUMNS = (
    "t.id, t.trace_id, t.root_name, t.service, t.agents, t.models, t.span_count, "
    "t.error_count, t.start_ns, t.duration_ns, t.input_tokens, t.output_tokens, "
    "t.first_error_span_id, t.first_error_name, t.first_error_message"
)
_TRACE_SORT_INDEX = {"start_ns": 8, "duration_ns": 9, "error_count": 7}


def query_traces(s: Session, q: TraceQuery) -> TracePage:
    """Summaries of the traces having at least one span that matches the query's filter."""
    flt, sort, limit, cursor = q.filter, q.sort, q.limit, q.cursor
    column, direction = query.TRACE_SORT_SQL[sort]
    where = compile_filter(s, flt)
    matching, total = traces_matching(s, flt, where)
    outer = [matching] if matching else []
    qkey = query.query_key("traces", flt.model_dump(mode="json"), sort)
    page_params: list[Any] = []
    if cursor:
        key, row_id = query.decode_cursor(cursor, sort, qkey, int)
        clause, extra = query.keyset(column, direction, key, row_id, "t")
        outer.append(clause)
        page_params += extra
    condition = f" WHERE {' AND '.join(outer)}" if outer else ""
    rows = s.conn.execute(
        f"SELECT {_TRACE_COLUMNS} FROM traces t{condition} "
        f"ORDER BY t.{column} {direction}, t.id {direction} LIMIT {limit + 1}",
        page_params,
    ).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = None
    if more:
        last = rows[-1]
        next_cursor = query.encode_cursor(sort, last[_TRACE_SORT_INDEX[column]], last[0], qkey)
    return TracePage(traces=[_summary(r) for r in rows], total=total, next_cursor=next_cursor)


def trace_summary(s: Session, trace_id: str) -> TraceSummary:
    """One trace's summary. Raises UnknownIdError naming how to find valid ids."""
    row = s.conn.execute(
        f"SELECT {_TRACE_COLUMNS} FROM traces t WHERE t.trace_id = ?", (trace_id,)
    ).fetchone()
    if row is None:
        raise UnknownIdError(
            f"trace id {trace_id!r} is not in this trace set ({s.trace_total} traces); "
            "list valid ids with query_traces, or see overview().sample_trace_ids"
        )
    return _summary(row)


def trace_tree(s: Session, q: TreeQuery) -> TraceTree:
    """A trace's spans as a depth-first tree."""
    trace_id = q.trace_id
    summary = trace_summary(s, trace_id)
    rows = s.conn.execute(
        f"{ROW_SELECT} FROM spans s WHERE s.trace_id = ? ORDER BY s.start_ns, s.id", (trace_id,)
    ).fetchall()
    ordered, children = query.depth_first(rows, q.limit)
    views, _ = views_of(s, [r for r, _ in ordered], q.fields, q.max_chars)
    nodes = [
        SpanNode(span=view, depth=depth, children=len(children.get(row[COL["span_id"]], [])))
        for (row, depth), view in zip(ordered, views, strict=True)
    ]
    return TraceTree(
        trace_id=trace_id, summary=summary, nodes=nodes, truncated=len(ordered) < len(rows)
    )


def _summary(row: Sequence[Any]) -> TraceSummary:
    (
        _,
        trace_id,
        root_name,
        service,
        agents,
        models,
        span_count,
        error_count,
        start_ns,
        duration_ns,
        tin,
        tout,
        err_span,
        err_name,
        err_message,
    ) = row
    return TraceSummary(
        trace_id=trace_id,
        root_name=root_name,
        service=service,
        agents=orjson.loads(agents) if agents else [],
        models=orjson.loads(models) if models else [],
        span_count=span_count,
        error_count=error_count,
        start_time=query.from_ns(start_ns or 0),
        duration_ms=(duration_ns or 0) / 1e6,
        input_tokens=tin or 0,
        output_tokens=tout or 0,
        first_error=FirstError(span_id=err_span, name=err_name or "", message=err_message)
        if err_span
        else None,
    )
