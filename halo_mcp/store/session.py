"""What one request to a store reads through: the calling thread's connection, hit tables
and deadline, and the store-wide files, text scanner and totals."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from halo_mcp.store.hit_tables import HitTables
from halo_mcp.store.raw_lines import LineReader, TraceFiles
from halo_mcp.store.text_scan import TextScanner
from halo_mcp.store.time_limit import Deadline


@dataclass(frozen=True)
class Session:
    conn: sqlite3.Connection
    hits: HitTables
    deadline: Deadline
    files: TraceFiles
    scanner: TextScanner
    span_total: int
    trace_total: int

    def lines(self) -> LineReader:
        """A raw line reader (a context manager: it closes the files it opened)."""
        return LineReader(self.files, self.conn)
