"""Trace rules as SQL over the index: which traces satisfy a :class:`TraceRule`.

One implementation shared by every consumer: a finding's matcher, `count`, `query_spans`
(a filter's `trace_rule`, resolved in filters.py), triage's loop and step-limit detectors
(through aggregates.py), and `check`. Every rule is exact: aggregates over the span table,
never a sample. (`no_final_answer` needs each root span's output, read from the files:
filters.py asks Aggregates.root_answered.)
"""

from __future__ import annotations

import sqlite3
from typing import Any

from halo_mcp.store.models import EventFilter, SpanFilter, TraceRule
from halo_mcp.store.query import where_sql
from halo_mcp.store.shards import span_source, span_tables

#: Identical calls of one tool in one trace that make a loop, when a rule does not say.
DEFAULT_MIN_REPEATS = 3


def repeated_calls_sql(
    conn: sqlite3.Connection, min_repeats: int, tool_name: str | None = None
) -> tuple[str, list[Any]]:
    """(trace_id, tool_name, calls, error_calls, span_ids) where one tool got identical input
    at least `min_repeats` times within one trace. (The unary + keeps SQLite off the
    partial tool index: a plain scan beats a row lookup for every tool span.)"""
    params: list[Any] = []
    only = ""
    if tool_name is not None:
        only = " AND tool_name = ?"
        params.append(tool_name)
    params.append(max(1, int(min_repeats)))
    sql = (
        "SELECT trace_id, tool_name, COUNT(*) AS calls, SUM(status = 'error') AS errors, "
        "group_concat(span_id, ' ') AS span_ids "
        f"FROM {span_source(conn, 'trace_id, tool_name, input_hash, status, span_id')} "
        f"WHERE input_hash IS NOT NULL AND +tool_name IS NOT NULL{only} "
        "GROUP BY trace_id, tool_name, input_hash HAVING calls >= ?"
    )
    return sql, params


def llm_calls_sql(conn: sqlite3.Connection, agent: str | None = None) -> tuple[str, list[Any]]:
    """(trace_id, agent, calls): the successful LLM calls of each agent in each trace."""
    only, params = "", []
    if agent is not None:
        only, params = " AND agent = ?", [agent]
    sql = (
        "SELECT trace_id, agent, COUNT(*) AS calls "
        f"FROM {span_source(conn, 'trace_id, agent, kind, status')} "
        f"WHERE kind = 'llm' AND agent IS NOT NULL AND status != 'error'{only} "
        "GROUP BY trace_id, agent"
    )
    return sql, params


def rule_traces_sql(conn: sqlite3.Connection, rule: TraceRule) -> tuple[str, list[Any]] | None:
    """A query of the trace ids satisfying `rule` (each once), or None for a rule that
    needs span content (`no_final_answer`, see :func:`rule_traces`)."""
    if rule.kind == "repeated_call":
        inner, params = repeated_calls_sql(
            conn, rule.min_count or DEFAULT_MIN_REPEATS, rule.tool_name
        )
        return f"SELECT DISTINCT trace_id FROM ({inner})", params
    if rule.kind == "step_limit":
        inner, params = llm_calls_sql(conn, rule.agent)
        return f"SELECT DISTINCT trace_id FROM ({inner}) WHERE calls >= ?", [
            *params,
            int(rule.min_count or 1),
        ]
    if rule.kind == "ends_after_tool_error":
        # SQLite's bare columns next to MAX() come from the row holding the maximum.
        source = span_source(conn, "id, trace_id, kind, status, tool_name, start_ns")
        sql = (
            "SELECT trace_id FROM (SELECT trace_id, status, tool_name, MAX(start_ns) "
            f"FROM {source} WHERE kind = 'tool' GROUP BY trace_id) WHERE status = 'error'"
        )
        if rule.tool_name is not None:
            return sql + " AND tool_name = ?", [rule.tool_name]
        return sql, []
    if rule.kind == "followed_by":
        return _followed_by_sql(conn, rule)
    if rule.kind == "trace_duration":
        return "SELECT trace_id FROM traces WHERE duration_ns >= ?", [
            int((rule.min_duration_ms or 0) * 1_000_000)
        ]
    if rule.kind == "trace_tokens":
        return (
            "SELECT trace_id FROM traces "
            "WHERE COALESCE(input_tokens, 0) + COALESCE(output_tokens, 0) >= ?",
            [int(rule.min_tokens or 0)],
        )
    return None


def _event_where(event: EventFilter | None, alias: str) -> tuple[list[str], list[Any]]:
    if event is None:
        return [], []
    return where_sql(SpanFilter(**event.model_dump(exclude_defaults=True)), alias)


def _followed_by_sql(conn: sqlite3.Connection, rule: TraceRule) -> tuple[str, list[Any]]:
    """Traces with an event `first` followed (or, with then_absent, never followed) by
    an event `then`. The later event is looked up in each span table on its own, through
    its (trace_id, ...) index: a correlated subquery over the shards' UNION ALL view would
    scan every shard for every first event."""
    first, first_params = _event_where(rule.first, "a")
    then, then_params = _event_where(rule.then, "b")
    then = ["b.trace_id = a.trace_id", "b.start_ns > a.start_ns", *then]
    if rule.same_tool:
        then.append("b.tool_name = a.tool_name")
    tables = span_tables(conn)
    later = " OR ".join(
        f"EXISTS (SELECT 1 FROM {table} b WHERE {' AND '.join(then)})" for table in tables
    )
    test = f"NOT ({later})" if rule.then_absent else f"({later})"
    columns = "trace_id, start_ns, name, kind, status, agent, model, tool_name, duration_ns"
    where = " AND ".join([*first, test])
    return (
        f"SELECT DISTINCT a.trace_id FROM {span_source(conn, columns)} a WHERE {where}",
        [*first_params, *then_params * len(tables)],
    )
