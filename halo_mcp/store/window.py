"""A store scoped to a time window: a small index of the window's traces, built from the
whole set's index, that every reader (queries, overview, triage, checks) uses as is.

The window's span rows, trace summaries and file list are copied from the full index
(span rows keep their ids and point into the same trace files), then its aggregates
(counts per service/agent/model/tool, error signatures, totals) are derived from those
rows by the same code an index build uses. The copy lives beside the full index and is
deleted when the store closes. Cost: proportional to the spans in the window.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from halo_mcp.store import derive
from halo_mcp.store.connections import connect
from halo_mcp.store.errors import NoSpansError
from halo_mcp.store.schema import (
    SCHEMA_VERSION,
    SPAN_INDEXES,
    TABLES,
    TRACE_INDEXES,
    create_indexes,
)
from halo_mcp.store.shards import SHARD_BITS, attach_shards, line_fixes
from halo_mcp.store.store import TraceStore
from halo_mcp.store.timewindow import TimeWindow


class WindowedStore(TraceStore):
    """A TraceStore over the traces of one time window; its index file goes on close."""

    window: TimeWindow

    def close(self) -> None:
        super().close()
        for suffix in ("", "-wal", "-shm", "-journal"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(str(self.index_path) + suffix)


def scope_to_window(store: TraceStore, window: TimeWindow) -> WindowedStore:
    """A store holding only the traces of `store` that start inside `window`.
    Raises NoSpansError, naming the data's own time range, when none does."""
    base = store.index_path
    target = base.with_name(f"{base.stem}.window-{os.getpid()}-{secrets.token_hex(4)}.sqlite")
    low, high = window.bounds_ns()
    try:
        traces = _copy(base, target, low, high)
        if traces == 0:
            raise NoSpansError(_empty_message(store, window))
        _derive(target)
        scoped = WindowedStore(
            target,
            store.paths,
            False,
            store._inputs,
            query_time_limit=store.query_time_limit,
            scan_workers=store.scan_workers,
        )
    except BaseException:
        for suffix in ("", "-wal", "-shm", "-journal"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(str(target) + suffix)
        raise
    scoped.window = window
    return scoped


def _copy(base: Path, target: Path, low: int, high: int) -> int:
    """Copy the window's rows from the full index at `base`; returns the trace count."""
    with contextlib.closing(connect(target)) as out:
        out.execute("PRAGMA journal_mode=OFF")
        out.executescript(TABLES)
    with contextlib.closing(connect(base)) as conn:
        attach_shards(conn, base)
        conn.execute("ATTACH DATABASE ? AS win", (target.absolute().as_uri(),))
        conn.execute("PRAGMA win.synchronous=OFF")
        conn.execute("BEGIN")
        conn.execute(
            "INSERT INTO win.traces SELECT * FROM main.traces WHERE start_ns >= ? AND start_ns < ?",
            (low, high),
        )
        conn.execute(
            "INSERT INTO win.spans SELECT * FROM spans "
            "WHERE trace_id IN (SELECT trace_id FROM win.traces)"
        )
        # Shard rows number lines from where their shard starts: store true line numbers.
        for shard, (file_id, lines_before) in line_fixes(conn).items():
            conn.execute(
                "UPDATE win.spans SET line = line + ? WHERE file_id = ? AND id >> ? = ?",
                (lines_before, file_id, SHARD_BITS, shard),
            )
        conn.execute("INSERT INTO win.files SELECT * FROM main.files")
        conn.execute(
            "UPDATE win.files SET duplicates = 0, spans = "
            "(SELECT COUNT(*) FROM win.spans s WHERE s.file_id = files.file_id)"
        )
        for table in ("line_index", "bad_lines"):
            conn.execute(f"INSERT INTO win.{table} SELECT * FROM main.{table}")
        conn.execute(
            "INSERT INTO win.gz_lines SELECT g.* FROM main.gz_lines g WHERE EXISTS ("
            "SELECT 1 FROM win.spans s WHERE s.file_id = g.file_id AND s.offset = g.offset)"
        )
        traces = conn.execute("SELECT COUNT(*) FROM win.traces").fetchone()[0]
        conn.execute("COMMIT")
    return int(traces)


def _derive(target: Path) -> None:
    """Indexes and aggregates of the window's rows, then mark the index complete."""
    with contextlib.closing(connect(target)) as conn:
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("BEGIN")
        create_indexes(conn, SPAN_INDEXES)
        create_indexes(conn, TRACE_INDEXES)
        derive.refresh_aggregates(conn, derive.count_groups(conn))
        conn.execute("INSERT OR REPLACE INTO meta VALUES('schema', ?)", (str(SCHEMA_VERSION),))
        conn.execute("INSERT OR REPLACE INTO meta VALUES('complete', '1')")
        conn.execute("COMMIT")


def _empty_message(store: TraceStore, window: TimeWindow) -> str:
    overview = store.overview()
    if overview.start_time is None:
        span = "the files hold no span"
    else:
        span = (
            f"the traces run from {overview.start_time.isoformat()} to "
            f"{overview.end_time.isoformat() if overview.end_time else '?'}"
        )
    return (
        f"no trace in {', '.join(map(str, store.paths[:3]))} matches the window "
        f"({window.describe()}); {span}. Widen since/until or drop them."
    )


__all__ = ["WindowedStore", "scope_to_window"]
