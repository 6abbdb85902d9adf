"""The index's SQLite schema. Bump SCHEMA_VERSION whenever it changes: old indexes rebuild."""

from __future__ import annotations

import sqlite3

from halo_mcp.store.formats.lines import ROW_FIELDS

SCHEMA_VERSION = 8  # 8: an index on span tokens (sort by tokens)

#: Columns of `spans` written by the bulk insert, in order: the parsers' row fields, then
#: where the span lives in its file and its input hash (ingest.py appends those four).
SPAN_COLUMNS = (*ROW_FIELDS, "line", "offset", "length", "input_hash")

TABLES = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS files(
    file_id INTEGER PRIMARY KEY, path TEXT NOT NULL, format TEXT, gz INTEGER,
    size INTEGER, mtime_ns INTEGER, inode INTEGER, head_hash BLOB, tail_hash BLOB,
    bytes_indexed INTEGER, lines_indexed INTEGER, spans INTEGER, bad_lines INTEGER,
    duplicates INTEGER DEFAULT 0);
CREATE TABLE IF NOT EXISTS spans(
    id INTEGER PRIMARY KEY AUTOINCREMENT, trace_id TEXT, span_id TEXT, parent_span_id TEXT,
    name TEXT, kind TEXT, status TEXT, error_message TEXT, start_ns INTEGER, end_ns INTEGER,
    service TEXT, agent TEXT, model TEXT, tool_name TEXT, input_tokens INTEGER,
    output_tokens INTEGER, session_id TEXT, line INTEGER, offset INTEGER, length INTEGER,
    input_hash INTEGER, file_id INTEGER, duration_ns INTEGER, tokens INTEGER);
CREATE TABLE IF NOT EXISTS line_index(file_id INTEGER, seq INTEGER, offsets BLOB, first_ids BLOB,
    PRIMARY KEY(file_id, seq));
CREATE TABLE IF NOT EXISTS gz_lines(file_id INTEGER, offset INTEGER, data BLOB,
    PRIMARY KEY(file_id, offset)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS bad_lines(file_id INTEGER, line INTEGER, reason TEXT);
CREATE TABLE IF NOT EXISTS traces(
    id INTEGER PRIMARY KEY, trace_id TEXT UNIQUE, root_name TEXT, service TEXT, agents TEXT,
    models TEXT, span_count INTEGER, error_count INTEGER, start_ns INTEGER, end_ns INTEGER,
    duration_ns INTEGER, input_tokens INTEGER, output_tokens INTEGER,
    first_error_span_id TEXT, first_error_name TEXT, first_error_message TEXT,
    has_root INTEGER, orphans INTEGER);
CREATE TABLE IF NOT EXISTS dims(dim TEXT, name TEXT, count INTEGER, errors INTEGER);
CREATE TABLE IF NOT EXISTS span_groups(kind TEXT, service TEXT, agent TEXT, model TEXT,
    tool_name TEXT, is_error INTEGER, spans INTEGER, input_tokens INTEGER,
    output_tokens INTEGER);
CREATE TABLE IF NOT EXISTS signatures(rank INTEGER PRIMARY KEY, span_name TEXT, message TEXT,
    traces INTEGER, spans INTEGER, example_trace_ids TEXT, example_span_ids TEXT);
CREATE TABLE IF NOT EXISTS shards(shard INTEGER PRIMARY KEY, name TEXT NOT NULL,
    line_file_id INTEGER, line_base INTEGER);
"""

#: The span indexes: every span table has them (main's and each shard's).
SPAN_INDEXES = """
CREATE INDEX IF NOT EXISTS spans_trace ON spans(trace_id, span_id);
CREATE INDEX IF NOT EXISTS spans_span ON spans(span_id);
CREATE INDEX IF NOT EXISTS spans_start ON spans(start_ns);
CREATE INDEX IF NOT EXISTS spans_duration ON spans(duration_ns);
CREATE INDEX IF NOT EXISTS spans_tokens ON spans(tokens);
CREATE INDEX IF NOT EXISTS spans_tool ON spans(tool_name, status, start_ns)
    WHERE tool_name IS NOT NULL;
CREATE INDEX IF NOT EXISTS spans_name ON spans(name);
CREATE INDEX IF NOT EXISTS spans_errors ON spans(start_ns) WHERE status = 'error';
"""

TRACE_INDEXES = """
CREATE INDEX IF NOT EXISTS traces_start ON traces(start_ns);
CREATE INDEX IF NOT EXISTS traces_duration ON traces(duration_ns);
CREATE INDEX IF NOT EXISTS traces_errors ON traces(error_count);
"""


def create_indexes(conn: sqlite3.Connection, script: str) -> None:
    """Run each CREATE INDEX of `script` (SPAN_INDEXES or TRACE_INDEXES)."""
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)
