"""The tools the engine's agents use over the trace store, with their budgets.

Each store tool is a plain synchronous function `(ctx, args) -> str` (the agent loop runs
it in a worker thread). Outputs are text the model reads: compact JSON lines or an
indented span tree. Every output stays under its byte budget; when a read would not fit,
the tool says what is there and how to narrow the read instead of cutting silently.
Individual long values carry the store's "[truncated: N chars]" marker.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import statistics
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, model_validator

from halo_mcp.engine.findings import FindingDraft
from halo_mcp.harness.paths import Repository
from halo_mcp.store.api import TraceReader
from halo_mcp.store.models import (
    DEFAULT_SPAN_FIELDS,
    SPAN_FIELDS,
    SpanFilter,
    SpanSort,
    SpanView,
    TraceSort,
    TraceTree,
)
from halo_mcp.text import clip


@dataclass
class ToolBudgets:
    """Byte budgets of tool outputs and per-value character caps."""

    default: int = 24_000
    #: About half the old 150 kB: a view folds what repeats (see Repeats), so the traces
    #: that fit show the same content in about half the bytes.
    view_trace: int = 80_000
    view_spans: int = 64_000
    trace_value_chars: int = 4_000
    span_value_chars: int = 16_000
    trace_view_max_spans: int = 400
    synthesize_input: int = 80_000
    synthesize_max_traces: int = 30
    #: Show a long value repeated within a trace (the harness's system prompt, its tool
    #: list, the conversation each LLM call resends) once, and refer back to it after.
    dedupe_repeats: bool = True


@dataclass
class ToolContext:
    """What store tools need, shared by all agents of a run. Counters feed the benchmark."""

    store: TraceReader
    budgets: ToolBudgets = field(default_factory=ToolBudgets)
    repo: Repository | None = None  # the harness repository, when the run was given one
    raw_bytes_seen: int = 0
    largest_output: int = 0
    over_budget: list[str] = field(default_factory=list)

    def budget_for(self, tool: str) -> int:
        return getattr(self.budgets, tool, self.budgets.default)


# ----------------------------------------------------------------------- arguments


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _decode_stringified_json(cls, data: Any) -> Any:
        """Some models send nested objects as JSON strings ("filter": "{...}"): accept."""
        if isinstance(data, dict):
            for key, value in list(data.items()):
                if isinstance(value, str) and value.strip()[:1] in ("{", "["):
                    field = cls.model_fields.get(key)
                    if field is not None and field.annotation is not str:
                        with contextlib.suppress(ValueError):
                            data[key] = json.loads(value)
        return data


class OverviewArgs(_Args):
    pass


class QueryTracesArgs(_Args):
    filter: SpanFilter | None = Field(
        None, description="Traces having at least one span matching this filter."
    )
    sort: TraceSort = Field("start_time", description="e.g. '-errors' for most errors first.")
    limit: int = Field(20, ge=1, le=50)
    cursor: str | None = Field(None, description="next_cursor from the previous page.")


class CountArgs(_Args):
    filter: SpanFilter | None = Field(None, description="Count spans/traces matching this.")


class QuerySpansArgs(_Args):
    filter: SpanFilter | None = None
    sort: SpanSort = "start_time"
    limit: int = Field(20, ge=1, le=100)
    cursor: str | None = None
    fields: list[str] | None = Field(
        None,
        description=f"Fields to return; default {', '.join(DEFAULT_SPAN_FIELDS)}. Content "
        "fields: input, output, attributes, events.",
    )
    max_chars: int = Field(300, ge=20, le=4000, description="Cut each string value here.")


class ViewTraceArgs(_Args):
    trace_id: str


class ViewSpansArgs(_Args):
    span_ids: list[str] = Field(min_length=1, max_length=20)
    trace_id: str | None = Field(None, description="The trace of these spans, if known.")


class SearchArgs(_Args):
    pattern: str = Field(description="Python regex, case-insensitive.")
    trace_id: str | None = Field(None, description="Search only this trace.")
    span_id: str | None = Field(None, description="Search only this span.")
    filter: SpanFilter | None = Field(None, description="Search only spans matching this.")
    limit: int = Field(20, ge=1, le=50)


class SynthesizeArgs(_Args):
    trace_ids: list[str] = Field(min_length=1, max_length=30)
    question: str = Field(description="What to look for / summarize across these traces.")


class DelegateArgs(_Args):
    task: str = Field(
        description="A self-contained task for a sub-agent: what to investigate, which "
        "filters or trace ids to start from, and what to report back (with counts and ids)."
    )


class FinishArgs(_Args):
    report: str = Field(description="Your report to the parent agent: findings, counts, ids.")
    findings: list[FindingDraft] = Field(
        default_factory=list,
        max_length=15,
        description="Each failure mode you confirmed, as a finding draft: verified against "
        "the traces on return, then merged by the root.",
    )


class AddFindingsArgs(_Args):
    findings: list[FindingDraft] = Field(min_length=1, max_length=30)


class SubmitFindingsArgs(_Args):
    findings: list[FindingDraft] = Field(
        default_factory=list,
        max_length=30,
        description="Findings not already recorded with add_findings (may be empty).",
    )
    summary: str = Field("", description="Two or three sentences on the overall picture.")


# The same tools as parsed: each finding is read on its own, so one bad finding is
# rejected with its reasons while the others are accepted (the schema above is what the
# model sees).


class FinishInput(_Args):
    report: str
    findings: list[Any] = Field(default_factory=list, max_length=15)


class AddFindingsInput(_Args):
    findings: list[Any] = Field(min_length=1, max_length=30)


class SubmitFindingsInput(_Args):
    findings: list[Any] = Field(default_factory=list, max_length=30)
    summary: str = ""


#: tool name -> the model its arguments are parsed with, when not the schema's model.
LENIENT_INPUTS: dict[str, type[BaseModel]] = {
    "finish": FinishInput,
    "add_findings": AddFindingsInput,
    "submit_findings": SubmitFindingsInput,
}


# ----------------------------------------------------------------- store tools


def get_overview(ctx: ToolContext, args: OverviewArgs) -> str:
    ov = ctx.store.overview()
    data = ov.model_dump(mode="json", exclude_none=True)
    notes = []
    budget = ctx.budget_for("get_overview")
    text = _dumps(data)
    # Trim the longest lists, saying so, until it fits.
    for key in ("sample_trace_ids", "files", "tools", "models", "agents", "services"):
        if len(text) <= budget:
            break
        if isinstance(data.get(key), list) and len(data[key]) > 10:
            notes.append(f"{key}: first 10 of {len(data[key])}")
            data[key] = data[key][:10]
            text = _dumps(data)
    while len(text) > budget and len(data.get("error_signatures", [])) > 5:
        total = len(ov.error_signatures)
        data["error_signatures"] = data["error_signatures"][: len(data["error_signatures"]) // 2]
        text = _dumps({**data, "notes": notes})
        notes.append(
            f"error_signatures: top {len(data['error_signatures'])} of {total} shown; "
            "use query_spans with errors_only and a name to see more"
        )
    if notes:
        data["notes"] = sorted(set(notes))
        text = _dumps(data)
    return text


def query_traces(ctx: ToolContext, args: QueryTracesArgs) -> str:
    page = ctx.store.query_traces(args.filter, sort=args.sort, limit=args.limit, cursor=args.cursor)
    rows = [t.model_dump(mode="json", exclude_none=True) for t in page.traces]
    head = {"total": page.total, "returned": len(rows), "next_cursor": page.next_cursor}
    return _fit_rows(ctx, "query_traces", head, rows, "traces")


def count_spans(ctx: ToolContext, args: CountArgs) -> str:
    c = ctx.store.count(args.filter)
    return _dumps(
        {
            "spans": c.spans,
            "traces": c.traces,
            "traces_in_scope": c.traces_in_scope,
            "trace_rate": round(c.trace_rate, 4),
        }
    )


def query_spans(ctx: ToolContext, args: QuerySpansArgs) -> str:
    fields = tuple(args.fields or DEFAULT_SPAN_FIELDS)
    bad = [f for f in fields if f not in SPAN_FIELDS]
    if bad:
        raise ValueError(f"unknown fields {bad}; choose from {', '.join(SPAN_FIELDS)}")
    page = ctx.store.query_spans(
        args.filter,
        sort=args.sort,
        limit=args.limit,
        cursor=args.cursor,
        fields=fields,
        max_chars=args.max_chars,
    )
    rows = [_span_dict(s) for s in page.spans]
    head = {
        "total": page.total,
        "returned": len(rows),
        "next_cursor": page.next_cursor,
        "clipped_values": page.clipped_values,
    }
    return _fit_rows(ctx, "query_spans", head, rows, "spans")


_TREE_FIELDS = (*DEFAULT_SPAN_FIELDS, "source", "input", "output", "attributes")


def view_trace(ctx: ToolContext, args: ViewTraceArgs) -> str:
    summary = ctx.store.trace_summary(args.trace_id)
    budget = ctx.budget_for("view_trace")
    if summary.span_count > ctx.budgets.trace_view_max_spans:
        tree = ctx.store.trace_tree(
            args.trace_id,
            fields=("span_id", "name", "status", "source"),
            max_chars=200,
            limit=20_000,
        )
        return _trace_digest(tree, budget, f"it has {summary.span_count} spans")
    cap = ctx.budgets.trace_value_chars
    dedupe = ctx.budgets.dedupe_repeats
    tree = ctx.store.trace_tree(
        args.trace_id,
        fields=_TREE_FIELDS,
        # Read more than is shown: a repeated prefix is cut first, then the new part is
        # capped, so the view shows what each LLM call added.
        max_chars=cap * REPEAT_READ_FACTOR if dedupe else cap,
        limit=ctx.budgets.trace_view_max_spans,
    )
    ctx.raw_bytes_seen += _raw_bytes(n.span for n in tree.nodes)
    text = render_tree(tree, repeats=Repeats() if dedupe else None, cap=cap if dedupe else None)
    if len(text.encode()) > budget:
        return _trace_digest(tree, budget, f"its view is {len(text.encode()):,} bytes")
    return text


def view_spans(ctx: ToolContext, args: ViewSpansArgs) -> str:
    wanted = list(dict.fromkeys(args.span_ids))
    flt = SpanFilter(span_ids=wanted, trace_ids=[args.trace_id] if args.trace_id else None)
    page = ctx.store.query_spans(
        flt,
        fields=(*_TREE_FIELDS, "events"),
        max_chars=ctx.budgets.span_value_chars,
        limit=len(wanted) * 2,
    )
    ctx.raw_bytes_seen += _raw_bytes(page.spans)
    budget = ctx.budget_for("view_spans")
    found = {s.span_id for s in page.spans}
    missing = [s for s in wanted if s not in found]
    blocks: list[str] = []
    omitted: list[str] = []
    used = 0
    for span in page.spans:
        block = _span_block(span)
        size = len(block.encode())
        if used + size > budget - 600:
            if not blocks and len(page.spans) == 1:
                # One span larger than the budget: cap its values so it fits, and say so.
                cap = max(200, (budget - 1000) // 4)
                block = _span_block(span, cap=cap)
                block = _within(block, budget - 600)
                blocks.append(
                    f"(values of this span cut at {cap} chars to fit the {budget:,}-byte "
                    "output budget; use search with a pattern and span_id to read more)\n" + block
                )
                used += len(block.encode())
                continue
            omitted.append(f"{span.span_id} ({size:,} bytes)")
            continue
        blocks.append(block)
        used += size
    tail = []
    if omitted:
        tail.append(
            f"omitted to stay under the {budget:,}-byte output budget: {', '.join(omitted)}; "
            "view them in separate calls or search within them"
        )
    if missing:
        tail.append(
            f"not found: {', '.join(missing)} (ids must be exact; get them from query_spans "
            "or view_trace)"
        )
    return "\n\n".join(blocks + tail) if blocks or tail else "no spans found"


def search(ctx: ToolContext, args: SearchArgs) -> str:
    try:
        re.compile(args.pattern)
    except re.error as exc:
        raise ValueError(f"pattern is not a valid regex ({exc}); escape special chars") from None
    flt = args.filter or SpanFilter()
    if args.trace_id:
        flt = flt.model_copy(update={"trace_ids": [args.trace_id]})
    if args.span_id:
        flt = flt.model_copy(update={"span_ids": [args.span_id]})
    result = ctx.store.search(
        args.pattern,
        filter=None if flt.is_empty() else flt,
        limit=args.limit,
        context_chars=150,
    )
    rows = [m.model_dump(mode="json") for m in result.matches]
    head = {
        "pattern": result.pattern,
        "spans_matched": result.spans_matched,
        "returned": len(rows),
        "more_matches": result.truncated,
    }
    return _fit_rows(ctx, "search", head, rows, "matches")


# ---------------------------------------------------------------- synthesis input


def synthesis_material(ctx: ToolContext, trace_ids: Sequence[str]) -> tuple[str, list[str]]:
    """The traces' content for the synthesis model, within the synthesis byte budget.

    Returns the text and the ids that were not found.
    """
    budget = ctx.budgets.synthesize_input
    ids = list(dict.fromkeys(trace_ids))[: ctx.budgets.synthesize_max_traces]
    known, _ = ctx.store.known_ids(ids, ())
    missing = [t for t in ids if t not in known]
    present = [t for t in ids if t in known]
    if not present:
        return "", missing
    per_trace = max(1000, budget // len(present))
    parts = []
    cap = min(ctx.budgets.trace_value_chars, max(200, per_trace // 8))
    dedupe = ctx.budgets.dedupe_repeats
    for trace_id in present:
        tree = ctx.store.trace_tree(
            trace_id,
            fields=_TREE_FIELDS,
            max_chars=cap * REPEAT_READ_FACTOR if dedupe else cap,
            limit=ctx.budgets.trace_view_max_spans,
        )
        ctx.raw_bytes_seen += _raw_bytes(n.span for n in tree.nodes)
        text = render_tree(tree, Repeats() if dedupe else None, cap if dedupe else None)
        parts.append(_within(text, per_trace))
    return "\n\n".join(parts), missing


# ----------------------------------------------------------------------- rendering


#: How much more of each value a deduplicating trace view reads than it shows.
REPEAT_READ_FACTOR = 4
#: Values shorter than this are always shown as they are.
REPEAT_MIN_CHARS = 300


class Repeats:
    """Long values already shown in one trace view, so a repeat refers back instead.

    An exact repeat (the system prompt or tool list each LLM call carries) becomes
    "[same as <field> of span X]"; an LLM input that starts like the previous one (the
    conversation so far, resent each call) keeps only what it adds, after
    "[first N chars as the input of span X]"."""

    def __init__(self) -> None:
        self.seen: dict[str, str] = {}
        #: Per span kind (and agent): the last input shown, as (span id, text).
        self.last_input: dict[tuple[str, str], tuple[str, str]] = {}

    def value(self, span_id: str, name: str, text: str) -> str:
        if len(text) < REPEAT_MIN_CHARS:
            return text
        key = hashlib.blake2b(text.encode(), digest_size=12).hexdigest()
        where = self.seen.get(key)
        if where is not None:
            return f"[same as {where}]"
        self.seen[key] = f"{name} of span {span_id}"
        return text

    def input(self, span_id: str, text: str, stream: tuple[str, str] = ("", "")) -> str:
        """An input; `stream` (kind, agent) says which earlier input it may continue."""
        shown = self.value(span_id, "the input", text)
        previous = self.last_input.get(stream)
        self.last_input[stream] = (span_id, text)
        if shown != text or previous is None:
            return shown
        same = _common_prefix(previous[1], text)
        if same < REPEAT_MIN_CHARS:
            return text
        return f"[first {same} chars as the input of span {previous[0]}]…{text[same:]}"


def _common_prefix(a: str, b: str) -> int:
    """Length of the longest common prefix of two strings."""
    n = min(len(a), len(b))
    i = 0
    step = 256
    while i < n and a[i : i + step] == b[i : i + step]:
        i += step
    while i < n and a[i] == b[i]:
        i += 1
    return min(i, n)


def render_tree(tree: TraceTree, repeats: Repeats | None = None, cap: int | None = None) -> str:
    """A trace as an indented span tree; values clipped by the store, or at `cap` after
    `repeats` replaced what an earlier span already showed."""
    s = tree.summary
    lines = [
        f"trace {tree.trace_id}: root={s.root_name!r} spans={s.span_count} "
        f"errors={s.error_count} duration_ms={s.duration_ms:.0f} "
        f"tokens={s.input_tokens}/{s.output_tokens}"
        + (" (tree cut: more spans than shown)" if tree.truncated else "")
    ]
    for node in tree.nodes:
        pad = "  " * node.depth
        lines.append(pad + "- " + _span_head(node.span))
        for key, value in _span_body(node.span, cap, repeats):
            lines.append(f"{pad}  {key}: {value}")
    return "\n".join(lines)


def _span_head(v: SpanView) -> str:
    bits = [f"{v.name} [{v.span_id}]"]
    if v.kind:
        bits.append(v.kind.value)
    if v.status and v.status.value == "error":
        bits.append("ERROR")
    if v.duration_ms is not None:
        bits.append(f"{v.duration_ms:.0f}ms")
    for label, value in (("agent", v.agent), ("model", v.model), ("tool", v.tool_name)):
        if value:
            bits.append(f"{label}={value}")
    if v.input_tokens or v.output_tokens:
        bits.append(f"tokens={v.input_tokens or 0}/{v.output_tokens or 0}")
    return " ".join(bits)


def _span_body(
    v: SpanView, cap: int | None = None, repeats: Repeats | None = None
) -> list[tuple[str, str]]:
    out = []
    span_id = v.span_id or "?"

    def shown(name: str, text: str) -> str:
        if repeats is not None:
            text = repeats.value(span_id, name, text)
        return _cap(text, cap)

    if v.error_message:
        out.append(("error", _cap(v.error_message, cap)))
    if v.input:
        stream = (str(v.kind or ""), v.agent or "")
        text = repeats.input(span_id, v.input, stream) if repeats is not None else v.input
        out.append(("input", _cap(text, cap)))
    if v.output:
        out.append(("output", shown("the output", v.output)))
    if v.attributes:
        attrs = {
            k: (_attribute(k, val, v, shown, repeats is not None) if isinstance(val, str) else val)
            for k, val in v.attributes.items()
            if not (isinstance(val, str) and val in (v.input, v.output))
        }
        if attrs:
            out.append(("attributes", _dumps(attrs)))
    if v.events:
        out.append(("events", _cap(_dumps(v.events), cap or 4000)))
    return out


#: Attribute values at least this long that the span's input or output already holds (the
#: flattened copies of an LLM call's messages) are folded in a deduplicating view.
CONTAINED_MIN_CHARS = 80


def _attribute(
    key: str, value: str, v: SpanView, shown: Callable[[str, str], str], fold: bool
) -> str:
    """An attribute value as a view shows it: folded when the span's own input or output
    holds it (as is, or JSON-escaped), else through `shown`."""
    if fold and len(value) >= CONTAINED_MIN_CHARS:
        escaped = json.dumps(value)[1:-1]
        for name, text in (("input", v.input), ("output", v.output)):
            if text and (value in text or escaped in text):
                return f"[part of this span's {name}]"
    return shown(f"attribute {key}", value)


def _span_block(v: SpanView, cap: int | None = None) -> str:
    head = f"span {v.span_id} in trace {v.trace_id}" + (
        f" (child of {v.parent_span_id})" if v.parent_span_id else ""
    )
    lines = [head, "  " + _span_head(v)]
    lines += [f"  {k}: {val}" for k, val in _span_body(v, cap)]
    return "\n".join(lines)


def _trace_digest(tree: TraceTree, budget: int, why: str) -> str:
    """A too-big trace as a summary the agent can plan narrower reads from."""
    sizes = [(n.span.source.length if n.span.source else 0, n.span) for n in tree.nodes]
    lengths = sorted(size for size, _ in sizes) or [0]
    names = Counter(n.span.name for n in tree.nodes)
    errors = [n.span for n in tree.nodes if n.span.status and n.span.status.value == "error"]
    largest = sorted(sizes, key=lambda x: -x[0])[:10]
    s = tree.summary
    data = {
        "trace_id": tree.trace_id,
        "too_large_to_show": f"{why}; over the {budget:,}-byte view budget",
        "span_count": s.span_count,
        "error_count": s.error_count,
        "root_name": s.root_name,
        "duration_ms": round(s.duration_ms),
        "raw_span_bytes": {
            "total": sum(lengths),
            "min": lengths[0],
            "median": int(statistics.median(lengths)),
            "max": lengths[-1],
        },
        "top_span_names": [{"name": n, "count": c} for n, c in names.most_common(15)],
        "error_spans": [{"span_id": e.span_id, "name": e.name} for e in errors[:15]],
        "largest_spans": [
            {"span_id": sp.span_id, "name": sp.name, "bytes": b} for b, sp in largest
        ],
        "how_to_narrow": (
            "view_spans with chosen span_ids (e.g. the error spans); search with a pattern "
            "and this trace_id; query_spans with filter {trace_ids:[...], name/kind/"
            "errors_only} and small max_chars"
        ),
    }
    return _within(_dumps(data), budget)


def _fit_rows(
    ctx: ToolContext, tool: str, head: dict[str, Any], rows: list[dict], label: str
) -> str:
    """Header plus as many rows as fit the budget; says so when rows were left out."""
    budget = ctx.budget_for(tool)
    head_text = _dumps(head)
    lines = [head_text]
    used = len(head_text) + 300
    for i, row in enumerate(rows):
        line = _dumps(row)
        if used + len(line) + 1 > budget:
            lines[0] = _dumps(
                {
                    **head,
                    "returned": i,
                    "next_cursor": None,
                    "omitted": (
                        f"{len(rows) - i} more {label} of this page left out to stay under "
                        f"the {budget:,}-byte output budget; repeat with limit={max(1, i)} "
                        "(and page with its cursor), fewer fields or a smaller max_chars"
                    ),
                }
            )
            break
        lines.append(line)
        used += len(line) + 1
    return "\n".join(lines)


def _span_dict(v: SpanView) -> dict[str, Any]:
    return v.model_dump(mode="json", exclude_none=True, exclude={"source"})


def _raw_bytes(spans: Iterable[SpanView]) -> int:
    return sum(s.source.length for s in spans if s.source is not None)


def _cap(text: str, cap: int | None) -> str:
    return clip(text, cap)[0] if cap else text


def _within(text: str, budget: int) -> str:
    """Last-resort bound with an explicit marker (callers normally avoid reaching it)."""
    if len(text.encode()) <= budget:
        return text
    return clip(text, max(0, budget // 2 - 40))[0]


def _dumps(value: Any) -> str:
    return orjson.dumps(value, default=str).decode()


#: A store tool: its context and its own argument model (one per tool, hence Any) -> text.
StoreTool = Callable[[ToolContext, Any], str]

#: name -> (description, argument model, implementation)
STORE_TOOLS: dict[str, tuple[str, type[BaseModel], StoreTool]] = {
    "get_overview": (
        "Dataset overview: counts, time range, services, agents, models, tools with error "
        "counts, token totals, sample trace ids and the top error signatures (span name + "
        "normalized message, with trace/span counts and example ids). Start here.",
        OverviewArgs,
        get_overview,
    ),
    "query_traces": (
        "Trace summaries (root, agents, models, span/error counts, duration, tokens, first "
        "error) of traces having a span that matches `filter`; paged with cursor.",
        QueryTracesArgs,
        query_traces,
    ),
    "count_spans": (
        "Count spans and traces matching a filter, and the traces in scope. Count before "
        "concluding how common something is.",
        CountArgs,
        count_spans,
    ),
    "query_spans": (
        "Spans matching a filter (chosen fields, string values cut at max_chars); paged.",
        QuerySpansArgs,
        query_spans,
    ),
    "view_trace": (
        "One trace as a span tree with inputs/outputs/attributes (values cut at 4 KB). A very "
        "large trace comes back as a summary with advice on narrowing the read.",
        ViewTraceArgs,
        view_trace,
    ),
    "view_spans": (
        "Chosen spans in full detail (values cut at 16 KB).",
        ViewSpansArgs,
        view_spans,
    ),
    "search": (
        "Regex search in span content (inputs, outputs, attributes, status), within a trace, "
        "a span or spans matching a filter; returns matches with context.",
        SearchArgs,
        search,
    ),
}
