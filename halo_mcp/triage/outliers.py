"""Latency and token outliers per tool, model and agent.

An outlier is above both a robust z-score of OUTLIER_Z on log values and OUTLIER_FACTOR x
the median of its group; a group becomes an item only when it has more outliers than a
log-normal tail explains.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from halo_mcp.findings.models import Evidence, Severity
from halo_mcp.store.aggregates import GroupedKind, Metric, SpanValue
from halo_mcp.store.models import SpanFilter
from halo_mcp.triage.models import EXAMPLES, Candidate, Measurement, TriageRule, evidence, who

if TYPE_CHECKING:
    from halo_mcp.triage.context import AggregateContext

#: Outliers: robust z on log values, times the median, and a minimum sample per group.
OUTLIER_Z = 4.0
OUTLIER_FACTOR = 20.0
OUTLIER_MIN_GROUP = 30
OUTLIER_SAMPLE_ROWS = 50_000
_NORMAL_TAIL_Z4 = 3.17e-5  # P(Z > 4) for a standard normal
#: The span kinds compared, with their metrics.
_PLAN: tuple[tuple[GroupedKind, tuple[Metric, ...]], ...] = (
    ("tool", ("duration",)),
    ("llm", ("duration", "tokens")),
    ("agent", ("duration",)),
)


def outlier_threshold(values: list[int]) -> int | None:
    """The value above which a sample's members are outliers: the larger of a robust
    z-score of OUTLIER_Z on log values and OUTLIER_FACTOR x the median; None when the
    sample is too small."""
    logs = sorted(math.log(v) for v in values if v > 0)
    if len(logs) < OUTLIER_MIN_GROUP:
        return None
    med = _median(logs)
    mad = _median(sorted(abs(x - med) for x in logs))
    sigma = max(1.4826 * mad, 0.05)
    return math.ceil(math.exp(max(med + OUTLIER_Z * sigma, med + math.log(OUTLIER_FACTOR))))


def _median(sorted_values: list[float]) -> float:
    n = len(sorted_values)
    mid = n // 2
    return sorted_values[mid] if n % 2 else (sorted_values[mid - 1] + sorted_values[mid]) / 2


def more_than_tail(observed: int, group_size: int) -> bool:
    """More outliers than a log-normal tail explains (Poisson, ~3 sigma above), at least 3."""
    expected = group_size * _NORMAL_TAIL_Z4
    return observed >= 3 and observed >= expected + 3 * math.sqrt(expected) + 3


def outlier_items(ctx: AggregateContext) -> list[Candidate]:
    """Two scans in all: one sample of every kind, then every group's outliers."""
    samples = ctx.reader.metric_samples(tuple(k for k, _ in _PLAN), OUTLIER_SAMPLE_ROWS)
    plan: dict[tuple[GroupedKind, Metric], dict[str, int]] = {}
    for kind, metrics in _PLAN:
        for metric in metrics:
            sample = samples[kind].values[metric]
            thresholds = {g: t for g, v in sample.items() if (t := outlier_threshold(v))}
            if thresholds:
                plan[(kind, metric)] = thresholds
    found = ctx.reader.over_thresholds(plan)
    out = []
    for (kind, metric), thresholds in plan.items():
        sample, step = samples[kind].values[metric], samples[kind].step
        for group, rows in sorted(found[(kind, metric)].items()):
            traces = {r.trace_id for r in rows}
            if not more_than_tail(len(rows), len(sample[group]) * step) or len(traces) < 2:
                continue
            top = sorted(rows, key=lambda r: -r.value)[:EXAMPLES]
            threshold = thresholds[group]
            median = int(_median(sorted(sample[group])))
            rule = TriageRule(
                kind="outlier", span_kind=kind, group=group, metric=metric, threshold=threshold
            )
            out.append(_candidate(rule, median, len(rows), traces, top))
    return out


def _candidate(
    rule: TriageRule, median: int, spans: int, traces: set[str], top: list[SpanValue]
) -> Candidate:
    kind, group, metric = rule.span_kind or "", rule.group or "", rule.metric or "duration"
    threshold = rule.threshold or 0
    subject = {"llm": f"LLM calls to {group}", "agent": f"agent {group}"}.get(
        kind, who(kind, group if kind == "tool" else None)
    )
    column = {"tool": "tool_name", "llm": "model", "agent": "agent"}[kind]
    scope = SpanFilter.model_validate({"kind": [kind], column: group})
    if metric == "duration":
        limit, typical = fmt_ms(threshold / 1e6), fmt_ms(median / 1e6)
        matcher = scope.model_copy(update={"min_duration_ms": threshold / 1e6})
        title = f"Latency outliers in {subject}: >= {limit} (median {typical})"
        category, exact = "latency", True
    else:
        limit, typical = f"{threshold:,} tokens", f"{median:,}"
        matcher, exact = scope, False
        title = f"Token outliers in {subject}: >= {limit} (median {typical})"
        category = "cost"
    return Candidate(
        category=category,
        severity=Severity.medium if len(traces) >= 10 else Severity.low,
        title=title,
        description=(
            f"{spans} spans in {len(traces)} traces are far above the usual {metric} of "
            f"{subject} (>= {limit}, median {typical}; robust z >= {OUTLIER_Z:g} on log values "
            f"and >= {OUTLIER_FACTOR:g}x the median)."
        ),
        rule=rule,
        matcher=matcher,
        exact=exact,
        measure=Measurement(traces, spans, outlier_evidence(top, metric)),
    )


def outlier_evidence(top: list[SpanValue], metric: str | None) -> list[Evidence]:
    unit = (lambda v: fmt_ms(v / 1e6)) if metric == "duration" else (lambda v: f"{v:,} tokens")
    return [evidence(t, s, unit(v)) for t, s, v in top]


def fmt_ms(ms: float) -> str:
    return f"{ms / 1000:.1f} s" if ms >= 1000 else f"{ms:.0f} ms"
