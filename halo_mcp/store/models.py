"""The store's typed contract: the normalized span, the filter language, and query results.

Every format halo-mcp reads (HALO flat JSONL, OTLP JSON, OpenInference, GenAI, OpenAI
Agents SDK) normalizes into :class:`Span`. Every consumer (the engine's agents, the MCP
tools, the CLI, findings' matchers) selects spans with one language, :class:`SpanFilter`.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

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
    """One span, normalized. Content (inputs, outputs, attributes) is read from `source`."""

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
