"""`run_triage`: every detector over one read connection, merged, ranked, bounded."""

from __future__ import annotations

import time

from halo_mcp.engine.triage.answers import final_answer_items
from halo_mcp.engine.triage.context import AggregateContext
from halo_mcp.engine.triage.errors import cluster_items
from halo_mcp.engine.triage.limits import step_cap_items
from halo_mcp.engine.triage.loops import loop_items
from halo_mcp.engine.triage.models import Candidate, TriageReport
from halo_mcp.engine.triage.outliers import outlier_items
from halo_mcp.engine.triage.rank import merge, rank, to_finding
from halo_mcp.engine.triage.tools import tool_failures, tool_items
from halo_mcp.store import aggregates
from halo_mcp.store.store import TraceStore

MAX_ITEMS = 25


def run_triage(store: TraceStore, *, max_items: int = MAX_ITEMS) -> TriageReport:
    """Triage the store's traces: aggregates over the index, no LLM, bounded output."""
    began = time.perf_counter()
    notes: list[str] = []
    with aggregates.reader(store) as conn:
        ctx = AggregateContext(conn)
        candidates: list[Candidate] = []
        candidates += cluster_items(ctx)
        candidates += loop_items(ctx)
        candidates += step_cap_items(ctx)
        candidates += outlier_items(ctx)
        candidates += final_answer_items(ctx, notes)
        tools = tool_failures(conn)
        candidates += tool_items(ctx, tools)
        error_spans = conn.execute("SELECT COUNT(*) FROM spans WHERE status='error'").fetchone()[0]
        spans = conn.execute("SELECT COUNT(*) FROM spans").fetchone()[0]
    for cand in candidates:
        cand.measure.traces_in_scope = ctx.total
    merged = rank(merge(candidates))
    return TriageReport(
        paths=[str(p) for p in store.paths],
        traces=ctx.total,
        spans=spans,
        error_spans=error_spans,
        items=[to_finding(c) for c in merged[:max_items]],
        tools=tools,
        notes=notes,
        truncated=len(merged) > max_items,
        elapsed_ms=round((time.perf_counter() - began) * 1000, 1),
    )
