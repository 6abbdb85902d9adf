"""Findings, runs, usage and progress: the engine's results as typed models."""

from __future__ import annotations

from datetime import datetime
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


class RunStatus(TextEnum):
    queued = "queued"
    running = "running"
    finished = "finished"
    failed = "failed"
    cancelled = "cancelled"
    interrupted = "interrupted"

    @property
    def done(self) -> bool:
        return self not in (RunStatus.queued, RunStatus.running)


class Usage(BaseModel):
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    calls: int = 0
    retries: int = 0

    def add(self, other: Usage) -> None:
        for name in type(self).model_fields:
            setattr(self, name, getattr(self, name) + getattr(other, name))


class Progress(BaseModel):
    phase: str = Field(
        description="e.g. queued, indexing, triage, exploring, delegating, reporting, done."
    )
    fraction: float = Field(ge=0.0, le=1.0)
    message: str = ""


class RunRecord(BaseModel):
    """A run as persisted in the run store (no secrets)."""

    id: str
    status: RunStatus
    prompt: str
    trace_paths: list[str]
    config: dict = Field(default_factory=dict, description="EngineSettings.public_dict().")
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    usage: Usage = Field(default_factory=Usage)
    progress: Progress = Field(default_factory=lambda: Progress(phase="queued", fraction=0.0))
    findings: list[Finding] = []
    report_markdown: str | None = None
    error: str | None = None
    owner: str | None = Field(None, description="Who started it (HTTP token id), if known.")
