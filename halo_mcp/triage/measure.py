"""Recounting a triage rule (or a plain matcher) on a store: what `check` uses to compare a
finding's prevalence before and after a fix."""

from __future__ import annotations

from halo_mcp.findings.models import Finding
from halo_mcp.store.aggregates import GROUPED_KINDS
from halo_mcp.store.api import TraceReader
from halo_mcp.store.models import SpanFilter
from halo_mcp.triage.answers import missing_answers, missing_measure
from halo_mcp.triage.context import AggregateContext
from halo_mcp.triage.describe import split_validation
from halo_mcp.triage.error_clusters import MIN_STORM_ERRORS, storm_measure
from halo_mcp.triage.limits import step_cap_measure
from halo_mcp.triage.loops import MIN_REPEATS, loops
from halo_mcp.triage.models import EXAMPLES, Measurement, TriageRule, evidence
from halo_mcp.triage.outliers import outlier_evidence


def rule_of(finding: Finding) -> TriageRule | None:
    """The triage rule carried by a finding (None for engine findings)."""
    return split_validation(finding.validation)[1]


def measure(store: TraceReader, rule: TriageRule, matcher: SpanFilter | None = None) -> Measurement:
    """Count one triage rule on a store (used by check; one aggregate pass per call)."""
    with store.aggregates() as reader:
        return measure_in(AggregateContext(reader), rule, matcher, store)


def measure_in(
    ctx: AggregateContext, rule: TriageRule, matcher: SpanFilter | None, store: TraceReader | None
) -> Measurement:
    """Count one rule with a context's shared aggregates; a 'matcher' rule counts the
    finding's matcher through the store."""
    reader = ctx.reader
    if rule.kind in ("error_cluster", "retry_storm"):
        cluster = ctx.clusters.get((rule.span_kind or "", rule.tool_name, rule.signature or ""))
        if cluster is None:
            return Measurement(set(), 0, traces_in_scope=ctx.total)
        if rule.kind == "error_cluster":
            return Measurement(set(cluster.per_trace), cluster.spans, cluster.examples, ctx.total)
        return storm_measure(cluster, rule.min_count or MIN_STORM_ERRORS, ctx.total)
    if rule.kind == "repeated_call":
        return loops(reader, rule.min_count or MIN_REPEATS, ctx.total).get(
            rule.tool_name or "", Measurement(set(), 0, traces_in_scope=ctx.total)
        )
    if rule.kind == "outlier":
        kind = next((k for k in GROUPED_KINDS if k == rule.span_kind), None)
        if kind is None:
            raise ValueError(
                f"an outlier rule's span_kind must be one of {', '.join(GROUPED_KINDS)}, "
                f"not {rule.span_kind!r}"
            )
        found = reader.at_least(
            kind, rule.group or "", rule.metric or "duration", rule.threshold or 0, EXAMPLES
        )
        return Measurement(
            found.traces, found.spans, outlier_evidence(found.top, rule.metric), ctx.total
        )
    if rule.kind == "no_final_answer":
        missing, _roots = missing_answers(reader)
        return missing_measure(missing, ctx.total)
    if rule.kind == "step_cap":
        return step_cap_measure(reader, set(rule.names or ()), rule.min_count or 1, ctx.total)
    if matcher is None or store is None:
        raise ValueError("a matcher rule needs the finding's matcher and a store")
    return count_matcher(store, matcher)


def count_matcher(store: TraceReader, matcher: SpanFilter) -> Measurement:
    """Prevalence of a plain SpanFilter, with a few matching spans as examples."""
    counted = store.count(matcher)
    page = store.query_spans(
        matcher, limit=EXAMPLES, fields=("trace_id", "span_id", "name", "error_message")
    )
    traces = {v.trace_id for v in page.spans if v.trace_id}
    examples = [
        evidence(v.trace_id or "", v.span_id, v.error_message or v.name) for v in page.spans
    ]
    return Measurement(
        traces, counted.spans, examples, counted.traces_in_scope, trace_count=counted.traces
    )
