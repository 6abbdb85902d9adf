"""The dataset overview and the load report, read from the small precomputed tables."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson

from halo_mcp.store.models import (
    BadLine,
    ErrorSignature,
    FileReport,
    LoadReport,
    NameCount,
    Overview,
    TokenTotals,
    ToolStats,
)
from halo_mcp.store.query import from_ns

TOP_NAMES = 50
TOP_TOOLS = 100
TOP_SIGNATURES = 20
SAMPLE_TRACES = 5


def read_meta(conn: sqlite3.Connection) -> dict[str, str | None]:
    return dict(conn.execute("SELECT key, value FROM meta"))


def meta_int(meta: dict[str, str | None], key: str) -> int:
    value = meta.get(key)
    return int(value) if value not in (None, "") else 0


def spans_per_file(conn: sqlite3.Connection) -> dict[str, int]:
    """Spans indexed from each file (by path)."""
    return {path: int(spans or 0) for path, spans in conn.execute("SELECT path, spans FROM files")}


def file_reports(conn: sqlite3.Connection) -> list[FileReport]:
    return [
        FileReport(
            path=path,
            format=fmt or "unknown",
            spans=max(0, spans - duplicates),
            bad_lines=bad,
            size_bytes=size,
        )
        for path, fmt, spans, duplicates, bad, size in conn.execute(
            "SELECT path, format, spans, COALESCE(duplicates, 0), "
            f"bad_lines + ({_UNFINISHED}), size FROM files ORDER BY file_id"
        )
    ]


# A plain file indexed short of its size ends with an unfinished line (see
# files.complete_end): a bad line for now, not stored as one, so it goes away by itself
# when the writer finishes the line and the index is extended over it.
_UNFINISHED = "gz = 0 AND bytes_indexed < size"
UNFINISHED_REASON = (
    "unfinished last line (no line end, not valid JSON): not indexed; if the file is still "
    "being written it will be once the line is complete, else the line was cut short"
)


def bad_line_examples(conn: sqlite3.Connection) -> list[BadLine]:
    return [
        BadLine(file=path, line=line, reason=reason)
        for path, line, reason, _ in conn.execute(
            "SELECT f.path, b.line, b.reason, b.file_id FROM bad_lines b "
            "JOIN files f USING(file_id) UNION ALL "
            "SELECT path, lines_indexed + 1, ?, file_id FROM files "
            f"WHERE {_UNFINISHED} ORDER BY 4, 2",
            (UNFINISHED_REASON,),
        )
    ]


def load_report(conn: sqlite3.Connection, index_path: Path, reused: bool) -> LoadReport:
    meta = read_meta(conn)
    files = file_reports(conn)
    duplicates = conn.execute("SELECT COALESCE(SUM(duplicates), 0) FROM files").fetchone()[0]
    return LoadReport(
        files=files,
        spans=meta_int(meta, "spans"),
        bad_lines=sum(f.bad_lines for f in files),
        bad_line_examples=bad_line_examples(conn),
        duplicate_spans=duplicates,
        orphan_spans=meta_int(meta, "orphan_spans"),
        rootless_traces=meta_int(meta, "rootless_traces"),
        index_path=str(index_path),
        reused=reused,
    )


def _names(conn: sqlite3.Connection, dim: str, limit: int = TOP_NAMES) -> list[NameCount]:
    return [
        NameCount(name=name, count=count)
        for name, count in conn.execute(
            "SELECT name, count FROM dims WHERE dim = ? ORDER BY count DESC, name LIMIT ?",
            (dim, limit),
        )
    ]


def _sample_traces(conn: sqlite3.Connection) -> list[str]:
    """A few trace ids: examples of the top error signatures first, then the smallest ids."""
    sample: list[str] = []
    for (examples,) in conn.execute(
        "SELECT example_trace_ids FROM signatures ORDER BY rank LIMIT ?", (SAMPLE_TRACES,)
    ):
        ids = orjson.loads(examples)
        if ids and ids[0] not in sample:
            sample.append(ids[0])
        if len(sample) >= 2:
            break
    for (trace_id,) in conn.execute("SELECT trace_id FROM traces ORDER BY trace_id LIMIT ?", (10,)):
        if len(sample) >= SAMPLE_TRACES:
            break
        if trace_id not in sample:
            sample.append(trace_id)
    return sample


def build_overview(conn: sqlite3.Connection, report: LoadReport) -> Overview:
    meta = read_meta(conn)
    start, end = meta.get("start_ns"), meta.get("end_ns")
    return Overview(
        files=report.files,
        traces=meta_int(meta, "traces"),
        spans=meta_int(meta, "spans"),
        error_spans=meta_int(meta, "error_spans"),
        error_traces=meta_int(meta, "error_traces"),
        bad_lines=report.bad_lines,
        start_time=from_ns(int(start)) if start else None,
        end_time=from_ns(int(end)) if end else None,
        services=_names(conn, "service"),
        agents=_names(conn, "agent"),
        models=_names(conn, "model"),
        tools=[
            ToolStats(name=name, calls=count, errors=errors)
            for name, count, errors in conn.execute(
                "SELECT name, count, errors FROM dims WHERE dim = 'tool' "
                "ORDER BY count DESC, name LIMIT ?",
                (TOP_TOOLS,),
            )
        ],
        span_kinds=_names(conn, "kind"),
        tokens=TokenTotals(
            input=meta_int(meta, "input_tokens"), output=meta_int(meta, "output_tokens")
        ),
        error_signatures=[
            ErrorSignature(
                span_name=name,
                message=message,
                traces=traces,
                spans=spans,
                example_trace_ids=orjson.loads(trace_ids),
                example_span_ids=orjson.loads(span_ids),
            )
            for name, message, traces, spans, trace_ids, span_ids in conn.execute(
                "SELECT span_name, message, traces, spans, example_trace_ids, example_span_ids "
                "FROM signatures ORDER BY rank LIMIT ?",
                (TOP_SIGNATURES,),
            )
        ],
        sample_trace_ids=_sample_traces(conn),
        orphan_spans=report.orphan_spans,
        rootless_traces=report.rootless_traces,
        duplicate_spans=report.duplicate_spans,
    )
