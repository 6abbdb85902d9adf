"""Findings: one systemic failure mode of a harness, with evidence, a deterministic matcher
and a prevalence computed by the store. Shared by the LLM engine, triage and check."""

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


class FindingStatus(TextEnum):
    """What verification could confirm. Only `verified` may be acted on without looking."""

    verified = "verified"
    partial = "partial"
    unverified = "unverified"


class StatusReason(BaseModel):
    """One machine-readable reason why a finding is not (fully) verified, or what was fixed."""

    code: str = Field(
        description="e.g. 'excerpt_not_found', 'matcher_misses_evidence', 'matcher_too_broad', "
        "'unknown_span', 'unknown_trace', 'no_evidence', 'bad_matcher', 'code_ref_dropped', "
        "'commit_dropped'."
    )
    detail: str = Field(description="The same in words, with figures.")
    ids: list[str] = Field(default_factory=list, description="The ids (or refs) concerned.")


class CodeRef(BaseModel):
    """A place in the harness repository the finding points at (checked against HEAD)."""

    path: str = Field(description="Relative to the repository root.")
    start_line: int = Field(ge=1)
    end_line: int = Field(ge=1)
    excerpt: str | None = Field(None, description="The lines as they read at HEAD.")
    verified: bool = False


class SuspectCommit(BaseModel):
    """A commit of the harness repository suspected of introducing the failure mode."""

    sha: str
    subject: str | None = None
    verified: bool = False


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
    status: FindingStatus = Field(
        FindingStatus.unverified,
        description="verified: ids exist, excerpts occur in the cited spans and the matcher "
        "selects them; partial: some of that failed (see status_reasons); unverified: none held.",
    )
    status_reasons: list[StatusReason] = Field(default_factory=list)
    code_refs: list[CodeRef] = Field(
        default_factory=list, description="Harness code to change, as path:line ranges."
    )
    suspect_commits: list[SuspectCommit] = Field(default_factory=list)
    first_seen: datetime | None = Field(None, description="Earliest matching span, from the store.")
    last_seen: datetime | None = Field(None, description="Latest matching span, from the store.")
