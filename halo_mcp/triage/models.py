"""The shapes triage works with: the rule an item counted, the report, and a measurement
(traces, spans, examples) that every detector fills the same way."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, Field

from halo_mcp.findings.models import Evidence, Finding, Prevalence, Severity
from halo_mcp.store.models import SpanFilter
from halo_mcp.text import clip

TRIAGE_RUN_ID = "triage"
#: Marks the rule an item carries in its `validation` text (see rank.to_finding, rule_of).
RULE_TAG = "[triage-rule] "
#: Examples (evidence) kept per item.
EXAMPLES = 5


class TriageRule(BaseModel):
    """What a triage item counted, precisely enough to count it again on other traces."""

    kind: Literal[
        "error_cluster",
        "retry_storm",
        "repeated_call",
        "outlier",
        "no_final_answer",
        "step_cap",
        "matcher",
    ]
    span_kind: str | None = None
    tool_name: str | None = None
    signature: str | None = Field(None, description="Normalized error message, models masked.")
    group: str | None = Field(None, description="Outliers: the tool, model or agent name.")
    metric: Literal["duration", "tokens"] | None = None
    threshold: int | None = Field(None, description="Outliers: ns (duration) or tokens.")
    min_count: int | None = Field(
        None, description="Per-trace minimum (loops, storms; step caps: LLM calls of an agent)."
    )
    names: list[str] | None = Field(None, description="Step caps: the agents concerned.")


class ToolFailure(BaseModel):
    name: str
    calls: int
    errors: int
    failure_rate: float
    traces_with_errors: int


class TriageReport(BaseModel):
    """The triage of one trace set. Items are Findings with source='triage'."""

    source: Literal["triage"] = "triage"
    paths: list[str]
    traces: int
    spans: int
    error_spans: int
    items: list[Finding] = Field(description="Ranked by trace rate x severity.")
    tools: list[ToolFailure] = Field(description="Tools by failure rate (calls that failed).")
    notes: list[str] = []
    truncated: bool = Field(False, description="True when items beyond max_items were dropped.")
    elapsed_ms: float = 0.0


@dataclass
class Measurement:
    """A rule counted on one store: affected traces, spans, and a few examples."""

    traces: set[str]
    spans: int
    examples: list[Evidence] = field(default_factory=list)
    traces_in_scope: int = 0
    #: Set when `traces` holds only a sample (a plain matcher count): the true count.
    trace_count: int | None = None
    #: Loops: every repeated call failed.
    all_errors: bool = False

    @property
    def matched(self) -> int:
        return len(self.traces) if self.trace_count is None else self.trace_count

    def prevalence(self) -> Prevalence:
        return Prevalence(
            traces_matched=self.matched,
            traces_in_scope=self.traces_in_scope,
            spans_matched=self.spans,
        )

    def add(self, trace_id: str, spans: int, span_id: str | None, excerpt: str) -> None:
        """Count `spans` more in a trace; the first EXAMPLES traces each give an example."""
        self.spans += spans
        if trace_id not in self.traces and len(self.examples) < EXAMPLES:
            self.examples.append(evidence(trace_id, span_id, excerpt))
        self.traces.add(trace_id)


@dataclass
class Candidate:
    """An item before merging and ranking: what a detector found and how it was counted."""

    category: str
    severity: Severity
    title: str
    description: str
    rule: TriageRule
    matcher: SpanFilter | None
    exact: bool
    measure: Measurement
    also: list[str] = field(default_factory=list)


def evidence(trace_id: str, span_id: str | None, excerpt: str | None) -> Evidence:
    """An example read from the index itself, so its ids exist (verified)."""
    text = clip(excerpt, 200)[0] if excerpt else None
    return Evidence(trace_id=trace_id, span_id=span_id, excerpt=text, verified=True)


def who(kind: str, tool: str | None) -> str:
    """How an item names the spans it is about."""
    if tool:
        return f"tool {tool}"
    return {"llm": "LLM calls", "agent": "agent spans", "tool": "tool calls"}.get(
        kind, f"{kind} spans"
    )
