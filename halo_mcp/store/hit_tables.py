"""Temporary tables of matching row ids, one least-recently-used set per connection.

A filter SQL cannot answer alone (span content, the traces of matching spans) is resolved
once into a temp table of ids; a total, its pages and later pages then join that table
instead of reading the spans again. Tables are keyed by the query they answer; the oldest
is dropped beyond the capacity. A table whose filling fails (a time limit, a read error)
is dropped, never kept half full.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections import OrderedDict
from collections.abc import Callable, Iterable

#: Hit tables kept per connection (each thread has its own connection).
HIT_TABLES_PER_THREAD = 16
#: Ids inserted per statement.
INSERT_BATCH = 5000


class HitTables:
    """The hit tables of one connection (used by one thread at a time)."""

    def __init__(self, conn: sqlite3.Connection, capacity: int = HIT_TABLES_PER_THREAD) -> None:
        self._conn = conn
        self._capacity = capacity
        self._tables: OrderedDict[str, str] = OrderedDict()

    def table(self, key: str, fill: Callable[[str], None]) -> str:
        """The name of the temp table for `key`: made and filled by `fill(name)` the first
        time, reused afterwards."""
        name = self._tables.get(key)
        if name is not None:
            self._tables.move_to_end(key)
            return name
        name = f"hits_{key}"
        self._conn.execute(f"DROP TABLE IF EXISTS temp.{name}")
        self._conn.execute(f"CREATE TEMP TABLE {name}(id INTEGER PRIMARY KEY)")
        try:
            fill(name)
        except BaseException:
            # Best effort: a table left behind is dropped when its key comes again.
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute(f"DROP TABLE IF EXISTS temp.{name}")
            raise
        self._tables[key] = name
        while len(self._tables) > self._capacity:
            _, old = self._tables.popitem(last=False)
            self._conn.execute(f"DROP TABLE IF EXISTS temp.{old}")
        return name

    def insert(self, name: str, ids: Iterable[int]) -> None:
        """Add row ids to table `name`, INSERT_BATCH per statement."""
        batch: list[tuple[int]] = []
        sql = f"INSERT OR IGNORE INTO temp.{name} VALUES(?)"
        for row_id in ids:
            batch.append((row_id,))
            if len(batch) >= INSERT_BATCH:
                self._conn.executemany(sql, batch)
                batch.clear()
        self._conn.executemany(sql, batch)
