"""Deterministic triage (no LLM, no API key): the symptoms a trace set shows, counted.

Triage reads aggregates from the trace index (errors grouped by signature, repeated tool
inputs, latency and token distributions, root spans) and turns each symptom into an item
of the same shape as an engine finding (source="triage"): a matcher, a prevalence computed
by the store, and evidence ids. It says nothing about causes; the engine's root agent
starts from :func:`triage_summary` and spends its turns on why.

Detectors: error signature clusters (runs stopped at a turn/step limit, rate limits and
context overflows are error clusters with their own category), retry storms (>= 3 errors
of one cluster in a trace), loops (one tool called >= 3 times with identical input in a
trace), runs that pile up at the top LLM-call count of their agent (a silent step limit),
latency and token outliers per tool/model/agent (robust z-score on log values,
plus a factor over the median and a count above what a log-normal tail explains), runs
whose root span ends with no output (no final answer), and tools by failure rate.
Items that select the same traces (or, within a category, nearly contained traces) are
merged into one.

Each item's rule (what exactly was counted) travels in its `validation` text after
``[triage-rule]``, so `check` can recompute it on new traces even when the item was saved
as a plain Finding.
"""

from __future__ import annotations

import hashlib
import math
import re
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, Field

from halo_mcp.engine.models import Evidence, Finding, Prevalence, Severity
from halo_mcp.store import aggregates
from halo_mcp.store.models import SpanFilter
from halo_mcp.store.signatures import normalize_message
from halo_mcp.store.store import TraceStore
from halo_mcp.store.textlimit import clip

TRIAGE_RUN_ID = "triage"
RULE_TAG = "[triage-rule] "
MAX_ITEMS = 25
EXAMPLES = 5
SUMMARY_CHARS = 4000
#: Per-trace counts that make a loop (identical tool input) or a retry storm (same error).
MIN_REPEATS = 3
MIN_STORM_ERRORS = 3
#: Outliers: robust z on log values, times the median, and a minimum sample per group.
OUTLIER_Z = 4.0
OUTLIER_FACTOR = 20.0
OUTLIER_MIN_GROUP = 30
OUTLIER_SAMPLE_ROWS = 50_000
_NORMAL_TAIL_Z4 = 3.17e-5  # P(Z > 4) for a standard normal
#: Root spans read first to see whether any run ends without an answer; all are read only
#: when one of them does (so a clean large set costs a bounded number of reads).
ROOT_SAMPLE = 2000
#: Runs piled at the top LLM-call count that make it a step limit (see step_cap).
STEP_CAP_MIN_TRACES = 5
#: Fewer errors than this are never called bursty (too few to tell).
BURST_MIN_ERRORS = 20
#: Items whose trace sets overlap this much (Jaccard) are merged.
MERGE_JACCARD = 0.9

_WEIGHT = {Severity.critical: 4, Severity.high: 3, Severity.medium: 2, Severity.low: 1}
#: When items merge, the one whose category comes first here is kept.
_CATEGORY_ORDER = (
    "turn-limit",
    "loop",
    "context-overflow",
    "rate-limit",
    "tool-error",
    "llm-error",
    "agent-error",
    "error",
    "retries",
    "no-final-answer",
    "latency",
    "cost",
)
_TURN_LIMIT = re.compile(
    r"max[ _.-]?turns|turn limit|step limit|max[ _.-]?steps|max[ _.-]?iterations|"
    r"iteration limit|recursion limit|too many (?:turns|steps|iterations)",
    re.I,
)
_RATE_LIMIT = re.compile(r"rate[ _.-]?limit|too many requests|\b429\b|quota exceeded", re.I)
_CONTEXT = re.compile(
    r"context[ _.-]?length|context window|maximum context|prompt is too long|too many tokens",
    re.I,
)
_PLACEHOLDER = re.compile(r"'<S>'|\"<S>\"|<[A-Z]+>")
#: Ids, uuids and numbers are one kind of volatile value for clustering: an all-digit hex
#: id normalizes to <N>, a lettered one to <ID>, and they must not split a cluster.
_VOLATILE = re.compile(r"<(?:ID|UUID)>")
_GLUED = re.compile(r"[\w-]*<N>[\w-]*")
_ERROR_TYPE = re.compile(r"^\s*([A-Za-z_][\w.]{2,60})\s*:")
_RULE_RE = re.compile(re.escape(RULE_TAG) + r"(\{.*\})\s*$", re.S)

_SUGGESTIONS = {
    "turn-limit": "Find what keeps these runs going until the limit (a tool that never "
    "returns what the agent needs, a missing stop condition) and make the agent answer or "
    "stop earlier; raising the limit alone hides the problem.",
    "loop": "Stop the agent from repeating an identical call: return a clearer error or "
    "result for it, cap retries of the same input in the harness, or tell the model in the "
    "tool description what to do when the call fails.",
    "context-overflow": "Trim or summarize large tool results before they enter the "
    "context, and budget the history before each LLM call.",
    "rate-limit": "Smooth the request rate (client-side limiter, jittered backoff, fewer "
    "parallel calls) or raise the provider quota.",
    "tool-error": "Read the failing calls' arguments: fix the tool, its input validation, or "
    "the tool description that leads the model to pass bad arguments.",
    "llm-error": "Classify these provider errors: retry the transient ones with backoff, "
    "fix the requests that are invalid.",
    "agent-error": "Open the failing agent spans and the spans just before them to see what "
    "ends these runs in error.",
    "error": "Open the evidence spans to see what fails and why.",
    "retries": "Back off between retries and stop after a few: repeated immediate retries "
    "of the same failure waste turns and money.",
    "no-final-answer": "Make sure every run ends with an answer (a final-answer step when "
    "the budget runs out, an answer on error) and look at why these runs stop early.",
    "latency": "Look at what makes these calls slow (timeouts, large inputs, a slow "
    "dependency) and set tighter timeouts or cache the results.",
    "cost": "Look at what makes these calls so large (long histories, big tool results) and "
    "trim the context before the call.",
}


class TriageRule(BaseModel):
    """What a triage item counted, precisely enough to count it again on other traces."""

    kind: Literal[
        "error_cluster",
        "retry_storm",
        "repeated_call",
        "outlier",
        "no_final_answer",
        "step_cap",
        "matcher",
    ]
    span_kind: str | None = None
    tool_name: str | None = None
    signature: str | None = Field(None, description="Normalized error message, models masked.")
    group: str | None = Field(None, description="Outliers: the tool, model or agent name.")
    metric: Literal["duration", "tokens"] | None = None
    threshold: int | None = Field(None, description="Outliers: ns (duration) or tokens.")
    min_count: int | None = Field(
        None, description="Per-trace minimum (loops, storms; step caps: LLM calls of an agent)."
    )
    names: list[str] | None = Field(None, description="Step caps: the agents concerned.")


class ToolFailure(BaseModel):
    name: str
    calls: int
    errors: int
    failure_rate: float
    traces_with_errors: int


class TriageReport(BaseModel):
    """The triage of one trace set. Items are Findings with source='triage'."""

    source: Literal["triage"] = "triage"
    paths: list[str]
    traces: int
    spans: int
    error_spans: int
    items: list[Finding] = Field(description="Ranked by trace rate x severity.")
    tools: list[ToolFailure] = Field(description="Tools by failure rate (calls that failed).")
    notes: list[str] = []
    truncated: bool = Field(False, description="True when items beyond max_items were dropped.")
    elapsed_ms: float = 0.0


@dataclass
class Measurement:
    """A rule counted on one store: affected traces, spans, and a few examples."""

    traces: set[str]
    spans: int
    examples: list[Evidence] = field(default_factory=list)
    traces_in_scope: int = 0
    #: Set when `traces` holds only a sample (a plain matcher count): the true count.
    trace_count: int | None = None
    #: Loops: every repeated call failed.
    all_errors: bool = False

    @property
    def matched(self) -> int:
        return len(self.traces) if self.trace_count is None else self.trace_count

    def prevalence(self) -> Prevalence:
        return Prevalence(
            traces_matched=self.matched,
            traces_in_scope=self.traces_in_scope,
            spans_matched=self.spans,
        )


@dataclass
class _Cluster:
    kind: str
    tool_name: str | None
    signature: str
    per_trace: dict[str, int] = field(default_factory=dict)
    spans: int = 0
    starts: list[int] = field(default_factory=list)
    examples: list[Evidence] = field(default_factory=list)
    storm_examples: dict[str, Evidence] = field(default_factory=dict)


@dataclass
class _Candidate:
    category: str
    severity: Severity
    title: str
    description: str
    rule: TriageRule
    matcher: SpanFilter | None
    exact: bool
    measure: Measurement
    also: list[str] = field(default_factory=list)


# -- public API --------------------------------------------------------------------------


def run_triage(store: TraceStore, *, max_items: int = MAX_ITEMS) -> TriageReport:
    """Triage the store's traces: aggregates over the index, no LLM, bounded output."""
    began = time.perf_counter()
    notes: list[str] = []
    with aggregates.reader(store) as conn:
        ctx = AggregateContext(conn)
        total = ctx.total
        candidates: list[_Candidate] = []
        candidates += _cluster_items(ctx)
        candidates += _loop_items(ctx)
        candidates += _step_cap_items(ctx)
        candidates += _outlier_items(ctx)
        candidates += _final_answer_items(ctx, notes)
        tools = _tool_failures(conn)
        candidates += _tool_items(ctx, tools)
        error_spans = conn.execute("SELECT COUNT(*) FROM spans WHERE status='error'").fetchone()[0]
        spans = conn.execute("SELECT COUNT(*) FROM spans").fetchone()[0]
    for cand in candidates:
        cand.measure.traces_in_scope = total
    merged = _merge(candidates)
    merged.sort(key=lambda c: (-_score(c), -len(c.measure.traces), c.title))
    items = [_to_finding(c) for c in merged[:max_items]]
    return TriageReport(
        paths=[str(p) for p in store.paths],
        traces=total,
        spans=spans,
        error_spans=error_spans,
        items=items,
        tools=tools,
        notes=notes,
        truncated=len(merged) > max_items,
        elapsed_ms=round((time.perf_counter() - began) * 1000, 1),
    )


def triage_summary(report: TriageReport, max_chars: int = SUMMARY_CHARS) -> str:
    """A compact text of the triage for an agent's first prompt (at most ~max_chars)."""
    lines = [
        f"Triage of {report.traces} traces ({report.spans} spans, {report.error_spans} error "
        "spans): deterministic counts from the trace index, no LLM. Rates are exact; causes "
        "are NOT analysed. Items are ranked by trace rate x severity; several items can "
        "describe the same traces.",
    ]
    if not report.items:
        lines.append("No symptom found (no errors, loops, outliers or runs without answer).")
    for n, item in enumerate(report.items, 1):
        prev = item.prevalence
        rate = (
            f"{prev.traces_matched}/{prev.traces_in_scope} traces ({prev.rate:.1%})"
            if prev
            else "?"
        )
        ev = item.evidence[0] if item.evidence else None
        example = (
            f"; e.g. trace {ev.trace_id}" + (f" span {ev.span_id}" if ev and ev.span_id else "")
            if ev
            else ""
        )
        lines.append(
            f"{n}. [{item.severity.value}] {item.category}: {item.title}: {rate}{example} "
            f"(id {item.id})"
        )
    failing = [t for t in report.tools if t.errors]
    if failing:
        lines.append(
            "Tools by failure rate: "
            + "; ".join(
                f"{t.name} {t.failure_rate:.1%} ({t.errors}/{t.calls} calls, "
                f"{t.traces_with_errors} traces)"
                for t in failing[:8]
            )
        )
    lines += [f"Note: {n}" for n in report.notes]
    if report.truncated:
        lines.append("More items exist than shown (max_items reached).")
    text, _ = clip("\n".join(lines), max_chars)
    return text


def rule_of(finding: Finding) -> TriageRule | None:
    """The triage rule carried by a finding (None for engine findings)."""
    match = _RULE_RE.search(finding.validation or "")
    if not match:
        return None
    try:
        return TriageRule.model_validate_json(match.group(1))
    except ValueError:
        return None


def measure(store: TraceStore, rule: TriageRule, matcher: SpanFilter | None = None) -> Measurement:
    """Count one triage rule on a store (used by check; one aggregate pass per call)."""
    with aggregates.reader(store) as conn:
        return measure_in(AggregateContext(conn), rule, matcher, store)


class AggregateContext:
    """One read connection plus aggregates computed once and shared by the detectors."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.total = aggregates.trace_total(conn)
        self._clusters: dict[tuple[str, str | None, str], _Cluster] | None = None

    @property
    def clusters(self) -> dict[tuple[str, str | None, str], _Cluster]:
        if self._clusters is None:
            self._clusters = error_clusters(self.conn)
        return self._clusters


def measure_in(
    ctx: AggregateContext, rule: TriageRule, matcher: SpanFilter | None, store: TraceStore | None
) -> Measurement:
    conn = ctx.conn
    if rule.kind in ("error_cluster", "retry_storm"):
        cluster = ctx.clusters.get((rule.span_kind or "", rule.tool_name, rule.signature or ""))
        if cluster is None:
            return Measurement(set(), 0, traces_in_scope=ctx.total)
        if rule.kind == "error_cluster":
            return Measurement(set(cluster.per_trace), cluster.spans, cluster.examples, ctx.total)
        return _storm_measure(cluster, rule.min_count or MIN_STORM_ERRORS, ctx.total)
    if rule.kind == "repeated_call":
        return _loops(conn, rule.min_count or MIN_REPEATS, ctx.total).get(
            rule.tool_name or "", Measurement(set(), 0, traces_in_scope=ctx.total)
        )
    if rule.kind == "outlier":
        spans, traces, top = aggregates.at_least(
            conn, rule.span_kind or "", rule.group or "", rule.metric or "duration",
            rule.threshold or 0, EXAMPLES,
        )  # fmt: skip
        return Measurement(traces, spans, _outlier_evidence(top, rule.metric), ctx.total)
    if rule.kind == "no_final_answer":
        missing, _roots = _missing_answers(conn)
        return missing_measure(missing, ctx.total)
    if rule.kind == "step_cap":
        return _step_cap_measure(conn, set(rule.names or ()), rule.min_count or 1, ctx.total)
    if matcher is None or store is None:
        raise ValueError("a matcher rule needs the finding's matcher and a store")
    return count_matcher(store, matcher)


def count_matcher(store: TraceStore, matcher: SpanFilter) -> Measurement:
    """Prevalence of a plain SpanFilter, with a few matching spans as examples."""
    counted = store.count(matcher)
    page = store.query_spans(
        matcher, limit=EXAMPLES, fields=("trace_id", "span_id", "name", "error_message")
    )
    traces = {v.trace_id for v in page.spans if v.trace_id}
    examples = [
        Evidence(
            trace_id=v.trace_id or "",
            span_id=v.span_id,
            excerpt=clip(v.error_message or v.name or "", 200)[0] or None,
            verified=True,
        )
        for v in page.spans
    ]
    return Measurement(
        traces, counted.spans, examples, counted.traces_in_scope, trace_count=counted.traces
    )


# -- error clusters, storms --------------------------------------------------------------


def mask_models(signature: str, models: Iterable[str]) -> str:
    """Replace model names in a signature by <MODEL>, so one error across models is one
    cluster (rate-limit messages name the model)."""
    for model in sorted(models, key=len, reverse=True):
        if len(model) >= 3:
            signature = signature.replace(model, "<MODEL>")
    return signature


def cluster_signature(message: str | None, models: Iterable[str]) -> str:
    """The store's normalized message, with models masked and every volatile value (number,
    id, uuid, with the word glued to it such as 'org-') as one <N>: 'org-908ef936f582' and
    'org-135744476639' normalize differently in the store but are the same error."""
    text = mask_models(normalize_message(message), models)
    return _GLUED.sub("<N>", _VOLATILE.sub("<N>", text))


def error_clusters(conn: sqlite3.Connection) -> dict[tuple[str, str | None, str], _Cluster]:
    """Every error span grouped by (kind, tool, normalized message with models masked)."""
    models = aggregates.model_names(conn)
    normalized: dict[str | None, str] = {}
    clusters: dict[tuple[str, str | None, str], _Cluster] = {}
    for kind, tool, name, message, trace_id, span_id, start in aggregates.error_spans(conn):
        signature = normalized.get(message)
        if signature is None:
            signature = cluster_signature(message, models)
            signature = signature or "(no message)"
            if len(normalized) < 100_000:
                normalized[message] = signature
        key = (kind or "other", tool, signature)
        cluster = clusters.get(key)
        if cluster is None:
            cluster = clusters[key] = _Cluster(kind or "other", tool, signature)
        seen = cluster.per_trace.get(trace_id, 0)
        cluster.per_trace[trace_id] = seen + 1
        cluster.spans += 1
        if len(cluster.starts) < 200_000:
            cluster.starts.append(start or 0)
        evidence = None
        if seen == 0 and len(cluster.examples) < EXAMPLES:
            evidence = _evidence(trace_id, span_id, message or name)
            cluster.examples.append(evidence)
        if seen + 1 == MIN_STORM_ERRORS and len(cluster.storm_examples) < EXAMPLES:
            cluster.storm_examples[trace_id] = evidence or _evidence(trace_id, span_id, message)
    return clusters


def _storm_measure(cluster: _Cluster, min_count: int, total: int) -> Measurement:
    traces = {t for t, n in cluster.per_trace.items() if n >= min_count}
    spans = sum(n for t, n in cluster.per_trace.items() if n >= min_count)
    examples = [e for t, e in cluster.storm_examples.items() if t in traces]
    return Measurement(traces, spans, examples, total)


def _cluster_items(ctx: AggregateContext) -> list[_Candidate]:
    t0, t1 = aggregates.time_range(ctx.conn)
    baseline = _bins_for_80(_all_start_bins(ctx.conn, t0, t1)) if t1 > t0 else None
    out = []
    for cluster in ctx.clusters.values():
        err_type = error_type(cluster.signature)
        who = _who(cluster.kind, cluster.tool_name)
        category = _cluster_category(cluster)
        measured = Measurement(set(cluster.per_trace), cluster.spans, cluster.examples)
        rate = len(measured.traces) / ctx.total if ctx.total else 0.0
        burst = _burst_note(cluster.starts, t0, t1, baseline)
        description = (
            f"{cluster.spans} error spans in {len(cluster.per_trace)} traces from {who} share "
            f"the signature: {clip(cluster.signature, 300)[0]}"
        )
        if burst:
            description += f" {burst}"
        out.append(
            _Candidate(
                category=category,
                severity=_cluster_severity(category, rate),
                title=f"{err_type} in {who}",
                description=description,
                rule=TriageRule(
                    kind="error_cluster",
                    span_kind=cluster.kind,
                    tool_name=cluster.tool_name,
                    signature=cluster.signature,
                ),
                matcher=_cluster_matcher(cluster),
                exact=True,
                measure=measured,
            )
        )
        storm = _storm_measure(cluster, MIN_STORM_ERRORS, ctx.total)
        if len(storm.traces) >= 2:
            out.append(
                _Candidate(
                    category="retries",
                    severity=Severity.medium,
                    title=f"Retry storm: >= {MIN_STORM_ERRORS} x {err_type} from {who} in a trace",
                    description=(
                        f"In {len(storm.traces)} traces the same error ({err_type}) repeats at "
                        f"least {MIN_STORM_ERRORS} times ({storm.spans} error spans in all): "
                        "the harness retries a failure that keeps failing."
                    ),
                    rule=TriageRule(
                        kind="retry_storm",
                        span_kind=cluster.kind,
                        tool_name=cluster.tool_name,
                        signature=cluster.signature,
                        min_count=MIN_STORM_ERRORS,
                    ),
                    matcher=_cluster_matcher(cluster),
                    exact=False,
                    measure=storm,
                )
            )
    return out


def _cluster_category(cluster: _Cluster) -> str:
    text = cluster.signature
    if _TURN_LIMIT.search(text):
        return "turn-limit"
    if _CONTEXT.search(text):
        return "context-overflow"
    if _RATE_LIMIT.search(text):
        return "rate-limit"
    if cluster.tool_name or cluster.kind == "tool":
        return "tool-error"
    return {"llm": "llm-error", "agent": "agent-error"}.get(cluster.kind, "error")


def _cluster_severity(category: str, rate: float) -> Severity:
    if category in ("turn-limit", "context-overflow"):
        return Severity.high
    if category in ("tool-error", "agent-error") and rate >= 0.1:
        return Severity.high
    return Severity.medium


def _cluster_matcher(cluster: _Cluster) -> SpanFilter:
    return SpanFilter(
        kind=[cluster.kind] if cluster.kind in _KINDS else None,
        tool_name=cluster.tool_name,
        errors_only=True,
        text=signature_regex(cluster.signature),
    )


_KINDS = ("agent", "llm", "tool", "chain", "guardrail", "other")


def signature_regex(signature: str) -> str | None:
    """A regex matching the raw messages of a signature: its first literal part and its
    longest one (placeholders and masked models become gaps)."""
    parts = [p.strip() for p in re.split(r"<MODEL>|" + _PLACEHOLDER.pattern, signature)]
    parts = [p for p in parts if len(p) >= 4]
    if not parts:
        return None
    first = parts[0]
    longest = max(parts, key=len)
    chosen = [first] if longest is first else [first, longest]
    return ".*".join(re.escape(p[:120]).replace("\\ ", " ") for p in chosen)


def error_type(signature: str) -> str:
    match = _ERROR_TYPE.match(signature)
    if match and "<" not in match.group(1):
        return match.group(1)
    return clip(signature, 60)[0] or "error"


def _who(kind: str, tool: str | None) -> str:
    if tool:
        return f"tool {tool}"
    return {"llm": "LLM calls", "agent": "agent spans", "tool": "tool calls"}.get(
        kind, f"{kind} spans"
    )


def _all_start_bins(conn: sqlite3.Connection, t0: int, t1: int, bins: int = 50) -> list[int]:
    width = max(1, (t1 - t0) // bins + 1)
    counts = [0] * bins
    for b, n in conn.execute(
        "SELECT (start_ns - ?) / ?, COUNT(*) FROM spans WHERE start_ns IS NOT NULL GROUP BY 1",
        (t0, width),
    ):
        if b is not None and 0 <= b < bins:
            counts[int(b)] += n
    return counts


def _bins_for_80(counts: list[int]) -> int:
    total = sum(counts)
    if not total:
        return len(counts)
    acc = 0
    for n, value in enumerate(sorted(counts, reverse=True), 1):
        acc += value
        if acc >= 0.8 * total:
            return n
    return len(counts)


def _burst_note(starts: list[int], t0: int, t1: int, baseline: int | None) -> str | None:
    """'Bursty' when 80% of the errors fall in a third of the time bins that 80% of all
    spans need (and at most a fifth of all bins)."""
    if baseline is None or len(starts) < BURST_MIN_ERRORS or t1 <= t0:
        return None
    bins = 50
    width = (t1 - t0) // bins + 1
    counts = [0] * bins
    for s in starts:
        b = (s - t0) // width
        if 0 <= b < bins:
            counts[b] += 1
    needed = _bins_for_80(counts)
    if needed <= max(1, baseline // 3) and needed <= bins // 5:
        return (
            f"The errors come in bursts: 80% of them fall in {needed} of {bins} equal time "
            f"windows (all spans need {baseline})."
        )
    return None


# -- loops -------------------------------------------------------------------------------


def _loops(conn: sqlite3.Connection, min_repeats: int, total: int) -> dict[str, Measurement]:
    out: dict[str, Measurement] = {}
    errors: dict[str, int] = {}
    for trace_id, tool, calls, error_calls, span_ids in aggregates.repeated_calls(
        conn, min_repeats
    ):
        m = out.setdefault(tool, Measurement(set(), 0, traces_in_scope=total))
        m.spans += calls
        errors[tool] = errors.get(tool, 0) + (error_calls or 0)
        if trace_id not in m.traces and len(m.examples) < EXAMPLES:
            first = (span_ids or "").split(" ")[0] or None
            m.examples.append(
                _evidence(trace_id, first, f"{tool} called {calls} times with identical input")
            )
        m.traces.add(trace_id)
    for tool, m in out.items():
        m.all_errors = errors.get(tool, 0) == m.spans
    return out


def _loop_items(ctx: AggregateContext) -> list[_Candidate]:
    out = []
    for tool, m in _loops(ctx.conn, MIN_REPEATS, ctx.total).items():
        all_errors = m.all_errors
        out.append(
            _Candidate(
                category="loop",
                severity=Severity.high,
                title=f"Loop: {tool} called >= {MIN_REPEATS} times with identical input",
                description=(
                    f"In {len(m.traces)} traces the agent calls {tool} at least {MIN_REPEATS} "
                    f"times with the same input ({m.spans} calls in all"
                    + (", every one of them failing" if all_errors else "")
                    + "): it repeats instead of changing course."
                ),
                rule=TriageRule(kind="repeated_call", tool_name=tool, min_count=MIN_REPEATS),
                matcher=SpanFilter(kind=["tool"], tool_name=tool, errors_only=all_errors),
                exact=False,
                measure=m,
            )
        )
    return out


# -- runs stopped at a step limit -------------------------------------------------------


def step_cap(histogram: dict[int, int]) -> int | None:
    """The number of LLM calls where an agent's runs pile up at the very top of their
    distribution (a silent turn/step limit), or None. The top count must hold at least
    STEP_CAP_MIN_TRACES runs, more than twice the runs of each of the two counts below, and
    be at least twice the median count (a short agent that always ends after 3 calls by
    design is not cut by a limit)."""
    if not histogram:
        return None
    top = max(histogram)
    at_top = histogram[top]
    below = max(histogram.get(top - 1, 0), histogram.get(top - 2, 0))
    half, seen, typical = sum(histogram.values()) / 2, 0, top
    for calls in sorted(histogram):  # the median count, from the histogram
        seen += histogram[calls]
        if seen >= half:
            typical = calls
            break
    if at_top >= STEP_CAP_MIN_TRACES and at_top > 2 * below and top >= max(5, 2 * typical):
        return top
    return None


def _step_cap_measure(
    conn: sqlite3.Connection, agents: set[str], cap: int, total: int
) -> Measurement:
    m = Measurement(set(), 0, traces_in_scope=total)
    for trace_id, agent, calls in aggregates.llm_calls_per_agent(conn):
        if agent in agents and calls >= cap:
            m.spans += calls
            if trace_id not in m.traces and len(m.examples) < EXAMPLES:
                m.examples.append(_evidence(trace_id, None, f"{agent}: {calls} LLM calls"))
            m.traces.add(trace_id)
    return m


def _step_cap_items(ctx: AggregateContext) -> list[_Candidate]:
    histograms: dict[str, dict[int, int]] = {}
    for _, agent, calls in aggregates.llm_calls_per_agent(ctx.conn):
        hist = histograms.setdefault(agent, {})
        hist[calls] = hist.get(calls, 0) + 1
    by_cap: dict[int, list[str]] = {}
    for agent, hist in sorted(histograms.items()):
        cap = step_cap(hist)
        if cap is not None:
            by_cap.setdefault(cap, []).append(agent)
    out = []
    for cap, agents in sorted(by_cap.items()):
        m = _step_cap_measure(ctx.conn, set(agents), cap, ctx.total)
        names = ", ".join(agents)
        out.append(
            _Candidate(
                category="turn-limit",
                severity=Severity.high,
                title=f"Runs stop at exactly {cap} LLM calls ({names}): a step limit",
                description=(
                    f"In {len(m.traces)} traces {names} made exactly {cap} successful LLM "
                    "calls, the most any run made, and far more runs end there than just "
                    "below: these runs were cut by a turn/step limit."
                ),
                rule=TriageRule(kind="step_cap", min_count=cap, names=agents),
                matcher=SpanFilter(kind=["llm"], agent=agents[0]) if len(agents) == 1 else None,
                exact=False,
                measure=m,
            )
        )
    return out


# -- outliers ----------------------------------------------------------------------------


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


def _outlier_items(ctx: AggregateContext) -> list[_Candidate]:
    out = []
    plan = (("tool", ("duration",)), ("llm", ("duration", "tokens")), ("agent", ("duration",)))
    for kind, metrics in plan:
        samples, step = aggregates.metric_samples(ctx.conn, kind, OUTLIER_SAMPLE_ROWS)
        for metric in metrics:
            sample = samples[metric]
            thresholds = {g: t for g, v in sample.items() if (t := outlier_threshold(v))}
            if not thresholds:
                continue
            hits = aggregates.over_thresholds(ctx.conn, kind, metric, thresholds)
            for group, rows in sorted(hits.items()):
                traces = {t for t, _, _ in rows}
                if not more_than_tail(len(rows), len(sample[group]) * step) or len(traces) < 2:
                    continue
                top = sorted(rows, key=lambda r: -r[2])[:EXAMPLES]
                threshold = thresholds[group]
                median = int(_median(sorted(sample[group])))
                rule = TriageRule(
                    kind="outlier", span_kind=kind, group=group, metric=metric, threshold=threshold
                )
                out.append(
                    _outlier_candidate(
                        kind, group, metric, threshold, median, rule, len(rows), traces, top
                    )
                )
    return out


def _outlier_candidate(
    kind: str,
    group: str,
    metric: str,
    threshold: int,
    median: int,
    rule: TriageRule,
    spans: int,
    traces: set[str],
    top: list[tuple[str, str, int]],
) -> _Candidate:
    who = _who(kind, group if kind == "tool" else None)
    if kind == "llm":
        who = f"LLM calls to {group}"
    elif kind == "agent":
        who = f"agent {group}"
    column = {"tool": "tool_name", "llm": "model", "agent": "agent"}[kind]
    scope = SpanFilter(kind=[kind], **{column: group})
    if metric == "duration":
        limit, typical = _fmt_ms(threshold / 1e6), _fmt_ms(median / 1e6)
        matcher = scope.model_copy(update={"min_duration_ms": threshold / 1e6})
        title = f"Latency outliers in {who}: >= {limit} (median {typical})"
        category, exact = "latency", True
    else:
        limit, typical = f"{threshold:,} tokens", f"{median:,}"
        matcher, exact = scope, False
        title = f"Token outliers in {who}: >= {limit} (median {typical})"
        category = "cost"
    return _Candidate(
        category=category,
        severity=Severity.medium if len(traces) >= 10 else Severity.low,
        title=title,
        description=(
            f"{spans} spans in {len(traces)} traces are far above the usual {metric} of {who} "
            f"(>= {limit}, median {typical}; robust z >= {OUTLIER_Z:g} on log values and "
            f">= {OUTLIER_FACTOR:g}x the median)."
        ),
        rule=rule,
        matcher=matcher,
        exact=exact,
        measure=Measurement(traces, spans, _outlier_evidence(top, metric)),
    )


def _outlier_evidence(top: list[tuple[str, str, int]], metric: str | None) -> list[Evidence]:
    unit = (lambda v: _fmt_ms(v / 1e6)) if metric == "duration" else (lambda v: f"{v:,} tokens")
    return [_evidence(t, s, unit(v)) for t, s, v in top]


def _fmt_ms(ms: float) -> str:
    return f"{ms / 1000:.1f} s" if ms >= 1000 else f"{ms:.0f} ms"


# -- runs without a final answer ---------------------------------------------------------


def _missing_answers(conn: sqlite3.Connection, every: int = 1) -> tuple[dict[str, str], int]:
    """Traces whose root span has no output ({trace: root span}), and the roots read
    (about one in `every`)."""
    missing: dict[str, str] = {}
    roots = 0
    for trace_id, span_id, output in aggregates.root_outputs(conn, every):
        roots += 1
        if output is None or not str(output).strip():
            missing.setdefault(trace_id, span_id)
    return missing, roots


def missing_measure(missing: dict[str, str], total: int) -> Measurement:
    examples = [
        _evidence(t, s, "root span ended with no output")
        for t, s in list(missing.items())[:EXAMPLES]
    ]
    return Measurement(set(missing), len(missing), examples, total)


def _final_answer_items(ctx: AggregateContext, notes: list[str]) -> list[_Candidate]:
    every = max(1, ctx.total // ROOT_SAMPLE)
    missing, roots = _missing_answers(ctx.conn, every)
    if every > 1 and missing and len(missing) <= roots / 2:
        missing, roots = _missing_answers(ctx.conn)  # some do: count them all, exactly
    elif every > 1 and not missing and roots:
        notes.append(
            f"Runs without a final answer: none in a sample of {roots} root spans, so the "
            f"other {ctx.total - roots} were not read (rate under ~{3 / roots:.2%})."
        )
        return []
    if not roots:
        notes.append("No root spans: runs without a final answer were not looked for.")
        return []
    if len(missing) > roots / 2:
        notes.append(
            f"{len(missing)} of {roots} root spans carry no output: this harness does not "
            "record the final answer on the root span, so missing answers were not counted."
        )
        return []
    if not missing:
        return []
    m = missing_measure(missing, ctx.total)
    return [
        _Candidate(
            category="no-final-answer",
            severity=Severity.high,
            title="Runs that end without a final answer",
            description=(
                f"In {len(missing)} traces the root span ends with no output: the run stopped "
                "without answering the user."
            ),
            rule=TriageRule(kind="no_final_answer"),
            matcher=None,
            exact=False,
            measure=m,
        )
    ]


# -- tools by failure rate ---------------------------------------------------------------


def _tool_failures(conn: sqlite3.Connection) -> list[ToolFailure]:
    traces = aggregates.tool_error_traces(conn)
    rows = conn.execute(
        "SELECT tool_name, COUNT(*), SUM(status = 'error') FROM spans "
        "WHERE tool_name IS NOT NULL GROUP BY tool_name"
    ).fetchall()
    tools = [
        ToolFailure(
            name=name,
            calls=calls,
            errors=errors or 0,
            failure_rate=round((errors or 0) / calls, 4) if calls else 0.0,
            traces_with_errors=traces.get(name, 0),
        )
        for name, calls, errors in rows
    ]
    tools.sort(key=lambda t: (-t.failure_rate, -t.errors, t.name))
    return tools


def _tool_items(ctx: AggregateContext, tools: list[ToolFailure]) -> list[_Candidate]:
    """A tool's overall failure rate, only when its errors span several signatures (else the
    error cluster already says it)."""
    per_tool: dict[str, int] = {}
    for (_, tool, _), _c in ctx.clusters.items():
        if tool:
            per_tool[tool] = per_tool.get(tool, 0) + 1
    out = []
    for tool in tools:
        if tool.errors == 0 or per_tool.get(tool.name, 0) < 2:
            continue
        matcher = SpanFilter(kind=["tool"], tool_name=tool.name, errors_only=True)
        traces = {
            r[0]
            for r in ctx.conn.execute(
                "SELECT DISTINCT trace_id FROM spans WHERE tool_name = ? AND status = 'error'",
                (tool.name,),
            )
        }
        examples = [
            _evidence(t, s, m)
            for t, s, m in ctx.conn.execute(
                "SELECT trace_id, span_id, error_message FROM spans WHERE tool_name = ? AND "
                "status = 'error' LIMIT ?",
                (tool.name, EXAMPLES),
            )
        ]
        out.append(
            _Candidate(
                category="tool-error",
                severity=Severity.high if tool.failure_rate >= 0.1 else Severity.medium,
                title=f"Tool {tool.name} fails in {tool.failure_rate:.1%} of its calls",
                description=(
                    f"{tool.errors} of {tool.calls} calls of {tool.name} fail, in "
                    f"{len(traces)} traces, with {per_tool[tool.name]} different error "
                    "signatures."
                ),
                rule=TriageRule(kind="matcher"),
                matcher=matcher,
                exact=True,
                measure=Measurement(traces, tool.errors, examples),
            )
        )
    return out


# -- merge, rank, convert ----------------------------------------------------------------


def _merge(candidates: list[_Candidate]) -> list[_Candidate]:
    """Items over (nearly) the same traces collapse into the one whose category comes
    first in _CATEGORY_ORDER; the others are named in its description."""
    ordered = sorted(candidates, key=lambda c: (_category_rank(c.category), -len(c.measure.traces)))
    kept: list[_Candidate] = []
    for cand in ordered:
        for keep in kept:
            if _same_traces(keep, cand):
                keep.also.append(f"{cand.category}: {cand.title}")
                break
        else:
            kept.append(cand)
    return kept


def _category_rank(category: str) -> int:
    return _CATEGORY_ORDER.index(category) if category in _CATEGORY_ORDER else len(_CATEGORY_ORDER)


def _same_traces(keep: _Candidate, cand: _Candidate) -> bool:
    """Nearly the same traces; or, within one category, nearly contained in the kept ones."""
    a, b = keep.measure.traces, cand.measure.traces
    if _jaccard(a, b) >= MERGE_JACCARD:
        return True
    smaller = min(len(a), len(b))
    return keep.category == cand.category and smaller > 0 and len(a & b) / smaller >= 0.9


def _jaccard(a: set[str], b: set[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def _score(cand: _Candidate) -> float:
    total = cand.measure.traces_in_scope
    rate = len(cand.measure.traces) / total if total else 0.0
    return rate * _WEIGHT[cand.severity]


def _item_id(rule: TriageRule, category: str) -> str:
    digest = hashlib.blake2b(
        (category + rule.model_dump_json(exclude_none=True)).encode(), digest_size=9
    ).hexdigest()
    return "t_" + digest


def _to_finding(cand: _Candidate) -> Finding:
    description = cand.description
    if cand.also:
        description += " The same traces also show: " + "; ".join(cand.also) + "."
    notes = ["From deterministic triage (no LLM): counted from the trace index."]
    if cand.exact:
        notes.append("The matcher selects exactly the counted spans.")
    else:
        notes.append(
            "The matcher is the scope only; the count comes from the rule in `validation` "
            "(check_findings / `halo-mcp check` recompute it)."
        )
    return Finding(
        id=_item_id(cand.rule, cand.category),
        run_id=TRIAGE_RUN_ID,
        source="triage",
        title=cand.title,
        category=cand.category,
        severity=cand.severity,
        description=description,
        root_cause="Not analysed: triage counts symptoms without an LLM. Open the evidence "
        "traces, or run the engine (`halo-mcp run`) to find why.",
        suggested_change=_SUGGESTIONS.get(cand.category, _SUGGESTIONS["error"]),
        validation=(
            "After the fix, collect new traces and run `halo-mcp check` (MCP: check_findings): "
            "this item's rate should fall to 0. "
            + RULE_TAG
            + cand.rule.model_dump_json(exclude_none=True)
        ),
        evidence=cand.measure.examples[:EXAMPLES],
        matcher=cand.matcher,
        prevalence=cand.measure.prevalence(),
        verified=bool(cand.measure.examples),
        verification_notes=notes,
    )


def _evidence(trace_id: str, span_id: str | None, excerpt: str | None) -> Evidence:
    text = clip(excerpt, 200)[0] if excerpt else None
    return Evidence(trace_id=trace_id, span_id=span_id, excerpt=text, verified=True)
