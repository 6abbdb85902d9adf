"""Read connections to a trace index, and batched iteration over what they return.

Every reader of an index (the store's per-thread connections, triage's aggregate readers)
opens it here, so each sees the shards as one `spans` relation (see shards.py). A store
may be used from many threads; :class:`ThreadConnections` gives each thread its own read
connection with that connection's hit tables and request deadline, built whole before the
thread can see any of it.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from halo_mcp.store.errors import StoreError
from halo_mcp.store.hit_tables import HitTables
from halo_mcp.store.shards import attach_shards
from halo_mcp.store.time_limit import Deadline, install_deadline

#: Rows fetched from SQLite at a time by :func:`iter_rows`.
ROW_BATCH = 5000
#: Page cache of each database a reader has open (main, shards, temp), in KiB. Every
#: thread reading a store holds its own connection: a small cache per connection keeps a
#: busy server's memory bounded (the OS caches the file pages once for all of them).
READER_CACHE_KIB = 512


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
        limit_page_cache(conn)
    except sqlite3.OperationalError as exc:  # a rebuild replaced the index meanwhile
        conn.close()
        raise StoreError(
            f"the trace index {index_path} was rebuilt while open ({exc}); open the store again"
        ) from None
    return conn


def limit_page_cache(conn: sqlite3.Connection) -> None:
    """Cap the page cache of every database attached to a reader connection."""
    names = {name for (name,) in conn.execute("SELECT name FROM pragma_database_list")}
    for name in sorted(names | {"temp"}):
        conn.execute(f'PRAGMA "{name}".cache_size=-{READER_CACHE_KIB}')


def iter_rows(cursor: sqlite3.Cursor, batch: int = ROW_BATCH) -> Iterator[Any]:
    """Every row of `cursor`, fetched `batch` at a time (bounded memory, few round trips)."""
    while True:
        rows = cursor.fetchmany(batch)
        if not rows:
            return
        yield from rows


@dataclass(frozen=True)
class ThreadState:
    """One thread's read connection, its hit tables and its request deadline."""

    conn: sqlite3.Connection
    hits: HitTables
    deadline: Deadline


class ThreadConnections:
    """A read connection per thread to one index, opened on the thread's first use."""

    def __init__(self, index_path: Path) -> None:
        self.index_path = index_path
        self._local = threading.local()
        self._states: list[ThreadState] = []
        self._guard = threading.Lock()
        self._closed = False

    def state(self) -> ThreadState:
        """This thread's state (one attribute, set only once complete)."""
        state: ThreadState | None = getattr(self._local, "state", None)
        if state is None:
            if self._closed:
                raise _closed_error()
            conn = open_reader(self.index_path)
            deadline = Deadline()
            install_deadline(conn, deadline)
            state = ThreadState(conn, HitTables(conn), deadline)
            with self._guard:
                if self._closed:
                    conn.close()
                    raise _closed_error()
                self._states.append(state)
            self._local.state = state
        elif self._closed:
            raise _closed_error()
        return state

    def release_memory(self) -> None:
        """Give back the page cache of every thread's connection (`PRAGMA shrink_memory`);
        the pages are read again when next needed. Hit tables and prepared statements stay.
        Only while no thread is in a request on these connections (the caller knows)."""
        with self._guard:
            states = list(self._states)
        for state in states:
            with contextlib.suppress(sqlite3.Error):
                state.conn.execute("PRAGMA shrink_memory")

    def check_open(self) -> None:
        if self._closed:
            raise _closed_error()

    def close(self) -> None:
        with self._guard:
            self._closed = True
            states, self._states = self._states, []
        for state in states:
            with contextlib.suppress(Exception):  # another thread's connection may refuse
                state.conn.close()


def _closed_error() -> StoreError:
    return StoreError("this trace store is closed; open it again with open_store()")
