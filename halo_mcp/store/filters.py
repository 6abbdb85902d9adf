"""Filter compilation: a SpanFilter as SQL conditions on `spans s`.

Everything the index holds becomes plain SQL (query.where_sql). Span content (the text
regex, attribute equality) is resolved into a hit table of matching span ids: by the raw
file scan when the pattern allows it and SQL alone would leave many candidates, else by
reading the SQL candidates' lines and testing each span.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import ValidationError

from halo_mcp.store import content, query, trace_rules
from halo_mcp.store.aggregates import Aggregates
from halo_mcp.store.connections import iter_rows
from halo_mcp.store.errors import InvalidFilterError, StoreError
from halo_mcp.store.formats import SpanPayload, span_payloads, span_text
from halo_mcp.store.models import FilterArg, SpanFilter, TraceRule, filter_help
from halo_mcp.store.session import Session
from halo_mcp.store.shards import count_where, spans_where
from halo_mcp.text_patterns import Regex

#: Above this many SQL candidates, a raw-safe text regex scans the raw files instead.
SCAN_THRESHOLD = 5000

Where = tuple[list[str], list[Any]]


def coerce_filter(flt: FilterArg) -> SpanFilter:
    """A SpanFilter from a filter, a dict of its fields, or None (every span)."""
    if flt is None:
        return SpanFilter()
    if isinstance(flt, SpanFilter):
        return flt
    try:
        return SpanFilter.model_validate(flt)
    except ValidationError as exc:
        raise InvalidFilterError(f"invalid filter: {_short_errors(exc)}. {filter_help()}") from None


def compile_filter(s: Session, flt: SpanFilter) -> Where:
    """SQL conditions on `spans s` for the whole filter, with their parameters; content
    filters are resolved into a hit table (kept per thread, see hit_tables.py)."""
    clauses, params = query.where_sql(flt)
    if flt.trace_rule is not None:
        clauses.append(
            "s.trace_id IN (SELECT t.trace_id FROM traces t "
            f"WHERE t.id IN (SELECT id FROM temp.{rule_table(s, flt.trace_rule)}))"
        )
    if flt.text is None and not flt.attributes:
        return clauses, params
    rx = content.compile_text(flt.text) if flt.text is not None else None
    raw = content.raw_safe(flt.text) if flt.text is not None else None
    if flt.text is not None and rx is not None and raw is not None:
        if not flt.attributes and (not clauses or _many(s, clauses, params)):
            return [*clauses, _in_table(_scan_table(s, flt.text, rx, raw))], params
        if flt.attributes and not clauses:
            clauses, rx = [_in_table(_scan_table(s, flt.text, rx, raw))], None
    return [*clauses, _in_table(_candidate_table(s, flt, clauses, params, rx))], params


def traces_matching(s: Session, flt: SpanFilter, where: Where) -> tuple[str | None, int]:
    """(A condition on `traces t` or None for all, how many traces) for the traces
    holding a span that `flt` (compiled as `where`) selects.

    Errors alone are read from the summaries. Any other filter's traces go into a hit
    table once per filter and thread: a total and its pages (and later pages, and a
    count before them) read the matching spans once, not once per query."""
    clauses, params = where
    if not clauses:
        return None, s.trace_total
    if flt.model_dump(exclude_defaults=True) == {"errors_only": True}:
        total = s.conn.execute("SELECT COUNT(*) FROM traces WHERE error_count > 0")
        return "t.error_count > 0", int(total.fetchone()[0])

    def fill(name: str) -> None:
        source, source_params = spans_where(s.conn, clauses, params, "s.trace_id")
        s.conn.execute(
            f"INSERT INTO temp.{name} SELECT t.id FROM traces t "
            f"WHERE t.trace_id IN (SELECT s.trace_id FROM {source})",
            source_params,
        )

    name = s.hits.table(query.query_key("traces", clauses, params), fill)
    total = s.conn.execute(f"SELECT COUNT(*) FROM temp.{name}").fetchone()[0]
    return f"t.id IN (SELECT id FROM temp.{name})", int(total)


def rule_table(s: Session, rule: TraceRule) -> str:
    """A hit table of the row ids in `traces` of the traces satisfying `rule`, filled
    once per rule and thread (a count and its pages share it)."""

    def fill(name: str) -> None:
        query_ = trace_rules.rule_traces_sql(s.conn, rule)
        if query_ is not None:
            sql, params = query_
            s.conn.execute(
                f"INSERT OR IGNORE INTO temp.{name} SELECT t.id FROM traces t "
                f"WHERE t.trace_id IN ({sql})",
                params,
            )
            return
        # no_final_answer: each root span's output, read from the files.
        unanswered = {
            root.trace_id
            for root in Aggregates(s.conn, s.files).root_answered()
            if not root.answered
        }
        s.hits.insert(name, _trace_row_ids(s, sorted(unanswered)))

    key = query.query_key("rule", rule.model_dump(mode="json", exclude_defaults=True))
    return s.hits.table(key, fill)


def _trace_row_ids(s: Session, trace_ids: list[str]) -> Iterator[int]:
    for i in range(0, len(trace_ids), 500):
        chunk = trace_ids[i : i + 500]
        marks = ",".join("?" * len(chunk))
        for (row_id,) in s.conn.execute(
            f"SELECT id FROM traces WHERE trace_id IN ({marks})", chunk
        ):
            yield int(row_id)


def count_rule_traces(s: Session, rule: TraceRule) -> int:
    """How many traces satisfy a trace rule."""
    table = rule_table(s, rule)
    return int(s.conn.execute(f"SELECT COUNT(*) FROM temp.{table}").fetchone()[0])


def _short_errors(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err.get("loc", ())) or "filter"
        parts.append(f"{where}: {err.get('msg')}")
    return "; ".join(parts)


def _in_table(name: str) -> str:
    return f"s.id IN (SELECT id FROM temp.{name})"


def _many(s: Session, clauses: list[str], params: list[Any]) -> bool:
    """Whether SQL alone leaves more than SCAN_THRESHOLD candidates."""
    return count_where(s.conn, clauses, params, limit=SCAN_THRESHOLD) > SCAN_THRESHOLD


def _scan_table(s: Session, pattern: str, rx: Regex, raw: bytes) -> str:
    def fill(name: str) -> None:
        s.hits.insert(name, s.scanner.matching_ids(s.conn, pattern, rx, raw, s.deadline))

    return s.hits.table(query.query_key("scan", pattern), fill)


def _candidate_table(
    s: Session, flt: SpanFilter, clauses: list[str], params: list[Any], rx: Regex | None
) -> str:
    key = query.query_key("cand", clauses, params, flt.text if rx else None, flt.attributes)

    def fill(name: str) -> None:
        s.hits.insert(name, _candidate_ids(s, flt, clauses, params, rx))

    return s.hits.table(key, fill)


def _candidate_ids(
    s: Session, flt: SpanFilter, clauses: list[str], params: list[Any], rx: Regex | None
) -> Iterator[int]:
    """Row ids of the SQL candidates whose content matches, reading each line once."""
    columns = "s.id, s.span_id, s.file_id, s.offset, s.length"
    source, source_params = spans_where(s.conn, clauses, params, columns)
    rows = s.conn.execute(
        f"SELECT {columns} FROM {source} ORDER BY s.file_id, s.offset", source_params
    )
    last_line = None
    by_id: dict[str, SpanPayload] = {}
    with s.lines() as lines:
        for row_id, span_id, file_id, offset, length in iter_rows(rows):
            if (file_id, offset) != last_line:
                s.deadline.check()
                last_line = (file_id, offset)
                try:
                    by_id = dict(span_payloads(lines.read(file_id, offset, length)))
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
            yield row_id
