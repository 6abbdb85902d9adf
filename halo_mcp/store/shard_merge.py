"""Stitching a parallel build together in the main process (see index._build_sharded).

The input is cut into one run of bytes per worker (cut_runs); each worker builds a shard
(shard_build.py); then the main file records what the shards found (record_shards) and
takes the shards' trace summaries, redoing the few traces that fell into several span
tables (join_shard_traces).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

from halo_mcp.store import derive
from halo_mcp.store.ingest import MAX_BAD_EXAMPLES, record_file
from halo_mcp.store.shard_build import Segment, ShardResult
from halo_mcp.store.shards import shard_file, span_tables

if TYPE_CHECKING:
    from halo_mcp.store.index import Plan


def cut_runs(plans: list[Plan], parts: int) -> list[list[Segment]]:
    """Plain files as `parts` runs of about equal bytes, cut at line ends (a run may span
    several files; a file may span several runs)."""
    total = sum(p.state.end for p in plans)
    target = max(1, -(-total // parts))
    runs: list[list[Segment]] = [[]]
    room = target
    for plan in plans:
        path, size, start = str(plan.state.path), plan.state.end, 0
        with open(path, "rb") as handle:
            while start < size:
                if room <= 0 and len(runs) < parts:
                    runs.append([])
                    room = target
                stop = size if len(runs) == parts else min(size, start + room)
                if stop < size:
                    handle.seek(stop)
                    handle.readline()
                    stop = min(handle.tell(), size)
                runs[-1].append(Segment(plan.fid, path, start, stop))
                room -= stop - start
                start = stop
    return [run for run in runs if run]


def record_shards(
    conn: sqlite3.Connection,
    plans: list[Plan],
    results: list[ShardResult],
    db_path: Path,
    token: str,
) -> None:
    """Stitch the shards' per-segment results into files, line_index, bad_lines, shards.

    Lines: a shard numbers lines from its first segment's start, so the main file records
    how many lines of that file came before (readers add them: see shards.line_fixes)."""
    lines: dict[int, int] = {}
    seqs: dict[int, int] = {}
    spans: dict[int, int] = {}
    bad: dict[int, int] = {}
    formats: dict[int, str] = {}
    kept_bad = conn.execute("SELECT COUNT(*) FROM bad_lines").fetchone()[0]
    for result in results:
        first = result.segments[0]
        base = lines.get(first.file_id, 0)
        conn.execute(
            "INSERT INTO shards VALUES(?, ?, ?, ?)",
            (result.shard, shard_file(db_path, token, result.shard).name, first.file_id, base),
        )
        for segment in result.segments:
            fid = segment.file_id
            base = lines.get(fid, 0)
            for offsets, firsts in segment.line_index:
                seq = seqs.get(fid, 0)
                conn.execute("INSERT INTO line_index VALUES(?,?,?,?)", (fid, seq, offsets, firsts))
                seqs[fid] = seq + 1
            for line, reason in segment.bad_examples:
                if kept_bad < MAX_BAD_EXAMPLES:
                    row = (fid, base + line + 1, reason)
                    conn.execute("INSERT INTO bad_lines VALUES(?,?,?)", row)
                    kept_bad += 1
            lines[fid] = base + segment.lines
            spans[fid] = spans.get(fid, 0) + segment.spans
            bad[fid] = bad.get(fid, 0) + segment.bad_lines
            if segment.format and fid not in formats:
                formats[fid] = segment.format
    for plan in plans:
        fid = plan.fid
        counts = (lines.get(fid, 0), spans.get(fid, 0), bad.get(fid, 0))
        record_file(conn, fid, plan.state, *counts, formats.get(fid))


def join_shard_traces(conn: sqlite3.Connection, groups: derive.Groups) -> int:
    """Fill main.traces from the shards' summaries. A trace whose spans sit in several
    span tables (a run boundary cut it, or several files hold it) is summarized again over
    all its spans, after dropping duplicates across tables (taken out of `groups`).
    Returns how many duplicates were dropped."""
    tables = span_tables(conn)
    shard_traces = [f"{t.split('.')[0]}.traces" for t in tables[1:]]
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS affected(trace_id TEXT PRIMARY KEY)")
    conn.execute("DELETE FROM temp.affected")
    # Traces in several shards, and every trace of main.spans (.gz rows): summarized anew.
    everywhere = " UNION ALL ".join(f"SELECT trace_id FROM {t}" for t in shard_traces)
    conn.execute(
        f"INSERT INTO temp.affected SELECT trace_id FROM ({everywhere}) "
        "GROUP BY trace_id HAVING COUNT(*) > 1"
    )
    conn.execute("INSERT OR IGNORE INTO temp.affected SELECT DISTINCT trace_id FROM main.spans")
    columns = (
        "trace_id, root_name, service, agents, models, span_count, error_count, start_ns, "
        "end_ns, duration_ns, input_tokens, output_tokens, first_error_span_id, "
        "first_error_name, first_error_message, has_root, orphans"
    )
    for table in shard_traces:
        conn.execute(
            f"INSERT INTO main.traces({columns}) SELECT {columns} FROM {table} "
            "WHERE trace_id NOT IN (SELECT trace_id FROM temp.affected)"
        )
    if conn.execute("SELECT COUNT(*) FROM temp.affected").fetchone()[0] == 0:
        return 0
    derive.gather_scope(conn)
    removed = derive.remove_duplicates(conn, groups, source=derive.SCOPE)
    changes = derive.refresh_traces(conn, all_traces=False, source=derive.SCOPE)
    derive.merge_groups(groups, changes)
    return removed
