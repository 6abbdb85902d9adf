"""Aggregate reads over the index for triage and re-checks: pure SQL, no raw payloads.

The TraceStore API answers per-filter questions; triage needs a handful of whole-set
aggregates (every error span, repeated tool inputs per trace, duration and token
distributions, thresholded counts, root spans). They read the index's tables through a
separate read-only connection, so they never disturb the store's own connections.
Only :func:`root_outputs` touches the trace files, one root span per trace, by offset.
"""

from __future__ import annotations

import contextlib
import sqlite3
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from halo_mcp.store.errors import StoreError
from halo_mcp.store.formats import span_payload
from halo_mcp.store.shards import attach_shards
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
    low, high = conn.execute("SELECT MIN(start_ns), MAX(start_ns) FROM spans").fetchone()
    return int(low or 0), int(high or 0)


def model_names(conn: sqlite3.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT DISTINCT model FROM spans WHERE model IS NOT NULL")]


def error_spans(conn: sqlite3.Connection) -> Iterator[tuple[Any, ...]]:
    """(kind, tool_name, name, error_message, trace_id, span_id, start_ns) of every error span,
    in time order."""
    cursor = conn.execute(
        "SELECT kind, tool_name, name, error_message, trace_id, span_id, start_ns FROM spans "
        "WHERE status = 'error' ORDER BY start_ns, id"
    )
    yield from _rows(cursor)


def repeated_calls(conn: sqlite3.Connection, min_repeats: int) -> Iterator[tuple[Any, ...]]:
    """(trace_id, tool_name, calls, error_calls, span_ids) where one tool got identical input
    at least `min_repeats` times within one trace."""
    cursor = conn.execute(
        "SELECT trace_id, tool_name, COUNT(*) AS calls, SUM(status = 'error'), "
        "group_concat(span_id, ' ') FROM spans "
        "WHERE input_hash IS NOT NULL AND tool_name IS NOT NULL "
        "GROUP BY trace_id, tool_name, input_hash HAVING calls >= ?",
        (int(min_repeats),),
    )
    yield from _rows(cursor)


def metric_samples(
    conn: sqlite3.Connection, kind: str, max_rows: int
) -> tuple[dict[str, dict[str, list[int]]], int]:
    """Durations and token counts per group of `kind` spans, from an evenly spread sample of
    at most about `max_rows` rows (every k-th row id), so memory stays bounded. Returns
    ({metric: {group: values}}, k); tokens keep only spans that report some."""
    group = GROUP_COLUMN[kind]
    total = conn.execute("SELECT COUNT(*) FROM spans WHERE kind = ?", (kind,)).fetchone()[0]
    step = max(1, total // max(1, max_rows))
    sql = f"SELECT {group}, duration_ns, tokens FROM spans WHERE kind = ? AND {group} IS NOT NULL"
    params: tuple[Any, ...] = (kind,)
    if step > 1:
        sql += " AND id % ? = 0"
        params = (kind, step)
    durations: dict[str, list[int]] = {}
    tokens: dict[str, list[int]] = {}
    for name, duration, count in conn.execute(sql, params):
        durations.setdefault(name, []).append(int(duration or 0))
        if count:
            tokens.setdefault(name, []).append(int(count))
    return {"duration": durations, "tokens": tokens}, step


def over_thresholds(
    conn: sqlite3.Connection, kind: str, metric: str, thresholds: dict[str, int]
) -> dict[str, list[tuple[str, str, int]]]:
    """Per group, the (trace_id, span_id, value) of `kind` spans whose metric is at least the
    group's threshold: one scan for all groups."""
    column, group = METRIC_COLUMN[metric], GROUP_COLUMN[kind]
    out: dict[str, list[tuple[str, str, int]]] = {}
    items = list(thresholds.items())
    for i in range(0, len(items), 400):
        chunk = items[i : i + 400]
        values = ",".join("(?, ?)" for _ in chunk)
        params: list[Any] = [v for pair in chunk for v in pair]
        sql = (
            f"WITH th(name, threshold) AS (VALUES {values}) "
            f"SELECT s.{group}, s.trace_id, s.span_id, s.{column} FROM spans s "
            f"JOIN th ON s.{group} = th.name WHERE s.kind = ? AND s.{column} >= th.threshold"
        )
        for name, trace_id, span_id, value in conn.execute(sql, (*params, kind)):
            out.setdefault(name, []).append((trace_id, span_id, int(value or 0)))
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
    for (trace_id,) in conn.execute(f"SELECT trace_id FROM spans WHERE {where}", params):
        spans += 1
        traces.add(trace_id)
    top = conn.execute(
        f"SELECT trace_id, span_id, {column} FROM spans WHERE {where} "
        f"ORDER BY {column} DESC LIMIT ?",
        (*params, int(examples)),
    ).fetchall()
    return spans, traces, top


def llm_calls_per_agent(conn: sqlite3.Connection) -> Iterator[tuple[str, str, int]]:
    """(trace_id, agent, successful LLM calls) per agent of each trace: the turns it took."""
    cursor = conn.execute(
        "SELECT trace_id, agent, COUNT(*) FROM spans WHERE kind = 'llm' AND agent IS NOT NULL "
        "AND status != 'error' GROUP BY trace_id, agent"
    )
    yield from _rows(cursor)


def tool_error_traces(conn: sqlite3.Connection) -> dict[str, int]:
    """Per tool, the number of traces with at least one failed call of it."""
    return dict(
        conn.execute(
            "SELECT tool_name, COUNT(DISTINCT trace_id) FROM spans "
            "WHERE status = 'error' AND tool_name IS NOT NULL GROUP BY tool_name"
        ).fetchall()
    )


def root_outputs(conn: sqlite3.Connection, every: int = 1) -> Iterator[tuple[str, str, str | None]]:
    """(trace_id, span_id, output or None) of every root span (no parent), or of about one
    in `every`, read by offset in file order. The one aggregate that reads payloads: one
    small read per trace."""
    files = {
        fid: (Path(path), bool(gz))
        for fid, path, gz in conn.execute("SELECT file_id, path, gz FROM files")
    }
    handles: dict[int, Any] = {}
    sample = f" AND id % {int(every)} = 0" if every > 1 else ""
    cursor = conn.execute(
        "SELECT trace_id, span_id, file_id, offset, length FROM spans "
        f"WHERE parent_span_id IS NULL{sample} ORDER BY file_id, offset"
    )
    try:
        for trace_id, span_id, file_id, offset, length in _rows(cursor):
            line = _read_line(conn, files, handles, file_id, offset, length)
            try:
                output = span_payload(line, span_id).output
            except Exception:  # a line changed or unreadable: count it as unknown
                output = None
            yield trace_id, span_id, output
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
