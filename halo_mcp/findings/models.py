"""Findings: one systemic failure mode of a harness, with evidence, a deterministic matcher
and a prevalence computed by the store. Shared by the LLM engine, triage and check."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from halo_mcp.store.models import SpanFilter, TextEnum


class Severity(TextEnum):
    critical = "critical"
    high = "high"
    medium = "medium"
    low = "low"


class Evidence(BaseModel):
    trace_id: str
    span_id: str | None = None
    excerpt: str | None = Field(None, description="A short quote from the span.")
    verified: bool = Field(False, description="The ids were found in the store.")


class Prevalence(BaseModel):
    """Computed by the store from the finding's matcher, never taken from the model."""

    traces_matched: int
    traces_in_scope: int
    spans_matched: int

    @property
    def rate(self) -> float:
        return self.traces_matched / self.traces_in_scope if self.traces_in_scope else 0.0


class Finding(BaseModel):
    """One systemic failure mode of the harness, with evidence and a deterministic matcher."""

    id: str = Field(description="Unguessable id, e.g. 'f_3kq...'. Use with get_finding.")
    run_id: str
    source: Literal["engine", "triage"] = "engine"
    title: str
    category: str = Field(description="e.g. tool-error, loop, prompt, retries, latency, cost.")
    severity: Severity
    description: str
    root_cause: str
    suggested_change: str = Field(description="The harness edit that should fix it.")
    validation: str = Field(description="How to check the fix worked.")
    evidence: list[Evidence] = []
    matcher: SpanFilter | None = Field(None, description="Selects the affected spans.")
    prevalence: Prevalence | None = None
    verified: bool = Field(
        False, description="Matcher valid and matching, and at least one cited id exists."
    )
    verification_notes: list[str] = Field(
        default_factory=list, description="What verification changed or could not confirm."
    )
