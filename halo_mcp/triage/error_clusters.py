"""Error signature clusters and retry storms.

Every error span is grouped by (kind, tool, normalized message with models and volatile
values masked). A cluster is an item of its own category (a turn/step limit, a rate limit,
a context overflow, a tool error...); the traces where one cluster repeats at least
MIN_STORM_ERRORS times are a retry storm.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from halo_mcp.findings.models import Evidence, Severity
from halo_mcp.store.api import AggregateReader
from halo_mcp.store.models import SpanFilter, SpanKind
from halo_mcp.store.signatures import normalize_message
from halo_mcp.text import clip
from halo_mcp.text_patterns import escape
from halo_mcp.triage.bursts import all_start_bins, bins_for_80, burst_note
from halo_mcp.triage.models import EXAMPLES, Candidate, Measurement, TriageRule, evidence, who

if TYPE_CHECKING:
    from halo_mcp.triage.context import AggregateContext

#: Errors of one cluster in one trace that make a retry storm.
MIN_STORM_ERRORS = 3

#: Each framework's cap on steps, turns, requests or recursion, as its error words it:
#: Agents SDK MaxTurnsExceeded ("Max turns (5) exceeded"), pydantic-ai UsageLimitExceeded
#: ("would exceed the request_limit of 5"), LangGraph GraphRecursionError ("Recursion limit
#: of 10 reached"), LangChain/CrewAI/smolagents max iterations and max steps, Google ADK
#: LlmCallsLimitExceededError ("Max number of llm calls limit of `5` exceeded"). CrewAI past
#: max_iter asks the model for a final answer; when it still calls a tool, that list of
#: tool calls fails TaskOutput's validation ("validation error for TaskOutput raw Input
#: should be a valid string [...] input_type=list").
_TURN_LIMIT = re.compile(
    r"validation error for TaskOutput\W+raw\W+Input should be a valid string[^\n]*"
    r"input_type=list|"
    r"max[ _.-]?turns|turn limit|step limit|max[ _.-]?steps|max[ _.-]?iterations|"
    r"iteration limit|recursion limit|too many (?:turns|steps|iterations)|"
    r"maxturnsexceeded|usagelimitexceeded|graphrecursionerror|llmcallslimitexceeded|"
    r"llm calls limit|"
    r"(?:request|tool_calls|total_tokens)_limit|maximum (?:number of )?(?:iterations|steps)|"
    r"reached max(?:imum)? (?:steps|iterations)",
    re.I,
)
_RATE_LIMIT = re.compile(
    r"rate[ _.-]?limit|too many requests|\b429\b|quota exceeded|resource[ _]?exhausted", re.I
)
_CONTEXT = re.compile(
    r"context[ _.-]?length|context[ _.-]?window|maximum context|prompt is too long|"
    r"too many tokens|input is too long|exceeds the context",
    re.I,
)
_TIMEOUT = re.compile(r"timed?[ _.-]?out|timeout|deadline exceeded", re.I)
_PLACEHOLDER = re.compile(r"'<S>'|\"<S>\"|<[A-Z]+>")
#: Ids, uuids and numbers are one kind of volatile value for clustering: an all-digit hex
#: id normalizes to <N>, a lettered one to <ID>, and they must not split a cluster.
_VOLATILE = re.compile(r"<(?:ID|UUID)>")
_GLUED = re.compile(r"[\w-]*<N>[\w-]*")
_ERROR_TYPE = re.compile(r"^\s*([A-Za-z_][\w.]{2,60})\s*:")
#: An exception class named anywhere in a signature (RateLimitError, MaxTurnsExceeded...).
_CLASS_NAME = re.compile(r"\b((?:[A-Z][a-z0-9]+)+(?:Error|Exception|Exceeded|Timeout|Interrupt))\b")
_KINDS = ("agent", "llm", "tool", "chain", "guardrail", "other")

ClusterKey = tuple[str, str | None, str]


@dataclass
class Cluster:
    """The error spans of one signature: per-trace counts, start times, examples."""

    kind: str
    tool_name: str | None
    signature: str
    per_trace: dict[str, int] = field(default_factory=dict)
    spans: int = 0
    starts: list[int] = field(default_factory=list)
    examples: list[Evidence] = field(default_factory=list)
    storm_examples: dict[str, Evidence] = field(default_factory=dict)


# -- signatures --------------------------------------------------------------------------


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


def signature_regex(signature: str) -> str | None:
    """A regex matching the raw messages of a signature: its first literal part and its
    longest one (placeholders and masked models become gaps)."""
    parts = [p.strip() for p in re.split(r"<MODEL>|…|" + _PLACEHOLDER.pattern, signature)]
    parts = [p for p in parts if len(p) >= 4]
    if not parts:
        return None
    first = parts[0]
    longest = max(parts, key=len)
    chosen = [first] if longest is first else [first, longest]
    return ".*".join(escape(p[:120]) for p in chosen)


def error_type(signature: str) -> str:
    """What a title calls the error: its exception type when the signature names one
    (without its module: "openai.RateLimitError" -> "RateLimitError"), else the start of
    the message."""
    match = _ERROR_TYPE.match(signature)
    if match and "<" not in match.group(1):
        name = match.group(1)
        last = name.rsplit(".", 1)[-1]
        return last if last[:1].isupper() else name
    match = _CLASS_NAME.search(signature)
    if match:
        return match.group(1)
    return clip(signature, 60)[0] or "error"


# -- counting ----------------------------------------------------------------------------


def error_clusters(reader: AggregateReader) -> dict[ClusterKey, Cluster]:
    """Every error span grouped by (kind, tool, normalized message with models masked)."""
    models = reader.model_names()
    normalized: dict[str | None, str] = {}
    clusters: dict[ClusterKey, Cluster] = {}
    for kind, tool, name, message, trace_id, span_id, start in reader.error_spans():
        signature = normalized.get(message)
        if signature is None:
            signature = cluster_signature(message, models)
            signature = signature or "(no message)"
            if len(normalized) < 100_000:
                normalized[message] = signature
        key = (kind or "other", tool, signature)
        cluster = clusters.get(key)
        if cluster is None:
            cluster = clusters[key] = Cluster(kind or "other", tool, signature)
        seen = cluster.per_trace.get(trace_id, 0)
        cluster.per_trace[trace_id] = seen + 1
        cluster.spans += 1
        if len(cluster.starts) < 200_000:
            cluster.starts.append(start or 0)
        example = None
        if seen == 0 and len(cluster.examples) < EXAMPLES:
            example = evidence(trace_id, span_id, message or name)
            cluster.examples.append(example)
        if seen + 1 == MIN_STORM_ERRORS and len(cluster.storm_examples) < EXAMPLES:
            cluster.storm_examples[trace_id] = example or evidence(trace_id, span_id, message)
    return clusters


def storm_measure(cluster: Cluster, min_count: int, total: int) -> Measurement:
    traces = {t for t, n in cluster.per_trace.items() if n >= min_count}
    spans = sum(n for t, n in cluster.per_trace.items() if n >= min_count)
    examples = [e for t, e in cluster.storm_examples.items() if t in traces]
    return Measurement(traces, spans, examples, total)


# -- items -------------------------------------------------------------------------------


def cluster_items(ctx: AggregateContext) -> list[Candidate]:
    t0, t1 = ctx.reader.time_range()
    baseline = bins_for_80(all_start_bins(ctx.reader, t0, t1)) if t1 > t0 else None
    out = []
    for cluster in ctx.clusters.values():
        err_type = error_type(cluster.signature)
        source = who(cluster.kind, cluster.tool_name)
        category = _category(cluster)
        measured = Measurement(set(cluster.per_trace), cluster.spans, cluster.examples)
        rate = len(measured.traces) / ctx.total if ctx.total else 0.0
        burst = burst_note(cluster.starts, t0, t1, baseline)
        description = (
            f"{cluster.spans} error spans in {len(cluster.per_trace)} traces from {source} "
            f"share the signature: {clip(cluster.signature, 300)[0]}"
        )
        if burst:
            description += f" {burst}"
        rule = TriageRule(
            kind="error_cluster",
            span_kind=cluster.kind,
            tool_name=cluster.tool_name,
            signature=cluster.signature,
        )
        out.append(
            Candidate(
                category=category,
                severity=_severity(category, rate),
                title=f"{_named(err_type, category)} in {source}",
                description=description,
                rule=rule,
                matcher=_matcher(cluster),
                exact=True,
                measure=measured,
            )
        )
        storm = storm_measure(cluster, MIN_STORM_ERRORS, ctx.total)
        if len(storm.traces) >= 2:
            out.append(_storm_candidate(cluster, rule, err_type, source, storm))
    return out


def _storm_candidate(
    cluster: Cluster, rule: TriageRule, err_type: str, source: str, storm: Measurement
) -> Candidate:
    return Candidate(
        category="retries",
        severity=Severity.medium,
        title=f"Retry storm: >= {MIN_STORM_ERRORS} x {err_type} from {source} in a trace",
        description=(
            f"In {len(storm.traces)} traces the same error ({err_type}) repeats at least "
            f"{MIN_STORM_ERRORS} times ({storm.spans} error spans in all): the harness "
            "retries a failure that keeps failing."
        ),
        rule=rule.model_copy(update={"kind": "retry_storm", "min_count": MIN_STORM_ERRORS}),
        matcher=_matcher(cluster),
        exact=False,
        measure=storm,
    )


def _category(cluster: Cluster) -> str:
    text = cluster.signature
    if _TURN_LIMIT.search(text):
        return "turn-limit"
    if _CONTEXT.search(text):
        return "context-overflow"
    if _RATE_LIMIT.search(text):
        return "rate-limit"
    if _TIMEOUT.search(text):
        return "timeout"
    if cluster.tool_name or cluster.kind == "tool":
        return "tool-error"
    return {"llm": "llm-error", "agent": "agent-error"}.get(cluster.kind, "error")


#: Categories an error's type may not say by itself (an HTTP 400 for a context overflow).
_CATEGORY_WORDS = {
    "turn-limit": (_TURN_LIMIT, "turn limit"),
    "context-overflow": (_CONTEXT, "context overflow"),
    "rate-limit": (_RATE_LIMIT, "rate limit"),
    "timeout": (_TIMEOUT, "timeout"),
}


def _named(err_type: str, category: str) -> str:
    """The error's type, with its category when the type does not say it
    ("OpenAIInvalidRequestError (context overflow)")."""
    pattern, words = _CATEGORY_WORDS.get(category, (None, ""))
    if pattern is None or pattern.search(err_type):
        return err_type
    return f"{err_type} ({words})"


def _severity(category: str, rate: float) -> Severity:
    if category in ("turn-limit", "context-overflow"):
        return Severity.high
    if category in ("tool-error", "agent-error", "timeout") and rate >= 0.1:
        return Severity.high
    return Severity.medium


def _matcher(cluster: Cluster) -> SpanFilter:
    return SpanFilter(
        kind=[SpanKind(cluster.kind)] if cluster.kind in _KINDS else None,
        tool_name=cluster.tool_name,
        errors_only=True,
        text=signature_regex(cluster.signature),
    )
