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

from halo_mcp.store.connections import iter_rows
from halo_mcp.store.shards import span_tables
from halo_mcp.store.signatures import normalize_message

MAX_SIGNATURES = 50
EXAMPLES = 3
_ANCESTOR_STEPS = 256

# Columns read per span by the inheritance pass, and their positions.
_INHERIT_COLUMNS = (
    "id, trace_id, span_id, parent_span_id, agent, service, kind, model, tool_name, status, "
    "input_tokens, output_tokens"
)
ID, TRACE, SPAN, PARENT, AGENT, SERVICE, KIND, MODEL, TOOL, STATUS, TIN, TOUT = range(12)


#: (kind, service, agent, model, tool, is_error) -> [spans, input tokens, output tokens]
Groups = dict[tuple, list[int]]
_GROUP_KEY = "kind, service, agent, model, tool_name, status = 'error'"
_GROUP_TOKENS = "SUM(COALESCE(input_tokens, 0)), SUM(COALESCE(output_tokens, 0))"


def merge_groups(into: Groups, more: Groups) -> None:
    for key, (count, tin, tout) in more.items():
        slot = into.get(key)
        if slot is None:
            into[key] = [count, tin, tout]
        else:
            slot[0] += count
            slot[1] += tin
            slot[2] += tout


#: The spans of the traces being refreshed (see gather_scope).
SCOPE = "temp.scope_spans"


def gather_scope(conn: sqlite3.Connection) -> None:
    """Copy every span of the traces in temp.affected into temp.scope_spans, from every
    span table. Scoped refreshes read this small table: over the `spans` view of a
    sharded index, SQLite would not push their subqueries into the shards and would
    read every span instead."""
    columns = [row[1] for row in conn.execute("PRAGMA main.table_info(spans)")]
    conn.execute("DROP TABLE IF EXISTS temp.scope_spans")
    rest = ", ".join(c for c in columns if c != "id")
    conn.execute(f"CREATE TEMP TABLE scope_spans(id INTEGER PRIMARY KEY, {rest})")
    for table in span_tables(conn):
        conn.execute(
            f"INSERT INTO temp.scope_spans SELECT {', '.join(columns)} FROM {table} "
            "WHERE trace_id IN (SELECT trace_id FROM temp.affected)"
        )
    conn.execute("CREATE INDEX temp.scope_trace ON scope_spans(trace_id, span_id)")
    conn.execute("CREATE INDEX temp.scope_errors ON scope_spans(start_ns) WHERE status = 'error'")


def _tables(conn: sqlite3.Connection, source: str) -> list[str]:
    """The tables a change to `source`'s rows must reach: the span tables, and the scope
    copy itself when reading from it."""
    return span_tables(conn) + ([source] if source != "spans" else [])


def remove_duplicates(
    conn: sqlite3.Connection,
    groups: Groups,
    *,
    after: int | None = None,
    source: str = "spans",
) -> int:
    """Keep the first span of each (trace_id, span_id); count the others per file and take
    them out of `groups`. With `after`, only spans with a larger id can be duplicates (an
    extension). Returns how many were removed."""
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS dups(id INTEGER PRIMARY KEY, file_id INTEGER)")
    conn.execute("DELETE FROM temp.dups")
    if after is None:
        conn.execute(
            "INSERT INTO temp.dups SELECT s.id, s.file_id FROM (SELECT trace_id, span_id, "
            f"MIN(id) AS keep FROM {source} GROUP BY trace_id, span_id HAVING COUNT(*) > 1) g "
            f"JOIN {source} s ON s.trace_id = g.trace_id AND s.span_id = g.span_id "
            "AND s.id <> g.keep"
        )
    else:
        conn.execute(
            f"INSERT INTO temp.dups SELECT s.id, s.file_id FROM {source} s WHERE s.id > ? AND "
            f"EXISTS (SELECT 1 FROM {source} o WHERE o.trace_id = s.trace_id "
            "AND o.span_id = s.span_id AND o.id < s.id)",
            (after,),
        )
    removed = conn.execute("SELECT COUNT(*) FROM temp.dups").fetchone()[0]
    if not removed:
        return 0
    for *key, count, tin, tout in conn.execute(
        f"SELECT {_GROUP_KEY}, COUNT(*), {_GROUP_TOKENS} FROM {source} "
        "WHERE id IN (SELECT id FROM temp.dups) GROUP BY 1, 2, 3, 4, 5, 6"
    ):
        merge_groups(groups, {tuple(key): [-count, -tin, -tout]})
    conn.execute(
        "UPDATE files SET duplicates = duplicates + "
        "(SELECT COUNT(*) FROM temp.dups d WHERE d.file_id = files.file_id)"
    )
    for table in _tables(conn, source):
        conn.execute(f"DELETE FROM {table} WHERE id IN (SELECT id FROM temp.dups)")
    return removed


def refresh_traces(
    conn: sqlite3.Connection, all_traces: bool, inherit: bool = True, source: str = "spans"
) -> Groups:
    """Fill inherited agent/service, then (re)write the summary of every affected trace
    (of every trace with `all_traces`, else of those in temp.affected, read from `source`).

    Summaries are SQL aggregates (C speed); only traces with spans lacking an agent or
    service go through Python, to walk up their parent chains. `inherit=False` skips that
    search when the caller knows no span lacks them (saves a scan of every span)."""
    scope = "" if all_traces else "AND trace_id IN (SELECT trace_id FROM temp.affected)"
    # For every trace, a plain scan + temp b-tree beats walking the trace index (~30% at
    # 1.3M spans: index order costs a table lookup per span); a scoped update needs the index.
    hint = "NOT INDEXED " if all_traces else ""
    changes = _inherit_missing(conn, scope, source) if inherit else {}
    if all_traces:
        conn.execute("DELETE FROM traces")
    else:
        conn.execute("DELETE FROM traces WHERE trace_id IN (SELECT trace_id FROM temp.affected)")
    conn.execute(
        "INSERT INTO traces(trace_id, span_count, error_count, start_ns, end_ns, duration_ns, "
        "input_tokens, output_tokens, agents, models, has_root, orphans) "
        "SELECT trace_id, COUNT(*), SUM(status = 'error'), MIN(start_ns), MAX(end_ns), "
        "MAX(0, MAX(end_ns) - MIN(start_ns)), SUM(COALESCE(input_tokens, 0)), "
        "SUM(COALESCE(output_tokens, 0)), "
        "json_group_array(DISTINCT agent) FILTER (WHERE agent IS NOT NULL), "
        "json_group_array(DISTINCT model) FILTER (WHERE model IS NOT NULL), 0, 0 "
        f"FROM {source} WHERE 1 {scope} GROUP BY trace_id"
    )
    # The earliest root names the trace (bare columns come from the MIN row).
    conn.execute(
        "UPDATE traces SET root_name = r.name, service = r.service, has_root = 1 FROM ("
        f"SELECT trace_id, name, service, MIN(start_ns) FROM {source} {hint}"
        f"WHERE parent_span_id IS NULL {scope} GROUP BY trace_id) AS r "
        "WHERE traces.trace_id = r.trace_id"
    )
    conn.execute(
        f"UPDATE traces SET service = (SELECT s.service FROM {source} s "
        "WHERE s.trace_id = traces.trace_id AND s.service IS NOT NULL "
        "ORDER BY s.start_ns LIMIT 1) "
        f"WHERE service IS NULL {scope}"
    )
    # Hints only for a whole build: scoped updates read the `spans` view of a sharded index
    # (no hints allowed there) and are best served by the trace index anyway.
    errors_hint = "INDEXED BY spans_errors " if all_traces else ""
    conn.execute(
        "UPDATE traces SET first_error_span_id = e.span_id, first_error_name = e.name, "
        "first_error_message = e.error_message FROM ("
        f"SELECT trace_id, span_id, name, error_message, MIN(start_ns) FROM {source} "
        f"{errors_hint}WHERE status = 'error' {scope} GROUP BY trace_id) AS e "
        "WHERE traces.trace_id = e.trace_id"
    )
    conn.execute(
        "UPDATE traces SET orphans = o.n FROM ("
        f"SELECT c.trace_id, COUNT(*) AS n FROM {source} c {hint}"
        "WHERE c.parent_span_id IS NOT NULL "
        f"{scope.replace('trace_id IN', 'c.trace_id IN')} AND NOT EXISTS ("
        f"SELECT 1 FROM {source} p WHERE p.trace_id = c.trace_id AND p.span_id = c.parent_span_id)"
        " GROUP BY c.trace_id) AS o WHERE traces.trace_id = o.trace_id"
    )
    return changes


def _inherit_missing(conn: sqlite3.Connection, scope: str, source: str) -> Groups:
    """Give spans without agent/service the value of their nearest ancestor having one.

    Returns the change in span-group counts (old groups -1, new groups +1)."""
    changes: Groups = {}
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS need(trace_id TEXT PRIMARY KEY)")
    conn.execute("DELETE FROM temp.need")
    conn.execute(
        f"INSERT INTO temp.need SELECT DISTINCT trace_id FROM {source} "
        f"WHERE parent_span_id IS NOT NULL AND (agent IS NULL OR service IS NULL) {scope}"
    )
    conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS inherit(id INTEGER PRIMARY KEY, agent TEXT, service TEXT)"
    )
    conn.execute("DELETE FROM temp.inherit")
    cursor = conn.execute(
        f"SELECT {_INHERIT_COLUMNS} FROM {source} "
        "WHERE trace_id IN (SELECT trace_id FROM temp.need) ORDER BY trace_id"
    )
    batch: list[tuple] = []
    for _, group in itertools.groupby(iter_rows(cursor, 10_000), key=lambda r: r[TRACE]):
        rows = list(group)
        agents = _inherit(rows, AGENT)
        services = _inherit(rows, SERVICE)
        for row in rows:
            agent = agents.get(row[ID])
            service = services.get(row[ID])
            if agent is not None or service is not None:
                new_agent, new_service = agent or row[AGENT], service or row[SERVICE]
                batch.append((row[ID], new_agent, new_service))
                kind, model, tool, error = row[KIND], row[MODEL], row[TOOL], row[STATUS] == "error"
                tin, tout = row[TIN] or 0, row[TOUT] or 0
                merge_groups(
                    changes,
                    {(kind, row[SERVICE], row[AGENT], model, tool, error): [-1, -tin, -tout]},
                )
                merge_groups(
                    changes, {(kind, new_service, new_agent, model, tool, error): [1, tin, tout]}
                )
        if len(batch) >= 10000:
            conn.executemany("INSERT INTO temp.inherit VALUES(?,?,?)", batch)
            batch.clear()
    conn.executemany("INSERT INTO temp.inherit VALUES(?,?,?)", batch)
    for table in _tables(conn, source):
        conn.execute(
            f"UPDATE {table} SET agent = i.agent, service = i.service FROM temp.inherit i "
            f"WHERE {table}.id = i.id"
        )
    return changes


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


def load_groups(conn: sqlite3.Connection) -> Groups:
    """The span-group counts the last build or extension stored."""
    return {
        tuple(key): [count, tin, tout]
        for *key, count, tin, tout in conn.execute("SELECT * FROM span_groups")
    }


def count_groups(conn: sqlite3.Connection) -> Groups:
    """Span-group counts recounted from every span (when no exact tally is at hand)."""
    return {
        tuple(key): [count, tin or 0, tout or 0]
        for *key, count, tin, tout in conn.execute(
            f"SELECT {_GROUP_KEY}, COUNT(*), {_GROUP_TOKENS} FROM spans GROUP BY 1, 2, 3, 4, 5, 6"
        )
    }


def refresh_aggregates(
    conn: sqlite3.Connection, groups: Groups, signatures: Signatures | None = None
) -> None:
    """Rewrite span_groups, dims, signatures and the meta counts from the span-group
    counts (kept up to date by every build and extension, see merge_groups) and traces.
    `signatures`, when given, are the error signatures already collected (else a scan)."""
    conn.execute("DELETE FROM span_groups")
    conn.executemany(
        "INSERT INTO span_groups VALUES(?,?,?,?,?,?,?,?,?)",
        [(*key, c, i, o) for key, (c, i, o) in groups.items() if c],
    )
    conn.execute("DELETE FROM dims")
    totals: dict[tuple[str, str], list[int]] = {}
    tokens_in = tokens_out = spans = error_spans = 0
    rows = ((*key, c, i, o) for key, (c, i, o) in groups.items() if c)
    for kind, service, agent, model, tool, is_error, count, tin, tout in rows:
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
    _write_signatures(conn, collect_signatures(conn) if signatures is None else signatures)
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


#: (span or tool name, normalized message) -> [trace ids, error spans, first traces, first
#: spans], the firsts as (start_ns, id, trace or span id) in (start_ns, id) order, at most
#: EXAMPLES (traces distinct). Shards collect their own; merged, they equal one scan.
Signatures = dict[tuple[str, str], list[Any]]
_NO_START = -(1 << 63)


def collect_signatures(conn: sqlite3.Connection, table: str = "spans") -> Signatures:
    """Group the error spans of `table` by name and normalized message."""
    groups: Signatures = {}
    normalized: dict[str | None, str] = {}
    for name, message, trace_id, span_id, start, row_id in conn.execute(
        "SELECT COALESCE(tool_name, name), error_message, trace_id, span_id, start_ns, id "
        f"FROM {table} WHERE status = 'error' ORDER BY start_ns, id"
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
        at = _NO_START if start is None else start
        if len(group[2]) < EXAMPLES and all(t != trace_id for *_, t in group[2]):
            group[2].append((at, row_id, trace_id))
        if len(group[3]) < EXAMPLES:
            group[3].append((at, row_id, span_id))
    return groups


def merge_signatures(into: Signatures, more: Signatures) -> None:
    for key, (traces, spans, first_traces, first_spans) in more.items():
        group = into.get(key)
        if group is None:
            into[key] = [set(traces), spans, list(first_traces), list(first_spans)]
            continue
        group[0] |= traces
        group[1] += spans
        merged: list[tuple] = []
        for item in sorted(group[2] + first_traces):
            if len(merged) < EXAMPLES and all(t != item[2] for *_, t in merged):
                merged.append(item)
        group[2] = merged
        group[3] = sorted(group[3] + first_spans)[:EXAMPLES]


def _write_signatures(conn: sqlite3.Connection, groups: Signatures) -> None:
    conn.execute("DELETE FROM signatures")
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
                orjson.dumps([ids for *_, ids in group[2]]).decode(),
                orjson.dumps([ids for *_, ids in group[3]]).decode(),
            )
            for rank, ((name, message), group) in enumerate(ranked[:MAX_SIGNATURES])
        ],
    )
