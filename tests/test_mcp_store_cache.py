"""The server's cache of open stores gives back the memory of idle stores: their
connections' page caches are released, and what they answer stays the same (hit tables of
text filters included)."""

from __future__ import annotations

import ctypes

from halo_mcp.store.models import SpanFilter
from halo_mcp.tools.stores import StoreCache
from tests.mcp_support import make_traces


def _sqlite_memory_used() -> int:
    """Bytes SQLite holds in this process (the library Python's sqlite3 module links)."""
    lib = ctypes.CDLL("libsqlite3.so.0")
    lib.sqlite3_memory_used.restype = ctypes.c_int64
    return int(lib.sqlite3_memory_used())


def _answers(cache: StoreCache, paths: list[str]) -> list[object]:
    errors = SpanFilter(errors_only=True)
    text = SpanFilter(text="error|fail")
    return [
        cache.use(paths, lambda s: s.query_spans(errors, limit=5).model_dump()),
        cache.use(paths, lambda s: s.query_spans(text, limit=3).model_dump()),
        cache.use(paths, lambda s: s.overview().model_dump()),
    ]


def test_idle_stores_give_back_their_page_cache(tmp_path):
    paths = [str(make_traces(tmp_path / "traces", traces=40))]
    cache = StoreCache(cache_dir=tmp_path / "cache")
    try:
        before = _answers(cache, paths)
        held = _sqlite_memory_used()
        cache.release_idle_stores(0)
        assert _sqlite_memory_used() < held
        assert _answers(cache, paths) == before  # the same answers from re-read pages
        # a store released once is left alone until a call uses it again
        cache.release_idle_stores(0)
        assert _answers(cache, paths) == before
    finally:
        cache.close()
