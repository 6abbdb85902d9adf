"""Read-only SQL inside ClickHouse over the same documented views as the file index's
(store/sql.py): `spans`, `traces` and `span_counts`, with the same columns and meanings.

The views are CTEs over the store's span source (the companion table, or the exporter
table normalized in place), restricted to the store's window. A statement runs as
`WITH <views> SELECT * FROM (<statement>) LIMIT n+1`, after three checks that ClickHouse
itself makes, none of which runs the statement:

1. `formatQuerySingleLine` (the statement as a bound parameter) parses it: one statement,
   and the checked text is the text that runs.
2. `EXPLAIN AST`: a SELECT, no SETTINGS, no table functions, no database-qualified table,
   and none of the functions that read outside the views (file, dictionaries, settings).
3. `EXPLAIN QUERY TREE` over stand-in views (typed values, no table): ClickHouse resolves
   every name in its scope, so a table that is not one of the views (a CTE or subquery of
   the statement is inlined) shows as a TABLE node and is refused.

It then runs with `readonly=1`, `max_execution_time` and a cap on the result's bytes.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any

from halo_mcp.store import sql as views
from halo_mcp.store.clickhouse.client import ClickHouseClient
from halo_mcp.store.clickhouse.sources import SpanSource
from halo_mcp.store.errors import QueryTimeoutError, StoreError
from halo_mcp.store.models import SqlQuery

RATE_EXAMPLE = "sumIf(spans, is_error = 1) / sum(spans)"
#: The views' documentation in ClickHouse's dialect (shown in errors).
SCHEMA = views.schema_text("ClickHouse", RATE_EXAMPLE)

_MS = "intDiv(start_ns + 500000, 1000000)"  # SQLite's strftime rounds to milliseconds
_ISO = (
    f"concat(formatDateTime(toDateTime(intDiv({_MS}, 1000), 'UTC'), '%Y-%m-%dT%H:%i:%S'), "
    f"'.', leftPad(toString({_MS} % 1000), 3, '0'), 'Z')"
)

#: The spans view's ClickHouse types (text that may be missing unless listed) and the
#: expressions that differ from the span source's column of the same name.
_SPAN_TYPES = {
    "trace_id": "String",
    "span_id": "String",
    "name": "String",
    "kind": "String",
    "status": "String",
    "is_error": "UInt8",
    "start_ns": "Int64",
    "end_ns": "Int64",
    "start_time": "String",
    "duration_ms": "Float64",
    "input_tokens": "Nullable(Int64)",
    "output_tokens": "Nullable(Int64)",
    "tokens": "Int64",
}
_SPAN_EXPRESSIONS = {
    "is_error": "status = 'error'",
    "start_time": _ISO,
    "duration_ms": "greatest(0, end_ns - start_ns) / 1e6",
    "tokens": "ifNull(input_tokens, 0) + ifNull(output_tokens, 0)",
}
#: (name, type, expression over the span source's columns), in the views' column order.
SPAN_COLUMNS = tuple(
    (name, _SPAN_TYPES.get(name, "Nullable(String)"), _SPAN_EXPRESSIONS.get(name, name))
    for name in views.VIEW_COLUMNS["spans"]
)
# The traces and span_counts views read the spans view as `s`: their aliases (start_ns,
# input_tokens...) would otherwise shadow the columns their aggregates read.
_ROOT = "s.parent_span_id IS NULL"
_FAILED = "s.is_error = 1"


def _first(column: str, condition: str) -> str:
    """`column` of the earliest span meeting `condition`, NULL when none does."""
    return f"if(countIf({condition}) > 0, argMinIf(s.{column}, s.start_ns, {condition}), NULL)"


def _names(column: str) -> str:
    return (
        f"toJSONString(arraySort(groupUniqArrayIf(assumeNotNull(s.{column}), "
        f"s.{column} IS NOT NULL)))"
    )


#: Over the spans view, grouped by trace_id (store/derive.py's summaries; agents and models
#: sorted).
TRACE_COLUMNS = (
    ("trace_id", "String", "s.trace_id"),
    ("root_name", "Nullable(String)", _first("name", _ROOT)),
    ("service", "Nullable(String)",
     f"coalesce({_first('service', _ROOT)}, {_first('service', 's.service IS NOT NULL')})"),
    ("agents", "String", _names("agent")),
    ("models", "String", _names("model")),
    ("span_count", "Int64", "count()"),
    ("error_count", "Int64", f"countIf({_FAILED})"),
    ("start_ns", "Int64", "min(s.start_ns)"),
    ("end_ns", "Int64", "max(s.end_ns)"),
    ("start_time", "String", _ISO.replace("start_ns", "min(s.start_ns)")),
    ("duration_ms", "Float64", "greatest(0, max(s.end_ns) - min(s.start_ns)) / 1e6"),
    ("input_tokens", "Int64", "sum(ifNull(s.input_tokens, 0))"),
    ("output_tokens", "Int64", "sum(ifNull(s.output_tokens, 0))"),
    ("first_error_span_id", "Nullable(String)", _first("span_id", _FAILED)),
    ("first_error_name", "Nullable(String)", _first("name", _FAILED)),
    ("first_error_message", "Nullable(String)", _first("error_message", _FAILED)),
    ("has_root", "UInt8", f"countIf({_ROOT}) > 0"),
)  # fmt: skip
_COUNT_KEYS = ("kind", "service", "agent", "model", "tool_name", "is_error")
#: Over the spans view, grouped by _COUNT_KEYS.
COUNT_COLUMNS = (
    *((key, dict((n, t) for n, t, _ in SPAN_COLUMNS)[key], f"s.{key}") for key in _COUNT_KEYS),
    ("spans", "Int64", "count()"),
    ("input_tokens", "Int64", "sum(ifNull(s.input_tokens, 0))"),
    ("output_tokens", "Int64", "sum(ifNull(s.output_tokens, 0))"),
)

#: Functions that read outside the views: files, dictionaries, Join tables, settings, the
#: server's disks and macros, models on disk. Lower case; a trailing '*' is a prefix.
REFUSED_FUNCTIONS = (
    "file",
    "dict*",
    "joinget*",
    "hascolumnintable",
    "getsetting*",
    "getserversetting*",
    "getmergetreesetting",
    "filesystem*",
    "getmacro",
    "getclienthttpheader",
    "catboostevaluate",
    "naivebayesclassifier",
    "globalvariable",
)
#: AST nodes a SELECT over the views never needs.
_REFUSED_NODES = {"Set": "a SETTINGS clause"}
_TABLE_NODE = re.compile(r"^\s*TABLE id: \d+,(?:.*?)table_name: ([^,\s]+)", re.MULTILINE)
_TABLE_FUNCTION_NODE = re.compile(r"TABLE_FUNCTION id: \d+,.*?table_function_name: (\w+)")
#: The table a SELECT without FROM reads; harmless (one row, one column).
_ONE = "system.one"
#: The biggest result ClickHouse may send back (the rows are then cut to max_chars).
MAX_RESULT_BYTES = views.MAX_VALUE_BYTES


def _select(columns: tuple[tuple[str, str, str], ...]) -> str:
    return ", ".join(f"CAST({expr} AS {type_}) AS {name}" for name, type_, expr in columns)


def _stand_in(columns: tuple[tuple[str, str, str], ...]) -> str:
    """A view's columns as typed non-constant values, from no table."""
    return "SELECT " + ", ".join(
        f"materialize(defaultValueOfTypeName('{type_}')) AS {name}" for name, type_, _ in columns
    )


def view_ctes(source: SpanSource, window: str) -> str:
    """The three views as a WITH list over `source`'s spans within `window`."""
    spans = f"SELECT {_select(SPAN_COLUMNS)} FROM ({source.inherited(window)})"
    traces = f"SELECT {_select(TRACE_COLUMNS)} FROM spans AS s GROUP BY s.trace_id"
    keys = ", ".join(f"s.{key}" for key in _COUNT_KEYS)
    counts = f"SELECT {_select(COUNT_COLUMNS)} FROM spans AS s GROUP BY {keys}"
    return f"WITH spans AS ({spans}), traces AS ({traces}), span_counts AS ({counts})"


_STAND_INS = (
    f"WITH spans AS ({_stand_in(SPAN_COLUMNS)}), traces AS ({_stand_in(TRACE_COLUMNS)}), "
    f"span_counts AS ({_stand_in(COUNT_COLUMNS)})"
)


def run_sql(
    client: ClickHouseClient,
    source: SpanSource,
    window: str,
    params: Mapping[str, Any],
    q: SqlQuery,
) -> views.SqlResult:
    """Run one read-only SELECT over the views of `source`'s spans within `window` (a
    condition over the exporter's Timestamp, bound by `params`), inside ClickHouse.

    `q.limit` caps rows (at most MAX_ROW_LIMIT), `q.max_chars` the rendered size and
    `q.time_limit_s` the time (ClickHouse's max_execution_time, whole seconds, at least 1;
    `q.max_steps`, SQLite's instruction budget, has no counterpart here); a refused, failed
    or stopped statement raises SqlError."""
    text, limit = views.statement_and_limit(q, SCHEMA)
    time_limit_s = q.time_limit_s
    started = time.monotonic()
    statement = _checked(client, text)
    wrapped = f"SELECT * FROM ({statement}) LIMIT {limit + 1}"
    try:
        columns = [str(row[0]) for row in client.rows(f"DESCRIBE ({_STAND_INS} {wrapped})")]
        raw = client.rows(
            f"{view_ctes(source, window)} {wrapped}",
            params,
            time_limit=time_limit_s,
            settings={
                "readonly": 1,
                "max_result_bytes": MAX_RESULT_BYTES,
                "result_overflow_mode": "throw",
            },
        )
    except QueryTimeoutError:
        raise views.stopped_error(f"its time limit of {time_limit_s:g} s") from None
    except StoreError as exc:
        raise views.SqlError(_explain(str(exc))) from None
    return views.bounded_result(columns, raw, limit, q.max_chars, started)


def _checked(client: ClickHouseClient, text: str) -> str:
    """`text` as ClickHouse formats it, after the checks of the module docstring; raises
    SqlError naming what to change."""
    try:
        formatted = client.rows("SELECT formatQuerySingleLine({q:String})", {"q": text})
    except StoreError as exc:
        message = str(exc)
        if "Multi-statements" in message:
            raise views.SqlError(
                "More than one statement: send exactly one SELECT statement.\n" + SCHEMA
            ) from None
        raise views.SqlError(_explain(message)) from None
    statement = str(formatted[0][0])
    first = statement.split()[0].upper() if statement.split() else ""
    if first not in ("SELECT", "WITH") and not first.startswith("("):
        raise _refused(f"the statement {first}")
    try:
        ast = client.rows(f"EXPLAIN AST SELECT * FROM ({statement})")
    except StoreError as exc:
        raise views.SqlError(_explain(str(exc))) from None
    _check_ast([str(row[0]) for row in ast], {*views.VIEWS, *_CTE_NAME.findall(statement)})
    try:
        tree = client.rows(f"EXPLAIN QUERY TREE {_STAND_INS} SELECT * FROM ({statement})")
    except StoreError as exc:
        raise views.SqlError(_explain(str(exc))) from None
    plan = "\n".join(str(row[0]) for row in tree)
    for name in _TABLE_FUNCTION_NODE.findall(plan):
        raise _refused(f"the table function {name}()")
    for name in _TABLE_NODE.findall(plan):
        if name != _ONE:
            raise _refused(f"the table {name}")
    return statement


#: The names a statement gives its own CTEs (`name AS (subquery)`, as formatted).
_CTE_NAME = re.compile(r"\b([A-Za-z_][A-Za-z0-9_]*) AS \(")


def _check_ast(lines: list[str], names: set[str]) -> None:
    """Refuse what the parsed statement (as `SELECT * FROM (statement)`) shows that a
    SELECT over the views never needs, and tables other than the views and the
    statement's own CTEs (`names`): refused before the query tree is analysed, since
    analysis may already run a scalar subquery. The wrapper's own SETTINGS (the embedded
    client's) sit right under its SelectQuery, the first one."""
    parents: list[tuple[int, str]] = []
    outer = -1
    for line in lines:
        depth = len(line) - len(line.lstrip())
        words = line.split()
        if not words:
            continue
        node, name = words[0], (words[1] if len(words) > 1 else "")
        while parents and parents[-1][0] >= depth:
            parents.pop()
        parent = parents[-1][1] if parents else ""
        parents.append((depth, node))
        if node == "SelectQuery" and outer < 0:
            outer = depth
        if node in _REFUSED_NODES and depth != outer + 1:
            raise _refused(_REFUSED_NODES[node])
        if node == "Function" and parent == "TableExpression":
            raise _refused(f"the table function {name}()")
        if node == "Function" and _is_refused_function(name):
            raise _refused(f"the function {name}()")
        if node == "TableIdentifier" and ("." in name or name not in names):
            raise _refused(f"the table {name}")


def _is_refused_function(name: str) -> bool:
    lowered = name.lower()
    return any(
        lowered.startswith(f[:-1]) if f.endswith("*") else lowered == f for f in REFUSED_FUNCTIONS
    )


def _refused(what: str) -> views.SqlError:
    return views.SqlError(
        f"Refused ({what}): only one SELECT over the views spans, traces and span_counts is "
        "allowed; no writes, SETTINGS, other tables, table functions (file, url, numbers...) "
        "or functions that read outside the views.\n" + SCHEMA
    )


def _explain(message: str) -> str:
    """ClickHouse's message without the statement it quotes (our views' SQL) or a stack."""
    first = message.strip().splitlines()[0] if message.strip() else "unknown error"
    first = re.split(r"[.:]? In scope ", first)[0]
    first = first.split("DB::Exception: ", 1)[-1]  # after the driver's and server's prefixes
    return f"SQL error: {first[:500]}.\n{SCHEMA}"
