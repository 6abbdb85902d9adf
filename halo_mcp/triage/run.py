"""`run_triage`: every detector, a few at a time on their own aggregate readers, merged,
ranked, bounded.

The detectors are independent aggregate reads. SQLite releases the GIL while a statement
steps, so running them in a few threads (one reader, so one connection, each) overlaps their scans
with each other and with the Python work of the others (root payloads, signatures).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from halo_mcp.store.api import TraceReader
from halo_mcp.triage.answers import final_answer_items
from halo_mcp.triage.context import AggregateContext
from halo_mcp.triage.error_clusters import cluster_items
from halo_mcp.triage.limits import step_cap_items
from halo_mcp.triage.loops import loop_items
from halo_mcp.triage.models import Candidate, ToolFailure, TriageReport
from halo_mcp.triage.outliers import outlier_items
from halo_mcp.triage.rank import merge, rank, to_finding
from halo_mcp.triage.tool_failures import tool_failures, tool_items

MAX_ITEMS = 25


def run_triage(store: TraceReader, *, max_items: int = MAX_ITEMS) -> TriageReport:
    """Triage the store's traces: aggregates over the index, no LLM, bounded output."""
    began = time.perf_counter()
    notes: list[str] = []
    tools: list[ToolFailure] = []
    tool_found: list[Candidate] = []
    with store.aggregates() as reader:
        total = reader.trace_total()
        spans, error_spans = reader.span_totals()

    def errors_and_tools(ctx: AggregateContext) -> list[Candidate]:
        found = cluster_items(ctx)
        tools.extend(tool_failures(ctx.reader))
        tool_found.extend(tool_items(ctx, tools))
        return found

    # Two lanes, one thread and read connection each: the mostly-Python jobs (root payloads,
    # signatures) in one, the big GROUP BY sorts in the other (two SQLite sorts at once
    # mostly wait on each other). Results go back in one fixed order, so ranking does not
    # depend on which job ends first.
    lanes: list[list[Callable[[AggregateContext], list[Candidate]]]] = [
        [lambda ctx: final_answer_items(ctx, notes), errors_and_tools],
        [loop_items, step_cap_items, outlier_items],
    ]

    def run(lane: list[Callable[[AggregateContext], list[Candidate]]]) -> list[list[Candidate]]:
        with store.aggregates() as lane_reader:
            ctx = AggregateContext(lane_reader, total)
            return [job(ctx) for job in lane]

    with ThreadPoolExecutor(len(lanes), thread_name_prefix="triage") as pool:
        (answers, errors), (loops, caps, outliers) = pool.map(run, lanes)
    candidates = errors + loops + caps + outliers + answers + tool_found
    for cand in candidates:
        cand.measure.traces_in_scope = total
    merged = rank(merge(candidates))
    return TriageReport(
        paths=[str(p) for p in store.paths],
        traces=total,
        spans=spans,
        error_spans=error_spans,
        items=[to_finding(c) for c in merged[:max_items]],
        tools=tools,
        notes=notes,
        truncated=len(merged) > max_items,
        elapsed_ms=round((time.perf_counter() - began) * 1000, 1),
    )
