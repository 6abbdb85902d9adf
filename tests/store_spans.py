"""Hand-written HALO flat JSONL spans for the store tests (small, readable, exact)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

BASE = "2025-03-01T10:00:"


def span(
    trace: str,
    span_id: str,
    parent: str | None,
    name: str,
    kind: str = "CHAIN",
    start: float = 0.0,
    end: float = 1.0,
    error: str | None = None,
    service: str | None = "shop",
    **attributes: Any,
) -> dict[str, Any]:
    """One HALO span; `start`/`end` are seconds after 10:00:00, attributes use dotted keys
    (pass them as a dict via `attributes={...}` when keys hold dots)."""
    extra = attributes.pop("attributes", {})

    def ts(seconds: float) -> str:
        whole = int(seconds)
        return f"{BASE}{whole:02d}.{round((seconds - whole) * 1e9):09d}Z"

    return {
        "trace_id": trace,
        "span_id": span_id,
        "parent_span_id": parent,
        "name": name,
        "kind": "SPAN_KIND_INTERNAL",
        "start_time": ts(start),
        "end_time": ts(end),
        "status": {
            "code": "STATUS_CODE_ERROR" if error else "STATUS_CODE_OK",
            "message": error,
        },
        "resource": {"attributes": {"service.name": service} if service else {}},
        "scope": {"name": "tests"},
        "attributes": {"openinference.span.kind": kind, **extra, **attributes},
    }


def agent(trace: str, span_id: str, name: str, start: float = 0, end: float = 9, **kw: Any):
    return span(trace, span_id, kw.pop("parent", None), f"{name}.run", "AGENT", start, end,
                attributes={"agent.name": name}, **kw)  # fmt: skip


def llm(
    trace: str,
    span_id: str,
    parent: str,
    start: float,
    end: float,
    model: str = "gpt-x",
    prompt: str = "hello",
    answer: str = "hi",
    tokens: tuple[int, int] = (10, 5),
    **kw: Any,
):
    return span(trace, span_id, parent, "chat", "LLM", start, end, attributes={
        "llm.model_name": model, "llm.token_count.prompt": tokens[0],
        "llm.token_count.completion": tokens[1], "input.value": prompt, "output.value": answer,
        **kw.pop("attributes", {})}, **kw)  # fmt: skip


def tool(trace: str, span_id: str, parent: str, start: float, end: float, name: str,
         args: str = "{}", result: str = "ok", error: str | None = None, **kw: Any):  # fmt: skip
    return span(trace, span_id, parent, f"tool {name}", "TOOL", start, end, error=error,
                attributes={"tool.name": name, "input.value": args, "output.value": result,
                            **kw.pop("attributes", {})}, **kw)  # fmt: skip


def write(path: Path, spans: list[dict[str, Any]], extra_lines: list[str] = ()) -> Path:
    with open(path, "w", encoding="utf-8") as handle:
        for item in spans:
            handle.write(json.dumps(item) + "\n")
        for line in extra_lines:
            handle.write(line + "\n")
    return path


def shop_traces() -> list[dict[str, Any]]:
    """Three traces: t1 clean, t2 with a failing search tool called 3 times identically,
    t3 with a slow LLM call and a Paris lookup. Children carry no agent name."""
    return [
        agent("t1", "t1-a", "planner", 0, 5),
        llm("t1", "t1-l", "t1-a", 0.5, 1.5, prompt="plan the trip to Lyon"),
        tool("t1", "t1-w", "t1-a", 2, 2.5, "weather", args='{"city": "Lyon"}', result="sunny"),
        agent("t2", "t2-a", "planner", 10, 20),
        llm("t2", "t2-l", "t2-a", 10.5, 11, model="gpt-y", tokens=(100, 50)),
        tool("t2", "t2-s1", "t2-a", 12, 13, "search", args='{"q": "cats"}',
             error="Timeout after 30s calling https://api.example.com/v1/search?id=17"),
        tool("t2", "t2-s2", "t2-a", 13, 14, "search", args='{"q": "cats"}',
             error="Timeout after 31s calling https://api.example.com/v1/search?id=18"),
        tool("t2", "t2-s3", "t2-a", 14, 15, "search", args='{"q": "cats"}',
             error="Timeout after 45s calling https://api.example.com/v1/search?id=99"),
        agent("t3", "t3-a", "booker", 30, 50, service="travel"),
        llm("t3", "t3-l", "t3-a", 30.5, 45.5, prompt="Book a hotel in Paris, near the Louvre",
            answer="Booked: Hôtel du Louvre", tokens=(1000, 200)),
        tool("t3", "t3-w", "t3-a", 46, 47, "weather", args='{"city": "Paris"}',
             attributes={"retry.count": 2, "cached": True}),
    ]  # fmt: skip
