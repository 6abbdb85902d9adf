"""Tools by failure rate, and an item for a tool whose errors span several signatures
(with one signature, its error cluster already says it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from halo_mcp.findings.models import Severity
from halo_mcp.store.api import AggregateReader
from halo_mcp.store.models import SpanFilter, SpanKind
from halo_mcp.triage.models import (
    EXAMPLES,
    Candidate,
    Measurement,
    ToolFailure,
    TriageRule,
    evidence,
)

if TYPE_CHECKING:
    from halo_mcp.triage.context import AggregateContext


def tool_failures(reader: AggregateReader) -> list[ToolFailure]:
    """Every tool with its calls, failures and traces with failures, worst first."""
    traces = reader.tool_error_traces()
    rows = reader.tool_calls()
    tools = [
        ToolFailure(
            name=name,
            calls=calls,
            errors=errors or 0,
            failure_rate=round((errors or 0) / calls, 4) if calls else 0.0,
            traces_with_errors=traces.get(name, 0),
        )
        for name, calls, errors in rows
    ]
    tools.sort(key=lambda t: (-t.failure_rate, -t.errors, t.name))
    return tools


def tool_items(ctx: AggregateContext, tools: list[ToolFailure]) -> list[Candidate]:
    """A tool's overall failure rate, only when its errors span several signatures (else the
    error cluster already says it)."""
    per_tool: dict[str, int] = {}
    for _, tool_name, _ in ctx.clusters:
        if tool_name:
            per_tool[tool_name] = per_tool.get(tool_name, 0) + 1
    out = []
    for tool in tools:
        if tool.errors == 0 or per_tool.get(tool.name, 0) < 2:
            continue
        traces = ctx.reader.failing_tool_traces(tool.name)
        examples = [
            evidence(call.trace_id, call.span_id, call.error_message)
            for call in ctx.reader.failing_tool_calls(tool.name, EXAMPLES)
        ]
        out.append(
            Candidate(
                category="tool-error",
                severity=Severity.high if tool.failure_rate >= 0.1 else Severity.medium,
                title=f"Tool {tool.name} fails in {tool.failure_rate:.1%} of its calls",
                description=(
                    f"{tool.errors} of {tool.calls} calls of {tool.name} fail, in "
                    f"{len(traces)} traces, with {per_tool[tool.name]} different error "
                    "signatures."
                ),
                rule=TriageRule(kind="matcher"),
                matcher=SpanFilter(kind=[SpanKind.tool], tool_name=tool.name, errors_only=True),
                exact=True,
                measure=Measurement(traces, tool.errors, examples),
            )
        )
    return out
