"""Read-only SQL over the trace index, through documented views: `spans`, `traces` and
`span_counts`.

The views are the contract (see SQL_SCHEMA); the physical tables, shards and their
columns may change at any time and are never readable. Each query gets its own
connection: the index is opened read-only (`mode=ro`, `PRAGMA query_only`), the shards
are attached and the views defined, then an authorizer allows only SELECT, reads through
the views (or of the query's own CTEs and subqueries), and an allow-list of pure
functions (no load_extension, no file or schema functions). A progress handler stops a
statement at its time limit or step budget. Rows and characters have budgets; a cut
result says so.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from halo_mcp.store.errors import StoreError
from halo_mcp.store.models import SqlQuery
from halo_mcp.store.shards import attach_shards, span_tables
from halo_mcp.text import clip

DEFAULT_ROW_LIMIT = 100
MAX_ROW_LIMIT = 1000
DEFAULT_MAX_CHARS = 20_000
MAX_CELL_CHARS = 1000
DEFAULT_TIME_LIMIT_S = 10.0
MAX_VALUE_BYTES = 10_000_000
_SQLITE_LIMIT_LENGTH = 0  # sqlite3.h; sqlite3.SQLITE_LIMIT_LENGTH exists from Python 3.11
#: VM instructions between two checks of the time limit.
PROGRESS_STEPS = 10_000

VIEWS = ("spans", "traces", "span_counts")
#: The physical tables behind the views.
_VIEW_SOURCES = frozenset({"spans", "traces", "span_groups"})

_SPAN_COLUMNS = (
    ("trace_id", "trace_id", "Trace id."),
    ("span_id", "span_id", "Span id."),
    ("parent_span_id", "parent_span_id", "Parent span id; NULL for a root span."),
    ("name", "name", "Span name, e.g. 'chat gpt-4o', 'execute_tool search'."),
    ("kind", "kind", "agent, llm, tool, chain, guardrail or other."),
    ("status", "status", "'ok', 'error' or 'unset'."),
    ("is_error", "status = 'error'", "1 when the span failed, else 0."),
    ("error_message", "error_message", "The error text of a failed span."),
    ("start_ns", "start_ns", "Start, Unix epoch nanoseconds."),
    ("end_ns", "end_ns", "End, Unix epoch nanoseconds."),
    (
        "start_time",
        "strftime('%Y-%m-%dT%H:%M:%fZ', start_ns / 1e9, 'unixepoch')",
        "Start as ISO-8601 UTC text (group by substr(start_time, 1, 13) for hours).",
    ),
    ("duration_ms", "duration_ns / 1e6", "Duration in milliseconds."),
    ("service", "service", "Service name (inherited from ancestors when missing)."),
    ("agent", "agent", "Agent name (inherited from ancestors when missing)."),
    ("model", "model", "LLM model of an llm span."),
    ("tool_name", "tool_name", "Tool of a tool span."),
    ("input_tokens", "input_tokens", "Prompt tokens of an llm span."),
    ("output_tokens", "output_tokens", "Completion tokens of an llm span."),
    ("tokens", "tokens", "input_tokens + output_tokens."),
    ("session_id", "session_id", "Session / conversation id, when the harness sets one."),
)
_TRACE_COLUMNS = (
    ("trace_id", "trace_id", "Trace id."),
    ("root_name", "root_name", "Name of the root span."),
    ("service", "service", "Service of the root span."),
    (
        "agents",
        "agents",
        "JSON array of agent names (per-agent counts: group the spans view by agent).",
    ),
    ("models", "models", "JSON array of model names."),
    ("span_count", "span_count", "Spans in the trace."),
    ("error_count", "error_count", "Failed spans in the trace."),
    ("start_ns", "start_ns", "Earliest span start, Unix epoch nanoseconds."),
    ("end_ns", "end_ns", "Latest span end, Unix epoch nanoseconds."),
    (
        "start_time",
        "strftime('%Y-%m-%dT%H:%M:%fZ', start_ns / 1e9, 'unixepoch')",
        "Start as ISO-8601 UTC text.",
    ),
    ("duration_ms", "duration_ns / 1e6", "Duration in milliseconds."),
    ("input_tokens", "input_tokens", "Prompt tokens, summed over the trace."),
    ("output_tokens", "output_tokens", "Completion tokens, summed over the trace."),
    ("first_error_span_id", "first_error_span_id", "The earliest failed span."),
    ("first_error_name", "first_error_name", "Its name."),
    ("first_error_message", "first_error_message", "Its error text."),
    ("has_root", "has_root", "1 when the trace has a root span."),
)


_COUNT_COLUMNS = (
    ("kind", "kind", "Span kind."),
    ("service", "service", "Service name."),
    ("agent", "agent", "Agent name."),
    ("model", "model", "LLM model."),
    ("tool_name", "tool_name", "Tool name."),
    ("is_error", "is_error", "1 for the failed spans of this group, else 0."),
    ("spans", "spans", "How many spans the group holds."),
    ("input_tokens", "input_tokens", "Their prompt tokens."),
    ("output_tokens", "output_tokens", "Their completion tokens."),
)


_VIEWS = (("spans", _SPAN_COLUMNS), ("traces", _TRACE_COLUMNS), ("span_counts", _COUNT_COLUMNS))
#: Each view's columns, in order: the contract both backends define.
VIEW_COLUMNS = {view: tuple(column[0] for column in columns) for view, columns in _VIEWS}

_SQLITE_RATE = "SUM(spans) FILTER (WHERE is_error) * 1.0 / SUM(spans)"


def schema_text(engine: str = "SQLite", rate_example: str = _SQLITE_RATE) -> str:
    """The views' documentation for `engine`'s dialect, with a per-tool error rate in it."""
    lines = [
        f"Views (read-only {engine}; span content such as inputs/outputs is not here, use "
        "the search or query tools for it):"
    ]
    for view, columns in _VIEWS:
        lines.append(f"  {view}(" + ", ".join(c[0] for c in columns) + ")")
        lines += [f"    {name}: {doc}" for name, _, doc in columns]
    lines.append(
        "  span_counts holds one row per (kind, service, agent, model, tool_name, is_error) "
        f"with SUM-able counts: rates per agent, model or tool read it in milliseconds "
        f"(e.g. {rate_example} GROUP BY tool_name)."
    )
    return "\n".join(lines)


#: The documented, stable schema the SQL tool reads (shown in its description and errors).
SQL_SCHEMA = schema_text()

#: Functions a query may call: SQLite's pure core, aggregate, window, date, math and JSON
#: functions. Anything else (load_extension, fts3_tokenizer, sqlite_* introspection, or an
#: extension's file functions) is refused.
ALLOWED_FUNCTIONS = frozenset(
    [
        "abs",
        "changes",
        "char",
        "coalesce",
        "concat",
        "concat_ws",
        "format",
        "glob",
        "hex",
        "ifnull",
        "iif",
        "instr",
        "length",
        "like",
        "likelihood",
        "likely",
        "lower",
        "ltrim",
        "max",
        "min",
        "nullif",
        "octet_length",
        "printf",
        "quote",
        "random",
        "randomblob",
        "replace",
        "round",
        "rtrim",
        "sign",
        "soundex",
        "substr",
        "substring",
        "trim",
        "typeof",
        "unhex",
        "unicode",
        "unlikely",
        "upper",
        "zeroblob",
        "avg",
        "count",
        "group_concat",
        "string_agg",
        "sum",
        "total",
        "row_number",
        "rank",
        "dense_rank",
        "percent_rank",
        "cume_dist",
        "ntile",
        "lag",
        "lead",
        "first_value",
        "last_value",
        "nth_value",
        "date",
        "time",
        "datetime",
        "julianday",
        "unixepoch",
        "strftime",
        "timediff",
        "acos",
        "acosh",
        "asin",
        "asinh",
        "atan",
        "atan2",
        "atanh",
        "ceil",
        "ceiling",
        "cos",
        "cosh",
        "degrees",
        "exp",
        "floor",
        "ln",
        "log",
        "log10",
        "log2",
        "mod",
        "pi",
        "pow",
        "power",
        "radians",
        "sin",
        "sinh",
        "sqrt",
        "tan",
        "tanh",
        "trunc",
        "json",
        "json_array",
        "json_array_length",
        "json_extract",
        "json_insert",
        "json_object",
        "json_patch",
        "json_remove",
        "json_replace",
        "json_set",
        "json_type",
        "json_valid",
        "json_quote",
        "json_group_array",
        "json_group_object",
        "jsonb",
        "json_pretty",
        "json_error_position",
    ]
)


class SqlError(StoreError):
    """A query the SQL tool refused or that failed; the message shows the schema."""


class SqlResult(BaseModel):
    """A bounded query result."""

    columns: list[str]
    rows: list[list[Any]]
    returned: int = Field(description="Rows in `rows`.")
    truncated: bool = Field(description="More rows existed, or the character budget cut them.")
    note: str | None = Field(None, description="Why the result was cut, and how to narrow it.")
    elapsed_ms: float


def run_sql(index_path: Path, q: SqlQuery) -> SqlResult:
    """Run one read-only SELECT over the views of the index at `index_path`.

    `limit` caps rows (at most MAX_ROW_LIMIT), `max_chars` the rendered size, and
    `time_limit_s` / `max_steps` (VM instructions) the work; past either the statement is
    interrupted and SqlError says so."""
    max_chars, time_limit_s, max_steps = q.max_chars, q.time_limit_s, q.max_steps
    text, limit = statement_and_limit(q, SQL_SCHEMA)
    conn = _open(index_path, text)
    started = time.monotonic()
    deadline = started + time_limit_s
    steps = [0]
    stopped: list[str] = []

    def progress() -> int:
        steps[0] += PROGRESS_STEPS
        if time.monotonic() > deadline:
            stopped.append(f"its time limit of {time_limit_s:g} s")
            return 1
        if max_steps is not None and steps[0] > max_steps:
            stopped.append(f"its budget of {max_steps:,} steps")
            return 1
        return 0

    conn.set_progress_handler(progress, PROGRESS_STEPS)
    try:
        cursor = conn.execute(text)
        columns = [d[0] for d in cursor.description or ()]
        if not columns:
            raise SqlError("The statement returns no rows; write a SELECT.\n" + SQL_SCHEMA)
        raw = cursor.fetchmany(limit + 1)
    except sqlite3.Warning as exc:  # more than one statement
        raise SqlError(f"{exc}: send exactly one SELECT statement.") from None
    except sqlite3.DatabaseError as exc:
        if stopped:
            raise stopped_error(stopped[0]) from None
        raise SqlError(_explain(exc)) from None
    finally:
        conn.close()
    return bounded_result(columns, raw, limit, max_chars, started)


def statement_and_limit(q: SqlQuery, schema: str) -> tuple[str, int]:
    """The statement of `q` without surrounding blanks or a final `;`, and its row limit
    within 1..MAX_ROW_LIMIT; SqlError (with the views' `schema`) when it is empty."""
    text = (q.sql or "").strip().rstrip(";").strip()
    if not text:
        raise SqlError("Empty query; write one SELECT over the views.\n" + schema)
    return text, max(1, min(int(q.limit), MAX_ROW_LIMIT))


def bounded_result(
    columns: list[str], raw: Sequence[Sequence[Any]], limit: int, max_chars: int, started: float
) -> SqlResult:
    """The first `limit` of `raw` (fetched with one row more, to tell whether more exist)
    within `max_chars`, long values clipped, with a note saying what was cut; `started` is
    the query's time.monotonic() start."""
    more = len(raw) > limit
    rows: list[list[Any]] = []
    used = sum(len(c) + 3 for c in columns)
    cut_by_chars = False
    clipped = 0
    for row in raw[:limit]:
        values = []
        for value in row:
            if isinstance(value, bytes):
                value = f"<{len(value)} bytes>"
            if isinstance(value, str):
                value, was_cut = clip(value, MAX_CELL_CHARS)
                clipped += was_cut
            values.append(value)
        size = sum(len(str(v)) + 3 for v in values)
        if used + size > max_chars:
            cut_by_chars = True
            break
        rows.append(values)
        used += size
    notes = []
    if cut_by_chars:
        notes.append(
            f"rows after the first {len(rows)} left out to stay under {max_chars:,} characters"
        )
    elif more:
        notes.append(f"more rows than the limit of {limit}")
    if clipped:
        notes.append(f"{clipped} long values cut at {MAX_CELL_CHARS} characters")
    note = None
    if notes:
        note = "; ".join(notes) + " (aggregate, select fewer columns, or add ORDER BY ... LIMIT)"
    return SqlResult(
        columns=columns,
        rows=rows,
        returned=len(rows),
        truncated=more or cut_by_chars,
        note=note,
        elapsed_ms=round((time.monotonic() - started) * 1000, 2),
    )


def stopped_error(why: str) -> SqlError:
    """The error of a statement stopped at `why` (e.g. "its time limit of 10 s")."""
    return SqlError(
        f"The query was stopped at {why}: it does too much work (a runaway "
        "recursive CTE, a cross join, or a scan without a narrowing WHERE). "
        "Add a WHERE, a LIMIT inside the recursion, or aggregate earlier."
    )


def _open(index_path: Path, sql: str) -> sqlite3.Connection:
    """A read-only connection whose only readable relations are the views, the spans
    view narrowed to the columns `sql` uses."""
    uri = Path(index_path).absolute().as_uri() + "?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        attach_shards(conn, Path(index_path))
        tables = span_tables(conn)
    except sqlite3.Error as exc:
        raise StoreError(
            f"cannot open the trace index {index_path} read-only ({exc}); open the traces "
            "again to rebuild it"
        ) from None
    _define_spans(conn, tables, _SPAN_COLUMNS)
    trace_select = ", ".join(f"{expr} AS {name}" for name, expr, _ in _TRACE_COLUMNS)
    conn.execute(f"CREATE TEMP VIEW traces AS SELECT {trace_select} FROM main.traces")
    count_select = ", ".join(f"{expr} AS {name}" for name, expr, _ in _COUNT_COLUMNS)
    conn.execute(f"CREATE TEMP VIEW span_counts AS SELECT {count_select} FROM main.span_groups")
    used = _span_columns_used(conn, sql)
    if used is not None and len(tables) > 1:
        narrow = [c for c in _SPAN_COLUMNS if c[0] in used] or [_SPAN_COLUMNS[0]]
        if len(narrow) < len(_SPAN_COLUMNS):
            _define_spans(conn, tables, narrow)
    conn.execute("PRAGMA query_only=1")  # after the temp views: it covers temp too
    # No value bigger than this (group_concat over every span, zeroblob(1e9), ...).
    # Connection.setlimit is Python 3.11+; on 3.10 SQLite's own 1 GB limit applies.
    setlimit = getattr(conn, "setlimit", None)
    if setlimit is not None:
        setlimit(_SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
    conn.set_authorizer(_authorize)
    return conn


def _define_spans(
    conn: sqlite3.Connection, tables: list[str], columns: Sequence[tuple[str, str, str]]
) -> None:
    select = ", ".join(f"{expr} AS {name}" for name, expr, _ in columns)
    conn.execute("DROP VIEW IF EXISTS temp.spans")
    conn.execute(
        "CREATE TEMP VIEW spans AS "
        + " UNION ALL ".join(f"SELECT {select} FROM {t}" for t in tables)
    )


def _span_columns_used(conn: sqlite3.Connection, sql: str) -> set[str] | None:
    """The spans view's columns `sql` reads, from the authorizer's reports while SQLite
    compiles it (EXPLAIN: nothing runs); None when it does not compile or is an EXPLAIN.

    SQLite does not narrow a UNION ALL view to the columns a GROUP BY uses: every arm would
    read whole rows and compute every column. Over a sharded index, redefining the view
    with only the used columns lets each arm answer from a covering index (5x faster on
    1 GB for a per-tool error count)."""
    if sql.lstrip()[:7].upper() == "EXPLAIN":
        return None
    used: set[str] = set()

    def collect(
        action: int, arg1: str | None, arg2: str | None, db: str | None, view: str | None
    ) -> int:
        if action == sqlite3.SQLITE_READ and db == "temp" and arg1 == "spans" and arg2:
            used.add(arg2)
        return _authorize(action, arg1, arg2, db, view)

    conn.set_authorizer(collect)
    try:
        conn.execute("EXPLAIN " + sql).fetchall()
    except (sqlite3.Error, sqlite3.Warning):
        return None
    finally:
        conn.set_authorizer(None)
    return used


def _authorize(
    action: int, arg1: str | None, arg2: str | None, db: str | None, view: str | None
) -> int:
    """SELECT, reads through the views, CTEs and subqueries, allowed functions: nothing else."""
    if action == sqlite3.SQLITE_SELECT or action == sqlite3.SQLITE_RECURSIVE:
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_READ:
        if view in VIEWS:  # the view's own definition reading the physical tables
            return sqlite3.SQLITE_OK
        if db == "temp" and arg1 in VIEWS:
            return sqlite3.SQLITE_OK
        if db is None:  # a CTE or subquery of the statement itself
            return sqlite3.SQLITE_OK
        if arg2 == "" and arg1 in _VIEW_SOURCES:  # count(*) through a flattened view
            # (SQLite names the physical table, no column: only a row count is read).
            return sqlite3.SQLITE_OK
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in ALLOWED_FUNCTIONS:
        return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY


def _explain(exc: sqlite3.DatabaseError) -> str:
    message = str(exc)
    if any(w in message for w in ("not authorized", "prohibited", "authorization denied")):
        why = (
            f"Refused ({message}): only one SELECT over the views spans, traces and "
            "span_counts is allowed; no writes, ATTACH, PRAGMA, physical tables or "
            "non-listed functions."
        )
    else:
        why = f"SQL error: {message}."
    return f"{why}\n{SQL_SCHEMA}"
