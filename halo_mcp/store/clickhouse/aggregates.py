"""Triage's and check's whole-set aggregates, computed inside ClickHouse.

The same reader as :class:`halo_mcp.store.aggregates.Aggregates` (the
:class:`halo_mcp.store.api.AggregateReader` protocol), so `run_triage`, `check_findings`
and the recounts run unchanged on a ClickHouse table. Each method is one bounded aggregate
over the store's time window (spans normalized by `expressions.py`, agents inherited only
where a method groups by agent). Methods that hand out one record per span or per trace
(every error span, every root span) read them as one stream of blocks, so the halo-mcp
process holds one block at a time.

Where the file index uses its row id (a sample of every k-th span, the order of equal
start times), this reader uses a hash of the span id and (trace id, span id): the same
spans are counted; samples and tie orders can differ.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from halo_mcp.store.aggregates import (
    GROUPED_KINDS,
    AgentCalls,
    AtLeast,
    CallHistograms,
    ErrorSpan,
    GroupedKind,
    Metric,
    MetricSample,
    RepeatedCall,
    RootAnswer,
    SpanTotals,
    SpanValue,
    ThresholdPlan,
    TimeRange,
    ToolCalls,
)
from halo_mcp.store.clickhouse import expressions as ex
from halo_mcp.store.clickhouse.client import ClickHouseClient
from halo_mcp.store.clickhouse.filters import Params
from halo_mcp.store.clickhouse.sources import SpanSource

#: Roots whose answer lies in their last LLM call are looked up in batches of this many.
_ANSWER_BATCH = 50_000

#: Distinct models read (masking model names in error signatures).
MAX_MODELS = 10_000

_GROUP_COLUMN: dict[str, str] = {"tool": "tool_name", "llm": "model", "agent": "agent"}
_METRIC_COLUMN: dict[str, str] = {
    "duration": "greatest(0, end_ns - start_ns)",
    "tokens": "ifNull(input_tokens, 0) + ifNull(output_tokens, 0)",
}
_SAMPLE_KEY = "cityHash64(span_id)"
_ERROR_COLUMNS = (
    "kind", "tool_name", "name", "error_message", "trace_id", "span_id", "start_ns", "status",
)  # fmt: skip
_LOOP_COLUMNS = ("trace_id", "span_id", "tool_name", "kind", "status", "start_ns")
_GROUPED_COLUMNS = (
    "trace_id", "span_id", "kind", "tool_name", "model", "own_agent", "start_ns", "end_ns",
    "input_tokens", "output_tokens", "status",
)  # fmt: skip


class ClickHouseAggregates:
    """Aggregate reads over one ClickHouse table's window (see the module docstring)."""

    def __init__(
        self,
        client: ClickHouseClient,
        source: SpanSource,
        window: str,
        window_ns: tuple[int, int],
        trace_total: int,
        time_limit: float | None = None,
    ) -> None:
        self._client = client
        self._source = source
        self._table = source.raw_table
        self._window = window
        self._window_ns = window_ns
        self._trace_total = trace_total
        self._time_limit = time_limit

    # -- plumbing -------------------------------------------------------------------------

    def _params(self) -> Params:
        params = Params()
        params.values.update({"ws": self._window_ns[0], "we": self._window_ns[1]})
        return params

    def _rows(self, sql: str, params: Params | None = None) -> list[tuple[Any, ...]]:
        values = (params or self._params()).values
        return self._client.rows(sql, values, time_limit=self._time_limit)

    def _spans(self, *columns: str, extras: tuple[str, ...] = ()) -> str:
        """The window's spans, normalized (own agent and service only): only `columns`
        (and what they and `extras` need), which keeps ClickHouse's planning short."""
        return self._source.spans(self._window, columns=columns, extras=extras)

    def _inherited(self, *columns: str) -> str:
        """The window's spans with agent inherited (carrying only `columns`)."""
        return self._source.inherited(self._window, columns=columns)

    def _stream(
        self, select: str, source: str, where: str, keys: tuple[str, ...]
    ) -> Iterator[tuple[Any, ...]]:
        """Rows of `SELECT select, keys FROM source WHERE where` in `keys` order: one scan,
        read block by block (this process holds one block at a time)."""
        order = ", ".join(keys)
        return self._client.stream(
            f"SELECT {select}, {order} FROM ({source}) WHERE {where} ORDER BY {order}",
            self._params().values,
            time_limit=self._time_limit,
        )

    # -- tallies --------------------------------------------------------------------------

    def trace_total(self) -> int:
        return self._trace_total

    def span_totals(self) -> SpanTotals:
        spans, errors = self._rows(
            f"SELECT count(), countIf(status = 'error') FROM ({self._spans('status')})"
        )[0]
        return SpanTotals(int(spans), int(errors))

    def model_names(self) -> list[str]:
        return [
            str(r[0])
            for r in self._rows(
                f"SELECT DISTINCT model FROM ({self._spans('model')}) WHERE model IS NOT NULL "
                f"ORDER BY model LIMIT {MAX_MODELS}"
            )
        ]

    def kind_count(self, kind: str) -> int:
        params = self._params()
        found = self._rows(
            f"SELECT count() FROM ({self._spans('kind')}) WHERE kind = {params.add(kind)}",
            params,
        )
        return int(found[0][0])

    def tool_calls(self) -> list[ToolCalls]:
        return [
            ToolCalls(str(name), int(calls), int(errors))
            for name, calls, errors in self._rows(
                "SELECT tool_name, count(), countIf(status = 'error') FROM "
                f"({self._spans('tool_name', 'status')}) "
                "WHERE tool_name IS NOT NULL GROUP BY tool_name ORDER BY tool_name"
            )
        ]

    # -- time -----------------------------------------------------------------------------

    def time_range(self) -> TimeRange:
        low, high, spans = self._rows(
            "SELECT min(toUnixTimestamp64Nano(Timestamp)), max(toUnixTimestamp64Nano(Timestamp)),"
            f" count() FROM {self._table} WHERE {self._window}"
        )[0]
        return TimeRange(int(low), int(high)) if spans else TimeRange(0, 0)

    def starts_per_window(self, start_ns: int, width_ns: int, windows: int) -> list[int]:
        params = self._params()
        start = params.add(int(start_ns), "Int64")
        width = params.add(int(width_ns), "Int64")
        end = params.add(int(start_ns) + int(width_ns) * int(windows), "Int64")
        found = self._rows(
            f"SELECT intDiv(s - {start}, {width}) AS b, count() FROM (SELECT "
            f"toUnixTimestamp64Nano(Timestamp) AS s FROM {self._table} WHERE {self._window}) "
            f"WHERE s >= {start} AND s < {end} GROUP BY b",
            params,
        )
        counts = [0] * windows
        for bucket, count in found:
            counts[int(bucket)] = int(count)
        return counts

    # -- errors and tools -----------------------------------------------------------------

    def error_spans(self) -> Iterator[ErrorSpan]:
        """Every error span, in time order (then trace and span id), streamed."""
        rows = self._stream(
            "kind, tool_name, name, error_message",
            self._spans(*_ERROR_COLUMNS),
            "status = 'error'",
            ("start_ns", "trace_id", "span_id"),
        )
        return (
            ErrorSpan(k, tool, name, message, trace, span, int(start))
            for k, tool, name, message, start, trace, span in rows
        )

    def tool_error_traces(self) -> dict[str, int]:
        return {
            str(name): int(traces)
            for name, traces in self._rows(
                "SELECT tool_name, uniqExact(trace_id) FROM "
                f"({self._spans('trace_id', 'tool_name', 'status')}) "
                "WHERE status = 'error' AND tool_name IS NOT NULL GROUP BY tool_name"
            )
        }

    def failing_tool_traces(self, tool_name: str) -> set[str]:
        params = self._params()
        return {
            str(r[0])
            for r in self._rows(
                "SELECT DISTINCT trace_id FROM "
                f"({self._spans('trace_id', 'tool_name', 'status')}) "
                f"WHERE tool_name = {params.add(tool_name)} AND status = 'error'",
                params,
            )
        }

    def failing_tool_calls(self, tool_name: str, limit: int) -> list[ErrorSpan]:
        params = self._params()
        rows = self._rows(
            "SELECT kind, tool_name, name, error_message, trace_id, span_id, start_ns "
            f"FROM ({self._spans(*_ERROR_COLUMNS)}) WHERE tool_name = {params.add(tool_name)} "
            f"AND status = 'error' ORDER BY start_ns, trace_id, span_id LIMIT {int(limit)}",
            params,
        )
        return [ErrorSpan(k, t, n, m, tr, sp, int(st)) for k, t, n, m, tr, sp, st in rows]

    def repeated_calls(self, min_repeats: int) -> Iterator[RepeatedCall]:
        """Each time one tool got identical input (the same input hash) at least
        `min_repeats` times in one trace; span ids sorted (as the file index gives them)."""
        params = self._params()
        least = params.add(int(min_repeats), "Int64")
        calls = (
            f"FROM ({self._spans(*_LOOP_COLUMNS, extras=('input_hash',))}) "
            "WHERE input_hash IS NOT NULL AND tool_name IS NOT NULL"
        )
        # Grouping millions of calls by one hash of (trace, tool, input) first is several
        # times faster than by the texts; only the groups it finds are grouped again, by
        # the values themselves (so a hash collision cannot add a group).
        key = "cityHash64(trace_id, tool_name, input_hash)"
        rows = self._rows(
            "SELECT trace_id, tool_name, count() AS calls, countIf(status = 'error'), "
            f"arraySort(groupArray(span_id)) {calls} AND {key} IN (SELECT {key} AS k {calls} "
            f"GROUP BY k HAVING count() >= {least}) "
            f"GROUP BY trace_id, tool_name, input_hash HAVING calls >= {least} "
            "ORDER BY trace_id, tool_name",
            params,
        )
        for trace_id, tool, calls, error_calls, span_ids in rows:
            yield RepeatedCall(
                str(trace_id), str(tool), int(calls), int(error_calls), tuple(span_ids)
            )

    # -- latency and tokens ---------------------------------------------------------------

    def _grouped_source(self, kinds: tuple[GroupedKind, ...]) -> str:
        """Spans with their group columns: agents inherited only when a kind groups by
        agent (the costlier pass)."""
        if "agent" in kinds or self._source.materialized:
            return self._inherited(*_GROUPED_COLUMNS)
        return f"SELECT *, own_agent AS agent FROM ({self._spans(*_GROUPED_COLUMNS)})"

    def metric_samples(
        self, kinds: tuple[GroupedKind, ...], max_rows: int
    ) -> dict[GroupedKind, MetricSample]:
        """Durations and tokens per group of each kind; a kind with more than about
        `max_rows` spans keeps one in `step` (by a hash of the span id)."""
        out: dict[GroupedKind, MetricSample] = {}
        clauses: list[str] = []
        params = self._params()
        for kind in kinds:
            step = max(1, self.kind_count(kind) // max(1, max_rows))
            out[kind] = MetricSample({"duration": {}, "tokens": {}}, step)
            clause = f"(kind = {params.add(kind)} AND {_GROUP_COLUMN[kind]} IS NOT NULL"
            if step > 1:
                clause += f" AND {_SAMPLE_KEY} % {params.add(step, 'UInt64')} = 0"
            clauses.append(clause + ")")
        if not clauses:
            return out
        group = "multiIf(" + ", ".join(f"kind = '{k}', {c}" for k, c in _GROUP_COLUMN.items())
        rows = self._rows(
            f"SELECT kind, {group}, NULL) AS g, {_METRIC_COLUMN['duration']}, "
            f"{_METRIC_COLUMN['tokens']} FROM ({self._grouped_source(kinds)}) "
            f"WHERE {' OR '.join(clauses)} ORDER BY start_ns, trace_id, span_id",
            params,
        )
        for kind, name, duration, tokens in rows:
            values = out[kind].values
            values["duration"].setdefault(name, []).append(int(duration))
            if tokens:
                values["tokens"].setdefault(name, []).append(int(tokens))
        return out

    def over_thresholds(
        self, plan: ThresholdPlan
    ) -> dict[tuple[GroupedKind, Metric], dict[str, list[SpanValue]]]:
        """Per (kind, metric) and group, the spans whose metric reaches the group's
        threshold, in time order within each group; one statement for the whole plan."""
        out: dict[tuple[GroupedKind, Metric], dict[str, list[SpanValue]]] = {k: {} for k in plan}
        if not any(plan.values()):
            return out
        params = self._params()
        tests = []
        for (kind, metric), thresholds in plan.items():
            if not thresholds:
                continue
            names = params.add(list(thresholds), "Array(String)")
            limits = params.add([int(v) for v in thresholds.values()], "Array(Int64)")
            column = _GROUP_COLUMN[kind]
            tests.append(
                f"(kind = {params.add(kind)} AND {column} IS NOT NULL AND has({names}, "
                f"assumeNotNull({column})) AND {_METRIC_COLUMN[metric]} >= "
                f"transform(assumeNotNull({column}), {names}, {limits}, toInt64(0)))"
            )
        kinds = tuple(k for k in GROUPED_KINDS if any(kk == k for kk, _ in plan))
        group = "multiIf(" + ", ".join(f"kind = '{k}', {c}" for k, c in _GROUP_COLUMN.items())
        rows = self._rows(
            f"SELECT kind, {group}, NULL) AS g, trace_id, span_id, "
            f"{_METRIC_COLUMN['duration']}, {_METRIC_COLUMN['tokens']} "
            f"FROM ({self._grouped_source(kinds)}) WHERE {' OR '.join(tests)} "
            "ORDER BY start_ns, trace_id, span_id",
            params,
        )
        for kind, name, trace_id, span_id, duration, tokens in rows:
            values = {"duration": duration, "tokens": tokens}
            for (k, metric), thresholds in plan.items():
                limit = thresholds.get(name) if k == kind else None
                if limit is not None and values[metric] >= limit:
                    out[(k, metric)].setdefault(name, []).append(
                        SpanValue(trace_id, span_id, int(values[metric]))
                    )
        return out

    def at_least(
        self, kind: GroupedKind, group: str, metric: Metric, threshold: int, examples: int
    ) -> AtLeast:
        params = self._params()
        value = _METRIC_COLUMN[metric]
        where = (
            f"kind = {params.add(kind)} AND {_GROUP_COLUMN[kind]} = {params.add(group)} "
            f"AND {value} >= {params.add(int(threshold), 'Int64')}"
        )
        source = self._grouped_source((kind,))
        spans, traces, top = self._rows(
            f"SELECT count(), groupUniqArray(trace_id), "
            f"arraySlice(arraySort(x -> (-x.3, x.1, x.2), groupArray((trace_id, span_id, "
            f"{value}))), 1, {int(examples)}) FROM ({source}) WHERE {where}",
            params,
        )[0]
        return AtLeast(
            int(spans), {str(t) for t in traces}, [SpanValue(t, s, int(v)) for t, s, v in top]
        )

    # -- LLM calls per agent (step limits) ------------------------------------------------

    def _llm_calls(self) -> str:
        return (
            "SELECT trace_id, agent, count() AS calls FROM ("
            f"{self._inherited('kind', 'status')}) "
            "WHERE kind = 'llm' AND agent IS NOT NULL AND status != 'error' "
            "GROUP BY trace_id, agent"
        )

    def llm_calls_per_agent(self) -> Iterator[AgentCalls]:
        for trace_id, agent, calls in self._rows(
            f"SELECT * FROM ({self._llm_calls()}) ORDER BY trace_id, agent"
        ):
            yield AgentCalls(str(trace_id), str(agent), int(calls))

    def llm_call_histograms(self) -> CallHistograms:
        """One histogram per agent, and the traces at each agent's top count: a few rows."""
        out = CallHistograms()
        rows = self._rows(
            "SELECT agent, calls, count(), calls = max(calls) OVER (PARTITION BY agent), "
            "if(calls = max(calls) OVER (PARTITION BY agent), arraySort(groupArray(trace_id)), "
            f"[]) FROM ({self._llm_calls()}) GROUP BY agent, calls ORDER BY agent, calls"
        )
        top: list[AgentCalls] = []
        for agent, calls, traces, is_top, trace_ids in rows:
            out.per_agent.setdefault(str(agent), {})[int(calls)] = int(traces)
            if is_top:
                top.extend(AgentCalls(str(t), str(agent), int(calls)) for t in trace_ids)
        out.at_top = sorted(top, key=lambda c: (c.trace_id, c.agent))
        return out

    # -- root spans -----------------------------------------------------------------------

    def root_answered(
        self, every: int = 1, known: Mapping[tuple[str, str], bool] | None = None
    ) -> Iterator[RootAnswer]:
        """Every root span (no parent), or about one in `every` (by a hash of the span
        id), with whether its output is non-blank: decided inside ClickHouse, streamed
        in trace order. `known` answers are kept as given."""
        known = known or {}
        where = "parent_span_id IS NULL"
        if every > 1:
            where += f" AND {_SAMPLE_KEY} % {int(every)} = 0"
        rows = self._stream(
            "answered, answer_in_calls",
            self._spans(
                "trace_id", "span_id", "parent_span_id", extras=("answered", "answer_in_calls")
            ),
            where,
            ("trace_id", "span_id"),
        )
        page: list[tuple[Any, ...]] = []
        for row in rows:
            page.append(row)
            if len(page) == _ANSWER_BATCH:
                yield from self._answers(page, known)
                page = []
        yield from self._answers(page, known)

    def _answers(
        self, roots: list[tuple[Any, ...]], known: Mapping[tuple[str, str], bool]
    ) -> Iterator[RootAnswer]:
        """(answered, bare, trace, span) roots -> answers; a bare root (ANSWER_IN_CALLS)
        takes its run's last LLM call's (the file index's rule)."""
        bare = sorted({r[2] for r in roots if r[1] and (r[2], r[3]) not in known})
        last: dict[str, bool] = {}
        if bare:
            params = self._params()
            where = f"({self._window}) AND TraceId IN {params.add(bare, 'Array(String)')}"
            calls = self._source.spans(
                where,
                columns=("trace_id", "span_id", "kind", "status", "start_ns", "end_ns"),
                extras=("gives_answer",),
            )
            rows = self._rows(ex.last_call_answers(calls), params)
            last = {str(trace): bool(answered) for trace, answered in rows}
        for answered, is_bare, trace_id, span_id in roots:
            given = known.get((trace_id, span_id))
            if given is None:
                given = last.get(trace_id, False) if is_bare else bool(answered)
            yield RootAnswer(trace_id, span_id, given)
