"""Aggregate reads over the index for triage and re-checks: pure SQL, no raw payloads.

The TraceStore API answers per-filter questions; triage needs a handful of whole-set
aggregates (every error span, repeated tool inputs per trace, duration and token
distributions, thresholded counts, root spans). They read the index's tables through a
separate read-only connection, so they never disturb the store's own connections.
Only :func:`root_answered` touches the trace files, one root span per trace, by offset.

Speed on big (sharded) indexes: scans over many spans read ``span_source`` with only the
columns they use; totals come from the span-group tally (span_groups) or per-table index
lookups instead of a scan; several groups or kinds share one scan where they can.
"""

from __future__ import annotations

import contextlib
import sqlite3
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from halo_mcp.store import trace_rules
from halo_mcp.store.errors import StoreError
from halo_mcp.store.formats import span_payload
from halo_mcp.store.shards import attach_shards, span_source, span_tables
from halo_mcp.store.store import TraceStore

#: Span kinds whose latency and tokens are compared, and the column naming their group.
GROUP_COLUMN = {"tool": "tool_name", "llm": "model", "agent": "agent"}
METRIC_COLUMN = {"duration": "duration_ns", "tokens": "tokens"}


def index_path(store: TraceStore) -> Path:
    path = store.report.index_path or getattr(store, "index_path", None)
    if not path:
        raise StoreError("this store has no on-disk index; open it with open_store()")
    return Path(path)


@contextlib.contextmanager
def reader(store: TraceStore) -> Iterator[sqlite3.Connection]:
    """A read-only connection to the store's index, closed on exit."""
    path = index_path(store)
    conn = sqlite3.connect(
        path.absolute().as_uri() + "?mode=ro", uri=True, check_same_thread=False, timeout=60
    )
    try:
        conn.execute("PRAGMA busy_timeout=60000")
        attach_shards(conn, path)
        yield conn
    finally:
        conn.close()


def trace_total(conn: sqlite3.Connection) -> int:
    return conn.execute("SELECT COUNT(*) FROM traces").fetchone()[0]


def time_range(conn: sqlite3.Connection) -> tuple[int, int]:
    """Earliest and latest span start: per span table, from its start_ns index."""
    lows, highs = [], []
    for table in span_tables(conn):
        low, high = conn.execute(
            f"SELECT (SELECT MIN(start_ns) FROM {table}), (SELECT MAX(start_ns) FROM {table})"
        ).fetchone()
        if low is not None:
            lows.append(low)
        if high is not None:
            highs.append(high)
    return int(min(lows) if lows else 0), int(max(highs) if highs else 0)


def model_names(conn: sqlite3.Connection) -> list[str]:
    """Every model named by a span, from the span-group tally (kept exact by every build
    and extension), so no span scan."""
    return [
        r[0]
        for r in conn.execute(
            "SELECT DISTINCT model FROM span_groups WHERE model IS NOT NULL ORDER BY model"
        )
    ]


def span_totals(conn: sqlite3.Connection) -> tuple[int, int]:
    """(spans, error spans) from the span-group tally."""
    spans, errors = conn.execute(
        "SELECT COALESCE(SUM(spans), 0), COALESCE(SUM(CASE WHEN is_error THEN spans END), 0) "
        "FROM span_groups"
    ).fetchone()
    return int(spans), int(errors)


def kind_count(conn: sqlite3.Connection, kind: str) -> int:
    """Spans of one kind, from the span-group tally."""
    row = conn.execute("SELECT SUM(spans) FROM span_groups WHERE kind = ?", (kind,)).fetchone()
    return int(row[0] or 0)


def tool_calls(conn: sqlite3.Connection) -> list[tuple[str, int, int]]:
    """(tool, calls, failed calls) per tool, from the span-group tally."""
    return [
        (name, int(calls), int(errors or 0))
        for name, calls, errors in conn.execute(
            "SELECT tool_name, SUM(spans), SUM(CASE WHEN is_error THEN spans ELSE 0 END) "
            "FROM span_groups WHERE tool_name IS NOT NULL GROUP BY tool_name"
        )
    ]


def error_spans(conn: sqlite3.Connection) -> Iterator[tuple[Any, ...]]:
    """(kind, tool_name, name, error_message, trace_id, span_id, start_ns) of every error span,
    in time order."""
    columns = "id, kind, tool_name, name, error_message, trace_id, span_id, start_ns, status"
    cursor = conn.execute(
        "SELECT kind, tool_name, name, error_message, trace_id, span_id, start_ns "
        f"FROM {span_source(conn, columns)} WHERE status = 'error' ORDER BY start_ns, id"
    )
    yield from _rows(cursor)


def repeated_calls(conn: sqlite3.Connection, min_repeats: int) -> Iterator[tuple[Any, ...]]:
    """(trace_id, tool_name, calls, error_calls, span_ids) where one tool got identical input
    at least `min_repeats` times within one trace (the `repeated_call` trace rule's SQL)."""
    sql, params = trace_rules.repeated_calls_sql(conn, min_repeats)
    yield from _rows(conn.execute(sql, params))


def metric_samples_many(
    conn: sqlite3.Connection, kinds: list[str], max_rows: int
) -> dict[str, tuple[dict[str, dict[str, list[int]]], int]]:
    """Durations and token counts per group of spans of each kind, in one scan:
    {kind: ({metric: {group: values}}, k)}. Each kind keeps an evenly spread sample of at
    most about `max_rows` rows (every k-th row id), so memory stays bounded; tokens keep
    only spans that report some."""
    clauses: list[str] = []
    params: list[Any] = []
    steps: dict[str, int] = {}
    out: dict[str, tuple[dict[str, dict[str, list[int]]], int]] = {}
    for kind in kinds:
        step = steps[kind] = max(1, kind_count(conn, kind) // max(1, max_rows))
        out[kind] = ({"duration": {}, "tokens": {}}, step)
        clause = f"(kind = ? AND {GROUP_COLUMN[kind]} IS NOT NULL"
        params.append(kind)
        if step > 1:
            clause += " AND id % ? = 0"
            params.append(step)
        clauses.append(clause + ")")
    if not clauses:
        return out
    group = _group_case()
    columns = "id, kind, tool_name, model, agent, duration_ns, tokens"
    sql = (
        f"SELECT kind, {group}, duration_ns, tokens FROM {span_source(conn, columns)} "
        f"WHERE {' OR '.join(clauses)}"
    )
    for kind, name, duration, count in conn.execute(sql, params):
        samples = out[kind][0]
        samples["duration"].setdefault(name, []).append(int(duration or 0))
        if count:
            samples["tokens"].setdefault(name, []).append(int(count))
    return out


def _group_case(alias: str = "") -> str:
    """The group column of a span by its kind, as one SQL expression."""
    arms = " ".join(f"WHEN '{k}' THEN {alias}{c}" for k, c in GROUP_COLUMN.items())
    return f"CASE {alias}kind {arms} END"


def over_thresholds_many(
    conn: sqlite3.Connection, plan: dict[tuple[str, str], dict[str, int]]
) -> dict[tuple[str, str], dict[str, list[tuple[str, str, int]]]]:
    """Per (kind, metric) pair and group, the (trace_id, span_id, value) of the spans whose
    metric is at least the group's threshold; one scan of the spans for every pair (per
    400 groups), in span table order within each group.

    Each pair's test is a CASE over its groups' thresholds, so SQLite scans the spans once
    (a join with a VALUES table makes it scan them once per threshold)."""
    out: dict[tuple[str, str], dict[str, list[tuple[str, str, int]]]] = {k: {} for k in plan}
    entries = [(k, m, name, int(t)) for (k, m), th in plan.items() for name, t in th.items()]
    groups = list(GROUP_COLUMN.values())
    columns = f"kind, {', '.join(groups)}, trace_id, span_id, duration_ns, tokens"
    group_at = {kind: 1 + groups.index(column) for kind, column in GROUP_COLUMN.items()}
    first = 1 + len(groups)  # where trace_id, span_id, duration_ns, tokens start
    for i in range(0, len(entries), 400):
        chunk: dict[tuple[str, str], dict[str, int]] = {}
        for kind, metric, name, threshold in entries[i : i + 400]:
            chunk.setdefault((kind, metric), {})[name] = threshold
        tests, params = [], []
        for (kind, metric), thresholds in chunk.items():
            whens = " ".join("WHEN ? THEN ?" for _ in thresholds)
            tests.append(
                f"(kind = ? AND {METRIC_COLUMN[metric]} >= CASE {GROUP_COLUMN[kind]} {whens} END)"
            )
            params += [kind, *(v for pair in thresholds.items() for v in pair)]
        sql = f"SELECT {columns} FROM {span_source(conn, columns)} WHERE {' OR '.join(tests)}"
        for row in _rows(conn.execute(sql, params)):
            kind, name = row[0], row[group_at[row[0]]]
            trace_id, span_id, duration, tokens = row[first:]
            values = {"duration": duration, "tokens": tokens}
            for (k, metric), thresholds in chunk.items():
                if k != kind:
                    continue
                threshold = thresholds.get(name)
                value = values[metric]
                if threshold is not None and value is not None and value >= threshold:
                    out[(kind, metric)].setdefault(name, []).append((trace_id, span_id, int(value)))
    return out


def at_least(
    conn: sqlite3.Connection, kind: str, name: str, metric: str, threshold: int, examples: int
) -> tuple[int, set[str], list[tuple[str, str, int]]]:
    """Spans of `kind` in group `name` whose metric is >= threshold: (span count, trace ids,
    the largest few as (trace_id, span_id, value))."""
    column, group = METRIC_COLUMN[metric], GROUP_COLUMN[kind]
    where = f"kind = ? AND {group} = ? AND {column} >= ?"
    params = (kind, name, int(threshold))
    traces: set[str] = set()
    spans = 0
    source = span_source(conn, f"kind, {group}, {column}, trace_id")
    for (trace_id,) in conn.execute(f"SELECT trace_id FROM {source} WHERE {where}", params):
        spans += 1
        traces.add(trace_id)
    top = conn.execute(
        f"SELECT trace_id, span_id, {column} FROM spans WHERE {where} "
        f"ORDER BY {column} DESC LIMIT ?",
        (*params, int(examples)),
    ).fetchall()
    return spans, traces, top


def _llm_calls_sql(conn: sqlite3.Connection) -> str:
    """(trace_id, agent, calls): the successful LLM calls of each agent in each trace (the
    `step_limit` trace rule's SQL)."""
    return trace_rules.llm_calls_sql(conn)[0]


def llm_calls_per_agent(conn: sqlite3.Connection) -> Iterator[tuple[str, str, int]]:
    """(trace_id, agent, successful LLM calls) per agent of each trace: the turns it took."""
    yield from _rows(conn.execute(_llm_calls_sql(conn)))


#: Compute a CTE used twice once (the hint exists from SQLite 3.35).
_MATERIALIZED = "MATERIALIZED " if sqlite3.sqlite_version_info >= (3, 35) else ""


def llm_call_histograms(
    conn: sqlite3.Connection,
) -> tuple[dict[str, dict[int, int]], list[tuple[str, str, int]]]:
    """Per agent, {successful LLM calls in a trace: traces}; and the (trace_id, agent, calls)
    of every trace where an agent made its most calls, in (trace_id, agent) order. The
    same counts as :func:`llm_calls_per_agent`, with only a few rows out of SQLite."""
    per = _llm_calls_sql(conn)
    histograms: dict[str, dict[int, int]] = {}
    top: list[tuple[str, str, int]] = []
    rows = conn.execute(
        f"WITH per AS {_MATERIALIZED}({per}), "
        "top(agent, calls) AS (SELECT agent, MAX(calls) FROM per GROUP BY agent) "
        "SELECT 0, agent, calls, COUNT(*) FROM per GROUP BY agent, calls "
        "UNION ALL SELECT * FROM (SELECT 1, per.agent, per.calls, per.trace_id FROM per "
        "JOIN top ON per.agent = top.agent AND per.calls = top.calls "
        "ORDER BY per.trace_id, per.agent)"
    )
    for part, agent, calls, value in rows:
        if part == 0:
            histograms.setdefault(agent, {})[int(calls)] = int(value)
        else:
            top.append((value, agent, int(calls)))
    return histograms, top


def tool_error_traces(conn: sqlite3.Connection) -> dict[str, int]:
    """Per tool, the number of traces with at least one failed call of it."""
    return dict(
        conn.execute(
            "SELECT tool_name, COUNT(DISTINCT trace_id) "
            f"FROM {span_source(conn, 'tool_name, trace_id, status')} "
            "WHERE status = 'error' AND tool_name IS NOT NULL GROUP BY tool_name"
        ).fetchall()
    )


def root_answered(
    conn: sqlite3.Connection, every: int = 1, known: dict[tuple[str, str], bool] | None = None
) -> Iterator[tuple[str, str, bool]]:
    """(trace_id, span_id, whether its output is non-blank) of every root span (no parent),
    or of about one in `every`, read by offset in file order: one small read per trace.
    Roots in `known` ((trace, span) -> answered) are not read again."""
    known = known or {}
    for trace_id, span_id, line in _root_lines(conn, every, known):
        if line is None:
            yield trace_id, span_id, known[(trace_id, span_id)]
            continue
        output = _output(line, span_id)
        yield trace_id, span_id, output is not None and bool(str(output).strip())


def _output(line: bytes, span_id: str) -> str | None:
    try:
        return span_payload(line, span_id).output
    except Exception:  # a line changed or unreadable: count it as unknown
        return None


def _root_lines(
    conn: sqlite3.Connection, every: int, known: dict[tuple[str, str], bool]
) -> Iterator[tuple[str, str, bytes | None]]:
    """(trace_id, span_id, line) of the roots, in file order; line is None when known."""
    files = {
        fid: (Path(path), bool(gz))
        for fid, path, gz in conn.execute("SELECT file_id, path, gz FROM files")
    }
    handles: dict[int, Any] = {}
    sample = f" AND id % {int(every)} = 0" if every > 1 else ""
    columns = "id, trace_id, span_id, parent_span_id, file_id, offset, length"
    cursor = conn.execute(
        f"SELECT trace_id, span_id, file_id, offset, length FROM {span_source(conn, columns)} "
        f"WHERE parent_span_id IS NULL{sample} ORDER BY file_id, offset"
    )
    try:
        for trace_id, span_id, file_id, offset, length in _rows(cursor):
            if (trace_id, span_id) in known:
                yield trace_id, span_id, None
                continue
            yield trace_id, span_id, _read_line(conn, files, handles, file_id, offset, length)
    finally:
        for handle in handles.values():
            handle.close()


def _read_line(
    conn: sqlite3.Connection,
    files: dict[int, tuple[Path, bool]],
    handles: dict[int, Any],
    file_id: int,
    offset: int,
    length: int,
) -> bytes:
    path, gz = files[file_id]
    if gz:
        row = conn.execute(
            "SELECT data FROM gz_lines WHERE file_id = ? AND offset = ?", (file_id, offset)
        ).fetchone()
        return zlib.decompress(row[0]) if row else b""
    handle = handles.get(file_id)
    if handle is None:
        try:
            handle = handles[file_id] = open(path, "rb")  # noqa: SIM115 (closed by caller)
        except OSError as exc:
            raise StoreError(f"cannot read {path} ({exc}); was it moved? open it again") from None
    handle.seek(offset)
    return handle.read(length)


def _rows(cursor: sqlite3.Cursor) -> Iterator[tuple[Any, ...]]:
    while True:
        batch = cursor.fetchmany(5000)
        if not batch:
            return
        yield from batch
