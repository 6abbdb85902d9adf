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

import math
from typing import Literal

from pydantic import BaseModel, Field

from halo_mcp.findings.models import Prevalence

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
                f"No baseline to compare with; now {fmt_prevalence(after)}. "
                "Pass the old traces as a baseline to get a verdict."
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
    was, now = fmt_prevalence(before), fmt_prevalence(after)

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


def fmt_prevalence(prev: Prevalence) -> str:
    return f"{prev.traces_matched}/{prev.traces_in_scope} traces ({prev.rate:.1%})"
