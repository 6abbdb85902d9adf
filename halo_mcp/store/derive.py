"""Tables derived from the spans after each build or extension: duplicates removed,
agent/service inherited from ancestors, per-trace summaries, and the small aggregate
tables (counts per service/agent/model/tool/kind, error signatures) that make the
overview a handful of tiny SELECTs."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson

from halo_mcp.store.signatures import normalize_message

MAX_SIGNATURES = 50
EXAMPLES = 3
_ANCESTOR_STEPS = 256

# Columns read per span by the trace pass, and their positions.
_TRACE_COLUMNS = (
    "id, trace_id, span_id, parent_span_id, name, status, error_message, start_ns, end_ns, "
    "service, agent, model, input_tokens, output_tokens"
)
ID, TRACE, SPAN, PARENT, NAME, STATUS, MESSAGE, START, END, SERVICE, AGENT, MODEL, TIN, TOUT = (
    range(14)
)


def remove_duplicates(conn: sqlite3.Connection, old_max: int | None) -> None:
    """Keep the first span of each (trace_id, span_id); count the others per file.

    With `old_max`, only spans inserted after it can be duplicates (an extension)."""
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS dups(id INTEGER PRIMARY KEY, file_id INTEGER)")
    conn.execute("DELETE FROM temp.dups")
    if old_max is None:
        conn.execute(
            "INSERT INTO temp.dups SELECT s.id, s.file_id FROM (SELECT trace_id, span_id, "
            "MIN(id) AS keep FROM spans GROUP BY trace_id, span_id HAVING COUNT(*) > 1) g "
            "JOIN spans s ON s.trace_id = g.trace_id AND s.span_id = g.span_id "
            "AND s.id <> g.keep"
        )
    else:
        conn.execute(
            "INSERT INTO temp.dups SELECT s.id, s.file_id FROM spans s WHERE s.id > ? AND "
            "EXISTS (SELECT 1 FROM spans o WHERE o.trace_id = s.trace_id "
            "AND o.span_id = s.span_id AND o.id < s.id)",
            (old_max,),
        )
    if conn.execute("SELECT 1 FROM temp.dups LIMIT 1").fetchone() is None:
        return
    conn.execute(
        "UPDATE files SET duplicates = duplicates + "
        "(SELECT COUNT(*) FROM temp.dups d WHERE d.file_id = files.file_id)"
    )
    conn.execute("DELETE FROM spans WHERE id IN (SELECT id FROM temp.dups)")


def refresh_traces(conn: sqlite3.Connection, all_traces: bool) -> None:
    """Fill inherited agent/service and (re)write the summary of every affected trace."""
    conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS inherit(id INTEGER PRIMARY KEY, agent TEXT, service TEXT)"
    )
    conn.execute("DELETE FROM temp.inherit")
    if all_traces:
        conn.execute("DELETE FROM traces")
        where = ""
    else:
        conn.execute("DELETE FROM traces WHERE trace_id IN (SELECT trace_id FROM temp.affected)")
        where = "WHERE trace_id IN (SELECT trace_id FROM temp.affected)"
    cursor = conn.execute(f"SELECT {_TRACE_COLUMNS} FROM spans {where} ORDER BY trace_id")
    summaries: list[tuple] = []
    inherited: list[tuple] = []
    for _, group in itertools.groupby(_stream(cursor), key=lambda r: r[TRACE]):
        rows = list(group)
        summaries.append(_summarize(rows, inherited))
        if len(summaries) >= 5000:
            _flush(conn, summaries, inherited)
    _flush(conn, summaries, inherited)
    conn.execute(
        "UPDATE spans SET agent = i.agent, service = i.service FROM temp.inherit i "
        "WHERE spans.id = i.id"
    )


def _stream(cursor: sqlite3.Cursor) -> Any:
    while True:
        batch = cursor.fetchmany(10000)
        if not batch:
            return
        yield from batch


def _flush(conn: sqlite3.Connection, summaries: list[tuple], inherited: list[tuple]) -> None:
    if summaries:
        conn.executemany(
            "INSERT INTO traces(trace_id, root_name, service, agents, models, span_count, "
            "error_count, start_ns, end_ns, duration_ns, input_tokens, output_tokens, "
            "first_error_span_id, first_error_name, first_error_message, has_root, orphans) "
            "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            summaries,
        )
        summaries.clear()
    if inherited:
        conn.executemany("INSERT OR REPLACE INTO temp.inherit VALUES(?,?,?)", inherited)
        inherited.clear()


def _inherit(rows: Sequence[tuple], col: int) -> dict[int, Any]:
    """For spans lacking `col`, the value of the nearest ancestor having one."""
    by_span = {r[SPAN]: r for r in rows}
    memo: dict[str, Any] = {}
    found: dict[int, Any] = {}
    for row in rows:
        if row[col] is not None or row[PARENT] is None:
            continue
        chain = []
        value = None
        current = row
        for _ in range(_ANCESTOR_STEPS):
            parent = by_span.get(current[PARENT]) if current[PARENT] is not None else None
            if parent is None:
                break
            if parent[SPAN] in memo:
                value = memo[parent[SPAN]]
                break
            if parent[col] is not None:
                value = parent[col]
                break
            chain.append(parent[SPAN])
            current = parent
        memo[row[SPAN]] = value
        for span_id in chain:
            memo[span_id] = value
        if value is not None:
            found[row[ID]] = value
    return found


def _summarize(rows: list[tuple], inherited: list[tuple]) -> tuple:
    if len(rows) > 1:
        agents = _inherit(rows, AGENT)
        services = _inherit(rows, SERVICE)
        if agents or services:
            fixed = []
            for row in rows:
                agent = agents.get(row[ID])
                service = services.get(row[ID])
                if agent is None and service is None:
                    fixed.append(row)
                    continue
                values = list(row)
                if agent is not None:
                    values[AGENT] = agent
                if service is not None:
                    values[SERVICE] = service
                inherited.append((row[ID], values[AGENT], values[SERVICE]))
                fixed.append(tuple(values))
            rows = fixed
        rows.sort(key=lambda r: (r[START] or 0, r[ID]))
        span_ids = {r[SPAN] for r in rows}
    else:
        span_ids = {rows[0][SPAN]}
    roots = [r for r in rows if r[PARENT] is None]
    orphans = sum(1 for r in rows if r[PARENT] is not None and r[PARENT] not in span_ids)
    root = roots[0] if roots else None
    errors = [r for r in rows if r[STATUS] == "error"]
    first_error = errors[0] if errors else None
    agents_seen = list(dict.fromkeys(r[AGENT] for r in rows if r[AGENT]))
    models_seen = list(dict.fromkeys(r[MODEL] for r in rows if r[MODEL]))
    service = (
        root[SERVICE]
        if root and root[SERVICE]
        else next((r[SERVICE] for r in rows if r[SERVICE]), None)
    )
    start = min((r[START] for r in rows if r[START] is not None), default=0)
    end = max((r[END] for r in rows if r[END] is not None), default=start)
    return (
        rows[0][TRACE],
        root[NAME] if root else None,
        service,
        orjson.dumps(agents_seen).decode(),
        orjson.dumps(models_seen).decode(),
        len(rows),
        len(errors),
        start,
        end,
        max(0, end - start),
        sum(r[TIN] or 0 for r in rows),
        sum(r[TOUT] or 0 for r in rows),
        first_error[SPAN] if first_error else None,
        first_error[NAME] if first_error else None,
        first_error[MESSAGE] if first_error else None,
        1 if roots else 0,
        orphans,
    )


def refresh_aggregates(conn: sqlite3.Connection) -> None:
    """Rewrite the dims, signatures and meta counts from spans and traces."""
    conn.execute("DELETE FROM dims")
    totals: dict[tuple[str, str], list[int]] = {}
    tokens_in = tokens_out = spans = error_spans = 0
    for kind, service, agent, model, tool, is_error, count, tin, tout in conn.execute(
        "SELECT kind, service, agent, model, tool_name, status = 'error', COUNT(*), "
        "SUM(COALESCE(input_tokens, 0)), SUM(COALESCE(output_tokens, 0)) FROM spans "
        "GROUP BY 1, 2, 3, 4, 5, 6"
    ):
        errors = count if is_error else 0
        spans += count
        error_spans += errors
        tokens_in += tin or 0
        tokens_out += tout or 0
        for dim, name in (
            ("kind", kind),
            ("service", service),
            ("agent", agent),
            ("model", model),
            ("tool", tool),
        ):
            if name is None:
                continue
            slot = totals.setdefault((dim, name), [0, 0])
            slot[0] += count
            slot[1] += errors
    conn.executemany(
        "INSERT INTO dims VALUES(?,?,?,?)",
        [(dim, name, c, e) for (dim, name), (c, e) in totals.items()],
    )
    _refresh_signatures(conn)
    traces, error_traces, start, end, orphans, rootless = conn.execute(
        "SELECT COUNT(*), COALESCE(SUM(error_count > 0), 0), MIN(start_ns), MAX(end_ns), "
        "COALESCE(SUM(orphans), 0), COALESCE(SUM(has_root = 0), 0) FROM traces"
    ).fetchone()
    meta = {
        "spans": spans,
        "error_spans": error_spans,
        "traces": traces,
        "error_traces": error_traces,
        "start_ns": start,
        "end_ns": end,
        "orphan_spans": orphans,
        "rootless_traces": rootless,
        "input_tokens": tokens_in,
        "output_tokens": tokens_out,
    }
    conn.executemany(
        "INSERT OR REPLACE INTO meta VALUES(?, ?)",
        [(k, None if v is None else str(v)) for k, v in meta.items()],
    )


def _refresh_signatures(conn: sqlite3.Connection) -> None:
    conn.execute("DELETE FROM signatures")
    groups: dict[tuple[str, str], list[Any]] = {}
    normalized: dict[str | None, str] = {}
    for name, message, trace_id, span_id in conn.execute(
        "SELECT COALESCE(tool_name, name), error_message, trace_id, span_id FROM spans "
        "WHERE status = 'error' ORDER BY start_ns, id"
    ):
        signature = normalized.get(message)
        if signature is None:
            signature = normalize_message(message)
            if len(normalized) < 20_000:
                normalized[message] = signature
        group = groups.get((name or "", signature))
        if group is None:
            group = groups[(name or "", signature)] = [set(), 0, [], []]
        group[0].add(trace_id)
        group[1] += 1
        if len(group[2]) < EXAMPLES and trace_id not in group[2]:
            group[2].append(trace_id)
        if len(group[3]) < EXAMPLES:
            group[3].append(span_id)
    ranked = sorted(groups.items(), key=lambda kv: (-len(kv[1][0]), -kv[1][1], kv[0]))
    conn.executemany(
        "INSERT INTO signatures VALUES(?,?,?,?,?,?,?)",
        [
            (
                rank,
                name,
                message,
                len(group[0]),
                group[1],
                orjson.dumps(group[2]).decode(),
                orjson.dumps(group[3]).decode(),
            )
            for rank, ((name, message), group) in enumerate(ranked[:MAX_SIGNATURES])
        ],
    )
