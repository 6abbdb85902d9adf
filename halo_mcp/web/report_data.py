"""What the HTML report shows, gathered through the public store, run store and check APIs.

Every figure comes from the store (prevalence from the finding, its interval computed here,
first/last seen and daily rates counted with the finding's matcher); the model's words are
shown as written. Everything that can grow is bounded: a few evidence traces per finding,
a few hundred spans per trace, attribute values clipped, at most `MAX_BUCKETS` rate buckets.
When the trace files cannot be opened any more the report still shows the findings, and
says what it could not draw.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from datetime import date, datetime, timedelta, timezone

from pydantic import BaseModel, Field

from halo_mcp.check.recount import CheckReport, FindingCheck
from halo_mcp.engine.findings import sort_findings
from halo_mcp.engine.models import RunRecord
from halo_mcp.findings.models import Finding
from halo_mcp.store.api import TraceReader
from halo_mcp.store.errors import StoreError
from halo_mcp.store.models import DEFAULT_SPAN_FIELDS, SpanFilter, TraceTree

log = logging.getLogger(__name__)

#: Evidence traces drawn per finding, spans per drawn trace, characters per attribute value.
MAX_EVIDENCE_TRACES = 3
MAX_TRACE_SPANS = 300
MAX_VALUE_CHARS = 400
#: A drawn trace's JSON beyond this drops the content of spans no finding cites.
MAX_TRACE_BYTES = 600_000
#: Rate buckets per finding: one per day up to this many days, wider beyond.
MAX_BUCKETS = 60
#: The span fields a drawn trace carries: the row facts plus what a click shows.
TRACE_FIELDS = (*DEFAULT_SPAN_FIELDS, "attributes", "input", "output", "events")
#: z for a 95% two-sided interval.
Z95 = 1.959963984540054


class Interval(BaseModel):
    """A proportion with its 95% Wilson score interval."""

    rate: float
    low: float
    high: float


class RateBucket(BaseModel):
    """Traces starting a span in [start, end) and how many of them the matcher selects."""

    start: date
    days: int = Field(description="Bucket width in days (1 unless the range is long).")
    traces: int
    matched: int


class FindingView(BaseModel):
    rank: int
    finding: Finding
    interval: Interval | None = Field(None, description="None when prevalence is unknown.")
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    rates: list[RateBucket] = []
    trace_ids: list[str] = Field(default_factory=list, description="Evidence traces drawn.")
    check: FindingCheck | None = None
    notes: list[str] = []


class RunSummary(BaseModel):
    id: str
    status: str
    prompt: str
    trace_paths: list[str]
    created_at: datetime
    finished_at: datetime | None = None
    error: str | None = None
    outcome: str | None = None
    warning: str | None = None


class CheckSummary(BaseModel):
    baseline: str
    new_paths: list[str]
    traces_in_scope: int
    verdicts: dict[str, int]
    rule: str


class ReportData(BaseModel):
    """Everything the report page draws; embedded in the page as JSON."""

    generated_at: datetime
    run: RunSummary
    traces_in_scope: int | None = None
    time_range: tuple[datetime, datetime] | None = None
    findings: list[FindingView]
    traces: dict[str, TraceTree] = Field(
        default_factory=dict, description="Evidence traces by id (shared between findings)."
    )
    check: CheckSummary | None = None
    notes: list[str] = []


def wilson(matched: int, total: int, z: float = Z95) -> Interval:
    """Wilson score interval: well-behaved near 0 and 1 and for small samples, where the
    normal approximation would give negative rates or zero width."""
    if total <= 0:
        return Interval(rate=0.0, low=0.0, high=1.0)
    p = matched / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    low = 0.0 if matched <= 0 else max(0.0, centre - half)
    high = 1.0 if matched >= total else min(1.0, centre + half)
    return Interval(rate=p, low=low, high=high)


def build_report(
    run: RunRecord,
    store: TraceReader | None,
    *,
    check: CheckReport | None = None,
    store_error: str | None = None,
) -> ReportData:
    """The report of `run`, drawing evidence and rates from `store` when it is open."""
    notes: list[str] = []
    if store is None:
        notes.append(
            "The run's trace files could not be opened"
            + (f" ({store_error})" if store_error else "")
            + ": first/last seen, rates and evidence traces are not drawn."
        )
    checks = {c.finding_id: c for c in check.results} if check else {}
    time_range = _time_range(store) if store is not None else None
    buckets = _buckets(time_range) if time_range else []
    totals = _bucket_totals(store, buckets) if store is not None else []
    traces: dict[str, TraceTree] = {}
    views = ranked_findings(run.findings)
    for view in views:
        view.check = checks.get(view.finding.id)
        if store is not None:
            _fill_from_store(view, store, buckets, totals, traces)
    summary = RunSummary(
        id=run.id,
        status=str(run.status),
        prompt=run.prompt,
        trace_paths=run.trace_paths,
        created_at=run.created_at,
        finished_at=run.finished_at,
        error=run.error,
        outcome=str(run.outcome) if run.outcome else None,
        warning=run.warning,
    )
    cited = {e.span_id for f in run.findings for e in f.evidence if e.span_id}
    cut = [tid for tid, tree in traces.items() if fit_trace(tree, cited, MAX_TRACE_BYTES)]
    if cut:
        notes.append(
            f"{len(cut)} large evidence trace(s) keep attributes and content only for the cited "
            "spans (see them all with `halo-mcp ui`)."
        )
    return ReportData(
        generated_at=datetime.now(timezone.utc),
        run=summary,
        traces_in_scope=store.count().traces_in_scope if store is not None else None,
        time_range=time_range,
        findings=views,
        traces=traces,
        check=_check_summary(check) if check else None,
        notes=notes,
    )


def ranked_findings(findings: Sequence[Finding]) -> list[FindingView]:
    """Findings most severe and most prevalent first, with their intervals (no store)."""
    views = []
    for rank, finding in enumerate(sort_findings(findings), 1):
        view = FindingView(
            rank=rank,
            finding=finding,
            first_seen=finding.first_seen,
            last_seen=finding.last_seen,
        )
        if finding.prevalence is not None:
            view.interval = wilson(
                finding.prevalence.traces_matched, finding.prevalence.traces_in_scope
            )
        views.append(view)
    return views


def _fill_from_store(
    view: FindingView,
    store: TraceReader,
    buckets: Sequence[tuple[datetime, datetime]],
    totals: Sequence[int],
    traces: dict[str, TraceTree],
) -> None:
    finding = view.finding
    matcher = finding.matcher
    try:
        if matcher is not None:
            if view.first_seen is None or view.last_seen is None:
                view.first_seen, view.last_seen = seen_range(store, matcher)
            view.rates = bucket_rates(store, matcher, buckets, totals)
        else:
            view.notes.append("No matcher: first/last seen and the rate chart need one.")
    except StoreError as exc:
        view.notes.append(f"The matcher could not be counted here ({exc}).")
    wanted = list(dict.fromkeys(e.trace_id for e in finding.evidence))[:MAX_EVIDENCE_TRACES]
    for trace_id in wanted:
        if trace_id not in traces:
            try:
                traces[trace_id] = store.trace_tree(
                    trace_id, fields=TRACE_FIELDS, max_chars=MAX_VALUE_CHARS, limit=MAX_TRACE_SPANS
                )
            except StoreError as exc:
                view.notes.append(f"Evidence trace {trace_id} is not drawn: {exc}")
                continue
        view.trace_ids.append(trace_id)
    more = len({e.trace_id for e in finding.evidence}) - len(wanted)
    if more > 0:
        view.notes.append(f"{more} more evidence trace(s) not drawn (see the finding's JSON).")


def fit_trace(tree: TraceTree, keep: set[str], budget: int) -> bool:
    """Drop attributes and content of the spans not in `keep` when the tree's JSON is over
    `budget` bytes (spans with many flattened message attributes add up). True if cut."""
    if len(tree.model_dump_json()) <= budget:
        return False
    for node in tree.nodes:
        if node.span.span_id not in keep:
            node.span.attributes = node.span.input = node.span.output = node.span.events = None
    return True


def seen_range(store: TraceReader, matcher: SpanFilter) -> tuple[datetime | None, datetime | None]:
    """Start of the earliest and of the latest span the matcher selects."""
    return store.seen(matcher)


def _time_range(store: TraceReader) -> tuple[datetime, datetime] | None:
    first = store.query_spans(sort="start_time", limit=1, fields=["start_time"]).spans
    last = store.query_spans(sort="-start_time", limit=1, fields=["start_time"]).spans
    if not first or not last or first[0].start_time is None or last[0].start_time is None:
        return None
    return first[0].start_time, last[0].start_time


def _buckets(time_range: tuple[datetime, datetime]) -> list[tuple[datetime, datetime]]:
    """Whole UTC days covering the range, grouped so there are at most MAX_BUCKETS."""
    first = time_range[0].astimezone(timezone.utc).date()
    last = time_range[1].astimezone(timezone.utc).date()
    days = (last - first).days + 1
    width = max(1, math.ceil(days / MAX_BUCKETS))
    out = []
    day = first
    while day <= last:
        start = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
        out.append((start, start + timedelta(days=width)))
        day += timedelta(days=width)
    return out


def _bucket_totals(store: TraceReader, buckets: Sequence[tuple[datetime, datetime]]) -> list[int]:
    return [
        store.count(SpanFilter(start_after=start, start_before=end)).traces
        for start, end in buckets
    ]


def bucket_rates(
    store: TraceReader,
    matcher: SpanFilter,
    buckets: Sequence[tuple[datetime, datetime]],
    totals: Sequence[int],
) -> list[RateBucket]:
    """Per bucket: traces with a span starting in it, and those the matcher selects there
    (the matcher's own time bounds narrow the bucket, never widen it)."""
    out = []
    for (start, end), total in zip(buckets, totals, strict=True):
        lo = max(start, _utc(matcher.start_after)) if matcher.start_after else start
        hi = min(end, _utc(matcher.start_before)) if matcher.start_before else end
        matched = 0
        if lo < hi and total:
            narrowed = matcher.model_copy(update={"start_after": lo, "start_before": hi})
            matched = store.count(narrowed).traces
        out.append(
            RateBucket(start=start.date(), days=(end - start).days, traces=total, matched=matched)
        )
    return out


def _utc(moment: datetime) -> datetime:
    """A filter's time as aware UTC (a naive time in a filter means UTC)."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


def _check_summary(check: CheckReport) -> CheckSummary:
    """The check's figures the page shows (CheckSummary's fields, by the same names)."""
    return CheckSummary.model_validate(check, from_attributes=True)
