"""Helpers shared by the engine tests: a small trace set, request routing, event capture."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from halo_mcp.engine.events import EngineEvent
from halo_mcp.engine.prompts import COMPACTION_PROMPT, ROOT_MARKER, SUB_AGENT_MARKER
from halo_mcp.store import SpanFilter, open_store
from halo_mcp.synth import generate
from tests.fakes.openai_server import system_prompt


def make_traces(directory: Path, traces: int = 40, seed: int = 7) -> Path:
    """A small HALO JSONL file with the synth generator's planted failure modes."""
    path = directory / "traces.jsonl"
    generate(str(path), traces=traces, seed=seed, profile="tiny")
    return path


def is_root(request: dict) -> bool:
    return system_prompt(request).startswith(ROOT_MARKER)


def is_sub(request: dict, task_word: str | None = None) -> bool:
    if not system_prompt(request).startswith(SUB_AGENT_MARKER):
        return False
    if task_word is None:
        return True
    messages = request.get("messages", [])
    return len(messages) > 1 and task_word in str(messages[1].get("content", ""))


def is_compaction(request: dict) -> bool:
    return system_prompt(request) == COMPACTION_PROMPT


def tool_messages(request: Any) -> list[str]:
    """Contents of the tool result messages in a recorded request."""
    return [m.get("content", "") for m in request.messages if m.get("role") == "tool"]


def error_span(path: Path, cache_dir: Path, tool: str = "read_file") -> tuple[str, str]:
    """(trace_id, span_id) of an error span of `tool`, read through the store."""
    with open_store([path], cache_dir=cache_dir) as store:
        page = store.query_spans(SpanFilter(tool_name=tool, errors_only=True), limit=1)
        span = page.spans[0]
        return span.trace_id, span.span_id


def count(path: Path, cache_dir: Path, flt: dict) -> tuple[int, int, int]:
    with open_store([path], cache_dir=cache_dir) as store:
        c = store.count(SpanFilter.model_validate(flt))
        return c.traces, c.traces_in_scope, c.spans


def types(events: list[EngineEvent]) -> list[str]:
    return [e.type for e in events]


def finding_args(
    title: str, matcher: dict, evidence: list[dict], severity: str = "high"
) -> dict[str, Any]:
    return {
        "title": title,
        "category": "tool-error",
        "severity": severity,
        "description": f"{title} happens in many traces.",
        "root_cause": "The tool description is ambiguous.",
        "suggested_change": "Clarify the tool description.",
        "validation": "Count the matcher's spans on new traces; it should drop.",
        "evidence": evidence,
        "matcher": matcher,
    }
