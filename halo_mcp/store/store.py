"""TraceStore: the one API through which everything reads traces.

The engine's agents, the MCP tools, triage and the CLI all call these methods; none of
them touches the index or the files directly. Methods are synchronous (SQLite and file
reads); async callers run them in a worker thread (`anyio.to_thread.run_sync`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from halo_mcp.store.models import (
    DEFAULT_SPAN_FIELDS,
    LoadReport,
    MatchCount,
    Overview,
    SearchResult,
    SpanFilter,
    SpanPage,
    SpanSort,
    TracePage,
    TraceSort,
    TraceSummary,
    TraceTree,
)


class TraceStore:
    """A set of trace files behind an on-disk index. Open with :func:`open_store`."""

    paths: list[Path]
    report: LoadReport

    def query_spans(
        self,
        filter: SpanFilter | None = None,
        *,
        sort: SpanSort = "start_time",
        limit: int = 50,
        cursor: str | None = None,
        fields: Sequence[str] = DEFAULT_SPAN_FIELDS,
        max_chars: int = 2000,
    ) -> SpanPage:
        """Spans matching `filter`, one page. Raises InvalidFilterError on bad input."""
        raise NotImplementedError

    def count(self, filter: SpanFilter | None = None) -> MatchCount:
        """How many spans and traces `filter` selects, and how many traces exist."""
        raise NotImplementedError

    def query_traces(
        self,
        filter: SpanFilter | None = None,
        *,
        sort: TraceSort = "start_time",
        limit: int = 50,
        cursor: str | None = None,
    ) -> TracePage:
        """Summaries of the traces having at least one span that matches `filter`."""
        raise NotImplementedError

    def trace_summary(self, trace_id: str) -> TraceSummary:
        """One trace's summary. Raises UnknownIdError naming how to find valid ids."""
        raise NotImplementedError

    def trace_tree(
        self,
        trace_id: str,
        *,
        fields: Sequence[str] = DEFAULT_SPAN_FIELDS,
        max_chars: int = 2000,
        limit: int = 500,
    ) -> TraceTree:
        """A trace's spans as a depth-first tree."""
        raise NotImplementedError

    def raw_span(self, trace_id: str, span_id: str) -> dict:
        """The span's raw payload as parsed from its source line (read by offset)."""
        raise NotImplementedError

    def search(
        self,
        pattern: str,
        *,
        filter: SpanFilter | None = None,
        limit: int = 20,
        context_chars: int = 120,
    ) -> SearchResult:
        """Regex search over span content, optionally within spans selected by `filter`."""
        raise NotImplementedError

    def known_ids(
        self, trace_ids: Sequence[str] = (), span_ids: Sequence[str] = ()
    ) -> tuple[set[str], set[str]]:
        """The subsets of the given trace and span ids that exist in the store."""
        raise NotImplementedError

    def overview(self) -> Overview:
        """Dataset overview: counts, time range, services, agents, models, tools, tokens,
        and the top error signatures."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> TraceStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_store(
    paths: Sequence[str | Path],
    *,
    cache_dir: str | Path | None = None,
) -> TraceStore:
    """Open (building or extending the index when needed) a store over files or directories.

    `paths` may name `.jsonl`/`.json`/`.gz` files or directories of them. The index lives in
    `cache_dir` (default: :func:`halo_mcp.settings.cache_dir`), never in the trace folder.
    Raises TraceFileNotFoundError or NoSpansError with a message saying what to do.
    """
    raise NotImplementedError
