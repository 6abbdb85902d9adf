"""Building one shard of a parallel index (runs in a worker process).

A parallel build cuts the input into one contiguous run of bytes per worker (line-aligned,
possibly over several files). Each worker parses its run block by block, appends the rows
to its own SQLite file, then builds that file's span indexes, drops duplicate spans and
summarizes its traces: everything that costs per span happens here, on every core at
once. The main process only stitches the small results together (see index.py) and fixes
up the few traces whose spans fell into more than one shard.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from halo_mcp.store import derive
from halo_mcp.store.ingest import MAX_BAD_EXAMPLES, insert_rows, parse_lines
from halo_mcp.store.schema import SPAN_INDEXES, TABLES, create_indexes
from halo_mcp.store.shards import shard_ids

BLOCK_BYTES = 8 << 20
#: The reader's buffer: with the default 8 KB one, readlines spends more time refilling
#: it than cutting lines (3.7x slower on a file of 5 KB lines).
READ_BUFFER = 1 << 20


@dataclass
class Segment:
    """Bytes [start, stop) of one plain file, cut at line ends."""

    file_id: int
    path: str
    start: int
    stop: int


@dataclass
class SegmentResult:
    """What a shard learned about one segment. Line numbers are relative to the segment's
    first line (0-based): only the main process knows how many lines came before it."""

    file_id: int
    lines: int = 0
    spans: int = 0
    bad_lines: int = 0
    bad_examples: list[tuple[int, str]] = field(default_factory=list)
    format: str | None = None
    #: (line offsets, id of each line's first span) per block, as packed int64 arrays.
    line_index: list[tuple[bytes, bytes]] = field(default_factory=list)


@dataclass
class ShardResult:
    shard: int
    segments: list[SegmentResult]
    #: Span-group counts (see derive.Groups), with the shard's inheritance applied.
    groups: derive.Groups
    spans: int
    last_id: int
    #: The shard's error signatures (see derive.collect_signatures).
    signatures: derive.Signatures
    #: Seconds spent parsing and inserting, indexing, and summarizing (for debug logs).
    seconds: tuple[float, float, float] = (0.0, 0.0, 0.0)


def _blocks(segment: Segment) -> Iterator[tuple[list[bytes], int]]:
    """The segment's lines in blocks of about BLOCK_BYTES, with each block's offset.

    readlines cuts the lines in C straight from the read buffer: one copy per line, as in
    a plain `for line in file` loop, instead of reading, joining and splitting blocks."""
    with open(segment.path, "rb", buffering=READ_BUFFER) as handle:
        handle.seek(segment.start)
        offset = segment.start
        while offset < segment.stop:
            lines = handle.readlines(BLOCK_BYTES)
            if not lines:
                return
            size = sum(map(len, lines))
            while offset + size > segment.stop:  # the segment ends at a line end
                size -= len(lines.pop())
            if not lines:
                return
            yield lines, offset
            offset += size


def build_shard(shard: int, db_path: str, segments: list[Segment]) -> ShardResult:
    """Parse `segments` into a new index file at `db_path` with ids from shard_ids(shard)."""
    began = time.perf_counter()
    conn = sqlite3.connect(db_path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        # Big pages sort and index ~20% faster; a small cache keeps two workers' memory low
        # (CREATE INDEX spills its sort to temp files instead).
        conn.execute("PRAGMA page_size=16384")
        conn.execute("PRAGMA cache_size=-4096")
        # Ids need not survive deletes here (no AUTOINCREMENT: it costs a write per row);
        # a placeholder row makes the first id shard_ids(shard) + 1.
        conn.executescript(TABLES.replace("PRIMARY KEY AUTOINCREMENT", "PRIMARY KEY"))
        first_id = shard_ids(shard)
        conn.execute("INSERT INTO spans(id) VALUES(?)", (first_id,))
        next_id = first_id + 1
        groups: derive.Groups = {}
        orphaned = 0
        results = []
        conn.execute("BEGIN")
        for segment in segments:
            conn.execute(
                "INSERT OR IGNORE INTO files(file_id, path, duplicates) VALUES(?, ?, 0)",
                (segment.file_id, segment.path),
            )
            out = SegmentResult(segment.file_id)
            for lines, offset in _blocks(segment):
                block = parse_lines(lines, offset)
                entry = insert_rows(conn, block, segment.file_id, out.lines, next_id)
                if entry is not None:
                    out.line_index.append(entry)
                for line, reason in block.bad_examples:
                    if len(out.bad_examples) < MAX_BAD_EXAMPLES:
                        out.bad_examples.append((out.lines + line, reason))
                derive.merge_groups(groups, block.groups)
                out.format = out.format or block.format
                next_id += len(block.rows)
                out.spans += len(block.rows)
                out.bad_lines += block.bad_lines
                out.lines += block.lines
                orphaned += block.orphaned_names
            results.append(out)
        conn.execute("DELETE FROM spans WHERE id = ?", (first_id,))
        conn.execute("COMMIT")
        parsed = time.perf_counter()
        create_indexes(conn, SPAN_INDEXES)
        indexed = time.perf_counter()
        conn.execute("BEGIN")
        removed = derive.remove_duplicates(conn, groups)
        changes = derive.refresh_traces(conn, all_traces=True, inherit=orphaned > 0)
        conn.execute("COMMIT")
        derive.merge_groups(groups, changes)
        signatures = derive.collect_signatures(conn)
        return ShardResult(
            shard=shard,
            segments=results,
            groups=groups,
            spans=next_id - first_id - 1 - removed,
            signatures=signatures,
            last_id=next_id - 1,
            seconds=(parsed - began, indexed - parsed, time.perf_counter() - indexed),
        )
    finally:
        conn.close()
