"""TraceStore: the one API through which everything reads traces.

The engine's agents, the MCP tools, triage and the CLI all call these methods; none of
them touches the index or the files directly. Methods are synchronous (SQLite and file
reads); async callers run them in a worker thread (`anyio.to_thread.run_sync`). One store
may be used from several threads: each thread gets its own read-only SQLite connection.

A thin facade: each request runs in a Session (this thread's connection, hit tables and
deadline; see connections.py) under the store's per-query time limit, and the work is
done by span_queries.py, trace_queries.py, overview.py and aggregates.py.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

from halo_mcp.settings import DirectoryError, clickhouse_password
from halo_mcp.settings import cache_dir as default_cache_dir
from halo_mcp.store import filters, overview, span_queries, trace_queries
from halo_mcp.store import sql as sql_views
from halo_mcp.store.aggregates import Aggregates
from halo_mcp.store.api import TraceReader
from halo_mcp.store.clickhouse.location import is_clickhouse_location, parse_location
from halo_mcp.store.connections import ThreadConnections, open_reader
from halo_mcp.store.errors import NoSpansError, StoreError
from halo_mcp.store.files import Fingerprint, fingerprint_now, inputs_fingerprint, scan_paths
from halo_mcp.store.index import ensure_index
from halo_mcp.store.models import LoadReport, Overview, SqlQuery
from halo_mcp.store.raw_lines import TraceFiles
from halo_mcp.store.scan_workers import ScanWorkers
from halo_mcp.store.session import Session
from halo_mcp.store.text_scan import TextScanner
from halo_mcp.store.time_limit import DEFAULT_QUERY_TIME_LIMIT, Deadline, install_deadline
from halo_mcp.store.timewindow import TimeWindow

log = logging.getLogger(__name__)


P = ParamSpec("P")
R = TypeVar("R")


def _request(
    query: Callable[Concatenate[Session, P], R],
) -> Callable[Concatenate[TraceStore, P], R]:
    """A TraceStore method running `query` as one request (see TraceStore._session): the
    method takes the query's arguments after the session, and its docstring."""

    @functools.wraps(query)
    def method(self: TraceStore, *args: P.args, **kwargs: P.kwargs) -> R:
        with self._session() as s:
            return query(s, *args, **kwargs)

    signature = inspect.signature(query)
    first, *rest = signature.parameters.values()
    self_param = first.replace(name="self", annotation=inspect.Parameter.empty)
    method.__signature__ = signature.replace(parameters=[self_param, *rest])  # type: ignore[attr-defined]
    return method


class TraceStore(TraceReader):
    """A set of trace files behind an on-disk index. Open with :func:`open_store`.

    `query_time_limit` (seconds, None for none) bounds each request: one that runs longer
    raises QueryTimeoutError saying how to narrow it. Text scans run in `scan_workers`
    when given (see scan_workers.py), else in the calling thread."""

    paths: list[Path]
    report: LoadReport
    index_path: Path
    query_time_limit: float | None
    scan_workers: ScanWorkers | None

    def __init__(
        self,
        db_path: Path,
        paths: list[Path],
        reused: bool,
        inputs: Fingerprint = (),
        *,
        query_time_limit: float | None = DEFAULT_QUERY_TIME_LIMIT,
        scan_workers: ScanWorkers | None = None,
    ) -> None:
        self.paths = paths
        self.index_path = db_path
        self.query_time_limit = query_time_limit
        self.scan_workers = scan_workers
        self._inputs = inputs
        self._threads = ThreadConnections(db_path)
        conn = self._threads.state().conn
        self._files = TraceFiles(conn)
        self._scanner = TextScanner(self._files, db_path, scan_workers)
        self.report = overview.load_report(conn, db_path, reused)
        self._span_total = self.report.spans
        self._trace_total = overview.meta_int(overview.read_meta(conn), "traces")

    @contextlib.contextmanager
    def _session(self) -> Iterator[Session]:
        """One request: this thread's connection, under the per-query time limit."""
        state = self._threads.state()
        with state.deadline.running(self.query_time_limit):
            yield Session(
                state.conn, state.hits, state.deadline, self._files, self._scanner,
                self._span_total, self._trace_total,
            )  # fmt: skip

    # -- spans and traces: each a request running one query function ----------------------

    _query_spans = _request(span_queries.query_spans)
    count = _request(span_queries.count)
    seen = _request(span_queries.seen)
    _search = _request(span_queries.search)
    raw_span = _request(span_queries.raw_span)
    known_ids = _request(span_queries.known_ids)
    rule_trace_count = _request(filters.count_rule_traces)
    _query_traces = _request(trace_queries.query_traces)
    trace_summary = _request(trace_queries.trace_summary)
    _trace_tree = _request(trace_queries.trace_tree)

    # -- the whole set ---------------------------------------------------------------------

    def _query_sql(self, q: SqlQuery) -> sql_views.SqlResult:
        self._threads.check_open()
        return sql_views.run_sql(self.index_path, q)

    def overview(self) -> Overview:
        """Dataset overview: counts, time range, services, agents, models, tools, tokens,
        and the top error signatures."""
        with self._session() as s:
            return overview.build_overview(s.conn, self.report)

    @contextlib.contextmanager
    def aggregates(self, *, time_limit: float | None = None) -> Iterator[Aggregates]:
        """Whole-set aggregate reads (triage, re-checks) through a read connection of their
        own, closed on exit: each thread that reads aggregates opens its own. Unlimited in
        time unless `time_limit` (seconds) is given."""
        self._threads.check_open()
        conn = open_reader(self.index_path)
        deadline = Deadline()
        try:
            if time_limit is not None:
                install_deadline(conn, deadline)
            with deadline.running(time_limit):
                yield Aggregates(conn, self._files)
        finally:
            conn.close()

    def inputs_changed(self) -> bool:
        """Whether a trace file was appended to, rewritten, added or removed since this store
        was opened: its answers then describe the files as they were, and a long-lived
        holder (the MCP server) should open the store again (which extends or rebuilds the
        index). One stat per file and directory."""
        return bool(self._inputs) and fingerprint_now(self._inputs) != self._inputs

    def release_memory(self) -> None:
        """Give back the memory the connections cache (call it while no request runs on
        this store: a long-lived holder does when the store has been idle)."""
        self._threads.release_memory()

    def close(self) -> None:
        self._threads.close()


ACCEPTED_FORMATS = (
    "HALO flat JSONL (one span object per line), OTLP JSON lines ({'resourceSpans': ...}, as "
    "written by the OpenTelemetry Collector file exporter), single OTLP span objects, and "
    "OpenAI Agents SDK span exports, with OpenInference / OpenTelemetry GenAI attributes; "
    "files .jsonl/.json/.ndjson, optionally gzipped (.gz)"
)


def _check_spans(store: TraceStore, named: set[str]) -> None:
    """A file named on its own with no valid span is an error naming the file and why its
    lines failed; so is an input with no span at all. A file found inside a directory
    that holds no span (a manifest, a config) is skipped with a warning and stays listed
    in the report. (A file whose spans all repeat another file's did hold spans: that is
    reported as duplicates, not as an error.)"""
    with store._session() as s:
        parsed = overview.spans_per_file(s.conn)
    anything = any(parsed.values())
    for report in store.report.files:
        if parsed.get(report.path, 0) > 0:
            continue
        if anything and report.path not in named:
            log.warning("skipping %s: no valid span in it", report.path)
            continue
        reasons = [
            f"line {b.line}: {b.reason}"
            for b in store.report.bad_line_examples
            if b.file == report.path
        ][:3]
        if report.size_bytes == 0:
            detail = "the file is empty"
        elif report.bad_lines:
            detail = f"{report.bad_lines} bad line(s); first: {'; '.join(reasons) or 'n/a'}"
        else:
            detail = "no line held a span"
        raise NoSpansError(
            f"no valid span in {report.path} ({detail}). Accepted: {ACCEPTED_FORMATS}. "
            "Fix or remove this file, or pass only the files that hold spans."
        )


def open_store(
    paths: Sequence[str | Path],
    *,
    cache_dir: str | Path | None = None,
    notify: Callable[[str], None] | None = None,
    window: TimeWindow | None = None,
    query_time_limit: float | None = DEFAULT_QUERY_TIME_LIMIT,
    scan_workers: ScanWorkers | None = None,
) -> TraceReader:
    """Open (building or extending the index when needed) a store over files or directories,
    or over a ClickHouse table when `paths` is one ClickHouse location
    (`clickhouse://USER@HOST:PORT/DB?table=T` or `chdb:FOLDER`; see store/clickhouse).

    `paths` may name `.jsonl`/`.json`/`.gz` files or directories of them. The index lives in
    `cache_dir` (default: :func:`halo_mcp.settings.cache_dir`), never in the trace folder.
    `notify` hears a line when building or updating the index takes a while (and when it
    is done). `query_time_limit` bounds each query in seconds (None: no limit). `window`
    keeps only the traces starting inside it (see store/window.py). Text scans of trace
    files run in `scan_workers` when given (see store/scan_workers.py). Raises
    TraceFileNotFoundError or NoSpansError with a message saying what to do.
    """
    if len(paths) == 1 and is_clickhouse_location(str(paths[0])):
        from halo_mcp.store.clickhouse.store import open_clickhouse

        location = parse_location(str(paths[0]), password=clickhouse_password())
        since, until = (None, None) if window is None else (window.since, window.until)
        return open_clickhouse(
            location, since=since, until=until, query_time_limit=query_time_limit
        )
    if any(is_clickhouse_location(str(p)) for p in paths):
        raise StoreError(
            "a ClickHouse location is read on its own: pass it as the only trace path "
            "(not together with files or another location)"
        )
    scan = scan_paths(paths)
    files, directories = scan.files, scan.directories
    # Taken before the index reads the files: a change made while it builds shows next time.
    inputs = inputs_fingerprint(files, directories)
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    try:
        given = sorted({Path(p).expanduser().resolve() for p in paths})
        db_path, reused = ensure_index(files, root, notify, inputs=given)
    except DirectoryError as exc:
        raise StoreError(str(exc)) from None
    except (sqlite3.Error, OSError) as exc:
        raise StoreError(
            f"cannot build or read the trace index under {root} ({exc}); point HALO_CACHE_DIR "
            "(or cache_dir=) at a writable directory with free space, or delete that "
            "directory's indexes/ to rebuild"
        ) from exc
    store = TraceStore(
        db_path,
        files,
        reused,
        inputs,
        query_time_limit=query_time_limit,
        scan_workers=scan_workers,
    )
    store.report.skipped_files = scan.skipped
    named = {str(Path(p).expanduser().resolve()) for p in paths if Path(p).is_file()}
    try:
        _check_spans(store, named)
    except NoSpansError:
        store.close()
        raise
    if window is None or window.is_open:
        return store
    from halo_mcp.store.window import scope_to_window

    try:
        return scope_to_window(store, window)
    finally:
        store.close()
