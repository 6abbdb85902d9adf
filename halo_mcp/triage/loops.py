"""Loops: one tool called at least MIN_REPEATS times with identical input in a trace."""

from __future__ import annotations

from typing import TYPE_CHECKING

from halo_mcp.findings.models import Severity
from halo_mcp.store.api import AggregateReader
from halo_mcp.store.models import SpanFilter, SpanKind, TraceRule
from halo_mcp.store.trace_rules import DEFAULT_MIN_REPEATS
from halo_mcp.triage.models import Candidate, Measurement, TriageRule

if TYPE_CHECKING:
    from halo_mcp.triage.context import AggregateContext

#: Identical calls of one tool in one trace that make a loop.
MIN_REPEATS = DEFAULT_MIN_REPEATS


def loops(reader: AggregateReader, min_repeats: int, total: int) -> dict[str, Measurement]:
    """Per tool: the traces where it got identical input at least `min_repeats` times."""
    out: dict[str, Measurement] = {}
    errors: dict[str, int] = {}
    for call in reader.repeated_calls(min_repeats):
        tool, calls = call.tool_name, call.calls
        m = out.setdefault(tool, Measurement(set(), 0, traces_in_scope=total))
        errors[tool] = errors.get(tool, 0) + call.error_calls
        first = call.span_ids[0] if call.span_ids else None
        m.add(call.trace_id, calls, first, f"{tool} called {calls} times with identical input")
    for tool, m in out.items():
        m.all_errors = errors.get(tool, 0) == m.spans
    return out


def loop_items(ctx: AggregateContext) -> list[Candidate]:
    out = []
    for tool, m in loops(ctx.reader, MIN_REPEATS, ctx.total).items():
        all_errors = m.all_errors
        out.append(
            Candidate(
                category="loop",
                severity=Severity.high,
                title=f"Loop: {tool} called >= {MIN_REPEATS} times with identical input",
                description=(
                    f"In {len(m.traces)} traces the agent calls {tool} at least {MIN_REPEATS} "
                    f"times with the same input ({m.spans} calls in all"
                    + (", every one of them failing" if all_errors else "")
                    + "): it repeats instead of changing course."
                ),
                rule=TriageRule(kind="repeated_call", tool_name=tool, min_count=MIN_REPEATS),
                # The trace rule selects exactly the looping traces (the same SQL).
                matcher=SpanFilter(
                    kind=[SpanKind.tool],
                    tool_name=tool,
                    errors_only=all_errors,
                    trace_rule=TraceRule(
                        kind="repeated_call", tool_name=tool, min_count=MIN_REPEATS
                    ),
                ),
                exact=False,
                measure=m,
            )
        )
    return out
