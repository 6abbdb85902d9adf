"""SpanFilter -> ClickHouse conditions over the normalized columns.

Every value a caller gives travels as a bound parameter (`{p0:String}`), never as SQL
text. The text filter runs ClickHouse's own regex engine (RE2: linear time, so a
hostile pattern cannot stall the server).

A filter is split in two: `row` conditions, true or false of a span on its own (every
field but agent and service), and the agent/service conditions, which a span may satisfy
through an ancestor (ingestion's inheritance). Queries first narrow the traces with the
row conditions and with "has a span whose own agent/service is X", then inherit and apply
the whole filter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from halo_mcp.store.clickhouse.expressions import lit
from halo_mcp.store.clickhouse.sources import Owner, SpanSource
from halo_mcp.store.errors import InvalidFilterError
from halo_mcp.store.models import EventFilter, SpanFilter, SpanKind, TraceRule
from halo_mcp.store.trace_rules import DEFAULT_MIN_REPEATS


@dataclass
class Params:
    """Bound parameters of one statement."""

    values: dict[str, Any] = field(default_factory=dict)

    def add(self, value: Any, kind: str = "String") -> str:
        name = f"p{len(self.values)}"
        self.values[name] = value
        return f"{{{name}:{kind}}}"


@dataclass
class CompiledFilter:
    """A filter as SQL. `raw` conditions read the exporter columns (attributes, text) and
    become the `matched` column of the normalized rows; `row` conditions read normalized
    columns of one span; `inherited` ones read agent/service after inheritance; `narrowing`
    conditions (on TraceId, over the raw table) keep only traces that can match. `started`
    repeats the start-time conditions on `Timestamp` (what partitions are pruned by): usable
    where rows need not be whole traces."""

    raw: list[str]
    row: list[str]
    inherited: list[str]
    narrowing: list[str]
    params: Params
    started: list[str] = field(default_factory=list)

    @property
    def matches(self) -> str:
        return " AND ".join(self.raw) or "1"

    @property
    def needs_inheritance(self) -> bool:
        return bool(self.inherited)

    def span_where(self, inherited: bool) -> str:
        """Conditions over normalized rows (with `matched`), with or without agent/service."""
        parts = [*self.row, *(["matched"] if self.raw else [])]
        if inherited:
            parts += self.inherited
        return " AND ".join(parts) or "1"

    def trace_where(self) -> str:
        return " AND ".join(self.narrowing) or "1"


def _glob_to_like(pattern: str) -> str:
    out = []
    for ch in pattern:
        if ch in "%_\\":
            out.append("\\" + ch)
        elif ch == "*":
            out.append("%")
        elif ch == "?":
            out.append("_")
        else:
            out.append(ch)
    return "".join(out)


def _ns(value: datetime) -> int:
    return int(value.timestamp()) * 1_000_000_000 + value.microsecond * 1000


#: The searchable text of a span, built in ClickHouse from the exporter columns: status
#: message, 'key: value' per attribute, event names and their attributes.
CONTENT = (
    "concat(StatusMessage, '\\n', arrayStringConcat(arrayMap((k, v) -> concat(k, ': ', v), "
    "mapKeys(SpanAttributes), mapValues(SpanAttributes)), '\\n'), '\\n', "
    "arrayStringConcat(arrayMap((n, a) -> concat(n, '\\n', arrayStringConcat(arrayMap("
    "(k, v) -> concat(k, ': ', v), mapKeys(a), mapValues(a)), '\\n')), `Events.Name`, "
    "`Events.Attributes`), '\\n'))"
)


def content_match(pattern: str, params: Params) -> str:
    """The text filter over CONTENT, case-insensitive like the file store's."""
    return f"match({CONTENT}, {params.add('(?i)' + pattern)})"


def rule_traces(rule: TraceRule, params: Params, source: SpanSource, window: str) -> str:
    """A subquery of the trace ids satisfying `rule`, as store/trace_rules.py selects them
    from the file index (over the window's spans)."""

    def spans(*columns: str, extras: tuple[str, ...] = ()) -> str:
        return source.spans(window, columns=columns, extras=extras)

    if rule.kind == "repeated_call":
        only = f" AND tool_name = {params.add(rule.tool_name)}" if rule.tool_name else ""
        least = params.add(max(1, int(rule.min_count or DEFAULT_MIN_REPEATS)), "Int64")
        rows = spans("trace_id", "tool_name", "kind", extras=("input_hash",))
        return (
            f"SELECT DISTINCT trace_id FROM (SELECT trace_id FROM ({rows}) "
            f"WHERE input_hash IS NOT NULL AND tool_name IS NOT NULL{only} "
            f"GROUP BY trace_id, tool_name, input_hash HAVING count() >= {least})"
        )
    if rule.kind == "step_limit":
        only = f" AND agent = {params.add(rule.agent)}" if rule.agent else ""
        least = params.add(int(rule.min_count or 1), "Int64")
        rows = source.inherited(window, columns=("kind", "status"))
        return (
            f"SELECT DISTINCT trace_id FROM (SELECT trace_id, agent FROM ({rows}) "
            f"WHERE kind = 'llm' AND agent IS NOT NULL AND status != 'error'{only} "
            f"GROUP BY trace_id, agent HAVING count() >= {least})"
        )
    if rule.kind == "ends_after_tool_error":
        only = f" AND last.2 = {params.add(rule.tool_name)}" if rule.tool_name else ""
        rows = spans("trace_id", "kind", "status", "tool_name", "start_ns")
        return (
            "SELECT trace_id FROM (SELECT trace_id, argMax((status, tool_name), start_ns) AS "
            f"last FROM ({rows}) WHERE kind = 'tool' GROUP BY trace_id) "
            f"WHERE last.1 = 'error'{only}"
        )
    if rule.kind == "trace_duration":
        least = params.add(int((rule.min_duration_ms or 0) * 1_000_000), "Int64")
        return (
            f"SELECT trace_id FROM ({spans('trace_id', 'start_ns', 'end_ns')}) "
            f"GROUP BY trace_id HAVING max(end_ns) - min(start_ns) >= {least}"
        )
    if rule.kind == "trace_tokens":
        least = params.add(int(rule.min_tokens or 0), "Int64")
        rows = spans("trace_id", "input_tokens", "output_tokens")
        return (
            f"SELECT trace_id FROM ({rows}) GROUP BY trace_id "
            f"HAVING sum(ifNull(input_tokens, 0)) + sum(ifNull(output_tokens, 0)) >= {least}"
        )
    if rule.kind == "no_final_answer":
        rows = spans("trace_id", "parent_span_id", extras=("answered",))
        return (
            f"SELECT DISTINCT trace_id FROM ({rows}) WHERE parent_span_id IS NULL AND NOT answered"
        )
    if rule.kind == "followed_by":
        return _followed_by(rule, params, source, window)
    raise InvalidFilterError(f"trace_rule {rule.kind!r} is not known")


def _followed_by(rule: TraceRule, params: Params, source: SpanSource, window: str) -> str:
    """Traces with a span `first` followed by a span `then` (later start; with same_tool,
    the same tool), or by none when then_absent: store/trace_rules.py's rule, per trace
    over the two events' (start, tool) arrays."""

    def event(side: EventFilter | None) -> str:
        if side is None:
            return "1"
        flt = SpanFilter(**side.model_dump(exclude_defaults=True))
        return compile_filter(flt, params, source, window).span_where(True)

    later = "y.1 > x.1" + (" AND y.2 = x.2" if rule.same_tool else "")
    test = f"arrayExists(y -> {later}, b)"
    rows = source.inherited(
        window, columns=("name", "kind", "status", "model", "tool_name", "start_ns", "end_ns")
    )
    return (
        f"SELECT trace_id FROM (SELECT trace_id, groupArrayIf((start_ns, tool_name), "
        f"{event(rule.first)}) AS a, groupArrayIf((start_ns, tool_name), {event(rule.then)}) "
        f"AS b FROM ({rows}) GROUP BY trace_id) "
        f"WHERE arrayExists(x -> {'NOT ' if rule.then_absent else ''}{test}, a)"
    )


def compile_filter(
    flt: SpanFilter, params: Params, source: SpanSource, window: str
) -> CompiledFilter:
    """Compile `flt`. `source` and `window` (a condition on Timestamp) let agent and
    service conditions narrow the traces to those holding a span that names them."""
    raw: list[str] = []
    row: list[str] = []
    inherited: list[str] = []
    narrowing: list[str] = []

    def members(column: str, values: list[str]) -> None:
        values = list(dict.fromkeys(values))
        if not values:
            row.append("0")
        else:
            row.append(f"{column} IN {params.add(values, 'Array(String)')}")

    if flt.trace_rule is not None:
        narrowing.append(f"TraceId IN ({rule_traces(flt.trace_rule, params, source, window)})")
    if flt.trace_ids is not None:
        members("trace_id", flt.trace_ids)
        if flt.trace_ids:
            narrowing.append(f"TraceId IN {params.add(list(flt.trace_ids), 'Array(String)')}")
    if flt.span_ids is not None:
        members("span_id", flt.span_ids)
    if flt.name is not None:
        if "*" in flt.name or "?" in flt.name:
            row.append(f"name LIKE {params.add(_glob_to_like(flt.name))}")
        else:
            row.append(f"name = {params.add(flt.name)}")
    if flt.kind is not None:
        members("kind", [SpanKind(k).value for k in flt.kind])
    if flt.errors_only:
        row.append("status = 'error'")
    for column, value in (("model", flt.model), ("tool_name", flt.tool_name)):
        if value is not None:
            row.append(f"{column} = {params.add(value)}")
    owners: tuple[tuple[Owner, str | None], ...] = (("agent", flt.agent), ("service", flt.service))
    for column, value in owners:
        if value is not None:
            bound = params.add(value)
            inherited.append(f"{column} = {bound}")
            narrowing.append(f"TraceId IN ({source.owner_traces(column, bound, window)})")
    if flt.min_duration_ms is not None:
        row.append(f"end_ns - start_ns >= {params.add(int(flt.min_duration_ms * 1e6), 'Int64')}")
    if flt.max_duration_ms is not None:
        row.append(f"end_ns - start_ns <= {params.add(int(flt.max_duration_ms * 1e6), 'Int64')}")
    started: list[str] = []
    for moment, op in ((flt.start_after, ">="), (flt.start_before, "<")):
        if moment is not None:
            bound = params.add(_ns(moment), "Int64")
            row.append(f"start_ns {op} {bound}")
            started.append(f"Timestamp {op} fromUnixTimestamp64Nano(toInt64({bound}))")
    for key, wanted in (flt.attributes or {}).items():
        raw.append(_attribute_equals(key, wanted, params))
    if flt.text is not None:
        raw.append(content_match(flt.text, params))
    return CompiledFilter(
        raw=raw, row=row, inherited=inherited, narrowing=narrowing, params=params, started=started
    )


def _attribute_equals(key: str, value: Any, params: Params) -> str:
    """content.values_equal in SQL: 3 == '3' == '3.0', True == 'true' (any case)."""
    bound_key = params.add(key)
    actual = (
        f"if(mapContains(SpanAttributes, {bound_key}), SpanAttributes[{bound_key}], "
        f"ResourceAttributes[{bound_key}])"
    )
    present = (
        f"(mapContains(SpanAttributes, {bound_key}) OR "
        f"mapContains(ResourceAttributes, {bound_key}))"
    )
    if isinstance(value, bool):
        return f"({present} AND lower({actual}) = {lit('true' if value else 'false')})"
    if isinstance(value, int | float):
        return (
            f"({present} AND (toFloat64OrNull({actual}) = {params.add(float(value), 'Float64')} "
            f"OR {actual} = {params.add(str(value))}))"
        )
    if not isinstance(value, str):
        raise InvalidFilterError(f"attribute {key!r}: compare with a string, number or bool")
    number = _float(value)
    if number is not None:
        return (
            f"({present} AND ({actual} = {params.add(value)} OR toFloat64OrNull({actual}) = "
            f"{params.add(number, 'Float64')}))"
        )
    return f"({present} AND {actual} = {params.add(value)})"


def _float(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None
