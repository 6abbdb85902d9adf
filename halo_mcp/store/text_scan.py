"""The full-text file scan: the spans whose content matches a regex, found by running the
regex over the raw trace files instead of reading span lines one by one.

Only for raw-safe patterns (see content.raw_safe): the raw bytes are scanned in big
blocks, and each hit line's spans are confirmed on their decoded text. A line's spans are
found from the index's line_index (sorted line offsets and the row id of each line's
first span), read once per file and shared by every thread.

A scan runs in the requesting thread, or, when the store was given :class:`ScanWorkers`
(a shared HTTP server), in a worker process: its CPU then never competes for the
server's GIL with the quick calls of other clients (see scan_workers.py).
"""

from __future__ import annotations

import bisect
import sqlite3
import threading
import uuid
from array import array
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from halo_mcp.store import content
from halo_mcp.store.formats import SpanPayload, span_payloads, span_text
from halo_mcp.store.raw_lines import TraceFiles
from halo_mcp.store.time_limit import Deadline
from halo_mcp.text_patterns import Regex

if TYPE_CHECKING:
    from halo_mcp.store.scan_workers import ScanWorkers

#: Scans whose ids are kept for every thread of a store (the latest ones), and how many
#: ids they may hold in all (8 bytes each).
SCANS_KEPT = 16
IDS_KEPT = 250_000
#: How often a thread waiting for another's scan of its pattern checks its time limit.
SCAN_WAIT_STEP_S = 0.05


class LineIndexes:
    """Each file's sorted line offsets and the row id of each line's first span, read
    from the index once per file; safe to share between threads."""

    def __init__(self) -> None:
        self._by_file: dict[int, tuple[array[int], array[int]]] = {}
        self._guard = threading.Lock()

    def of(self, conn: sqlite3.Connection, file_id: int) -> tuple[array[int], array[int]]:
        with self._guard:
            cached = self._by_file.get(file_id)
        if cached is not None:
            return cached
        offsets, firsts = array("q"), array("q")
        for off_blob, first_blob in conn.execute(
            "SELECT offsets, first_ids FROM line_index WHERE file_id=? ORDER BY seq", (file_id,)
        ):
            offsets.frombytes(off_blob)
            firsts.frombytes(first_blob)
        with self._guard:
            self._by_file[file_id] = (offsets, firsts)
        return offsets, firsts


def scan_files(
    conn: sqlite3.Connection,
    files: Mapping[int, tuple[Path, bool]],
    lines: LineIndexes,
    rx: Regex,
    raw: bytes,
    deadline: Deadline,
) -> Iterator[int]:
    """Row ids, in file order, of the spans of `files` whose decoded text `rx` matches;
    `raw` (the raw-safe form of its pattern) picks the lines worth decoding."""
    matcher = content.block_matcher(raw)
    for file_id, (path, gz) in sorted(files.items()):
        offsets, firsts = lines.of(conn, file_id)
        for offset, line in content.matching_lines(path, gz, matcher):
            deadline.check()
            i = bisect.bisect_left(offsets, offset)
            if i >= len(offsets) or offsets[i] != offset:
                continue
            for row_id, payload in _line_spans(conn, file_id, offset, firsts[i], line):
                if rx.search(span_text(payload)):
                    yield row_id


class TextScanner:
    """Scans a store's trace files for a pattern; safe to share between threads.

    The ids each scan found are kept for the life of the store (its files do not change
    under it: a changed file opens a new store), within SCANS_KEPT scans and IDS_KEPT ids:
    each thread keeps its own hit tables, and without this every thread would read the
    files again for a pattern another thread has already scanned (or is scanning: it waits
    for that scan instead of running its own).
    """

    def __init__(
        self, files: TraceFiles, index_path: Path, workers: ScanWorkers | None = None
    ) -> None:
        self._files = files
        self._index_path = index_path
        self._workers = workers
        self._key = uuid.uuid4().hex  # names this store's files to a worker process
        self._lines = LineIndexes()
        self._scans: OrderedDict[str, array[int]] = OrderedDict()
        self._scanning: dict[str, threading.Event] = {}  # patterns being scanned now
        self._guard = threading.Lock()

    def matching_ids(
        self, conn: sqlite3.Connection, pattern: str, rx: Regex, raw: bytes, deadline: Deadline
    ) -> array[int]:
        """Row ids of the spans whose text `rx` (compiled from `pattern`) matches; `raw` is
        its raw-safe form."""
        while True:
            with self._guard:
                kept = self._scans.get(pattern)
                if kept is not None:
                    self._scans.move_to_end(pattern)
                    return kept
                scanning = self._scanning.get(pattern)
                if scanning is None:
                    scanning = self._scanning[pattern] = threading.Event()
                    break
            # Another thread is scanning for this pattern: take its ids when it is done
            # (or scan here if it failed), within this request's time limit.
            while not scanning.wait(SCAN_WAIT_STEP_S):
                deadline.check()
        try:
            if self._workers is not None and self._workers.usable:
                ids = self._workers.scan(
                    self._key, self._index_path, self._files.by_id, pattern, raw, deadline
                )
            else:
                found = scan_files(conn, self._files.by_id, self._lines, rx, raw, deadline)
                ids = array("q", found)
            with self._guard:
                self._scans[pattern] = ids
                while len(self._scans) > SCANS_KEPT or (
                    len(self._scans) > 1 and sum(map(len, self._scans.values())) > IDS_KEPT
                ):
                    self._scans.popitem(last=False)
        finally:
            with self._guard:
                del self._scanning[pattern]
            scanning.set()
        return ids


def _line_spans(
    conn: sqlite3.Connection, file_id: int, offset: int, first_id: int, line: bytes
) -> list[tuple[int, SpanPayload]]:
    """(row id, content) of each span on a line (an OTLP line can hold many)."""
    try:
        payloads = span_payloads(line)
    except Exception:
        return []
    if len(payloads) == 1:
        return [(first_id, payloads[0][1])]
    by_id = dict(payloads)
    rows = conn.execute(
        "SELECT id, span_id FROM spans WHERE id >= ? AND id < ? AND file_id = ? AND offset = ?",
        (first_id, first_id + len(payloads), file_id, offset),
    )
    return [(rid, by_id[sid]) for rid, sid in rows if sid in by_id]
