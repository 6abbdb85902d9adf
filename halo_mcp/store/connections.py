"""Read connections to a trace index, and batched iteration over what they return.

Every reader of an index (the store's per-thread connections, triage's aggregate readers)
opens it here, so each sees the shards as one `spans` relation (see shards.py).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from halo_mcp.store.errors import StoreError
from halo_mcp.store.shards import attach_shards

#: Rows fetched from SQLite at a time by :func:`iter_rows`.
ROW_BATCH = 5000


def connect(path: Path) -> sqlite3.Connection:
    """A connection to an index file (URI filenames on, so shards attach read-only)."""
    conn = sqlite3.connect(
        Path(path).absolute().as_uri(),
        uri=True,
        isolation_level=None,
        check_same_thread=False,
        timeout=60,
    )
    conn.execute("PRAGMA busy_timeout=60000")
    return conn


def open_reader(index_path: Path) -> sqlite3.Connection:
    """A read connection to the index at `index_path`, its shards attached. Temporary
    tables (hit tables, sorts) go to a file, so big ones do not grow the process."""
    conn = connect(index_path)
    try:
        conn.execute("PRAGMA temp_store=FILE")
        attach_shards(conn, index_path)
    except sqlite3.OperationalError as exc:  # a rebuild replaced the index meanwhile
        conn.close()
        raise StoreError(
            f"the trace index {index_path} was rebuilt while open ({exc}); open the store again"
        ) from None
    return conn


def iter_rows(cursor: sqlite3.Cursor, batch: int = ROW_BATCH) -> Iterator[Any]:
    """Every row of `cursor`, fetched `batch` at a time (bounded memory, few round trips)."""
    while True:
        rows = cursor.fetchmany(batch)
        if not rows:
            return
        yield from rows
