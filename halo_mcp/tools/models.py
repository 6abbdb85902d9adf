"""Argument types and result models of the MCP tools.

Argument aliases are `Annotated` types with bounds and descriptions, so every tool that takes
"trace paths" or "how long to wait" says it the same way. Result models become the tools'
`outputSchema`; they reuse the engine's small models (usage, progress, status) and stay
small: the full report and findings are resources.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from mcp_types import ToolAnnotations
from pydantic import BaseModel, BeforeValidator, Field, WithJsonSchema, field_serializer

from halo_mcp.engine.models import Progress, RunStatus, Usage
from halo_mcp.findings.models import CodeRef, StatusReason, SuspectCommit
from halo_mcp.store.models import (
    SPAN_FIELDS,
    Overview,
    SpanFilter,
    SpanNode,
    SpanPage,
    SpanSort,
    SpanView,
    TraceTree,
)


#: Annotations of every tool that only reads (traces, runs, findings): honest hints the
#: client shows and may use to skip confirmation.
def tool_annotations(
    title: str | None = None,
    *,
    read_only: bool = True,
    idempotent: bool = True,
    open_world: bool = False,
) -> ToolAnnotations:
    """A tool's hints; no tool here destroys anything."""
    return ToolAnnotations(
        title=title,
        read_only_hint=read_only,
        destructive_hint=False,
        idempotent_hint=idempotent,
        open_world_hint=open_world,
    )


READ_ONLY = tool_annotations()

# ----------------------------------------------------------------------------- arguments


def _one_path_is_a_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


TracePaths = Annotated[
    list[str],
    BeforeValidator(_one_path_is_a_list),
    Field(
        min_length=1,
        max_length=64,
        description=(
            "Trace files or directories (.jsonl, .json, OTLP, optionally .gz). Prefer absolute "
            "paths. Over HTTP they must lie inside the server's --root directories. Or one "
            "ClickHouse location instead: chdb:FOLDER, or clickhouse://USER@HOST:8123/DB"
            "?table=otel_traces (over HTTP only the server's HALO_CLICKHOUSE_URL)."
        ),
    ),
]
WaitSeconds = Annotated[
    float,
    Field(
        ge=0,
        le=50,
        description=(
            "How long to wait for the run before returning its status (0-50 s). Progress is "
            "reported meanwhile. If the run is still going, call get_run again."
        ),
    ),
]
RunId = Annotated[
    str,
    Field(min_length=1, max_length=200, description="A run id such as 'run_3kq...'."),
]
FindingId = Annotated[
    str,
    Field(min_length=1, max_length=200, description="A finding id such as 'f_9Zx...'."),
]
Limit = Annotated[int, Field(ge=1, le=200, description="Maximum number of items to return.")]
MaxChars = Annotated[
    int,
    Field(
        ge=50,
        le=20_000,
        description="Each string value (input, output, messages) is cut at this many characters.",
    ),
]
Cursor = Annotated[
    str | None,
    Field(description="`next_cursor` from the previous page; omit for the first page."),
]
SpanField = Literal[SPAN_FIELDS]  # type: ignore[valid-type]
SpanFields = Annotated[
    list[SpanField] | None,
    Field(
        description=(
            "Fields to return per span; default: ids, name, kind, status, error, timing, agent, "
            "model, tool and tokens. Add 'input', 'output', 'attributes', 'events' for content."
        )
    ),
]
Sort = Annotated[SpanSort, Field(description="Order of the spans; '-' means descending.")]


def _inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """Inline `$defs` so the schema can sit inside another tool's input schema."""
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return walk(dict(defs[ref.removeprefix("#/$defs/")]))
            return {key: walk(value) for key, value in node.items()}
        if isinstance(node, list):
            return [walk(item) for item in node]
        return node

    return walk(schema)


def span_filter_schema() -> dict[str, Any]:
    """SpanFilter's JSON schema, nullable, with a description naming the language."""
    schema = _inline_refs(SpanFilter.model_json_schema())
    schema.pop("title", None)
    schema["description"] = (
        "Span filter; every field given must hold (AND); omit for all spans. Examples: "
        '{"errors_only": true, "kind": ["tool"]}, {"tool_name": "search", "min_duration_ms": '
        '5000}, {"text": "rate limit"}.'
    )
    return {"anyOf": [schema, {"type": "null"}], "default": None}


#: Taken as a plain dict and validated in the tool, so a bad filter gets a message that
#: names the valid fields; the published schema is still SpanFilter's.
FilterArg = Annotated[dict[str, Any] | None, WithJsonSchema(span_filter_schema())]

# ----------------------------------------------------------------------------- results


class FindingSummary(BaseModel):
    """One failure mode in brief; get_finding(id) returns the whole finding."""

    id: str
    title: str
    severity: str
    category: str | None = None
    prevalence: str | None = Field(None, description="e.g. '12/40 traces (30.0%)', from the store.")
    verified: bool = False
    status: str = Field(
        "unverified", description="verified, partial or unverified (see get_finding's reasons)."
    )
    uri: str = Field(description="Resource with the whole finding as JSON.")


class RunStatusResult(BaseModel):
    """A run's status; when it is finished, its findings in brief and the report's link."""

    run_id: str
    status: RunStatus
    done: bool = Field(description="True when the run will not change any more.")
    queue_position: int | None = Field(
        None, description="Runs ahead of this one while it is queued."
    )
    progress: Progress
    elapsed_s: float = Field(description="Seconds since the run was created.")
    usage: Usage
    agents_running: int = 0
    trace_paths: list[str]
    prompt: str
    deduplicated: bool = Field(
        False, description="True when an identical run was already going and this is that run."
    )
    findings: list[FindingSummary] | None = Field(
        None, description="Set when the run is finished, most severe first."
    )
    findings_omitted: int = Field(0, description="Findings not listed here (see the report).")
    report_uri: str | None = Field(None, description="Markdown report resource, when finished.")
    error: str | None = None
    outcome: str | None = Field(
        None,
        description="When finished: findings, only_unverified, no_findings, refused or "
        "budget_reached; anything but 'findings' comes with a warning.",
    )
    warning: str | None = Field(None, description="Why the result needs a second look, if so.")
    next_step: str = Field(description="What to do next.")


class RunListItem(BaseModel):
    run_id: str
    status: RunStatus
    created_at: datetime
    prompt: str
    trace_paths: list[str]
    findings: int = 0
    outcome: str | None = Field(
        None, description="When finished: findings, or a warning outcome (see get_run)."
    )


class RunList(BaseModel):
    runs: list[RunListItem] = Field(description="Newest first; only runs visible to you.")
    more: bool = Field(False, description="More runs exist beyond `limit`.")


class CancelResult(BaseModel):
    run_id: str
    status: RunStatus
    message: str


class EvidenceOut(BaseModel):
    trace_id: str
    span_id: str | None = None
    excerpt: str | None = None
    verified: bool = False


class PrevalenceOut(BaseModel):
    traces_matched: int
    traces_in_scope: int
    spans_matched: int
    rate: float = Field(description="traces_matched / traces_in_scope.")


class FindingOut(BaseModel):
    """A whole finding: what fails, why, what to change, how to check, and the evidence."""

    id: str
    run_id: str
    source: str = "engine"
    title: str
    category: str
    severity: str
    description: str
    root_cause: str
    suggested_change: str
    validation: str
    evidence: list[EvidenceOut] = []
    evidence_omitted: int = Field(0, description="Evidence items not listed (see the resource).")
    matcher: SpanFilter | None = Field(
        None, description="Selects the affected spans: pass it as query_spans' filter."
    )
    prevalence: PrevalenceOut | None = None
    verified: bool = Field(False, description="True exactly when status is 'verified'.")
    status: str = Field(
        "unverified",
        description="verified: cited ids exist, excerpts occur in the cited spans, the "
        "matcher selects them and is not too broad; partial: some of that failed; "
        "unverified: nothing to stand on. See status_reasons.",
    )
    status_reasons: list[StatusReason] = Field(
        default_factory=list, description="Machine-readable: code, detail, ids concerned."
    )
    verification_notes: list[str] = []
    code_refs: list[CodeRef] = Field(
        default_factory=list, description="Harness code to change (path:lines, verified at HEAD)."
    )
    suspect_commits: list[SuspectCommit] = Field(
        default_factory=list, description="Commits suspected of introducing the failure."
    )
    first_seen: datetime | None = Field(None, description="Earliest matching span.")
    last_seen: datetime | None = Field(None, description="Latest matching span.")
    uri: str = Field(description="Resource with this finding as JSON, unabridged.")
    report_uri: str = Field(description="The run's markdown report.")


def _omitted_not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A span's schema as results send it: unchosen fields are left out, never null.

    Also cheaper for clients that validate structured content (no anyOf per field).
    """
    schema = _inline_refs(schema)
    for prop in schema.get("properties", {}).values():
        options = prop.pop("anyOf", None)
        if options:
            kept = [o for o in options if o.get("type") != "null"]
            prop.update(kept[0] if len(kept) == 1 else {"anyOf": kept})
        prop.pop("default", None)
    return schema


_SPAN_SCHEMA = _omitted_not_null(SpanView.model_json_schema())
_NODE_SCHEMA = {
    "type": "object",
    "properties": {
        "span": _SPAN_SCHEMA,
        "depth": {"type": "integer"},
        "children": {"type": "integer"},
    },
    "required": ["span", "depth"],
}


class SpanQueryResult(SpanPage):
    """One page of spans, plus the files they were read from."""

    spans: Annotated[list[SpanView], WithJsonSchema({"type": "array", "items": _SPAN_SCHEMA})] = (
        Field(description="The page's spans with the chosen fields; strings clipped.")
    )
    trace_paths: list[str] = Field(description="The trace files queried, absolute.")
    limit_reduced_to: int | None = Field(
        None,
        description=(
            "Set when the page was shortened to keep the result small; continue with next_cursor."
        ),
    )

    @field_serializer("spans")
    def _only_chosen_fields(self, spans: list[Any]) -> list[dict[str, Any]]:
        return [span.model_dump(mode="json", exclude_none=True) for span in spans]


class TraceResult(TraceTree):
    """One trace as a depth-first span tree."""

    nodes: Annotated[list[SpanNode], WithJsonSchema({"type": "array", "items": _NODE_SCHEMA})] = (
        Field(description="Depth-first, children ordered by start time.")
    )
    trace_paths: list[str] = Field(description="The trace files read, absolute.")

    @field_serializer("nodes")
    def _only_chosen_fields(self, nodes: list[Any]) -> list[dict[str, Any]]:
        return [
            {
                **node.model_dump(mode="json"),
                "span": node.span.model_dump(mode="json", exclude_none=True),
            }
            for node in nodes
        ]


class OverviewResult(Overview):
    """What the trace files hold: counts, names to filter on, and the top error signatures."""

    trace_paths: list[str] = Field(description="The trace files read, absolute.")
    lists_cut_at: int | None = Field(
        None, description="Set when long lists (tools, agents, signatures) were cut to this."
    )
