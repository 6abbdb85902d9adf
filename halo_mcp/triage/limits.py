"""Runs stopped at a silent step limit: an agent's runs piling up at the top LLM-call count.

(Limits that raise an error, such as MaxTurnsExceeded, are error clusters of category
turn-limit; see error_clusters.py.)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from halo_mcp.findings.models import Severity
from halo_mcp.store.aggregates import AgentCalls
from halo_mcp.store.api import AggregateReader
from halo_mcp.store.models import SpanFilter, SpanKind, TraceRule
from halo_mcp.triage.models import Candidate, Measurement, TriageRule

if TYPE_CHECKING:
    from halo_mcp.triage.context import AggregateContext

#: Runs piled at the top LLM-call count that make it a step limit (see step_cap).
STEP_CAP_MIN_TRACES = 5


def step_cap(histogram: dict[int, int]) -> int | None:
    """The number of LLM calls where an agent's runs pile up at the very top of their
    distribution (a silent turn/step limit), or None. The top count must hold at least
    STEP_CAP_MIN_TRACES runs, more than twice the runs of each of the two counts below, and
    be at least twice the median count (a short agent that always ends after 3 calls by
    design is not cut by a limit)."""
    if not histogram:
        return None
    top = max(histogram)
    at_top = histogram[top]
    below = max(histogram.get(top - 1, 0), histogram.get(top - 2, 0))
    half, seen, typical = sum(histogram.values()) / 2, 0, top
    for calls in sorted(histogram):  # the median count, from the histogram
        seen += histogram[calls]
        if seen >= half:
            typical = calls
            break
    if at_top >= STEP_CAP_MIN_TRACES and at_top > 2 * below and top >= max(5, 2 * typical):
        return top
    return None


def step_cap_measure(
    reader: AggregateReader,
    agents: set[str],
    cap: int,
    total: int,
    calls_per_agent: Iterable[AgentCalls] | None = None,
) -> Measurement:
    """The traces where one of `agents` made at least `cap` LLM calls (from
    `calls_per_agent` when the caller already read them)."""
    m = Measurement(set(), 0, traces_in_scope=total)
    if calls_per_agent is None:
        calls_per_agent = reader.llm_calls_per_agent()
    for trace_id, agent, calls in calls_per_agent:
        if agent in agents and calls >= cap:
            m.add(trace_id, calls, None, f"{agent}: {calls} LLM calls")
    return m


def step_cap_items(ctx: AggregateContext) -> list[Candidate]:
    # The cap found is an agent's top count, so the traces at the top are all it needs.
    histograms = ctx.reader.llm_call_histograms()
    by_cap: dict[int, list[str]] = {}
    for agent, hist in sorted(histograms.per_agent.items()):
        cap = step_cap(hist)
        if cap is not None:
            by_cap.setdefault(cap, []).append(agent)
    out = []
    for cap, agents in sorted(by_cap.items()):
        m = step_cap_measure(ctx.reader, set(agents), cap, ctx.total, histograms.at_top)
        names = ", ".join(agents)
        out.append(
            Candidate(
                category="turn-limit",
                severity=Severity.high,
                title=f"Runs stop at exactly {cap} LLM calls ({names}): a step limit",
                description=(
                    f"In {len(m.traces)} traces {names} made exactly {cap} successful LLM "
                    "calls, the most any run made, and far more runs end there than just "
                    "below: these runs were cut by a turn/step limit."
                ),
                rule=TriageRule(kind="step_cap", min_count=cap, names=agents),
                matcher=SpanFilter(
                    kind=[SpanKind.llm],
                    agent=agents[0],
                    trace_rule=TraceRule(kind="step_limit", agent=agents[0], min_count=cap),
                )
                if len(agents) == 1
                else None,
                exact=False,
                measure=m,
            )
        )
    return out
