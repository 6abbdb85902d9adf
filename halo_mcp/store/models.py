"""The store's typed contract: the normalized span, the filter language, and query results.

Every format halo-mcp reads (HALO flat JSONL, OTLP JSON, OpenInference, GenAI, OpenAI
Agents SDK) normalizes into :class:`Span`. Every consumer (the engine's agents, the MCP
tools, the CLI, findings' matchers) selects spans with one language, :class:`SpanFilter`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from halo_mcp.text_patterns import check_pattern


class TextEnum(str, Enum):
    """A str enum that prints as its value on every Python (3.11+ would print 'Cls.member')."""

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


class SpanKind(TextEnum):
    """What a span does in an agent harness, unified across conventions."""

    agent = "agent"
    llm = "llm"
    tool = "tool"
    chain = "chain"
    guardrail = "guardrail"
    other = "other"


class StatusCode(TextEnum):
    ok = "ok"
    error = "error"
    unset = "unset"


class SpanSource(BaseModel):
    """Where the raw span lives, so its payload is read on demand instead of kept in memory."""

    file: str = Field(description="Absolute path of the source file.")
    line: int = Field(description="1-based line number in the (decompressed) file.")
    offset: int = Field(description="Byte offset of the line in the (decompressed) stream.")
    length: int = Field(description="Length of the line in bytes.")


class Span(BaseModel):
    """One span, normalized. Content (inputs, outputs, attributes) is read from `source`.
    The other fields, in this order, are the columns of an index row (ROW_FIELDS)."""

    trace_id: str
    span_id: str
    parent_span_id: str | None = None
    name: str
    kind: SpanKind = SpanKind.other
    status: StatusCode = StatusCode.unset
    error_message: str | None = Field(
        default=None,
        description="Status message, else exception event message, else `error.type`.",
    )
    start_ns: int = Field(description="Start, Unix epoch nanoseconds.")
    end_ns: int = Field(description="End, Unix epoch nanoseconds.")
    service: str | None = None
    agent: str | None = Field(default=None, description="Name of the agent that ran the span.")
    model: str | None = None
    tool_name: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    session_id: str | None = None
    source: SpanSource | None = None

    @property
    def duration_ms(self) -> float:
        return max(0, self.end_ns - self.start_ns) / 1e6


SPAN_SORTS = ("start_time", "-start_time", "duration", "-duration", "tokens", "-tokens")
SpanSort = Literal["start_time", "-start_time", "duration", "-duration", "tokens", "-tokens"]

#: Fields a caller may ask for in a span query result (`fields=`). Content fields
#: (`input`, `output`, `attributes`, `events`) are read from the source file on demand.
SPAN_FIELDS = (
    "trace_id",
    "span_id",
    "parent_span_id",
    "name",
    "kind",
    "status",
    "error_message",
    "start_time",
    "duration_ms",
    "service",
    "agent",
    "model",
    "tool_name",
    "input_tokens",
    "output_tokens",
    "session_id",
    "source",
    "input",
    "output",
    "attributes",
    "events",
)
#: The fields of a span query result when the caller does not choose: the row's facts
#: without the ones rarely needed at a glance or read from the source file.
DEFAULT_SPAN_FIELDS = tuple(
    name
    for name in SPAN_FIELDS
    if name not in ("service", "session_id", "source", "input", "output", "attributes", "events")
)

AttributeValue = str | int | float | bool


STORED_RECORD_KEY = "stored_record"
#: Validation context for records read back from disk (a run's findings): a matcher saved
#: before patterns were checked for RE2 still loads; using it gives the RE2 message.
STORED_RECORD = {STORED_RECORD_KEY: True}


class EventFilter(BaseModel):
    """One kind of event inside a trace (a span), by indexed fields only: the side of a
    `followed_by` trace rule. Every field given must hold."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, description="Span name, exact or a glob.")
    kind: list[SpanKind] | None = Field(default=None, description="Span kinds.")
    errors_only: bool = Field(default=False, description="Only spans with error status.")
    agent: str | None = None
    model: str | None = None
    tool_name: str | None = None
    min_duration_ms: float | None = Field(default=None, ge=0)

    @field_validator("kind", mode="before")
    @classmethod
    def _one_kind_is_a_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str | SpanKind) else value


TraceRuleKind = Literal[
    "repeated_call",
    "step_limit",
    "no_final_answer",
    "ends_after_tool_error",
    "followed_by",
    "trace_duration",
    "trace_tokens",
]

#: The parameters each trace rule kind takes (the others must be left out).
TRACE_RULE_PARAMS: dict[str, tuple[str, ...]] = {
    "repeated_call": ("tool_name", "min_count"),
    "step_limit": ("agent", "min_count"),
    "no_final_answer": (),
    "ends_after_tool_error": ("tool_name",),
    "followed_by": ("first", "then", "then_absent", "same_tool"),
    "trace_duration": ("min_duration_ms",),
    "trace_tokens": ("min_tokens",),
}
#: Parameters a rule kind cannot do without.
_TRACE_RULE_NEEDS: dict[str, tuple[str, ...]] = {
    "step_limit": ("min_count",),
    "followed_by": ("first",),
    "trace_duration": ("min_duration_ms",),
    "trace_tokens": ("min_tokens",),
}


class TraceRule(BaseModel):
    """A condition on a whole trace, counted exactly by the store's index. In a span filter
    it keeps only spans of the traces that satisfy it.

    - repeated_call: a tool (any, or `tool_name`) called at least `min_count` (default 3)
      times with identical input in the trace;
    - step_limit: an agent (any, or `agent`) made at least `min_count` successful LLM calls;
    - no_final_answer: the root span ended with no output;
    - ends_after_tool_error: the trace's last tool call (of `tool_name`, if given) failed;
    - followed_by: an event `first` later followed by an event `then` (any span when
      omitted; with `same_tool` the same tool as `first`), or by none when `then_absent`:
      e.g. a tool error followed by no retry of that tool;
    - trace_duration / trace_tokens: the trace lasted at least `min_duration_ms`, or used
      at least `min_tokens` (input + output).
    """

    model_config = ConfigDict(extra="forbid")

    kind: TraceRuleKind
    tool_name: str | None = Field(default=None, description="repeated_call, ends_after_tool_error.")
    agent: str | None = Field(default=None, description="step_limit: only this agent.")
    min_count: int | None = Field(
        default=None, ge=1, description="repeated_call (default 3), step_limit: LLM calls."
    )
    first: EventFilter | None = Field(default=None, description="followed_by: the first event.")
    then: EventFilter | None = Field(default=None, description="followed_by: the later event.")
    then_absent: bool = Field(default=False, description="followed_by: no `then` after `first`.")
    same_tool: bool = Field(default=False, description="followed_by: `then` uses first's tool.")
    min_duration_ms: float | None = Field(default=None, ge=0, description="trace_duration.")
    min_tokens: int | None = Field(default=None, ge=1, description="trace_tokens.")

    @model_validator(mode="after")
    def _params_fit_the_kind(self) -> TraceRule:
        allowed = set(TRACE_RULE_PARAMS[self.kind])
        given = set(self.model_dump(exclude_defaults=True)) - {"kind"}
        extra = sorted(given - allowed)
        if extra:
            takes = ", ".join(TRACE_RULE_PARAMS[self.kind]) or "no parameters"
            raise ValueError(
                f"trace rule {self.kind!r} does not use {', '.join(extra)}; it takes {takes}"
            )
        missing = [p for p in _TRACE_RULE_NEEDS.get(self.kind, ()) if getattr(self, p) is None]
        if missing:
            raise ValueError(f"trace rule {self.kind!r} needs {', '.join(missing)}")
        return self

    def describe(self) -> str:
        """The rule in a few words, for reports and tool results."""
        return self.kind + " " + self.model_dump_json(exclude_defaults=True, exclude={"kind"})


class SpanFilter(BaseModel):
    """Selects spans. Every field given must hold (AND). The empty filter selects every span.

    This is also the matcher language of findings: a finding's matcher is a SpanFilter,
    so its prevalence can be recomputed on any trace set.
    """

    model_config = ConfigDict(extra="forbid")

    trace_ids: list[str] | None = Field(default=None, description="Only spans of these traces.")
    span_ids: list[str] | None = Field(default=None, description="Only these spans.")
    name: str | None = Field(
        default=None, description="Span name, exact, or a glob with * and ? (case-sensitive)."
    )
    kind: list[SpanKind] | None = Field(
        default=None, description="Span kinds: agent, llm, tool, chain, guardrail, other."
    )
    errors_only: bool = Field(default=False, description="Only spans with error status.")
    service: str | None = Field(default=None, description="Service name, exact.")
    agent: str | None = Field(default=None, description="Agent name, exact.")
    model: str | None = Field(default=None, description="Model name, exact.")
    tool_name: str | None = Field(default=None, description="Tool name, exact.")
    min_duration_ms: float | None = Field(default=None, ge=0)
    max_duration_ms: float | None = Field(default=None, ge=0)
    start_after: datetime | None = Field(default=None, description="Span starts at or after.")
    start_before: datetime | None = Field(default=None, description="Span starts before.")
    attributes: dict[str, AttributeValue] | None = Field(
        default=None,
        description="Raw span attributes that must equal these values (flat dotted keys).",
    )
    text: str | None = Field(
        default=None,
        description=(
            "Regex (RE2 syntax: linear time, so no backreferences or lookaround) searched "
            "in the span's content: inputs, outputs, messages, attributes and status "
            "(case-insensitive)."
        ),
    )
    trace_rule: TraceRule | None = Field(
        default=None,
        description=(
            "A condition on the whole trace (loops, step limit, no final answer, gave up "
            "after a tool error, A followed by (no) B, duration or token threshold): only "
            "spans of the traces that satisfy it."
        ),
    )

    @field_validator("kind", mode="before")
    @classmethod
    def _one_kind_is_a_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str | SpanKind) else value

    @field_validator("text")
    @classmethod
    def _text_is_a_regex(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or (info.context or {}).get(STORED_RECORD_KEY):
            return value  # a record saved earlier loads as it was; a query with it explains
        return check_pattern(value)

    def is_empty(self) -> bool:
        return not self.model_dump(exclude_defaults=True)


#: What the store's queries take as a filter: a SpanFilter, a dict of its fields, or None
#: (every span).
FilterArg = SpanFilter | Mapping[str, Any] | None

#: The fields of a span filter, for error messages that say what is valid.
FILTER_FIELDS = tuple(SpanFilter.model_fields)
FILTER_EXAMPLE = (
    '{"kind": ["tool"], "tool_name": "read_file", "errors_only": true} or, for a whole '
    'trace, {"kind": ["tool"], "trace_rule": {"kind": "repeated_call", "tool_name": '
    '"http_get", "min_count": 3}}'
)


def filter_help() -> str:
    """What a span filter may hold, with an example: appended to filter validation errors."""
    return (
        f"Valid filter fields: {', '.join(FILTER_FIELDS)}; trace_rule kinds: "
        f"{', '.join(TRACE_RULE_PARAMS)}. Example: {FILTER_EXAMPLE}."
    )


class SpanView(BaseModel):
    """A span as returned by a query: only the chosen fields are set; strings are clipped."""

    model_config = ConfigDict(extra="forbid")

    trace_id: str | None = None
    span_id: str | None = None
    parent_span_id: str | None = None
    name: str | None = None
    kind: SpanKind | None = None
    status: StatusCode | None = None
    error_message: str | None = None
    start_time: datetime | None = None
    duration_ms: float | None = None
    service: str | None = None
    agent: str | None = None
    model: str | None = None
    tool_name: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    session_id: str | None = None
    source: SpanSource | None = None
    input: str | None = None
    output: str | None = None
    attributes: dict[str, Any] | None = None
    events: list[dict[str, Any]] | None = None


class SpanPage(BaseModel):
    spans: list[SpanView]
    total: int = Field(description="Spans matching the filter, all pages together.")
    next_cursor: str | None = Field(
        default=None, description="Pass back as `cursor` for the next page; null on the last."
    )
    max_chars: int = Field(description="Each string value was cut at this many characters.")
    clipped_values: int = Field(default=0, description="How many values were cut.")


class MatchCount(BaseModel):
    """How much of the data a filter selects: the basis of a finding's prevalence."""

    spans: int
    traces: int
    traces_in_scope: int = Field(description="Traces in the whole store.")

    @property
    def trace_rate(self) -> float:
        return self.traces / self.traces_in_scope if self.traces_in_scope else 0.0


class FirstError(BaseModel):
    span_id: str
    name: str
    message: str | None = None


class TraceSummary(BaseModel):
    trace_id: str
    root_name: str | None = Field(description="Name of the root span; null if it has none.")
    service: str | None = None
    agents: list[str] = []
    models: list[str] = []
    span_count: int
    error_count: int
    start_time: datetime
    duration_ms: float
    input_tokens: int = 0
    output_tokens: int = 0
    first_error: FirstError | None = None


TraceSort = Literal["start_time", "-start_time", "duration", "-duration", "errors", "-errors"]


class TracePage(BaseModel):
    traces: list[TraceSummary]
    total: int = Field(description="Traces having at least one span that matches the filter.")
    next_cursor: str | None = None


class SpanNode(BaseModel):
    """One span in a trace tree, with its depth (0 = root or orphan)."""

    span: SpanView
    depth: int
    children: int = 0


class TraceTree(BaseModel):
    trace_id: str
    summary: TraceSummary
    nodes: list[SpanNode] = Field(description="Depth-first, children ordered by start time.")
    truncated: bool = Field(default=False, description="True when the tree was cut at `limit`.")


class SearchMatch(BaseModel):
    trace_id: str
    span_id: str
    span_name: str
    excerpt: str = Field(description="The match with some context around it.")


class SearchResult(BaseModel):
    pattern: str
    matches: list[SearchMatch]
    spans_matched: int
    truncated: bool = Field(default=False, description="More matches exist than were returned.")


class BadLine(BaseModel):
    file: str
    line: int
    reason: str


class SkippedFile(BaseModel):
    """A file found in a directory and not read: not a regular file (a FIFO, a socket, a
    device), a dangling link, or not readable."""

    path: str
    reason: str


class FileReport(BaseModel):
    path: str
    format: str = Field(description="Detected format, e.g. 'halo-jsonl' or 'otlp-json'.")
    spans: int
    bad_lines: int
    size_bytes: int


class LoadReport(BaseModel):
    """What ingestion found, including what it had to skip or could not link."""

    files: list[FileReport]
    spans: int
    bad_lines: int
    bad_line_examples: list[BadLine] = Field(description="The first few bad lines, with reasons.")
    skipped_files: list[SkippedFile] = Field(
        default_factory=list,
        description="Files in the directories given that were not read (the first 20).",
    )
    duplicate_spans: int = Field(0, description="Spans whose (trace, span) id was seen before.")
    orphan_spans: int = Field(0, description="Spans whose parent id is not in the data.")
    rootless_traces: int = Field(0, description="Traces with no span lacking a parent.")
    index_path: str | None = None
    reused: bool = Field(False, description="True when an existing index was reused as is.")


class NameCount(BaseModel):
    name: str
    count: int


class ToolStats(BaseModel):
    name: str
    calls: int
    errors: int


class ErrorSignature(BaseModel):
    """Errors grouped by span/tool name and normalized message (numbers, ids, paths removed)."""

    span_name: str
    message: str = Field(description="Normalized status message, e.g. 'timeout after <N>s'.")
    traces: int
    spans: int
    example_trace_ids: list[str]
    example_span_ids: list[str]


class TokenTotals(BaseModel):
    input: int = 0
    output: int = 0


class Overview(BaseModel):
    files: list[FileReport]
    traces: int
    spans: int
    error_spans: int
    error_traces: int
    bad_lines: int
    bad_line_examples: list[BadLine] = Field(
        default_factory=list, description="The first few bad lines (file, line, reason)."
    )
    skipped_files: list[SkippedFile] = Field(
        default_factory=list,
        description="Files in the directories given that were not read (the first 20).",
    )
    start_time: datetime | None = None
    end_time: datetime | None = None
    services: list[NameCount]
    agents: list[NameCount]
    models: list[NameCount]
    tools: list[ToolStats]
    span_kinds: list[NameCount]
    tokens: TokenTotals
    error_signatures: list[ErrorSignature]
    sample_trace_ids: list[str]
    orphan_spans: int = 0
    rootless_traces: int = 0
    duplicate_spans: int = 0
    notes: list[str] = Field(
        default_factory=list,
        description="How the data was read, when it matters: e.g. a ClickHouse table read "
        "in place (slower), and the command that speeds it up.",
    )


# -- the checked arguments of TraceReader's paged reads (store/api.py), one per read -----


@dataclass(frozen=True)
class SpanQuery:
    filter: SpanFilter
    sort: SpanSort
    limit: int
    cursor: str | None
    fields: list[str]
    max_chars: int


@dataclass(frozen=True)
class TraceQuery:
    filter: SpanFilter
    sort: TraceSort
    limit: int
    cursor: str | None


@dataclass(frozen=True)
class TreeQuery:
    trace_id: str
    fields: list[str]
    max_chars: int
    limit: int


@dataclass(frozen=True)
class SqlQuery:
    sql: str
    limit: int
    max_chars: int
    time_limit_s: float
    max_steps: int | None


@dataclass(frozen=True)
class SearchQuery:
    pattern: str
    filter: SpanFilter
    limit: int
    context_chars: int
