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
from typing import Any, TypeVar

import anyio
from mcp.server.mcpserver.exceptions import ToolError

from halo_mcp.store.errors import StoreError

T = TypeVar("T")
log = logging.getLogger(__name__)

_Key = tuple[str, ...]


class StoreCache:
    """Up to `size` open TraceStores; the least recently used is closed first."""

    def __init__(self, size: int = 8, cache_dir: Path | None = None) -> None:
        self.size = size
        self.cache_dir = cache_dir
        self._stores: OrderedDict[_Key, Any] = OrderedDict()
        self._locks: dict[_Key, threading.Lock] = {}
        self._guard = threading.Lock()

    async def call(self, paths: Sequence[Path | str], fn: Callable[[Any], T]) -> T:
        """Run `fn(store)` in a worker thread; store errors become ToolErrors."""
        key = tuple(str(p) for p in paths)
        return await anyio.to_thread.run_sync(self._call_sync, key, fn)

    def _call_sync(self, key: _Key, fn: Callable[[Any], T]) -> T:
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            try:
                return fn(self._open(key))
            except StoreError as exc:
                raise ToolError(str(exc)) from None

    def _open(self, key: _Key) -> Any:
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
        from halo_mcp.store.store import open_store

        store = open_store(list(key), cache_dir=self.cache_dir)
        with self._guard:
            self._stores[key] = store
            while len(self._stores) > self.size:
                old_key, old = self._stores.popitem(last=False)
                old_lock = self._locks.pop(old_key, None)
                # Close now unless a call is using it; then garbage collection closes it.
                if old_lock is not None and old_lock.acquire(blocking=False):
                    _close_quietly(old)
                    old_lock.release()
        return store

    def close(self) -> None:
        with self._guard:
            stores, self._stores = list(self._stores.values()), OrderedDict()
        for store in stores:
            _close_quietly(store)


def _close_quietly(store: Any) -> None:
    """Closing is best effort: an index left open is closed by garbage collection."""
    with contextlib.suppress(Exception):
        store.close()
