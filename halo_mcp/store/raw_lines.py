"""Raw line reads: a span's source line, by file id and byte offset.

The index keeps only where each span's line is. Plain files are read by seek; a gzip
file's lines are kept (compressed) in the index's gz_lines table, by their offset in the
uncompressed stream. Readers keep each file they opened open until they are closed.
"""

from __future__ import annotations

import sqlite3
import zlib
from pathlib import Path
from typing import BinaryIO

from halo_mcp.store.errors import StoreError
from halo_mcp.store.formats import SpanNotOnLineError, SpanPayload, span_payload
from halo_mcp.store.models import SpanSource
from halo_mcp.store.shards import line_fixes, shard_of


class TraceFiles:
    """The indexed trace files (id -> path, gzipped or not) and the line numbering fixes
    of shards; read once when a store opens."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.by_id: dict[int, tuple[Path, bool]] = {
            int(fid): (Path(path), bool(gz))
            for fid, path, gz in conn.execute("SELECT file_id, path, gz FROM files")
        }
        self._line_fixes = line_fixes(conn)

    def path_of(self, file_id: int) -> str:
        return str(self.by_id[file_id][0])

    def source(self, row_id: int, file_id: int, line: int, offset: int, length: int) -> SpanSource:
        """Where a span row lives; shard rows count lines from where their shard starts."""
        fix = self._line_fixes.get(shard_of(row_id))
        if fix is not None and fix[0] == file_id and line is not None:
            line += fix[1]
        return SpanSource(file=self.path_of(file_id), line=line, offset=offset, length=length)


class LineReader:
    """Reads raw span lines; use as a context manager (it closes the files it opened)."""

    def __init__(self, files: TraceFiles, conn: sqlite3.Connection) -> None:
        self._files = files
        self._conn = conn
        self._handles: dict[int, BinaryIO] = {}

    def read(self, file_id: int, offset: int, length: int) -> bytes:
        path, gz = self._files.by_id[file_id]
        if gz:
            row = self._conn.execute(
                "SELECT data FROM gz_lines WHERE file_id = ? AND offset = ?", (file_id, offset)
            ).fetchone()
            return zlib.decompress(row[0]) if row else b""
        handle = self._handles.get(file_id)
        if handle is None:
            try:
                handle = self._handles[file_id] = open(path, "rb")  # noqa: SIM115 (close())
            except OSError as exc:
                raise StoreError(
                    f"cannot read {path} ({exc}); was it moved? open the store again"
                ) from None
        handle.seek(offset)
        return handle.read(length)

    def payload(self, file_id: int, offset: int, length: int, span_id: str) -> SpanPayload | None:
        """The span's content from its line: None when the line cannot be parsed; a
        StoreError when the line no longer holds the span (the file changed)."""
        line = self.read(file_id, offset, length)
        try:
            return span_payload(line, span_id)
        except SpanNotOnLineError:
            raise StoreError(
                f"{self._files.path_of(file_id)} changed since it was indexed; open the store "
                "again to re-index it"
            ) from None
        except Exception:
            return None

    def close(self) -> None:
        handles, self._handles = self._handles, {}
        for handle in handles.values():
            handle.close()

    def __enter__(self) -> LineReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
