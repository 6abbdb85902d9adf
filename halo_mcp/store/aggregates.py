"""Whole-set aggregates over the index, for triage and re-checks: typed results, no SQL
outside the store.

The TraceStore API answers per-filter questions; triage needs a handful of whole-set
aggregates (every error span, repeated tool inputs per trace, duration and token
distributions, thresholded counts, root spans). :class:`Aggregates` reads them through a
connection of its own (``TraceStore.aggregates()`` opens one), so a thread pool can run
several readers at once and none disturbs the store's per-thread connections. Only
:meth:`Aggregates.root_answered` touches the trace files, one root span per trace.

Results are typed: one record per span or group is a NamedTuple (named, typed fields at
the cost of a tuple, since some readers stream every error span), whole answers are
dataclasses. Nothing here hands out a connection or a raw row.

Speed on big (sharded) indexes: scans over many spans read ``span_source`` with only the
columns they use; totals come from the span-group tally (span_groups) or per-table index
lookups instead of a scan; several groups or kinds share one scan where they can.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, get_args

from halo_mcp.store import trace_rules
from halo_mcp.store.connections import iter_rows
from halo_mcp.store.formats import SpanPayload, span_payload
from halo_mcp.store.formats.payload import is_answer
from halo_mcp.store.raw_lines import LineReader, TraceFiles
from halo_mcp.store.shards import span_source, span_tables

#: Span kinds whose latency and tokens are compared by group, and the metrics compared.
GroupedKind = Literal["tool", "llm", "agent"]
Metric = Literal["duration", "tokens"]
GROUPED_KINDS: tuple[GroupedKind, ...] = get_args(GroupedKind)
METRICS: tuple[Metric, ...] = get_args(Metric)

#: The column naming each grouped kind's group, and each metric's column.
_GROUP_COLUMN: dict[str, str] = {"tool": "tool_name", "llm": "model", "agent": "agent"}
_METRIC_COLUMN: dict[str, str] = {"duration": "duration_ns", "tokens": "tokens"}

#: Compute a CTE used twice once (the hint exists from SQLite 3.35).
_MATERIALIZED = "MATERIALIZED " if sqlite3.sqlite_version_info >= (3, 35) else ""


class TimeRange(NamedTuple):
    """Earliest and latest span start (epoch ns; 0, 0 without spans)."""

    start_ns: int
    end_ns: int


class SpanTotals(NamedTuple):
    spans: int
    error_spans: int


class ToolCalls(NamedTuple):
    """A tool's calls and failed calls."""

    tool_name: str
    calls: int
    errors: int


class ErrorSpan(NamedTuple):
    """An error span, as error clustering reads it."""

    kind: str | None
    tool_name: str | None
    name: str | None
    error_message: str | None
    trace_id: str
    span_id: str
    start_ns: int | None


class RepeatedCall(NamedTuple):
    """One tool called with identical input `calls` times in one trace (a loop); span ids
    sorted, so every backend names the same first one."""

    trace_id: str
    tool_name: str
    calls: int
    error_calls: int
    span_ids: tuple[str, ...]


class SpanValue(NamedTuple):
    """A span and one of its metrics (duration ns or tokens)."""

    trace_id: str
    span_id: str
    value: int


class AgentCalls(NamedTuple):
    """The successful LLM calls an agent made in one trace (the turns it took)."""

    trace_id: str
    agent: str
    calls: int


class RootAnswer(NamedTuple):
    """A root span and whether its output is non-blank."""

    trace_id: str
    span_id: str
    answered: bool


@dataclass
class MetricSample:
    """Durations and token counts of one kind's spans, per metric and group; every
    `step`-th span when the kind has too many (tokens keep only spans reporting some)."""

    values: dict[Metric, dict[str, list[int]]]
    step: int


@dataclass
class AtLeast:
    """The spans whose metric reaches a threshold: how many, their traces, the largest."""

    spans: int
    traces: set[str]
    top: list[SpanValue]


@dataclass
class CallHistograms:
    """Per agent, {successful LLM calls in a trace: traces}; and every trace where an
    agent made its most calls, in (trace_id, agent) order."""

    per_agent: dict[str, dict[int, int]] = field(default_factory=dict)
    at_top: list[AgentCalls] = field(default_factory=list)


#: What :meth:`Aggregates.over_thresholds` takes: per (kind, metric), group -> threshold.
ThresholdPlan = Mapping[tuple[GroupedKind, Metric], Mapping[str, int]]


class Aggregates:
    """Aggregate reads over one index through one connection (one thread at a time)."""

    def __init__(self, conn: sqlite3.Connection, files: TraceFiles) -> None:
        self._conn = conn
        self._files = files

    # -- tallies (no span scan) -------------------------------------------------------

    def trace_total(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM traces").fetchone()[0])

    def span_totals(self) -> SpanTotals:
        """Spans and error spans, from the span-group tally."""
        spans, errors = self._conn.execute(
            "SELECT COALESCE(SUM(spans), 0), COALESCE(SUM(CASE WHEN is_error THEN spans END), 0) "
            "FROM span_groups"
        ).fetchone()
        return SpanTotals(int(spans), int(errors))

    def model_names(self) -> list[str]:
        """Every model named by a span, from the span-group tally (kept exact by every
        build and extension), so no span scan."""
        return [
            r[0]
            for r in self._conn.execute(
                "SELECT DISTINCT model FROM span_groups WHERE model IS NOT NULL ORDER BY model"
            )
        ]

    def kind_count(self, kind: str) -> int:
        """Spans of one kind, from the span-group tally."""
        row = self._conn.execute(
            "SELECT SUM(spans) FROM span_groups WHERE kind = ?", (kind,)
        ).fetchone()
        return int(row[0] or 0)

    def tool_calls(self) -> list[ToolCalls]:
        """Calls and failed calls per tool, from the span-group tally."""
        return [
            ToolCalls(name, int(calls), int(errors or 0))
            for name, calls, errors in self._conn.execute(
                "SELECT tool_name, SUM(spans), SUM(CASE WHEN is_error THEN spans ELSE 0 END) "
                "FROM span_groups WHERE tool_name IS NOT NULL GROUP BY tool_name"
            )
        ]

    # -- time ---------------------------------------------------------------------------

    def time_range(self) -> TimeRange:
        """Earliest and latest span start: per span table, from its start_ns index."""
        lows, highs = [], []
        for table in span_tables(self._conn):
            low, high = self._conn.execute(
                f"SELECT (SELECT MIN(start_ns) FROM {table}), (SELECT MAX(start_ns) FROM {table})"
            ).fetchone()
            if low is not None:
                lows.append(low)
            if high is not None:
                highs.append(high)
        return TimeRange(int(min(lows) if lows else 0), int(max(highs) if highs else 0))

    def starts_per_window(self, start_ns: int, width_ns: int, windows: int) -> list[int]:
        """Spans started in each of `windows` windows of `width_ns` from `start_ns`. One
        range count per window and span table, answered from the start_ns index (no sort
        of every span)."""
        counts = [0] * windows
        params = [
            v
            for b in range(windows)
            for v in (start_ns + b * width_ns, start_ns + (b + 1) * width_ns)
        ]
        for table in span_tables(self._conn):
            parts = ", ".join(
                f"(SELECT COUNT(*) FROM {table} WHERE start_ns >= ? AND start_ns < ?)"
                for _ in range(windows)
            )
            row = self._conn.execute(f"SELECT {parts}", params).fetchone()
            counts = [have + int(more or 0) for have, more in zip(counts, row, strict=True)]
        return counts

    # -- errors and tools -----------------------------------------------------------------

    def error_spans(self) -> Iterator[ErrorSpan]:
        """Every error span, in time order."""
        columns = "id, kind, tool_name, name, error_message, trace_id, span_id, start_ns, status"
        cursor = self._conn.execute(
            "SELECT kind, tool_name, name, error_message, trace_id, span_id, start_ns "
            f"FROM {span_source(self._conn, columns)} WHERE status = 'error' ORDER BY start_ns, id"
        )
        return map(ErrorSpan._make, iter_rows(cursor))

    def tool_error_traces(self) -> dict[str, int]:
        """Per tool, the number of traces with at least one failed call of it."""
        source = span_source(self._conn, "tool_name, trace_id, status")
        return {
            name: int(traces)
            for name, traces in self._conn.execute(
                f"SELECT tool_name, COUNT(DISTINCT trace_id) FROM {source} "
                "WHERE status = 'error' AND tool_name IS NOT NULL GROUP BY tool_name"
            )
        }

    def failing_tool_traces(self, tool_name: str) -> set[str]:
        """The traces with at least one failed call of `tool_name`."""
        source = span_source(self._conn, "trace_id, tool_name, status")
        return {
            r[0]
            for r in self._conn.execute(
                f"SELECT DISTINCT trace_id FROM {source} WHERE tool_name = ? AND status = 'error'",
                (tool_name,),
            )
        }

    def failing_tool_calls(self, tool_name: str, limit: int) -> list[ErrorSpan]:
        """A few failed calls of `tool_name` (examples)."""
        rows = self._conn.execute(
            "SELECT kind, tool_name, name, error_message, trace_id, span_id, start_ns "
            "FROM spans WHERE tool_name = ? AND status = 'error' LIMIT ?",
            (tool_name, int(limit)),
        )
        return [ErrorSpan._make(r) for r in rows]

    def repeated_calls(self, min_repeats: int) -> Iterator[RepeatedCall]:
        """Each time one tool got identical input at least `min_repeats` times within one
        trace (the `repeated_call` trace rule's SQL)."""
        sql, params = trace_rules.repeated_calls_sql(self._conn, min_repeats)
        cursor = self._conn.execute(sql, params)
        for trace_id, tool, calls, error_calls, span_ids in iter_rows(cursor):
            yield RepeatedCall(
                trace_id,
                tool,
                int(calls),
                int(error_calls or 0),
                tuple(sorted(s for s in (span_ids or "").split(" ") if s)),
            )

    # -- latency and tokens ---------------------------------------------------------------

    def metric_samples(
        self, kinds: tuple[GroupedKind, ...], max_rows: int
    ) -> dict[GroupedKind, MetricSample]:
        """Durations and token counts per group of spans of each kind, in one scan. Each
        kind keeps an evenly spread sample of at most about `max_rows` rows (every k-th
        row id), so memory stays bounded; tokens keep only spans that report some."""
        clauses: list[str] = []
        params: list[object] = []
        out: dict[GroupedKind, MetricSample] = {}
        for kind in kinds:
            step = max(1, self.kind_count(kind) // max(1, max_rows))
            out[kind] = MetricSample({"duration": {}, "tokens": {}}, step)
            clause = f"(kind = ? AND {_GROUP_COLUMN[kind]} IS NOT NULL"
            params.append(kind)
            if step > 1:
                clause += " AND id % ? = 0"
                params.append(step)
            clauses.append(clause + ")")
        if not clauses:
            return out
        columns = "id, kind, tool_name, model, agent, duration_ns, tokens"
        sql = (
            f"SELECT kind, {_group_case()}, duration_ns, tokens "
            f"FROM {span_source(self._conn, columns)} WHERE {' OR '.join(clauses)}"
        )
        for kind, name, duration, count in self._conn.execute(sql, params):
            values = out[kind].values
            values["duration"].setdefault(name, []).append(int(duration or 0))
            if count:
                values["tokens"].setdefault(name, []).append(int(count))
        return out

    def over_thresholds(
        self, plan: ThresholdPlan
    ) -> dict[tuple[GroupedKind, Metric], dict[str, list[SpanValue]]]:
        """Per (kind, metric) pair and group, the spans whose metric is at least the
        group's threshold; one scan of the spans for every pair (per 400 groups), in span
        table order within each group.

        Each pair's test is a CASE over its groups' thresholds, so SQLite scans the spans
        once (a join with a VALUES table makes it scan them once per threshold)."""
        out: dict[tuple[GroupedKind, Metric], dict[str, list[SpanValue]]] = {k: {} for k in plan}
        entries = [(k, m, name, int(t)) for (k, m), th in plan.items() for name, t in th.items()]
        groups = list(_GROUP_COLUMN.values())
        columns = f"kind, {', '.join(groups)}, trace_id, span_id, duration_ns, tokens"
        group_at = {kind: 1 + groups.index(column) for kind, column in _GROUP_COLUMN.items()}
        first = 1 + len(groups)  # where trace_id, span_id, duration_ns, tokens start
        for i in range(0, len(entries), 400):
            chunk: dict[tuple[GroupedKind, Metric], dict[str, int]] = {}
            for kind, metric, name, threshold in entries[i : i + 400]:
                chunk.setdefault((kind, metric), {})[name] = threshold
            tests, params = [], []
            for (kind, metric), thresholds in chunk.items():
                whens = " ".join("WHEN ? THEN ?" for _ in thresholds)
                tests.append(
                    f"(kind = ? AND {_METRIC_COLUMN[metric]} >= "
                    f"CASE {_GROUP_COLUMN[kind]} {whens} END)"
                )
                params += [kind, *(v for pair in thresholds.items() for v in pair)]
            sql = (
                f"SELECT {columns} FROM {span_source(self._conn, columns)} "
                f"WHERE {' OR '.join(tests)}"
            )
            for row in iter_rows(self._conn.execute(sql, params)):
                kind, name = row[0], row[group_at[row[0]]]
                trace_id, span_id, duration, tokens = row[first:]
                values = {"duration": duration, "tokens": tokens}
                for (k, metric), thresholds in chunk.items():
                    if k != kind:
                        continue
                    limit = thresholds.get(name)
                    value = values[metric]
                    if limit is not None and value is not None and value >= limit:
                        out[(k, metric)].setdefault(name, []).append(
                            SpanValue(trace_id, span_id, int(value))
                        )
        return out

    def at_least(
        self, kind: GroupedKind, group: str, metric: Metric, threshold: int, examples: int
    ) -> AtLeast:
        """Spans of `kind` in `group` whose metric is at least `threshold`: how many, their
        traces, and the `examples` largest."""
        column, group_column = _METRIC_COLUMN[metric], _GROUP_COLUMN[kind]
        where = f"kind = ? AND {group_column} = ? AND {column} >= ?"
        params = (kind, group, int(threshold))
        traces: set[str] = set()
        spans = 0
        source = span_source(self._conn, f"kind, {group_column}, {column}, trace_id")
        for (trace_id,) in iter_rows(
            self._conn.execute(f"SELECT trace_id FROM {source} WHERE {where}", params)
        ):
            spans += 1
            traces.add(trace_id)
        top = self._conn.execute(
            f"SELECT trace_id, span_id, {column} FROM spans WHERE {where} "
            f"ORDER BY {column} DESC LIMIT ?",
            (*params, int(examples)),
        )
        return AtLeast(spans, traces, [SpanValue(t, s, int(v)) for t, s, v in top])

    # -- LLM calls per agent (step limits) ---------------------------------------------------

    def _llm_calls_sql(self) -> str:
        """(trace_id, agent, calls): the successful LLM calls of each agent in each trace
        (the `step_limit` trace rule's SQL)."""
        return trace_rules.llm_calls_sql(self._conn)[0]

    def llm_calls_per_agent(self) -> Iterator[AgentCalls]:
        """The successful LLM calls of each agent in each trace: the turns it took."""
        for trace_id, agent, calls in iter_rows(self._conn.execute(self._llm_calls_sql())):
            yield AgentCalls(trace_id, agent, int(calls))

    def llm_call_histograms(self) -> CallHistograms:
        """The same counts as :meth:`llm_calls_per_agent` as one histogram per agent, plus
        the traces at each agent's top count: only a few rows out of SQLite."""
        out = CallHistograms()
        rows = self._conn.execute(
            f"WITH per AS {_MATERIALIZED}({self._llm_calls_sql()}), "
            "top(agent, calls) AS (SELECT agent, MAX(calls) FROM per GROUP BY agent) "
            "SELECT 0, agent, calls, COUNT(*) FROM per GROUP BY agent, calls "
            "UNION ALL SELECT * FROM (SELECT 1, per.agent, per.calls, per.trace_id FROM per "
            "JOIN top ON per.agent = top.agent AND per.calls = top.calls "
            "ORDER BY per.trace_id, per.agent)"
        )
        for part, agent, calls, value in rows:
            if part == 0:
                out.per_agent.setdefault(agent, {})[int(calls)] = int(value)
            else:
                out.at_top.append(AgentCalls(value, agent, int(calls)))
        return out

    # -- root spans (read from the files) --------------------------------------------------

    def root_answered(
        self, every: int = 1, known: Mapping[tuple[str, str], bool] | None = None
    ) -> Iterator[RootAnswer]:
        """Every root span (no parent), or about one in `every`, with whether its output is
        non-blank, read by offset in file order: one small read per trace. Roots in
        `known` ((trace, span) -> answered) are not read again."""
        known = known or {}
        sample = f" AND id % {int(every)} = 0" if every > 1 else ""
        columns = "id, trace_id, span_id, parent_span_id, status, file_id, offset, length"
        cursor = self._conn.execute(
            "SELECT trace_id, span_id, status, file_id, offset, length "
            f"FROM {span_source(self._conn, columns)} "
            f"WHERE parent_span_id IS NULL{sample} ORDER BY file_id, offset"
        )
        with LineReader(self._files, self._conn) as lines:
            for trace_id, span_id, status, file_id, offset, length in iter_rows(cursor):
                answered = known.get((trace_id, span_id))
                if answered is None:
                    root = _payload(lines.read(file_id, offset, length), span_id)
                    if _answer_in_calls(root, status):
                        answered = self._last_call_answered(lines, trace_id)
                    else:
                        answered = root is not None and bool(str(root.output or "").strip())
                yield RootAnswer(trace_id, span_id, answered)

    def _last_call_answered(self, lines: LineReader, trace_id: str) -> bool:
        """Whether the run's last LLM call answered: it ended without error and its output
        is text, not a tool call (the ClickHouse backend's `last_call_answers`)."""
        last = self._conn.execute(
            "SELECT span_id, status, file_id, offset, length FROM spans "
            "WHERE trace_id = ? AND kind = 'llm' "
            "ORDER BY end_ns DESC, start_ns DESC, span_id DESC LIMIT 1",
            (trace_id,),
        ).fetchone()
        if last is None or last[1] == "error":
            return False
        call = _payload(lines.read(last[2], last[3], last[4]), last[0])
        return call is not None and is_answer(call.output)


def _group_case() -> str:
    """The group column of a span by its kind, as one SQL expression."""
    arms = " ".join(f"WHEN '{k}' THEN {c}" for k, c in _GROUP_COLUMN.items())
    return f"CASE kind {arms} END"


def _answer_in_calls(root: SpanPayload | None, status: str) -> bool:
    """Whether a root leaves the run's answer to its last LLM call: it records no content
    at all (the OpenAI Agents SDK's workflow span) and did not fail (ClickHouse:
    ANSWER_IN_CALLS)."""
    return root is not None and root.input is None and root.output is None and status != "error"


def _payload(line: bytes, span_id: str) -> SpanPayload | None:
    try:
        return span_payload(line, span_id)
    except Exception:  # a line changed or unreadable: count it as unknown
        return None
