"""Findings, runs, usage and progress: the engine's results as typed models."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from halo_mcp.findings.models import Finding
from halo_mcp.store.models import TextEnum


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


class RunOutcome(TextEnum):
    """What a finished run produced. Anything but `findings` comes with a warning: the
    run ended normally, but its result should not be taken at face value."""

    findings = "findings"  # at least one finding verified or partial
    only_unverified = "only_unverified"  # every finding is unverified
    no_findings = "no_findings"  # the model produced no structured finding
    refused = "refused"  # the model refused every turn
    budget_reached = "budget_reached"  # the run's token budget ended it (findings kept)


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
    outcome: RunOutcome | None = Field(
        None, description="Set when the run ends: what it produced (see RunOutcome)."
    )
    warning: str | None = Field(
        None, description="Why the outcome should not be taken at face value, if so."
    )
    usage_by_agent: dict[str, Usage] = Field(
        default_factory=dict, description="Token usage of each agent (root, root.1, ...)."
    )
