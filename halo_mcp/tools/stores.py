"""Open trace stores, kept for reuse across tool calls.

Opening a store checks (or builds) its on-disk index; a query on an open store takes
milliseconds. So the server keeps the few most recently used stores open, keyed by their
resolved paths. A store whose files changed since it opened (appended, rewritten, added to
a directory) is opened again before the call, so answers always describe the files as
they are now.

Calls run in two small thread pools of their own, never on the event loop: quick calls
(indexed filters, overviews, trees) and heavy ones (content scans: a text or attribute
filter, triage). Many clients share one store at once (each pool thread reads through its
own SQLite connection), a slow scan never queues the quick calls behind it, and the number
of threads, hence of open connections and their page caches, stays bounded. A store
replaced or evicted while calls are using it is closed when the last of them ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from mcp.server.mcpserver.exceptions import ToolError

from halo_mcp.store import StoreError, open_store
from halo_mcp.store.api import TraceReader
from halo_mcp.store.scan_workers import ScanWorkers
from halo_mcp.store.timewindow import TimeWindow

T = TypeVar("T")
log = logging.getLogger(__name__)

_Key = tuple[str, ...]
#: Threads for quick calls and for content scans (each holds one connection per store).
QUICK_THREADS = max(4, min(8, 2 * (os.cpu_count() or 1)))
HEAVY_THREADS = max(2, min(4, os.cpu_count() or 1))
TRIM_EVERY_S = 5.0
#: Window stores kept per set of paths (the latest used): a client paging through one
#: window reuses its store instead of building it again for every page.
WINDOWS_PER_STORE = 2


@dataclass
class _Entry:
    store: TraceReader
    users: int = 0
    retired: bool = False  # replaced or evicted: close when the last user is done
    idle_since: float | None = None  # monotonic time the last user left
    released: bool = False  # its cached memory was given back since it was last used


class StoreCache:
    """Up to `size` open TraceReaders; the least recently used is closed first."""

    def __init__(
        self,
        size: int = 8,
        cache_dir: Path | None = None,
        scan_processes: int = 0,
    ) -> None:
        self.size = size
        self.cache_dir = cache_dir
        # Text scans in worker processes (see store/scan_workers.py), or in the threads.
        self.scan_workers = ScanWorkers(scan_processes) if scan_processes else None
        self._entries: OrderedDict[_Key, _Entry] = OrderedDict()
        self._opening: dict[_Key, threading.Lock] = {}
        self._windows: dict[_Key, OrderedDict[tuple[int, int], _Entry]] = {}
        self._guard = threading.Lock()
        self._quick = _started_pool(QUICK_THREADS, "halo-store")
        self._heavy = _started_pool(HEAVY_THREADS, "halo-scan")
        self._scans = 0  # heavy calls running
        self._closed = threading.Event()
        threading.Thread(target=self._trim_while_open, name="halo-trim", daemon=True).start()

    async def call(
        self,
        paths: Sequence[Path | str],
        fn: Callable[[TraceReader], T],
        window: TimeWindow | None = None,
        *,
        heavy: bool = False,
    ) -> T:
        """Run `fn(store)` in a store thread; store errors become ToolErrors. With a
        `window`, `fn` gets a store of the window's traces (kept for the same bounds).
        `heavy` calls (content scans) run apart from the quick ones."""
        pool = self._heavy if heavy else self._quick
        return await asyncio.wrap_future(pool.submit(self.use, paths, fn, window, heavy=heavy))

    def use(
        self,
        paths: Sequence[Path | str],
        fn: Callable[[TraceReader], T],
        window: TimeWindow | None = None,
        *,
        heavy: bool = True,
    ) -> T:
        """`call` for code already in a worker thread: runs `fn(store)` in this thread (it
        blocks: never on the event loop). Counted as heavy by default (such callers run
        whole workflows, e.g. a check)."""
        key = tuple(str(p) for p in paths)
        try:
            entry = self._acquire(key)
        except StoreError as exc:
            raise ToolError(str(exc)) from None
        scoped: _Entry | None = None
        if heavy:
            with self._guard:
                self._scans += 1
        try:
            if window is not None and not window.is_open:
                scoped = self._acquire_window(key, entry, window)
            return fn((scoped or entry).store)
        except StoreError as exc:
            raise ToolError(str(exc)) from None
        finally:
            if scoped is not None:
                self._release(scoped)
            self._release(entry)
            if heavy:
                with self._guard:
                    self._scans -= 1
                    last = self._scans == 0
                if last:
                    release_free_memory()

    def _acquire_window(self, key: _Key, base: _Entry, window: TimeWindow) -> _Entry:
        """The store of `window` over `base`, counted as in use: reused for the same bounds
        while the files are unchanged, else built from `base` (under the key's lock)."""
        from halo_mcp.store.clickhouse.store import ClickHouseTraceStore
        from halo_mcp.store.store import TraceStore
        from halo_mcp.store.window import scope_to_window

        bounds = window.bounds_ns()
        with self._guard:
            opening = self._opening.setdefault(key, threading.Lock())
        with opening:
            with self._guard:
                kept = self._windows.setdefault(key, OrderedDict())
                scoped = kept.pop(bounds, None)
                if scoped is not None:
                    scoped.users += 1
            if scoped is not None and scoped.store.inputs_changed():
                self._release(scoped)
                with self._guard:
                    self._retire(scoped)
                scoped = None
            if scoped is None:
                store = base.store
                if isinstance(store, ClickHouseTraceStore):
                    narrowed: TraceReader = store.within(window.since, window.until)
                elif isinstance(store, TraceStore):
                    narrowed = scope_to_window(store, window)
                else:
                    raise ToolError("this trace store cannot be narrowed to a time window")
                scoped = _Entry(narrowed, users=1)
            with self._guard:
                kept[bounds] = scoped
                while len(kept) > WINDOWS_PER_STORE:
                    self._retire(kept.popitem(last=False)[1])
            return scoped

    def _acquire(self, key: _Key) -> _Entry:
        """The open store for `key`, counted as in use; opened (again, when its files
        changed) under the key's lock, so one call opens it while the others wait."""
        with self._guard:
            opening = self._opening.setdefault(key, threading.Lock())
        with opening:
            with self._guard:
                entry = self._entries.get(key)
                if entry is not None:
                    self._entries.move_to_end(key)
                    entry.users += 1
            if entry is not None:
                if not entry.store.inputs_changed():
                    return entry
                log.info("trace files changed since they were opened; reopening %s", ", ".join(key))
                self._release(entry)
                with self._guard:
                    if self._entries.get(key) is entry:
                        del self._entries[key]
                    self._retire(entry)
            opened = open_store(list(key), cache_dir=self.cache_dir, scan_workers=self.scan_workers)
            fresh = _Entry(opened, users=1)
            with self._guard:
                self._entries[key] = fresh
                while len(self._entries) > self.size:
                    old_key, old = self._entries.popitem(last=False)
                    self._opening.pop(old_key, None)
                    for scoped in [old, *self._windows.pop(old_key, {}).values()]:
                        self._retire(scoped)
            return fresh

    def _retire(self, entry: _Entry) -> None:
        """Mark `entry` for closing (the caller holds the guard); close it now if unused."""
        entry.retired = True
        if entry.users == 0:
            _close_quietly(entry.store)

    def _release(self, entry: _Entry) -> None:
        with self._guard:
            entry.users -= 1
            if entry.users == 0:
                entry.idle_since, entry.released = time.monotonic(), False
                if entry.retired:
                    _close_quietly(entry.store)

    def _trim_while_open(self) -> None:
        """Every TRIM_EVERY_S, give memory back until the cache is closed: the page caches
        of stores idle since the last round, then what glibc keeps of freed memory
        (analyses and scans in other threads free megabytes it would otherwise hold)."""
        while not self._closed.wait(TRIM_EVERY_S):
            self.release_idle_stores(TRIM_EVERY_S)
            release_free_memory()

    def release_idle_stores(self, idle_s: float) -> None:
        """Give back the cached memory of every open store no call has used for `idle_s`
        seconds (under the guard: no call can start on it meanwhile)."""
        now = time.monotonic()
        with self._guard:
            entries = list(self._entries.values())
            for kept in self._windows.values():
                entries.extend(kept.values())
            for entry in entries:
                idle = entry.users == 0 and not entry.retired and not entry.released
                if idle and now - (entry.idle_since or now) >= idle_s:
                    with contextlib.suppress(Exception):  # best effort, like closing
                        entry.store.release_memory()
                    entry.released = True

    def close(self) -> None:
        self._closed.set()
        with self._guard:
            entries, self._entries = list(self._entries.values()), OrderedDict()
            for kept in self._windows.values():
                entries.extend(kept.values())
            self._windows = {}
            for entry in entries:
                self._retire(entry)
        self._quick.shutdown(wait=False, cancel_futures=True)
        self._heavy.shutdown(wait=False, cancel_futures=True)
        if self.scan_workers is not None:
            self.scan_workers.close()

    def start_scan_workers(self) -> None:
        """Start the scan worker processes now (blocks for a moment: run it in a thread),
        so the first text filter does not wait for them."""
        if self.scan_workers is not None:
            self.scan_workers.start()


def _started_pool(threads: int, name: str) -> ThreadPoolExecutor:
    """A pool with all its threads started now: a pool starts a thread on a submit that
    finds none idle, and starting one waits for it to run, which on a busy server stalls
    the event loop (where calls are submitted) for as long as the GIL is elsewhere."""
    pool = ThreadPoolExecutor(threads, thread_name_prefix=name)
    everyone = threading.Barrier(threads)
    for _ in range(threads):  # each waits for all the others, so each needs a new thread
        pool.submit(_meet, everyone)
    return pool


def _meet(barrier: threading.Barrier) -> None:
    with contextlib.suppress(threading.BrokenBarrierError):
        barrier.wait(timeout=10)


def _close_quietly(store: TraceReader) -> None:
    """Closing is best effort: an index left open is closed by garbage collection."""
    with contextlib.suppress(Exception):
        store.close()


def _malloc_trim() -> Callable[[], None]:
    """glibc's malloc_trim(0), or a no-op where there is no glibc."""
    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return lambda: None

    def release() -> None:
        trim(0)

    return release


#: Give memory freed by the last content scan back to the OS. A scan allocates and frees
#: megabytes in its thread; glibc keeps such freed memory in per-thread arenas, so without
#: this the server's RSS stays at its peak long after the load has gone.
release_free_memory = _malloc_trim()


#: glibc's M_ARENA_MAX (mallopt parameter number) and the arenas the server allows.
_M_ARENA_MAX = -8
MALLOC_ARENAS = 2


def limit_malloc_arenas() -> None:
    """Let glibc keep at most MALLOC_ARENAS heaps instead of one per thread (up to 8 per
    core): every thread that ever ran a query or an analysis step would otherwise keep its
    own partly used heap, and a long-lived server's RSS creeps up with each analysis.
    A no-op where there is no glibc."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(_M_ARENA_MAX, MALLOC_ARENAS)
