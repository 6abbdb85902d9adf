"""Open trace stores, kept for reuse across tool calls.

Opening a store checks (or builds) its on-disk index; a query on an open store takes
milliseconds. So the server keeps the few most recently used stores open, keyed by their
resolved paths, and runs every store call in a worker thread, one call per store at a time.
A store whose files changed since it opened (appended, rewritten, added to a directory)
is opened again before the call, so answers always describe the files as they are now.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import anyio
from mcp.server.mcpserver.exceptions import ToolError

from halo_mcp.store import StoreError, open_store
from halo_mcp.store.api import TraceReader
from halo_mcp.store.timewindow import TimeWindow

T = TypeVar("T")
log = logging.getLogger(__name__)

_Key = tuple[str, ...]
#: Window stores kept per set of paths (the latest used): a client paging through one
#: window reuses its store instead of building it again for every page.
WINDOWS_PER_STORE = 2


class StoreCache:
    """Up to `size` open TraceStores; the least recently used is closed first."""

    def __init__(self, size: int = 8, cache_dir: Path | None = None) -> None:
        self.size = size
        self.cache_dir = cache_dir
        self._stores: OrderedDict[_Key, TraceReader] = OrderedDict()
        self._locks: dict[_Key, threading.Lock] = {}
        self._windows: dict[_Key, OrderedDict[tuple[int, int], TraceReader]] = {}
        self._guard = threading.Lock()

    async def call(
        self,
        paths: Sequence[Path | str],
        fn: Callable[[TraceReader], T],
        window: TimeWindow | None = None,
    ) -> T:
        """Run `fn(store)` in a worker thread; store errors become ToolErrors. With a
        `window`, `fn` gets a store of the window's traces (kept for the same bounds)."""
        return await anyio.to_thread.run_sync(self.use, paths, fn, window)

    def use(
        self,
        paths: Sequence[Path | str],
        fn: Callable[[TraceReader], T],
        window: TimeWindow | None = None,
    ) -> T:
        """`call` for code already in a worker thread (it blocks: never on the event loop)."""
        key = tuple(str(p) for p in paths)
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            try:
                store = self._open(key)
                if window is None or window.is_open:
                    return fn(store)
                return fn(self._window(key, store, window))
            except StoreError as exc:
                raise ToolError(str(exc)) from None

    def _window(self, key: _Key, store: TraceReader, window: TimeWindow) -> TraceReader:
        """The store of `window` over `store` (the caller holds the key's lock): reused for
        the same bounds while the files are unchanged, else built from `store`."""
        from halo_mcp.store.clickhouse.store import ClickHouseTraceStore
        from halo_mcp.store.store import TraceStore
        from halo_mcp.store.window import scope_to_window

        bounds = window.bounds_ns()
        with self._guard:
            kept = self._windows.setdefault(key, OrderedDict())
            scoped = kept.pop(bounds, None)
        if scoped is not None and scoped.inputs_changed():
            _close_quietly(scoped)
            scoped = None
        if scoped is None and isinstance(store, ClickHouseTraceStore):
            scoped = store.within(window.since, window.until)
        elif scoped is None and isinstance(store, TraceStore):
            scoped = scope_to_window(store, window)
        if scoped is None:
            raise ToolError("this trace store cannot be narrowed to a time window")
        with self._guard:
            kept[bounds] = scoped
            old = [kept.popitem(last=False)[1] for _ in range(len(kept) - WINDOWS_PER_STORE)]
        for stale in old:
            _close_quietly(stale)
        return scoped

    def _open(self, key: _Key) -> TraceReader:
        """The open store for `key` (the caller holds the key's lock, so no other call is
        using it), opened again when its files changed."""
        with self._guard:
            store = self._stores.get(key)
            if store is not None:
                self._stores.move_to_end(key)
        if store is not None:
            if not store.inputs_changed():
                return store
            log.info("trace files changed since they were opened; reopening %s", ", ".join(key))
            with self._guard:
                self._stores.pop(key, None)
            _close_quietly(store)
        store = open_store(list(key), cache_dir=self.cache_dir)
        with self._guard:
            self._stores[key] = store
            while len(self._stores) > self.size:
                old_key, old = self._stores.popitem(last=False)
                old_lock = self._locks.pop(old_key, None)
                windows = list(self._windows.pop(old_key, {}).values())
                # Close now unless a call is using it; then garbage collection closes it.
                if old_lock is not None and old_lock.acquire(blocking=False):
                    for item in [old, *windows]:
                        _close_quietly(item)
                    old_lock.release()
        return store

    def close(self) -> None:
        with self._guard:
            stores, self._stores = list(self._stores.values()), OrderedDict()
            for kept in self._windows.values():
                stores.extend(kept.values())
            self._windows = {}
        for store in stores:
            _close_quietly(store)


def _close_quietly(store: TraceReader) -> None:
    """Closing is best effort: an index left open is closed by garbage collection."""
    with contextlib.suppress(Exception):
        store.close()
