"""Findings as a model drafts them (root agent or sub-agent), and their lenient parsing.

A draft is never trusted: `verify.verify_draft` checks it against the store and turns it
into a Finding with a status. Parsing is per item, so one bad draft among good ones is
rejected alone, with its reasons.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar, overload

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from halo_mcp.findings.models import Severity
from halo_mcp.store.models import SpanFilter


class EvidenceDraft(BaseModel):
    trace_id: str = Field(description="A trace id exactly as the tools returned it.")
    span_id: str | None = Field(None, description="A span id in that trace, if one applies.")
    excerpt: str | None = Field(
        None,
        description="A short quote copied verbatim from that span's content (< 300 chars); "
        "it is checked against the span and dropped if it does not occur there.",
    )


class FindingDraft(BaseModel):
    """One finding as the agent submits it (the schema the model sees)."""

    model_config = ConfigDict(extra="ignore")

    title: str = Field(description="One line naming the failure mode.")
    category: str = Field(
        description="e.g. tool-error, tool-misuse, loop, retries, prompt, planning, "
        "hallucination, latency, cost, guardrail, context."
    )
    severity: Severity = Field(description="critical, high, medium or low.")
    description: str = Field(description="What happens, in which traces, how often.")
    root_cause: str = Field(description="Why the harness produces it.")
    suggested_change: str = Field(description="The concrete harness change that should fix it.")
    validation: str = Field(description="How to check the fix worked (what to count).")
    evidence: list[EvidenceDraft] = Field(
        default_factory=list, description="2-10 cited spans/traces, ids from the tools."
    )
    matcher: SpanFilter | None = Field(
        None,
        description="A span filter selecting exactly the spans affected by this failure, "
        "and every cited span. For a failure of a whole trace (loops, step limit, no final "
        "answer, giving up after a tool error) use its trace_rule.",
    )
    adopt: str | None = Field(
        None,
        description="Id of a triage item (t_...) or sub-agent draft (d_...) this finding "
        "takes over: its matcher and evidence are used where you give none.",
    )

    @field_validator("severity", mode="before")
    @classmethod
    def _lenient_severity(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip().lower()
            return {"severe": "high", "moderate": "medium", "minor": "low"}.get(value, value)
        return value


class LenientDraft(FindingDraft):
    """Parsing form: a bad matcher must not throw the finding away, only mark it."""

    matcher: Any = None


class RejectedDraft(BaseModel):
    """A draft that could not be read as a finding, and why."""

    index: int = Field(description="1-based position in the list submitted.")
    title: str | None = None
    reasons: list[str]

    def line(self) -> str:
        title = f" {self.title!r}" if self.title else ""
        return f"finding #{self.index}{title} rejected: {'; '.join(self.reasons)}"


D = TypeVar("D", bound=FindingDraft)


@overload
def parse_drafts(items: Iterable[Any]) -> tuple[list[LenientDraft], list[RejectedDraft]]: ...
@overload
def parse_drafts(items: Iterable[Any], model: type[D]) -> tuple[list[D], list[RejectedDraft]]: ...
def parse_drafts(
    items: Iterable[Any], model: type[FindingDraft] = LenientDraft
) -> tuple[list[Any], list[RejectedDraft]]:
    """The drafts that parse (as `model`, a lenient draft form), and each one that does
    not with its reasons."""
    drafts: list[Any] = []
    rejected: list[RejectedDraft] = []
    for i, item in enumerate(items):
        try:
            drafts.append(model.model_validate(item))
        except ValidationError as exc:
            title = item.get("title") if isinstance(item, dict) else None
            rejected.append(
                RejectedDraft(
                    index=i + 1,
                    title=str(title)[:200] if title else None,
                    reasons=error_list(exc),
                )
            )
    return drafts, rejected


def error_list(exc: ValidationError, most: int = 6) -> list[str]:
    """A validation error as short 'where: what' items."""
    out = []
    for err in exc.errors()[:most]:
        where = ".".join(str(p) for p in err.get("loc", ())) or "value"
        out.append(f"{where}: {err.get('msg')}")
    return out


def short_errors(exc: ValidationError) -> str:
    return "; ".join(error_list(exc, 5))
