"""Findings as the model drafts them, and the verification that turns drafts into Findings.

The model proposes; the store decides. Cited ids are checked against the store (unknown
ones are dropped and noted), the matcher must be a valid SpanFilter that selects
something, and prevalence is counted by the store from the matcher, never taken from the
model. Verification is synchronous (store calls): run it in a worker thread.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from halo_mcp.engine.ids import new_finding_id
from halo_mcp.findings.models import Evidence, Finding, Prevalence, Severity
from halo_mcp.harness.verify import CodeRefDraft, SuspectCommitDraft
from halo_mcp.store.api import TraceReader
from halo_mcp.store.errors import StoreError
from halo_mcp.store.models import SpanFilter
from halo_mcp.text import clip

MAX_EXCERPT_CHARS = 500
MAX_TEXT_CHARS = 4000
MAX_EVIDENCE = 20
_SEVERITY_ORDER = {s: i for i, s in enumerate(Severity)}


class EvidenceDraft(BaseModel):
    trace_id: str = Field(description="A trace id exactly as the tools returned it.")
    span_id: str | None = Field(None, description="A span id in that trace, if one applies.")
    excerpt: str | None = Field(None, description="A short quote from the span (< 300 chars).")


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
        None, description="A span filter selecting exactly the spans affected by this failure."
    )
    code_refs: list[CodeRefDraft] = Field(
        default_factory=list,
        description="Harness code causing it (when the run has a repository): path, lines "
        "and the exact excerpt, as read with repo_read_file. Checked against HEAD.",
    )
    suspect_commits: list[SuspectCommitDraft] = Field(
        default_factory=list,
        description="Commits suspected of introducing it (sha from git_log/git_blame).",
    )

    @field_validator("severity", mode="before")
    @classmethod
    def _lenient_severity(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip().lower()
            return {"severe": "high", "moderate": "medium", "minor": "low"}.get(value, value)
        return value


class _LenientDraft(FindingDraft):
    """Parsing form: a bad matcher must not throw the finding away, only mark it."""

    matcher: Any = None  # type: ignore[assignment]
    code_refs: Any = None  # type: ignore[assignment]  # checked one by one (harness.verify)
    suspect_commits: Any = None  # type: ignore[assignment]


def parse_drafts(items: Iterable[Any]) -> tuple[list[_LenientDraft], list[str]]:
    """Drafts that parse, and a note for each that does not (say what was wrong)."""
    drafts, problems = [], []
    for i, item in enumerate(items):
        try:
            drafts.append(_LenientDraft.model_validate(item))
        except ValidationError as exc:
            problems.append(f"finding #{i + 1} rejected: {_short_errors(exc)}")
    return drafts, problems


def verify(
    store: TraceReader, draft: FindingDraft, run_id: str, finding_id: str | None = None
) -> Finding:
    """Check a draft against the store and return the Finding, with notes on what changed."""
    notes: list[str] = []
    evidence = _verify_evidence(store, draft.evidence[:MAX_EVIDENCE], notes)
    if len(draft.evidence) > MAX_EVIDENCE:
        notes.append(f"kept the first {MAX_EVIDENCE} of {len(draft.evidence)} evidence items")
    matcher, prevalence = _verify_matcher(store, draft.matcher, evidence, notes)
    verified = (
        matcher is not None
        and prevalence is not None
        and prevalence.spans_matched > 0
        and any(e.verified for e in evidence)
    )
    if not any(e.verified for e in evidence):
        notes.append("no cited id exists in the store: the finding has no verified evidence")
    return Finding(
        id=finding_id or new_finding_id(),
        run_id=run_id,
        title=_text(draft.title, 300),
        category=_text(draft.category, 80),
        severity=draft.severity,
        description=_text(draft.description),
        root_cause=_text(draft.root_cause),
        suggested_change=_text(draft.suggested_change),
        validation=_text(draft.validation),
        evidence=evidence,
        matcher=matcher,
        prevalence=prevalence,
        verified=verified,
        verification_notes=notes,
    )


def _verify_evidence(
    store: TraceReader, items: Sequence[EvidenceDraft], notes: list[str]
) -> list[Evidence]:
    trace_ids = sorted({e.trace_id for e in items})
    span_ids = sorted({e.span_id for e in items if e.span_id})
    if not items:
        return []
    known_traces, known_spans = store.known_ids(trace_ids, span_ids)
    span_trace: dict[str, str] = {}
    if known_spans:
        page = store.query_spans(
            SpanFilter(span_ids=sorted(known_spans)),
            fields=("trace_id", "span_id"),
            limit=max(1, len(known_spans) * 2),
        )
        span_trace = {v.span_id: v.trace_id for v in page.spans if v.span_id and v.trace_id}
    kept: list[Evidence] = []
    for item in items:
        trace_id, span_id = item.trace_id, item.span_id
        if trace_id not in known_traces:
            if span_id and span_id in span_trace:
                notes.append(
                    f"evidence trace id {trace_id!r} unknown; used the trace of span {span_id}"
                )
                trace_id = span_trace[span_id]
            else:
                notes.append(f"dropped evidence: trace id {trace_id!r} is not in the store")
                continue
        if span_id and span_trace.get(span_id) != trace_id:
            why = "is not in the store" if span_id not in span_trace else "is in another trace"
            notes.append(f"dropped span id {span_id!r} from evidence ({why}); kept the trace")
            span_id = None
        excerpt = _text(item.excerpt, MAX_EXCERPT_CHARS) if item.excerpt else None
        kept.append(Evidence(trace_id=trace_id, span_id=span_id, excerpt=excerpt, verified=True))
    return kept


def _verify_matcher(
    store: TraceReader, raw: Any, evidence: list[Evidence], notes: list[str]
) -> tuple[SpanFilter | None, Prevalence | None]:
    if raw is None:
        notes.append("no matcher given: prevalence cannot be computed")
        return None, None
    try:
        if isinstance(raw, str):
            raw = json.loads(raw)
        matcher = raw if isinstance(raw, SpanFilter) else SpanFilter.model_validate(raw)
    except (ValidationError, ValueError) as exc:
        detail = _short_errors(exc) if isinstance(exc, ValidationError) else str(exc)
        notes.append(f"matcher is not a valid span filter ({detail})")
        return None, None
    if matcher.is_empty():
        notes.append("matcher is empty (it selects every span), so it proves nothing")
        return None, None
    if matcher.trace_ids or matcher.span_ids:
        notes.append(
            "matcher lists trace/span ids, so prevalence only counts the cited data and "
            "cannot be rechecked on new traces"
        )
    try:
        count = store.count(matcher)
    except StoreError as exc:
        notes.append(f"matcher rejected by the store: {exc}")
        return None, None
    prevalence = Prevalence(
        traces_matched=count.traces,
        traces_in_scope=count.traces_in_scope,
        spans_matched=count.spans,
    )
    if count.spans == 0:
        notes.append("matcher matches no span in the traces: the finding is unverified")
        return matcher, prevalence
    cited = sorted({e.trace_id for e in evidence})
    if cited:
        scoped = matcher.model_copy(update={"trace_ids": cited})
        try:
            if store.count(scoped).spans == 0:
                notes.append("the matcher selects none of the cited traces")
        except StoreError:
            pass
    return matcher, prevalence


def sort_findings(findings: Iterable[Finding]) -> list[Finding]:
    """Most severe first; within a severity, most prevalent first."""
    return sorted(
        findings,
        key=lambda f: (
            _SEVERITY_ORDER.get(f.severity, 99),
            -(f.prevalence.rate if f.prevalence else -1.0),
            -(f.prevalence.spans_matched if f.prevalence else 0),
        ),
    )


def parse_final_json(text: str) -> list[Any] | None:
    """The findings list out of a forced final answer: JSON, maybe fenced or with prose."""
    if not text:
        return None
    candidates = [text.strip()]
    fenced = re.findall(r"```(?:json)?\s*(.*?)```", text, flags=re.S)
    candidates.extend(fenced)
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start : end + 1])
    start, end = text.find("["), text.rfind("]")
    if 0 <= start < end:
        candidates.append(text[start : end + 1])
    for candidate in candidates:
        try:
            data = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(data, dict) and isinstance(data.get("findings"), list):
            return data["findings"]
        if isinstance(data, list):
            return data
    return None


def _text(value: str | None, limit: int = MAX_TEXT_CHARS) -> str:
    return clip((value or "").strip(), limit)[0]


def _short_errors(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err.get("loc", ())) or "value"
        parts.append(f"{where}: {err.get('msg')}")
    return "; ".join(parts)
