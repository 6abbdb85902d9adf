"""Verification: a draft checked against the store becomes a Finding with a status.

The model proposes; the store decides. Deterministic, no LLM. What is checked:

- ids: every cited trace and span must exist, and a span must belong to the cited trace
  (unknown ones are dropped);
- excerpts: each must occur, whitespace-normalized, in the text of the span it cites
  (input, output, attributes, status message, events); one that does not is dropped;
- matcher: a valid span filter that selects something, with a discriminating condition,
  selecting every cited span and trace, and not nearly every span of its kind;
- prevalence, first and last seen: counted by the store from the matcher.

Status: `verified` when every check held; `unverified` when the finding has nothing to
stand on (no cited id exists, no usable matcher, a matcher with no discriminating
condition, or one that selects none of the evidence); `partial` otherwise. Each failed
check is a StatusReason (code refs and commits dropped by harness.verify are listed too,
without lowering the status: what is kept was checked). Verification is synchronous
(store calls): run it in a thread.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from halo_mcp.findings.drafts import EvidenceDraft, FindingDraft, short_errors
from halo_mcp.findings.ids import new_finding_id
from halo_mcp.findings.models import (
    Evidence,
    Finding,
    FindingStatus,
    Prevalence,
    StatusReason,
)
from halo_mcp.store.api import TraceReader
from halo_mcp.store.errors import StoreError
from halo_mcp.store.models import SpanFilter, SpanKind, SpanView, filter_help
from halo_mcp.text import clip

MAX_EXCERPT_CHARS = 500
MAX_TEXT_CHARS = 4000
MAX_EVIDENCE = 20
#: A matcher selecting more than this share of the spans of its kind (or of the traces,
#: for a trace rule) is too broad for a finding about a failure.
TOO_BROAD_SHARE = 0.8
#: Filter fields that do not single out a failure on their own.
_NON_DISCRIMINATING = {"kind", "service", "start_after", "start_before"}
#: Span content read to check excerpts (no clipping below this many characters).
_CONTENT_CHARS = 2_000_000
#: Spans of one trace searched for an excerpt cited without a span id.
_TRACE_SPANS_SEARCHED = 500

#: Reasons that leave a finding nothing to stand on: its status is then `unverified`.
BLOCKING = frozenset(
    {
        "no_evidence",
        "no_matcher",
        "bad_matcher",
        "matcher_empty",
        "matcher_matches_nothing",
        "matcher_not_discriminating",
        "matcher_misses_all_evidence",
        "adopt_unknown",
    }
)


def verify_draft(
    store: TraceReader,
    draft: FindingDraft,
    run_id: str,
    finding_id: str | None = None,
    *,
    adoptable: Mapping[str, Finding] | None = None,
) -> Finding:
    """Check a draft against the store and return the Finding with its status and reasons.

    `adoptable` maps triage item and sub-agent draft ids to findings the draft may take
    over (`draft.adopt`)."""
    reasons: list[StatusReason] = []
    notes: list[str] = []
    draft, adopted = _adopt(draft, adoptable or {}, reasons, notes)
    items = list(draft.evidence)
    if len(items) > MAX_EVIDENCE:
        notes.append(f"kept the first {MAX_EVIDENCE} of {len(items)} evidence items")
        items = items[:MAX_EVIDENCE]
    evidence = _check_ids(store, items, reasons)
    evidence = _check_excerpts(store, evidence, reasons)
    if not evidence:
        reasons.append(
            StatusReason(code="no_evidence", detail="no cited trace or span id exists in the store")
        )
    matcher = _parse_matcher(draft.matcher, reasons)
    prevalence = None
    first_seen = last_seen = None
    if matcher is not None:
        prevalence = _count(store, matcher, reasons)
        if prevalence is None:
            matcher = None
        elif prevalence.spans_matched > 0:
            _check_discriminating(store, matcher, prevalence, reasons)
            _check_covers_evidence(store, matcher, evidence, reasons)
            first_seen, last_seen = _seen(store, matcher)
    validation = _text(draft.validation)
    if adopted is not None and adopted.source == "triage":
        validation = adopted.validation  # carries the triage rule `check` recounts with
    status = status_of(reasons)
    return Finding(
        id=finding_id or new_finding_id(),
        run_id=run_id,
        title=_text(draft.title, 300),
        category=_text(draft.category, 80),
        severity=draft.severity,
        description=_text(draft.description),
        root_cause=_text(draft.root_cause),
        suggested_change=_text(draft.suggested_change),
        validation=validation,
        evidence=evidence,
        matcher=matcher,
        prevalence=prevalence,
        verified=status == FindingStatus.verified,
        verification_notes=notes + [r.detail for r in reasons],
        status=status,
        status_reasons=reasons,
        first_seen=first_seen,
        last_seen=last_seen,
    )


#: Reasons that say what was removed without lowering the status: the finding's claims
#: about the traces stand, and what is kept was checked (dropped code refs and commits).
INFORMATIONAL = frozenset({"code_ref_dropped", "commit_dropped"})


def status_of(reasons: Iterable[StatusReason]) -> FindingStatus:
    codes = {r.code for r in reasons} - INFORMATIONAL
    if not codes:
        return FindingStatus.verified
    if codes & BLOCKING:
        return FindingStatus.unverified
    return FindingStatus.partial


# ------------------------------------------------------------------------ adoption


def _adopt(
    draft: FindingDraft,
    adoptable: Mapping[str, Finding],
    reasons: list[StatusReason],
    notes: list[str],
) -> tuple[FindingDraft, Finding | None]:
    """A draft that takes over a triage item or a sub-agent draft: the item's matcher and
    evidence fill what the draft leaves out."""
    if not draft.adopt:
        return draft, None
    item = adoptable.get(draft.adopt.strip())
    if item is None:
        known = ", ".join(sorted(adoptable)[:10]) or "none in this run"
        reasons.append(
            StatusReason(
                code="adopt_unknown",
                detail=f"adopt names {draft.adopt!r}, which is not a triage item or draft of "
                f"this run (known: {known})",
                ids=[draft.adopt],
            )
        )
        return draft, None
    update: dict[str, Any] = {}
    if draft.matcher is None and item.matcher is not None:
        update["matcher"] = item.matcher
    cited = {(e.trace_id, e.span_id) for e in draft.evidence}
    # Triage examples carry a description of what was counted, not a quote: ids only.
    quotes = item.source != "triage"
    extra = [
        EvidenceDraft(trace_id=e.trace_id, span_id=e.span_id, excerpt=e.excerpt if quotes else None)
        for e in item.evidence
        if (e.trace_id, e.span_id) not in cited
    ]
    if extra:
        update["evidence"] = [*draft.evidence, *extra]
    notes.append(f"adopted {item.source} item {item.id} ({clip(item.title, 120)[0]})")
    return draft.model_copy(update=update), item


# ----------------------------------------------------------------------------- ids


def _check_ids(
    store: TraceReader, items: Sequence[EvidenceDraft], reasons: list[StatusReason]
) -> list[Evidence]:
    if not items:
        return []
    trace_ids = sorted({e.trace_id for e in items})
    span_ids = sorted({e.span_id for e in items if e.span_id})
    known_traces, known_spans = store.known_ids(trace_ids, span_ids)
    span_trace: dict[str, str] = {}
    if known_spans:
        page = store.query_spans(
            SpanFilter(span_ids=sorted(known_spans)),
            fields=("trace_id", "span_id"),
            limit=max(1, len(known_spans) * 2),
        )
        span_trace = {v.span_id: v.trace_id for v in page.spans if v.span_id and v.trace_id}
    unknown_traces: list[str] = []
    corrected: list[str] = []
    unknown_spans: list[str] = []
    elsewhere: list[str] = []
    kept: list[Evidence] = []
    for item in items:
        trace_id, span_id = item.trace_id, item.span_id
        if trace_id not in known_traces:
            if span_id and span_id in span_trace:
                trace_id = span_trace[span_id]  # a typo in the trace id: the span says which
                corrected.append(item.trace_id)
            else:
                unknown_traces.append(item.trace_id)
                continue
        if span_id and span_trace.get(span_id) != trace_id:
            (unknown_spans if span_id not in span_trace else elsewhere).append(span_id)
            span_id = None
        excerpt = _text(item.excerpt, MAX_EXCERPT_CHARS) if item.excerpt else None
        kept.append(Evidence(trace_id=trace_id, span_id=span_id, excerpt=excerpt, verified=True))
    _name_ids(
        reasons,
        "unknown_trace",
        f"dropped {len(unknown_traces)} evidence trace id(s) not in the store",
        unknown_traces,
    )
    _name_ids(
        reasons,
        "unknown_trace",
        "replaced trace id(s) not in the store by the trace of the span cited with them",
        corrected,
    )
    _name_ids(
        reasons,
        "unknown_span",
        "dropped span id(s) not in the store (kept their traces)",
        unknown_spans,
    )
    _name_ids(
        reasons,
        "span_in_other_trace",
        "dropped span id(s) that belong to another trace than the one cited (kept the cited trace)",
        elsewhere,
    )
    return _dedupe(kept)


def _dedupe(evidence: list[Evidence]) -> list[Evidence]:
    seen: set[tuple[str, str | None, str | None]] = set()
    out = []
    for e in evidence:
        key = (e.trace_id, e.span_id, e.excerpt)
        if key not in seen:
            seen.add(key)
            out.append(e)
    return out


# ------------------------------------------------------------------------ excerpts


def normalize(text: str) -> str:
    """Whitespace runs collapsed to one space, ends stripped: how excerpts are compared."""
    return " ".join(text.split())


_CUT_MARK = re.compile(r"…\[truncated: \d+ chars\]|\[truncated: \d+ chars\]")


def excerpt_occurs(excerpt: str, text: str) -> bool:
    """Whether `excerpt` occurs in `text` after normalizing whitespace. A quote elided
    with '...' or '…' (or cut with the tools' truncation marker) must have each of its
    parts occur, in order."""
    haystack = normalize(text)
    parts = [normalize(p) for p in re.split(r"\.\.\.|…", _CUT_MARK.sub("…", excerpt))]
    parts = [p for p in parts if p]
    if not parts:
        return False
    at = 0
    for part in parts:
        found = haystack.find(part, at)
        if found < 0:
            return False
        at = found + len(part)
    return True


def span_content(view: SpanView) -> str:
    """The text an excerpt may quote: input, output, status message, attribute values and
    events (strings as they are, other values as JSON)."""
    parts = [view.input or "", view.output or "", view.error_message or ""]
    parts += _strings(view.attributes)
    parts += _strings(view.events)
    return "\n".join(p for p in parts if p)


def _strings(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        out = []
        for key, item in value.items():
            out.append(str(key))
            out += _strings(item)
        return out
    if isinstance(value, list | tuple):
        return [s for item in value for s in _strings(item)]
    return [json.dumps(value)]


_CONTENT_FIELDS = (
    "trace_id",
    "span_id",
    "error_message",
    "input",
    "output",
    "attributes",
    "events",
)


def _check_excerpts(
    store: TraceReader, evidence: list[Evidence], reasons: list[StatusReason]
) -> list[Evidence]:
    quoted = [e for e in evidence if e.excerpt]
    if not quoted:
        return evidence
    span_ids = sorted({e.span_id for e in quoted if e.span_id})
    texts: dict[str, str] = {}
    if span_ids:
        page = store.query_spans(
            SpanFilter(span_ids=span_ids),
            fields=_CONTENT_FIELDS,
            limit=len(span_ids) * 2,
            max_chars=_CONTENT_CHARS,
        )
        texts = {v.span_id: span_content(v) for v in page.spans if v.span_id}
    missing: list[str] = []
    out: list[Evidence] = []
    for e in evidence:
        if not e.excerpt:
            out.append(e)
            continue
        if e.span_id:
            if excerpt_occurs(e.excerpt, texts.get(e.span_id, "")):
                out.append(e)
                continue
        else:
            found = _span_quoting(store, e.trace_id, e.excerpt)
            if found is not None:
                out.append(e.model_copy(update={"span_id": found}))
                continue
        missing.append(e.span_id or e.trace_id)
        out.append(e.model_copy(update={"excerpt": None}))
    _name_ids(
        reasons,
        "excerpt_not_found",
        f"dropped {len(missing)} excerpt(s) that do not occur in the span(s) they cite "
        "(whitespace-normalized)",
        missing,
    )
    return _dedupe(out)


def _span_quoting(store: TraceReader, trace_id: str, excerpt: str) -> str | None:
    """The first span of the trace whose content holds the excerpt (evidence cited with a
    trace id only), or None."""
    tree = store.trace_tree(
        trace_id, fields=_CONTENT_FIELDS, max_chars=_CONTENT_CHARS, limit=_TRACE_SPANS_SEARCHED
    )
    for node in tree.nodes:
        if excerpt_occurs(excerpt, span_content(node.span)):
            return node.span.span_id
    return None


# ------------------------------------------------------------------------- matcher


def _parse_matcher(raw: Any, reasons: list[StatusReason]) -> SpanFilter | None:
    if raw is None:
        reasons.append(
            StatusReason(
                code="no_matcher", detail="no matcher given: prevalence cannot be computed"
            )
        )
        return None
    try:
        if isinstance(raw, str):
            raw = json.loads(raw)
        matcher = raw if isinstance(raw, SpanFilter) else SpanFilter.model_validate(raw)
    except (ValidationError, ValueError) as exc:
        detail = short_errors(exc) if isinstance(exc, ValidationError) else str(exc)
        reasons.append(
            StatusReason(
                code="bad_matcher",
                detail=f"matcher is not a valid span filter ({detail}). {filter_help()}",
            )
        )
        return None
    if matcher.is_empty():
        reasons.append(
            StatusReason(
                code="matcher_empty",
                detail="matcher is empty (it selects every span), so it proves nothing",
            )
        )
        return None
    if matcher.trace_ids or matcher.span_ids:
        reasons.append(
            StatusReason(
                code="matcher_lists_ids",
                detail="matcher lists trace/span ids, so prevalence only counts the cited "
                "data and cannot be rechecked on new traces; describe the failure instead "
                "(name, tool, errors, text, trace_rule)",
            )
        )
    return matcher


def _count(
    store: TraceReader, matcher: SpanFilter, reasons: list[StatusReason]
) -> Prevalence | None:
    try:
        count = store.count(matcher)
    except StoreError as exc:
        reasons.append(StatusReason(code="bad_matcher", detail=f"matcher rejected: {exc}"))
        return None
    prevalence = Prevalence(
        traces_matched=count.traces,
        traces_in_scope=count.traces_in_scope,
        spans_matched=count.spans,
    )
    if count.spans == 0:
        reasons.append(
            StatusReason(
                code="matcher_matches_nothing", detail="matcher matches no span in the traces"
            )
        )
    return prevalence


def _check_discriminating(
    store: TraceReader, matcher: SpanFilter, prevalence: Prevalence, reasons: list[StatusReason]
) -> None:
    """Too broad: no condition that singles out a failure, or nearly all spans of its kind
    (or nearly all traces, for a trace rule) selected."""
    used = set(matcher.model_dump(exclude_defaults=True))
    if not used - _NON_DISCRIMINATING:
        reasons.append(
            StatusReason(
                code="matcher_not_discriminating",
                detail=f"matcher too broad: it only says {_describe(matcher)}, which selects "
                f"{prevalence.traces_matched}/{prevalence.traces_in_scope} traces "
                f"({prevalence.rate:.0%}) and {prevalence.spans_matched} spans; add the "
                "condition that singles out the failure (errors_only, name, tool_name, text, "
                "attributes or a trace_rule)",
            )
        )
        return
    kinds = matcher.kind or _implied_kinds(matcher)
    scope = SpanFilter(kind=kinds) if kinds else SpanFilter()
    try:
        of_kind = store.count(scope).spans
    except StoreError:
        return
    share = prevalence.spans_matched / of_kind if of_kind else 0.0
    what = f"{'/'.join(k.value for k in kinds)} spans" if kinds else "spans"
    if share > TOO_BROAD_SHARE and (prevalence.traces_matched > 1 or of_kind > 1):
        reasons.append(
            StatusReason(
                code="matcher_too_broad",
                detail=f"matcher too broad: it selects {prevalence.spans_matched} of "
                f"{of_kind} {what} ({share:.0%}, over {TOO_BROAD_SHARE:.0%}) for a failure; "
                "narrow it to the failing ones",
            )
        )
    elif matcher.trace_rule is not None and prevalence.rate > TOO_BROAD_SHARE:
        reasons.append(
            StatusReason(
                code="matcher_too_broad",
                detail=f"matcher too broad: its trace rule holds in "
                f"{prevalence.traces_matched}/{prevalence.traces_in_scope} traces "
                f"({prevalence.rate:.0%}, over {TOO_BROAD_SHARE:.0%}); tighten its threshold",
            )
        )


def _implied_kinds(matcher: SpanFilter) -> list[SpanKind] | None:
    """The span kind a matcher's fields imply when it names none (a tool name: tool calls;
    a model: LLM calls)."""
    if matcher.tool_name is not None:
        return [SpanKind.tool]
    if matcher.model is not None:
        return [SpanKind.llm]
    return None


def _check_covers_evidence(
    store: TraceReader, matcher: SpanFilter, evidence: list[Evidence], reasons: list[StatusReason]
) -> None:
    """The matcher must select every cited span, and a span in every cited trace."""
    if not evidence:
        return
    spans = sorted({e.span_id for e in evidence if e.span_id})
    traces = sorted({e.trace_id for e in evidence})
    # Ask only for cited ids the matcher's own id lists allow (the others are outside).
    ask_spans = [s for s in spans if matcher.span_ids is None or s in matcher.span_ids]
    ask_traces = [t for t in traces if matcher.trace_ids is None or t in matcher.trace_ids]
    try:
        covered_spans: set[str] = set()
        if ask_spans:
            page = store.query_spans(
                matcher.model_copy(update={"span_ids": ask_spans}),
                fields=("span_id",),
                limit=len(ask_spans) * 2,
            )
            covered_spans = {v.span_id for v in page.spans if v.span_id}
        covered_traces: set[str] = set()
        if ask_traces:
            page_t = store.query_traces(
                matcher.model_copy(update={"trace_ids": ask_traces[:50]}), limit=50
            )
            covered_traces = {t.trace_id for t in page_t.traces}
        for trace_id in ask_traces[50:]:  # beyond one page: count each remaining trace
            if store.count(matcher.model_copy(update={"trace_ids": [trace_id]})).spans:
                covered_traces.add(trace_id)
    except StoreError:
        return
    outside = [s for s in spans if s not in covered_spans]
    outside += [t for t in traces if t not in covered_traces]
    if not outside:
        return
    cited = len(spans) + len(traces)
    if len(outside) == cited:
        reasons.append(
            StatusReason(
                code="matcher_misses_all_evidence",
                detail="the matcher selects none of the cited spans and traces: "
                f"{_ids(outside)}; make it select the failure the evidence shows",
                ids=outside,
            )
        )
        return
    reasons.append(
        StatusReason(
            code="matcher_misses_evidence",
            detail=f"the matcher misses {len(outside)} of the {cited} cited spans/traces: "
            f"{_ids(outside)}",
            ids=outside,
        )
    )


def _seen(store: TraceReader, matcher: SpanFilter) -> tuple[Any, Any]:
    try:
        return store.seen(matcher)
    except StoreError:
        return None, None


# -------------------------------------------------------------------------- helpers


def _describe(matcher: SpanFilter) -> str:
    return matcher.model_dump_json(exclude_defaults=True)


def _name_ids(reasons: list[StatusReason], code: str, detail: str, ids: Sequence[str]) -> None:
    """Add the reason `code` when there are `ids`: `detail`, then the ids (the first few)."""
    if ids:
        reasons.append(StatusReason(code=code, detail=f"{detail}: {_ids(ids)}", ids=_unique(ids)))


def _ids(ids: Sequence[str], most: int = 10) -> str:
    unique = _unique(ids)
    shown = ", ".join(unique[:most])
    return shown + (f" and {len(unique) - most} more" if len(unique) > most else "")


def _unique(ids: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(ids))


def _text(value: str | None, limit: int = MAX_TEXT_CHARS) -> str:
    return clip((value or "").strip(), limit)[0]
