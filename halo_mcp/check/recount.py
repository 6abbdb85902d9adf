"""Recounting findings on a trace set: each finding's matcher (or triage rule) on the new
traces, compared with its baseline (see verdicts.py for how a verdict is decided)."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Sequence

from pydantic import BaseModel, Field

from halo_mcp import triage
from halo_mcp.check.verdicts import VERDICTS, Verdict, decide
from halo_mcp.findings.models import Evidence, Finding, FindingStatus, Prevalence, Severity
from halo_mcp.store.api import TraceReader
from halo_mcp.store.errors import StoreError

log = logging.getLogger(__name__)

EXAMPLES = 3


class FindingCheck(BaseModel):
    """One finding, before vs after, with the verdict and spans that still match."""

    finding_id: str
    source: str
    title: str
    category: str
    severity: Severity
    method: str = Field(description="How it was recounted: 'matcher' or the triage rule kind.")
    status: FindingStatus = Field(
        FindingStatus.unverified,
        description="The finding's verification status when it was recorded (verified, "
        "partial, unverified): a verdict on an unverified finding needs a second look.",
    )
    before: Prevalence | None = None
    after: Prevalence | None = None
    verdict: Verdict
    p_value: float | None = None
    relative_change: float | None = None
    reason: str
    still_matching: list[Evidence] = Field(
        default_factory=list, description="A few spans of the new traces that still match."
    )


class CheckReport(BaseModel):
    run_id: str | None = Field(None, description="The run whose findings were checked.")
    baseline: str = Field(description="Where the 'before' figures come from.")
    new_paths: list[str]
    traces_in_scope: int = Field(description="Traces in the new trace set.")
    results: list[FindingCheck]
    verdicts: dict[str, int] = Field(description="How many findings got each verdict.")
    rule: str = Field(
        default=(
            "two-sided two-proportion test on trace rates (Fisher exact for <= 2000 matched "
            "traces, pooled z beyond), alpha 0.05, and a change of at least 25% of the old rate; "
            "a matcher that matched nothing before and nothing after gives 'unknown'"
        ),
        description="How verdicts are decided.",
    )
    elapsed_ms: float = 0.0
    ms_per_finding: float = 0.0


def check_findings(
    findings: Sequence[Finding],
    new_store: TraceReader,
    *,
    baseline_store: TraceReader | None = None,
    run_id: str | None = None,
    baseline_label: str | None = None,
) -> CheckReport:
    """Recount each finding on `new_store` (and on `baseline_store` when given, else use its
    recorded prevalence as 'before') and decide a verdict per finding."""
    began = time.perf_counter()
    with new_store.aggregates() as new_reader, contextlib.ExitStack() as stack:
        new_ctx = triage.AggregateContext(new_reader)
        old_ctx = None
        if baseline_store is not None:
            old_ctx = triage.AggregateContext(stack.enter_context(baseline_store.aggregates()))
        results = [_check_one(f, new_store, new_ctx, baseline_store, old_ctx) for f in findings]
        total = new_ctx.total
    elapsed = (time.perf_counter() - began) * 1000
    counts = {v: 0 for v in VERDICTS}
    for r in results:
        counts[r.verdict] += 1
    if baseline_label is None:
        baseline_label = (
            "recount on the baseline traces " + ", ".join(str(p) for p in baseline_store.paths)
            if baseline_store is not None
            else "prevalence recorded with each finding"
        )
    return CheckReport(
        run_id=run_id,
        baseline=baseline_label,
        new_paths=[str(p) for p in new_store.paths],
        traces_in_scope=total,
        results=results,
        verdicts={k: v for k, v in counts.items() if v},
        elapsed_ms=round(elapsed, 1),
        ms_per_finding=round(elapsed / len(results), 2) if results else 0.0,
    )


def _check_one(
    finding: Finding,
    new_store: TraceReader,
    new_ctx: triage.AggregateContext,
    old_store: TraceReader | None,
    old_ctx: triage.AggregateContext | None,
) -> FindingCheck:
    rule = _rule_for(finding)

    def result(before: Prevalence | None, verdict: Verdict, reason: str) -> FindingCheck:
        return FindingCheck(
            finding_id=finding.id,
            source=finding.source,
            title=finding.title,
            category=finding.category,
            severity=finding.severity,
            method=rule.kind if rule else "none",
            status=finding.status,
            before=before,
            verdict=verdict,
            reason=reason,
        )

    if rule is None:
        return result(
            finding.prevalence,
            "unknown",
            "This finding has no matcher, so it cannot be recounted on new traces.",
        )
    before: Prevalence | None
    try:
        after = triage.measure_in(new_ctx, rule, finding.matcher, new_store)
        if old_store is not None and old_ctx is not None:
            before = triage.measure_in(old_ctx, rule, finding.matcher, old_store).prevalence()
        else:
            before = finding.prevalence
    except (StoreError, ValueError) as exc:
        return result(finding.prevalence, "unknown", f"The matcher could not be counted ({exc}).")
    decision = decide(before, after.prevalence())
    reason = decision.reason
    if rule.kind in ("error_cluster", "retry_storm") and after.matched == 0:
        reason += _similar_errors(new_ctx, rule)
    checked = result(before, decision.verdict, reason)
    checked.after = after.prevalence()
    checked.p_value = decision.p_value
    checked.relative_change = decision.relative_change
    checked.still_matching = after.examples[:EXAMPLES]
    return checked


def _rule_for(finding: Finding) -> triage.TriageRule | None:
    """How a finding is recounted: its triage rule, else its matcher, else not at all."""
    rule = triage.rule_of(finding)
    if rule is None and finding.matcher is not None:
        rule = triage.TriageRule(kind="matcher")
    return rule


def _similar_errors(ctx: triage.AggregateContext, rule: triage.TriageRule) -> str:
    """A warning when the exact error is gone but the same error type from the same place
    still occurs with another message (the fix may only have changed the wording)."""
    wanted = triage.error_type(rule.signature or "")
    similar = [
        c
        for (kind, tool, sig), c in ctx.clusters.items()
        if kind == rule.span_kind and tool == rule.tool_name and triage.error_type(sig) == wanted
    ]
    if not similar:
        return ""
    traces = len(set().union(*(set(c.per_trace) for c in similar)))
    return (
        f" Warning: {traces} new traces still show {wanted} from the same place with a "
        f"different message (e.g. {similar[0].signature[:160]!r}); check it is not the "
        "same failure reworded."
    )


def recount_prevalence(findings: Sequence[Finding], store: TraceReader) -> list[Finding]:
    """Copies of `findings` whose prevalence is recounted on `store` (e.g. the old traces),
    so 'before' and 'after' come from the same counting. Findings that cannot be recounted
    keep their recorded prevalence."""
    out = []
    with store.aggregates() as reader:
        ctx = triage.AggregateContext(reader)
        for finding in findings:
            rule = _rule_for(finding)
            if rule is None:
                out.append(finding)
                continue
            try:
                prev = triage.measure_in(ctx, rule, finding.matcher, store).prevalence()
            except (StoreError, ValueError):
                out.append(finding)
                continue
            out.append(finding.model_copy(update={"prevalence": prev}))
    return out
