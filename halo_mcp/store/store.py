"""TraceStore: the one API through which everything reads traces.

The engine's agents, the MCP tools, triage and the CLI all call these methods; none of
them touches the index or the files directly. Methods are synchronous (SQLite and file
reads); async callers run them in a worker thread (`anyio.to_thread.run_sync`). One store
may be used from several threads: each thread gets its own read-only SQLite connection.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import sqlite3
import threading
import zlib
from array import array
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, ValidationError

from halo_mcp.settings import cache_dir as default_cache_dir
from halo_mcp.store import content, overview, query
from halo_mcp.store.errors import (
    InvalidFilterError,
    NoSpansError,
    StoreError,
    UnknownIdError,
)
from halo_mcp.store.files import Fingerprint, expand_paths, fingerprint_now, inputs_fingerprint
from halo_mcp.store.formats import SpanNotOnLineError, span_payload, span_payloads, span_text
from halo_mcp.store.index import connect, ensure_index
from halo_mcp.store.models import (
    DEFAULT_SPAN_FIELDS,
    FirstError,
    LoadReport,
    MatchCount,
    Overview,
    SearchMatch,
    SearchResult,
    SpanFilter,
    SpanNode,
    SpanPage,
    SpanSort,
    SpanSource,
    TracePage,
    TraceSort,
    TraceSummary,
    TraceTree,
)
from halo_mcp.store.query import COL, ROW_SELECT, Clipper
from halo_mcp.store.shards import (
    attach_shards,
    count_where,
    line_fixes,
    shard_of,
    span_source,
    spans_where,
)
from halo_mcp.store.timewindow import TimeWindow

log = logging.getLogger(__name__)

#: Above this many SQL candidates, a safe text regex scans the raw files instead.
SCAN_THRESHOLD = 5000
HIT_TABLES_PER_THREAD = 16

_TRACE_COLUMNS = (
    "t.id, t.trace_id, t.root_name, t.service, t.agents, t.models, t.span_count, "
    "t.error_count, t.start_ns, t.duration_ns, t.input_tokens, t.output_tokens, "
    "t.first_error_span_id, t.first_error_name, t.first_error_message"
)
_TRACE_SORT_INDEX = {"start_ns": 8, "duration_ns": 9, "error_count": 7}


class RepeatedToolCall(BaseModel):
    """The same tool called with identical input several times in one trace (a loop)."""

    trace_id: str
    tool_name: str
    calls: int
    example_span_ids: list[str]


class TraceStore:
    """A set of trace files behind an on-disk index. Open with :func:`open_store`."""

    paths: list[Path]
    report: LoadReport

    def __init__(
        self, db_path: Path, paths: list[Path], reused: bool, inputs: Fingerprint = ()
    ) -> None:
        self.paths = paths
        self._inputs = inputs
        self.index_path = db_path
        self._local = threading.local()
        self._conns: list[Any] = []
        self._guard = threading.Lock()
        self._closed = False
        self._line_indexes: dict[int, tuple[array, array]] = {}
        conn = self._conn()
        self._files = {
            fid: (Path(path), bool(gz))
            for fid, path, gz in conn.execute("SELECT file_id, path, gz FROM files")
        }
        self._line_fixes = line_fixes(conn)
        self.report = overview.load_report(conn, db_path, reused)
        self._span_total = self.report.spans
        self._trace_total = overview.meta_int(overview.read_meta(conn), "traces")

    # -- connections and raw reads -------------------------------------------------------

    def _conn(self) -> Any:
        if self._closed:
            raise StoreError("this trace store is closed; open it again with open_store()")
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.index_path)
            conn.execute("PRAGMA temp_store=FILE")
            try:
                attach_shards(conn, self.index_path)
            except sqlite3.OperationalError as exc:  # a rebuild replaced the index meanwhile
                conn.close()
                raise StoreError(
                    f"the trace index {self.index_path} was rebuilt while open ({exc}); "
                    "open the store again"
                ) from None
            self._local.conn = conn
            self._local.hits = OrderedDict()
            with self._guard:
                self._conns.append(conn)
        return conn

    def _path_of(self, file_id: int) -> str:
        return str(self._files[file_id][0])

    def _source(self, row: Sequence[Any]) -> SpanSource:
        """Where a span row lives; shard rows count lines from where their shard starts."""
        file_id, line = row[COL["file_id"]], row[COL["line"]]
        fix = self._line_fixes.get(shard_of(row[COL["id"]]))
        if fix is not None and fix[0] == file_id and line is not None:
            line += fix[1]
        return SpanSource(
            file=self._path_of(file_id),
            line=line,
            offset=row[COL["offset"]],
            length=row[COL["length"]],
        )

    def _read_line(self, file_id: int, offset: int, length: int, handles: dict) -> bytes:
        path, gz = self._files[file_id]
        if gz:
            row = (
                self._conn()
                .execute(
                    "SELECT data FROM gz_lines WHERE file_id=? AND offset=?", (file_id, offset)
                )
                .fetchone()
            )
            return zlib.decompress(row[0]) if row else b""
        handle = handles.get(file_id)
        if handle is None:
            try:
                handle = handles[file_id] = open(path, "rb")  # noqa: SIM115
            except OSError as exc:
                raise StoreError(
                    f"cannot read {path} ({exc}); was it moved? open the store again"
                ) from None
        handle.seek(offset)
        return handle.read(length)

    def _payload(self, row: Sequence[Any], handles: dict) -> Any:
        line = self._read_line(row[COL["file_id"]], row[COL["offset"]], row[COL["length"]], handles)
        try:
            return span_payload(line, row[COL["span_id"]])
        except SpanNotOnLineError:
            raise StoreError(
                f"{self._path_of(row[COL['file_id']])} changed since it was indexed; open the "
                "store again to re-index it"
            ) from None
        except Exception:
            return None

    # -- filters ---------------------------------------------------------------------------

    @staticmethod
    def _filter(flt: SpanFilter | dict | None) -> SpanFilter:
        if flt is None:
            return SpanFilter()
        if isinstance(flt, SpanFilter):
            return flt
        try:
            return SpanFilter.model_validate(flt)
        except ValidationError as exc:
            raise InvalidFilterError(f"invalid filter: {exc}") from None

    def _where(self, flt: SpanFilter) -> tuple[list[str], list[Any]]:
        """SQL conditions on `spans s` for the whole filter; content filters are resolved
        into a temporary table of matching span ids (cached per thread)."""
        clauses, params = query.where_sql(flt)
        if flt.text is None and not flt.attributes:
            return clauses, params
        rx = content.compile_text(flt.text) if flt.text is not None else None
        raw = content.raw_safe(flt.text) if flt.text is not None else None
        if (
            rx is not None
            and raw is not None
            and not flt.attributes
            and (not clauses or self._candidates(clauses, params) > SCAN_THRESHOLD)
        ):
            table = self._scan_table(flt.text, rx, raw)
            return [*clauses, f"s.id IN (SELECT id FROM temp.{table})"], params
        if rx is not None and raw is not None and flt.attributes and not clauses:
            table = self._scan_table(flt.text, rx, raw)
            clauses = [f"s.id IN (SELECT id FROM temp.{table})"]
            rx = None
        table = self._candidate_table(flt, clauses, params, rx)
        return [*clauses, f"s.id IN (SELECT id FROM temp.{table})"], params

    def _traces_matching(
        self, flt: SpanFilter, clauses: list[str], params: list[Any]
    ) -> tuple[str | None, int]:
        """(A condition on `traces t` or None for all, how many traces) for the traces
        holding a span that `flt` (as `clauses`) selects.

        Errors alone are read from the summaries. Any other filter's traces go into a temp
        table once per filter and thread: a total and its pages (and later pages, and a
        count before them) read the matching spans once, not once per query."""
        if not clauses:
            return None, self._trace_total
        conn = self._conn()
        if flt.model_dump(exclude_defaults=True) == {"errors_only": True}:
            total = conn.execute("SELECT COUNT(*) FROM traces WHERE error_count > 0")
            return "t.error_count > 0", total.fetchone()[0]
        name, new = self._new_hit_table(query.query_key("traces", clauses, params))
        if new:
            source, params = spans_where(conn, clauses, params, "s.trace_id")
            conn.execute(
                f"INSERT INTO temp.{name} SELECT t.id FROM traces t "
                f"WHERE t.trace_id IN (SELECT s.trace_id FROM {source})",
                params,
            )
        total = conn.execute(f"SELECT COUNT(*) FROM temp.{name}").fetchone()[0]
        return f"t.id IN (SELECT id FROM temp.{name})", total

    def _candidates(self, clauses: list[str], params: list[Any]) -> int:
        return count_where(self._conn(), clauses, params, limit=SCAN_THRESHOLD)

    def _new_hit_table(self, key: str) -> tuple[str, bool]:
        hits: OrderedDict = self._local.hits
        if key in hits:
            hits.move_to_end(key)
            return hits[key], False
        conn = self._conn()
        name = f"hits_{key}"
        conn.execute(f"DROP TABLE IF EXISTS temp.{name}")
        conn.execute(f"CREATE TEMP TABLE {name}(id INTEGER PRIMARY KEY)")
        hits[key] = name
        while len(hits) > HIT_TABLES_PER_THREAD:
            _, old = hits.popitem(last=False)
            conn.execute(f"DROP TABLE IF EXISTS temp.{old}")
        return name, True

    def _scan_table(self, pattern: str, rx: Any, raw: bytes) -> str:
        name, new = self._new_hit_table(query.query_key("scan", pattern))
        if not new:
            return name
        conn = self._conn()
        matcher = content.block_matcher(raw)
        batch: list[tuple[int]] = []
        for file_id, (path, gz) in sorted(self._files.items()):
            offsets, firsts = self._line_index(file_id)
            for offset, line in content.matching_lines(path, gz, matcher):
                i = bisect.bisect_left(offsets, offset)
                if i >= len(offsets) or offsets[i] != offset:
                    continue
                for span_id_row, payload in self._line_spans(file_id, offset, firsts[i], line):
                    if rx.search(span_text(payload)):
                        batch.append((span_id_row,))
                if len(batch) >= 5000:
                    conn.executemany(f"INSERT OR IGNORE INTO temp.{name} VALUES(?)", batch)
                    batch.clear()
        conn.executemany(f"INSERT OR IGNORE INTO temp.{name} VALUES(?)", batch)
        return name

    def _line_spans(
        self, file_id: int, offset: int, first_id: int, line: bytes
    ) -> list[tuple[int, Any]]:
        try:
            payloads = span_payloads(line)
        except Exception:
            return []
        if len(payloads) == 1:
            return [(first_id, payloads[0][1])]
        by_id = dict(payloads)
        rows = self._conn().execute(
            "SELECT id, span_id FROM spans WHERE id >= ? AND id < ? AND file_id = ? AND offset = ?",
            (first_id, first_id + len(payloads), file_id, offset),
        )
        return [(rid, by_id[sid]) for rid, sid in rows if sid in by_id]

    def _line_index(self, file_id: int) -> tuple[array, array]:
        """Sorted line offsets of a file and the id of each line's first span."""
        with self._guard:
            cached = self._line_indexes.get(file_id)
        if cached is not None:
            return cached
        offsets, firsts = array("q"), array("q")
        for off_blob, first_blob in self._conn().execute(
            "SELECT offsets, first_ids FROM line_index WHERE file_id=? ORDER BY seq", (file_id,)
        ):
            offsets.frombytes(off_blob)
            firsts.frombytes(first_blob)
        with self._guard:
            self._line_indexes[file_id] = (offsets, firsts)
        return offsets, firsts

    def _candidate_table(
        self, flt: SpanFilter, clauses: list[str], params: list[Any], rx: Any
    ) -> str:
        key = query.query_key("cand", clauses, params, flt.text if rx else None, flt.attributes)
        name, new = self._new_hit_table(key)
        if not new:
            return name
        conn = self._conn()
        columns = "s.id, s.span_id, s.file_id, s.offset, s.length"
        source, params = spans_where(conn, clauses, params, columns)
        rows = conn.execute(f"SELECT {columns} FROM {source} ORDER BY s.file_id, s.offset", params)
        handles: dict = {}
        batch: list[tuple[int]] = []
        last_key = None
        by_id: dict[str, Any] = {}
        try:
            for row_id, span_id, file_id, offset, length in _iter(rows):
                if (file_id, offset) != last_key:
                    last_key = (file_id, offset)
                    try:
                        by_id = dict(
                            span_payloads(self._read_line(file_id, offset, length, handles))
                        )
                    except StoreError:
                        raise
                    except Exception:
                        by_id = {}
                payload = by_id.get(span_id)
                if payload is None:
                    continue
                if flt.attributes and not content.attributes_match(payload, flt.attributes):
                    continue
                if rx is not None and not rx.search(span_text(payload)):
                    continue
                batch.append((row_id,))
                if len(batch) >= 5000:
                    conn.executemany(f"INSERT OR IGNORE INTO temp.{name} VALUES(?)", batch)
                    batch.clear()
        finally:
            for handle in handles.values():
                handle.close()
        conn.executemany(f"INSERT OR IGNORE INTO temp.{name} VALUES(?)", batch)
        return name

    # -- spans -----------------------------------------------------------------------------

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
        flt = self._filter(filter)
        fields = query.check_fields(fields)
        column, direction = query.check_sort(sort, query.SPAN_SORT_SQL)
        query.check_limit(limit)
        _check_max_chars(max_chars)
        clauses, params = self._where(flt)
        total = self._count_spans(flt, clauses, params)
        qkey = query.query_key(flt.model_dump(mode="json"), sort)
        page_clauses, page_params = list(clauses), list(params)
        if cursor:
            key, row_id = query.decode_cursor(cursor, sort, qkey)
            clause, extra = query.keyset(column, direction, key, row_id, "s")
            page_clauses.append(clause)
            page_params += extra
        conn = self._conn()
        source, page_params = spans_where(conn, page_clauses, page_params)
        sql = (
            f"{ROW_SELECT} FROM {source} ORDER BY s.{column} {direction}, s.id {direction} "
            f"LIMIT {limit + 1}"
        )
        rows = conn.execute(sql, page_params).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        views, clipped = self._views(rows, fields, max_chars)
        next_cursor = None
        if more:
            last = rows[-1]
            next_cursor = query.encode_cursor(sort, last[COL[column]], last[0], qkey)
        return SpanPage(
            spans=views,
            total=total,
            next_cursor=next_cursor,
            max_chars=max_chars,
            clipped_values=clipped,
        )

    def _views(self, rows: Sequence[Sequence[Any]], fields: Sequence[str], max_chars: int):
        clipper = Clipper(max_chars)
        handles: dict = {}
        try:
            views = [
                query.make_view(
                    row, fields, clipper, self._source, lambda r: self._payload(r, handles)
                )
                for row in rows
            ]
        finally:
            for handle in handles.values():
                handle.close()
        return views, clipper.clipped

    def _count_spans(self, flt: SpanFilter, clauses: list[str], params: list[Any]) -> int:
        """The exact number of spans `flt` selects: from the span-group tally when the
        filter is only kinds, errors, service, agent, model or tool (broad filters such
        as "every LLM span" would otherwise count 100k's of rows), else by counting."""
        if not clauses:
            return self._span_total
        if query.tally_covers(flt):
            sql = f"SELECT COALESCE(SUM(s.spans), 0) FROM {query.TALLY_SOURCE} WHERE "
            return self._conn().execute(sql + " AND ".join(clauses), params).fetchone()[0]
        return count_where(self._conn(), clauses, params)

    def count(self, filter: SpanFilter | None = None) -> MatchCount:
        """How many spans and traces `filter` selects, and how many traces exist."""
        flt = self._filter(filter)
        clauses, params = self._where(flt)
        if not clauses:
            return MatchCount(
                spans=self._span_total, traces=self._trace_total, traces_in_scope=self._trace_total
            )
        if query.tally_covers(flt):  # spans from the tally, traces kept for pages
            spans = self._count_spans(flt, clauses, params)
            traces = self._traces_matching(flt, clauses, params)[1]
            return MatchCount(spans=spans, traces=traces, traces_in_scope=self._trace_total)
        conn = self._conn()
        source, params = spans_where(conn, clauses, params, "s.trace_id")
        spans, traces = conn.execute(
            f"SELECT COUNT(*), COUNT(DISTINCT s.trace_id) FROM {source}", params
        ).fetchone()
        return MatchCount(spans=spans, traces=traces, traces_in_scope=self._trace_total)

    # -- traces ----------------------------------------------------------------------------

    def query_traces(
        self,
        filter: SpanFilter | None = None,
        *,
        sort: TraceSort = "start_time",
        limit: int = 50,
        cursor: str | None = None,
    ) -> TracePage:
        """Summaries of the traces having at least one span that matches `filter`."""
        flt = self._filter(filter)
        column, direction = query.check_sort(sort, query.TRACE_SORT_SQL)
        query.check_limit(limit)
        clauses, params = self._where(flt)
        conn = self._conn()
        matching, total = self._traces_matching(flt, clauses, params)
        outer = [matching] if matching else []
        qkey = query.query_key("traces", flt.model_dump(mode="json"), sort)
        page_params: list[Any] = []
        if cursor:
            key, row_id = query.decode_cursor(cursor, sort, qkey)
            clause, extra = query.keyset(column, direction, key, row_id, "t")
            outer.append(clause)
            page_params += extra
        where = f" WHERE {' AND '.join(outer)}" if outer else ""
        rows = conn.execute(
            f"SELECT {_TRACE_COLUMNS} FROM traces t{where} "
            f"ORDER BY t.{column} {direction}, t.id {direction} LIMIT {limit + 1}",
            page_params,
        ).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = None
        if more:
            last = rows[-1]
            next_cursor = query.encode_cursor(sort, last[_TRACE_SORT_INDEX[column]], last[0], qkey)
        return TracePage(traces=[_summary(r) for r in rows], total=total, next_cursor=next_cursor)

    def trace_summary(self, trace_id: str) -> TraceSummary:
        """One trace's summary. Raises UnknownIdError naming how to find valid ids."""
        row = (
            self._conn()
            .execute(f"SELECT {_TRACE_COLUMNS} FROM traces t WHERE t.trace_id = ?", (trace_id,))
            .fetchone()
        )
        if row is None:
            raise UnknownIdError(
                f"trace id {trace_id!r} is not in this trace set ({self._trace_total} traces); "
                "list valid ids with query_traces, or see overview().sample_trace_ids"
            )
        return _summary(row)

    def trace_tree(
        self,
        trace_id: str,
        *,
        fields: Sequence[str] = DEFAULT_SPAN_FIELDS,
        max_chars: int = 2000,
        limit: int = 500,
    ) -> TraceTree:
        """A trace's spans as a depth-first tree."""
        fields = query.check_fields(fields)
        query.check_limit(limit, 100_000)
        _check_max_chars(max_chars)
        summary = self.trace_summary(trace_id)
        rows = (
            self._conn()
            .execute(
                f"{ROW_SELECT} FROM spans s WHERE s.trace_id = ? ORDER BY s.start_ns, s.id",
                (trace_id,),
            )
            .fetchall()
        )
        span_ids = {r[COL["span_id"]] for r in rows}
        children: dict[str, list] = {}
        roots = []
        for row in rows:
            parent = row[COL["parent_span_id"]]
            if parent is None or parent not in span_ids or parent == row[COL["span_id"]]:
                roots.append(row)
            else:
                children.setdefault(parent, []).append(row)
        ordered: list[tuple[Any, int]] = []
        seen: set[str] = set()
        stack = [(r, 0) for r in reversed(roots)]
        while stack and len(ordered) < limit:
            row, depth = stack.pop()
            if row[COL["span_id"]] in seen:
                continue
            seen.add(row[COL["span_id"]])
            ordered.append((row, depth))
            for child in reversed(children.get(row[COL["span_id"]], [])):
                stack.append((child, depth + 1))
        views, _ = self._views([r for r, _ in ordered], fields, max_chars)
        nodes = [
            SpanNode(span=view, depth=depth, children=len(children.get(row[COL["span_id"]], [])))
            for (row, depth), view in zip(ordered, views, strict=True)
        ]
        return TraceTree(
            trace_id=trace_id, summary=summary, nodes=nodes, truncated=len(ordered) < len(rows)
        )

    def raw_span(self, trace_id: str, span_id: str) -> dict:
        """The span's raw payload as parsed from its source line (read by offset)."""
        row = (
            self._conn()
            .execute(
                f"{ROW_SELECT} FROM spans s WHERE s.trace_id = ? AND s.span_id = ?",
                (trace_id, span_id),
            )
            .fetchone()
        )
        if row is None:
            raise UnknownIdError(
                f"span {span_id!r} of trace {trace_id!r} is not in this trace set; find span "
                "ids with query_spans(SpanFilter(trace_ids=[...])) or trace_tree"
            )
        payload = self._payload(row, {})
        if payload is None:
            raise StoreError(
                f"span {span_id!r} could not be read back from {self._path_of(row[COL['file_id']])}"
                "; open the store again to re-index the file"
            )
        return payload.raw

    def search(
        self,
        pattern: str,
        *,
        filter: SpanFilter | None = None,
        limit: int = 20,
        context_chars: int = 120,
    ) -> SearchResult:
        """Regex search over span content, optionally within spans selected by `filter`."""
        rx = content.compile_text(pattern)
        query.check_limit(limit)
        flt = self._filter(filter)
        if flt.text is None:
            # One filter: a narrow filter (a trace id...) then tests its few spans instead
            # of scanning every file for the pattern first.
            clauses, params = self._where(flt.model_copy(update={"text": pattern}))
        else:
            clauses, params = self._where(flt)
            more, more_params = self._where(SpanFilter(text=pattern))
            clauses += more[-1:]
            params += more_params
        conn = self._conn()
        total = count_where(conn, clauses, params)
        source, params = spans_where(conn, clauses, params)
        rows = conn.execute(
            f"{ROW_SELECT} FROM {source} ORDER BY s.start_ns, s.id LIMIT {limit}", params
        ).fetchall()
        matches = []
        handles: dict = {}
        try:
            for row in rows:
                payload = self._payload(row, handles)
                text = span_text(payload) if payload is not None else ""
                found = rx.search(text)
                if found is None:
                    continue
                matches.append(
                    SearchMatch(
                        trace_id=row[COL["trace_id"]],
                        span_id=row[COL["span_id"]],
                        span_name=row[COL["name"]] or "",
                        excerpt=_excerpt(text, found.start(), found.end(), context_chars),
                    )
                )
        finally:
            for handle in handles.values():
                handle.close()
        return SearchResult(
            pattern=pattern, matches=matches, spans_matched=total, truncated=total > len(matches)
        )

    def known_ids(
        self, trace_ids: Sequence[str] = (), span_ids: Sequence[str] = ()
    ) -> tuple[set[str], set[str]]:
        """The subsets of the given trace and span ids that exist in the store."""
        conn = self._conn()
        found_traces: set[str] = set()
        found_spans: set[str] = set()
        for table, column, ids, out in (
            ("traces", "trace_id", list(dict.fromkeys(trace_ids)), found_traces),
            ("spans", "span_id", list(dict.fromkeys(span_ids)), found_spans),
        ):
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                marks = ",".join("?" * len(chunk))
                out.update(
                    r[0]
                    for r in conn.execute(
                        f"SELECT DISTINCT {column} FROM {table} WHERE {column} IN ({marks})", chunk
                    )
                )
        return found_traces, found_spans

    def overview(self) -> Overview:
        """Dataset overview: counts, time range, services, agents, models, tools, tokens,
        and the top error signatures."""
        return overview.build_overview(self._conn(), self.report)

    def repeated_tool_calls(self, min_repeats: int = 3, limit: int = 50) -> list[RepeatedToolCall]:
        """Traces where one tool was called with identical input at least `min_repeats`
        times (retry loops), most repeated first."""
        conn = self._conn()
        source = span_source(conn, "trace_id, tool_name, input_hash, span_id")
        rows = conn.execute(
            "SELECT trace_id, tool_name, COUNT(*) AS calls, group_concat(span_id, ' ') "
            f"FROM {source} WHERE input_hash IS NOT NULL AND tool_name IS NOT NULL "
            "GROUP BY trace_id, tool_name, input_hash HAVING calls >= ? "
            "ORDER BY calls DESC, trace_id LIMIT ?",
            (max(2, int(min_repeats)), int(limit)),
        )
        return [
            RepeatedToolCall(
                trace_id=trace_id,
                tool_name=tool,
                calls=calls,
                example_span_ids=sorted((span_ids or "").split(" "))[:5],  # stable examples
            )
            for trace_id, tool, calls, span_ids in rows
        ]

    def inputs_changed(self) -> bool:
        """Whether a trace file was appended to, rewritten, added or removed since this store
        was opened: its answers then describe the files as they were, and a long-lived
        holder (the MCP server) should open the store again (which extends or rebuilds the
        index). One stat per file and directory."""
        return bool(self._inputs) and fingerprint_now(self._inputs) != self._inputs

    def close(self) -> None:
        with self._guard:
            self._closed = True
            conns, self._conns = self._conns, []
        for conn in conns:
            with contextlib.suppress(Exception):  # another thread's connection may refuse
                conn.close()

    def __enter__(self) -> TraceStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _iter(cursor: Any) -> Iterator[tuple]:
    while True:
        batch = cursor.fetchmany(2000)
        if not batch:
            return
        yield from batch


def _check_max_chars(max_chars: int) -> None:
    if not isinstance(max_chars, int) or max_chars < 1:
        raise InvalidFilterError(f"max_chars must be a positive integer, got {max_chars!r}")


def _excerpt(text: str, start: int, end: int, context: int) -> str:
    end = min(end, start + max(200, context * 2))
    left = max(0, start - context)
    right = min(len(text), end + context)
    return ("…" if left else "") + text[left:right] + ("…" if right < len(text) else "")


def _summary(row: Sequence[Any]) -> TraceSummary:
    (
        _,
        trace_id,
        root_name,
        service,
        agents,
        models,
        span_count,
        error_count,
        start_ns,
        duration_ns,
        tin,
        tout,
        err_span,
        err_name,
        err_message,
    ) = row
    return TraceSummary(
        trace_id=trace_id,
        root_name=root_name,
        service=service,
        agents=orjson.loads(agents) if agents else [],
        models=orjson.loads(models) if models else [],
        span_count=span_count,
        error_count=error_count,
        start_time=query.from_ns(start_ns or 0),
        duration_ms=(duration_ns or 0) / 1e6,
        input_tokens=tin or 0,
        output_tokens=tout or 0,
        first_error=FirstError(span_id=err_span, name=err_name or "", message=err_message)
        if err_span
        else None,
    )


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
    parsed = dict(store._conn().execute("SELECT path, spans FROM files"))
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
) -> TraceStore:
    """Open (building or extending the index when needed) a store over files or directories.

    `paths` may name `.jsonl`/`.json`/`.gz` files or directories of them. The index lives in
    `cache_dir` (default: :func:`halo_mcp.settings.cache_dir`), never in the trace folder.
    `notify` hears a line when building or updating the index takes a while (and when it
    is done). `window` keeps only the traces starting inside it (see store/window.py).
    Raises TraceFileNotFoundError or NoSpansError with a message saying what to do.
    """
    files, directories = expand_paths(paths)
    # Taken before the index reads the files: a change made while it builds shows next time.
    inputs = inputs_fingerprint(files, directories)
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    try:
        given = sorted({Path(p).expanduser().resolve() for p in paths})
        db_path, reused = ensure_index(files, root, notify, inputs=given)
    except (sqlite3.Error, OSError) as exc:
        raise StoreError(
            f"cannot build or read the trace index under {root} ({exc}); point HALO_CACHE_DIR "
            "(or cache_dir=) at a writable directory with free space, or delete that "
            "directory's indexes/ to rebuild"
        ) from exc
    store = TraceStore(db_path, files, reused, inputs)
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
