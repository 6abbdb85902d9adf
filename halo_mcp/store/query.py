"""SpanFilter -> SQL, sort orders, opaque cursors, and span rows -> SpanView.

Everything a filter says that the index holds becomes SQL; attribute equality and the
text regex need span content, so they are resolved separately (see `content.py`).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any, TypeVar, overload

import orjson

from halo_mcp.store.errors import InvalidFilterError
from halo_mcp.store.formats import SpanPayload
from halo_mcp.store.models import (
    SPAN_FIELDS,
    SpanFilter,
    SpanKind,
    SpanSource,
    SpanView,
    StatusCode,
)
from halo_mcp.store.schema import SPAN_COLUMNS
from halo_mcp.text import clip

#: Columns selected for every span row, in this order (the stored columns, plus the ones
#: SQL derives at insert time and the row id).
ROW_COLUMNS = ("id", *SPAN_COLUMNS[:-1], "file_id", "duration_ns", "tokens")
T = TypeVar("T")

COL = {name: i for i, name in enumerate(ROW_COLUMNS)}
#: The SELECT list of a full span row (alias `s`), in ROW_COLUMNS order.
ROW_SELECT = "SELECT " + ", ".join(f"s.{c}" for c in ROW_COLUMNS)


def sort_columns(**columns: str) -> dict[str, tuple[str, str]]:
    """Each sort name -> (column, "ASC"), and its '-' twin -> (column, "DESC")."""
    out: dict[str, tuple[str, str]] = {}
    for name, column in columns.items():
        out[name] = (column, "ASC")
        out[f"-{name}"] = (column, "DESC")
    return out


SPAN_SORT_SQL = sort_columns(start_time="start_ns", duration="duration_ns", tokens="tokens")
TRACE_SORT_SQL = sort_columns(start_time="start_ns", duration="duration_ns", errors="error_count")
CONTENT_FIELDS = frozenset({"input", "output", "attributes", "events"})


def to_ns(value: datetime) -> int:
    """A datetime as epoch ns; naive datetimes are taken as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    delta = value - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


@overload
def from_ns(ns: int) -> datetime: ...
@overload
def from_ns(ns: None) -> None: ...
def from_ns(ns: int | None) -> datetime | None:
    """Epoch ns as a UTC datetime (None stays None)."""
    if ns is None:
        return None
    seconds, rest = divmod(int(ns), 1_000_000_000)
    return datetime.fromtimestamp(seconds, tz=timezone.utc).replace(microsecond=rest // 1000)


def _glob_escape(pattern: str) -> str:
    """SQL GLOB also treats [ ] specially; the filter language only has * and ?."""
    return pattern.replace("[", "[[]")


def where_sql(flt: SpanFilter, alias: str = "s") -> tuple[list[str], list[Any]]:
    """SQL conditions (joined by AND) and parameters for the indexed part of a filter."""
    a = alias + "."
    clauses: list[str] = []
    params: list[Any] = []

    def members(column: str, values: Sequence[Any]) -> None:
        values = list(dict.fromkeys(values))
        if not values:
            clauses.append("0")
            return
        clauses.append(f"{a}{column} IN ({','.join('?' * len(values))})")
        params.extend(values)

    if flt.trace_ids is not None:
        members("trace_id", flt.trace_ids)
    if flt.span_ids is not None:
        members("span_id", flt.span_ids)
    if flt.name is not None:
        if "*" in flt.name or "?" in flt.name:
            clauses.append(f"{a}name GLOB ?")
            params.append(_glob_escape(flt.name))
        else:
            clauses.append(f"{a}name = ?")
            params.append(flt.name)
    if flt.kind is not None:
        members("kind", [SpanKind(k).value for k in flt.kind])
    if flt.errors_only:
        clauses.append(f"{a}status = 'error'")
    for column, value in (
        ("service", flt.service),
        ("agent", flt.agent),
        ("model", flt.model),
        ("tool_name", flt.tool_name),
    ):
        if value is not None:
            clauses.append(f"{a}{column} = ?")
            params.append(value)
    if flt.min_duration_ms is not None:
        clauses.append(f"{a}duration_ns >= ?")
        params.append(int(flt.min_duration_ms * 1_000_000))
    if flt.max_duration_ms is not None:
        clauses.append(f"{a}duration_ns <= ?")
        params.append(int(flt.max_duration_ms * 1_000_000))
    if flt.start_after is not None:
        clauses.append(f"{a}start_ns >= ?")
        params.append(to_ns(flt.start_after))
    if flt.start_before is not None:
        clauses.append(f"{a}start_ns < ?")
        params.append(to_ns(flt.start_before))
    return clauses, params


#: The span-group tally (span_groups) as a span source with the filter's column names, so
#: where_sql's conditions apply to it unchanged: one row per group, `spans` in each.
TALLY_SOURCE = (
    "(SELECT kind, service, agent, model, tool_name, "
    "CASE WHEN is_error THEN 'error' ELSE 'ok' END AS status, spans FROM span_groups) s"
)
_TALLY_FIELDS = {"kind", "errors_only", "service", "agent", "model", "tool_name"}


def tally_covers(flt: SpanFilter) -> bool:
    """Whether the tally is keyed by everything `flt` uses, so counting its groups gives
    the exact number of spans the filter selects (the tally is kept exact by every build
    and extension) from a few rows instead of every span."""
    used = flt.model_dump(exclude_defaults=True)
    return bool(used) and set(used) <= _TALLY_FIELDS


def check_fields(fields: Sequence[str]) -> list[str]:
    if isinstance(fields, str):
        fields = [f.strip() for f in fields.split(",") if f.strip()]
    unknown = [f for f in fields if f not in SPAN_FIELDS]
    if unknown:
        raise InvalidFilterError(
            f"unknown field(s) {', '.join(map(repr, unknown))}; valid fields: "
            f"{', '.join(SPAN_FIELDS)}"
        )
    if not fields:
        raise InvalidFilterError(f"no field asked for; valid fields: {', '.join(SPAN_FIELDS)}")
    return list(dict.fromkeys(fields))


def check_sort(sort: str, valid: dict[str, tuple[str, str]]) -> tuple[str, str]:
    if sort not in valid:
        raise InvalidFilterError(f"unknown sort {sort!r}; valid sorts: {', '.join(valid)}")
    return valid[sort]


def check_limit(limit: int, most: int = 10_000) -> int:
    if not isinstance(limit, int) or limit < 1 or limit > most:
        raise InvalidFilterError(f"limit must be an integer from 1 to {most}, got {limit!r}")
    return limit


def check_max_chars(max_chars: int) -> None:
    if not isinstance(max_chars, int) or max_chars < 1:
        raise InvalidFilterError(f"max_chars must be a positive integer, got {max_chars!r}")


def query_key(*parts: Any) -> str:
    """A short digest tying a cursor to the query it came from."""
    return hashlib.blake2b(orjson.dumps(parts, default=str), digest_size=6).hexdigest()


def encode_cursor(sort: str, key: Any, tie: Any, query: str) -> str:
    """An opaque cursor: the sort key and tie-breaker of the last row of a page (a row id in
    the file index, ids in ClickHouse), tied to the query that made it."""
    data = orjson.dumps({"s": sort, "k": key, "i": tie, "q": query})
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def decode_cursor(
    cursor: str,
    sort: str,
    query: str,
    tie: Callable[[Any], T] = int,  # type: ignore[assignment]
) -> tuple[Any, T]:
    """(sort key, tie-breaker) of a cursor made by encode_cursor for the same query; `tie`
    reads the tie-breaker back (and refuses a forged one)."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = orjson.loads(base64.urlsafe_b64decode(padded.encode()))
        key, row_id = data["k"], tie(data["i"])
        same = data["s"] == sort and data["q"] == query
    except Exception:
        raise InvalidFilterError(
            "cursor is not valid: pass back the next_cursor of the previous page unchanged, "
            "or omit cursor to start from the first page"
        ) from None
    if not same:
        raise InvalidFilterError(
            "cursor belongs to another query (different filter or sort); use it only with "
            "the query that returned it, or omit it to start again"
        )
    return key, row_id


def keyset(column: str, direction: str, key: Any, row_id: int, alias: str) -> tuple[str, list]:
    op = ">" if direction == "ASC" else "<"
    return f"({alias}.{column}, {alias}.id) {op} (?, ?)", [key, row_id]


class Clipper:
    """Clips strings at `max_chars` and counts how many it cut."""

    def __init__(self, max_chars: int) -> None:
        self.max_chars = max_chars
        self.clipped = 0

    def text(self, value: str | None) -> str | None:
        if value is None:
            return None
        out, cut = clip(value, self.max_chars)
        self.clipped += cut
        return out

    def deep(self, value: Any, depth: int = 0) -> Any:
        """Clip every string inside dicts/lists; big non-string leaves become clipped JSON."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {str(k): self.deep(v, depth + 1) for k, v in value.items()}
        if isinstance(value, list | tuple):
            if depth > 8:
                return self.text(orjson.dumps(value, default=str).decode())
            return [self.deep(v, depth + 1) for v in value]
        return value


def _kind(value: str | None) -> SpanKind:
    try:
        return SpanKind(value)
    except ValueError:
        return SpanKind.other


def _status(value: str | None) -> StatusCode:
    try:
        return StatusCode(value)
    except ValueError:
        return StatusCode.unset


def make_view(
    row: Sequence[Any],
    fields: Sequence[str],
    clipper: Clipper,
    source_of: Callable[[Sequence[Any]], SpanSource | None],
    payload_of: Callable[[Sequence[Any]], SpanPayload | None],
) -> SpanView:
    """A SpanView holding just `fields`; content fields come from `payload_of(row)`."""
    values: dict[str, Any] = {}
    payload = None
    for name in fields:
        if name in CONTENT_FIELDS:
            if payload is None:
                payload = payload_of(row)
            if payload is None:
                continue
            if name == "input":
                values[name] = clipper.text(payload.input)
            elif name == "output":
                values[name] = clipper.text(payload.output)
            elif name == "attributes":
                values[name] = clipper.deep(dict(payload.attributes))
            else:
                values[name] = clipper.deep(list(payload.events))
        elif name == "start_time":
            values[name] = from_ns(row[COL["start_ns"]])
        elif name == "duration_ms":
            values[name] = (row[COL["duration_ns"]] or 0) / 1e6
        elif name == "kind":
            values[name] = _kind(row[COL["kind"]])
        elif name == "status":
            values[name] = _status(row[COL["status"]])
        elif name == "source":
            values[name] = source_of(row)
        elif name in ("input_tokens", "output_tokens"):
            values[name] = row[COL[name]]
        else:
            value = row[COL[name]]
            values[name] = clipper.text(value) if isinstance(value, str) else value
    return SpanView(**values)


def depth_first(
    rows: Sequence[Sequence[Any]], limit: int
) -> tuple[list[tuple[Sequence[Any], int]], dict[str, list[Sequence[Any]]]]:
    """A trace's rows (in ROW_COLUMNS layout, by start time) as a depth-first walk of at most
    `limit` (row, depth) pairs, and each span's children. A span whose parent is missing,
    or itself, is a root; a span reached twice is shown once."""
    span_ids = {r[COL["span_id"]] for r in rows}
    children: dict[str, list[Sequence[Any]]] = {}
    roots = []
    for row in rows:
        parent = row[COL["parent_span_id"]]
        if parent is None or parent not in span_ids or parent == row[COL["span_id"]]:
            roots.append(row)
        else:
            children.setdefault(parent, []).append(row)
    ordered: list[tuple[Sequence[Any], int]] = []
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
    return ordered, children
