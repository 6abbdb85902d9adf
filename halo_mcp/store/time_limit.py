"""A time limit on each request to a store: a slow query fails alone, with a message that
says how to narrow it, instead of holding a worker (and, over HTTP, other clients) for
minutes.

Each thread's read connection has a :class:`Deadline`. The store starts it when a request
begins (nested calls share the outer one); SQLite calls :meth:`Deadline.progress` every
PROGRESS_STEPS virtual-machine steps and stops the statement once the deadline passed; the
Python loops over raw lines call :meth:`Deadline.check` themselves.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator

from halo_mcp.store.errors import QueryTimeoutError

#: Seconds a request to a store may take by default (open_store(query_time_limit=...)).
DEFAULT_QUERY_TIME_LIMIT = 10.0
#: SQLite virtual-machine steps between two deadline checks (a few ms of work at most).
PROGRESS_STEPS = 10_000

NARROW_HINT = (
    "narrow it: add trace_ids, a time range (start_after/start_before), a name, kind, "
    "agent, model or tool_name, or a more specific text pattern, then try again"
)


class Deadline:
    """When the current request of one thread must stop (None: no request, or no limit)."""

    def __init__(self) -> None:
        self._at: float | None = None
        self._limit: float | None = None
        self._depth = 0

    @contextlib.contextmanager
    def running(self, limit: float | None) -> Iterator[None]:
        """Run a request under `limit` seconds (None: unlimited); a statement SQLite stops
        for the deadline comes out as QueryTimeoutError."""
        outer = self._depth == 0
        if outer:
            self._limit = limit
            self._at = time.monotonic() + limit if limit is not None else None
        self._depth += 1
        try:
            yield
        except sqlite3.OperationalError as exc:
            if self.expired() and "interrupt" in str(exc):
                raise self._error() from None
            raise
        finally:
            self._depth -= 1
            if outer:
                self._at = self._limit = None

    def expired(self) -> bool:
        return self._at is not None and time.monotonic() > self._at

    def remaining(self) -> float | None:
        """Seconds left of the current request (None: no limit; never below 0)."""
        return None if self._at is None else max(0.0, self._at - time.monotonic())

    def check(self) -> None:
        """Raise QueryTimeoutError once the deadline passed (for loops outside SQLite)."""
        if self.expired():
            raise self._error()

    def progress(self) -> int:
        """SQLite's progress handler: non-zero stops the running statement."""
        return 1 if self.expired() else 0

    def _error(self) -> QueryTimeoutError:
        return QueryTimeoutError(
            f"this query ran past the time limit of {self._limit:g} s and was stopped; "
            + NARROW_HINT
        )


def install_deadline(conn: sqlite3.Connection, deadline: Deadline) -> None:
    """Let `deadline` stop the statements of `conn`."""
    conn.set_progress_handler(deadline.progress, PROGRESS_STEPS)
