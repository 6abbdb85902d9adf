"""Re-check findings against new traces: did the failure rate go down after the fix?

Each finding (from an engine run or from triage) is recomputed on the new trace set with
its own matcher (or, for triage items, the aggregate rule that produced it), and the
before and after trace rates are compared.

Verdict rule (documented in :func:`decide`): the rates are compared with a two-sided test
of two proportions (Fisher's exact test while the matched counts are small, the pooled
two-proportion z-test beyond), at ``alpha`` = 0.05. A change counts only when it is
significant AND at least ``min_relative_change`` (25%) of the old rate, so a tiny drift on
a huge sample is not reported as a fix.

- resolved: no trace matches any more, and the drop from before is significant.
- improved: the rate went down, significantly and by at least 25%.
- worse: the rate went up, significantly and by at least 25% (or it appeared from 0).
- unchanged: anything else with enough data to tell.
- inconclusive: no match after, but too few matches before for the drop to be significant;
  or no match before and a few after, too few for the rise to be significant.
- unknown: no baseline, no valid matcher, an empty new trace set, or a matcher that
  matched nothing before and nothing after (0/N -> 0/M: nothing to compare).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, Field

from halo_mcp.engine import triage
from halo_mcp.engine.models import Evidence, Finding, Prevalence, Severity
from halo_mcp.store import aggregates
from halo_mcp.store.errors import StoreError
from halo_mcp.store.store import TraceStore

log = logging.getLogger(__name__)

Verdict = Literal["resolved", "improved", "unchanged", "worse", "inconclusive", "unknown"]
VERDICTS: tuple[str, ...] = (
    "resolved",
    "improved",
    "unchanged",
    "worse",
    "inconclusive",
    "unknown",
)

ALPHA = 0.05
MIN_RELATIVE_CHANGE = 0.25
#: Above this many matched traces (both sides together) the z-test replaces Fisher's test.
FISHER_MAX_MATCHES = 2000


class Decision(BaseModel):
    verdict: Verdict
    p_value: float | None = Field(None, description="Two-sided p-value of the rate change.")
    relative_change: float | None = Field(
        None, description="(after rate - before rate) / before rate; null if before is 0."
    )
    reason: str = Field(description="One sentence saying why this verdict.")


def fisher_exact_p(x1: int, n1: int, x2: int, n2: int) -> float:
    """Two-sided Fisher exact p-value for matched counts x1 of n1 vs x2 of n2."""
    total, matched = n1 + n2, x1 + x2
    if total == 0 or matched in (0, total):
        return 1.0

    def log_choose(n: int, k: int) -> float:
        return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)

    base = log_choose(total, n1)

    def log_p(k: int) -> float:
        return log_choose(matched, k) + log_choose(total - matched, n1 - k) - base

    observed = log_p(x1)
    low, high = max(0, matched - n2), min(matched, n1)
    p = 0.0
    for k in range(low, high + 1):
        lp = log_p(k)
        if lp <= observed + 1e-7:
            p += math.exp(lp)
    return min(1.0, p)


def z_test_p(x1: int, n1: int, x2: int, n2: int) -> float:
    """Two-sided p-value of the pooled two-proportion z-test."""
    if n1 == 0 or n2 == 0:
        return 1.0
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0
    z = abs(x1 / n1 - x2 / n2) / se
    return math.erfc(z / math.sqrt(2))


def two_proportion_p(x1: int, n1: int, x2: int, n2: int) -> float:
    """Exact while counts are small (where the normal approximation is poor), z beyond."""
    if x1 + x2 <= FISHER_MAX_MATCHES:
        return fisher_exact_p(x1, n1, x2, n2)
    return z_test_p(x1, n1, x2, n2)


def decide(
    before: Prevalence | None,
    after: Prevalence | None,
    *,
    alpha: float = ALPHA,
    min_relative_change: float = MIN_RELATIVE_CHANGE,
) -> Decision:
    """The verdict for one finding from its before and after trace counts (module doc)."""
    if after is None or after.traces_in_scope == 0:
        return Decision(verdict="unknown", reason="The new trace set could not be measured.")
    if before is None or before.traces_in_scope == 0:
        return Decision(
            verdict="unknown",
            reason=(
                f"No baseline to compare with; now {_fmt(after)}. Pass the old traces as a "
                "baseline to get a verdict."
            ),
        )
    x1, n1 = before.traces_matched, before.traces_in_scope
    x2, n2 = after.traces_matched, after.traces_in_scope
    if x1 == 0 and x2 == 0:
        return Decision(
            verdict="unknown",
            reason=(
                f"The matcher matched nothing in the baseline (0/{n1} traces) and matches "
                f"nothing now (0/{n2}), so there is nothing to compare: it probably does not "
                "select this failure (an unverified finding). Fix the matcher, then check again."
            ),
        )
    p = two_proportion_p(x1, n1, x2, n2)
    r1, r2 = x1 / n1, x2 / n2
    rel = (r2 - r1) / r1 if r1 > 0 else None
    significant = p < alpha
    big = rel is None or abs(rel) >= min_relative_change
    was, now = _fmt(before), _fmt(after)

    def decision(verdict: Verdict, reason: str) -> Decision:
        return Decision(verdict=verdict, p_value=p, relative_change=rel, reason=reason)

    if x2 == 0 and x1 > 0:
        if significant:
            return decision(
                "resolved",
                f"No trace matches any more (was {was}); the drop is significant (p={p:.2g}).",
            )
        return decision(
            "inconclusive",
            f"No trace matches now, but {was} before is too few to call it resolved "
            f"(p={p:.2g}); check again on more traces.",
        )
    if significant and big and r2 < r1:
        return decision("improved", f"Rate fell from {was} to {now} (p={p:.2g}).")
    if significant and big and r2 > r1:
        return decision("worse", f"Rate rose from {was} to {now} (p={p:.2g}).")
    if x1 == 0:
        return decision(
            "inconclusive",
            f"The matcher matched nothing in the baseline ({was}) and now matches {now}: "
            f"too few to call it worse (p={p:.2g}); check again on more traces.",
        )
    why = "not significant" if not significant else "change under 25% of the old rate"
    return decision("unchanged", f"{was} before vs {now} now ({why}, p={p:.2g}).")


def _fmt(prev: Prevalence) -> str:
    return f"{prev.traces_matched}/{prev.traces_in_scope} traces ({prev.rate:.1%})"


# -- recomputing findings ----------------------------------------------------------------

EXAMPLES = 3


class FindingCheck(BaseModel):
    """One finding, before vs after, with the verdict and spans that still match."""

    finding_id: str
    source: str
    title: str
    category: str
    severity: Severity
    method: str = Field(description="How it was recounted: 'matcher' or the triage rule kind.")
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
    new_store: TraceStore,
    *,
    baseline_store: TraceStore | None = None,
    run_id: str | None = None,
    baseline_label: str | None = None,
) -> CheckReport:
    """Recount each finding on `new_store` (and on `baseline_store` when given, else use its
    recorded prevalence as 'before') and decide a verdict per finding."""
    began = time.perf_counter()
    with aggregates.reader(new_store) as new_conn, contextlib.ExitStack() as stack:
        new_ctx = triage.AggregateContext(new_conn)
        old_ctx = None
        if baseline_store is not None:
            old_ctx = triage.AggregateContext(
                stack.enter_context(aggregates.reader(baseline_store))
            )
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
    new_store: TraceStore,
    new_ctx: triage.AggregateContext,
    old_store: TraceStore | None,
    old_ctx: triage.AggregateContext | None,
) -> FindingCheck:
    rule = _rule_for(finding)
    base = {
        "finding_id": finding.id,
        "source": finding.source,
        "title": finding.title,
        "category": finding.category,
        "severity": finding.severity,
        "method": rule.kind if rule else "none",
    }
    if rule is None:
        return FindingCheck(
            **base,
            before=finding.prevalence,
            verdict="unknown",
            reason="This finding has no matcher, so it cannot be recounted on new traces.",
        )
    try:
        after = triage.measure_in(new_ctx, rule, finding.matcher, new_store)
        if old_store is not None and old_ctx is not None:
            before = triage.measure_in(old_ctx, rule, finding.matcher, old_store).prevalence()
        else:
            before = finding.prevalence
    except (StoreError, ValueError) as exc:
        return FindingCheck(
            **base,
            before=finding.prevalence,
            verdict="unknown",
            reason=f"The matcher could not be counted ({exc}).",
        )
    decision = decide(before, after.prevalence())
    reason = decision.reason
    if rule.kind in ("error_cluster", "retry_storm") and after.matched == 0:
        reason += _similar_errors(new_ctx, rule)
    return FindingCheck(
        **base,
        before=before,
        after=after.prevalence(),
        verdict=decision.verdict,
        p_value=decision.p_value,
        relative_change=decision.relative_change,
        reason=reason,
        still_matching=after.examples[:EXAMPLES],
    )


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


def recount_prevalence(findings: Sequence[Finding], store: TraceStore) -> list[Finding]:
    """Copies of `findings` whose prevalence is recounted on `store` (e.g. the old traces),
    so 'before' and 'after' come from the same counting. Findings that cannot be recounted
    keep their recorded prevalence."""
    out = []
    with aggregates.reader(store) as conn:
        ctx = triage.AggregateContext(conn)
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
