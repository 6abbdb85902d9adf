"""The agents' tools over the store: bounded outputs that say how to narrow a read."""

from __future__ import annotations

import json

import pytest

from halo_mcp.engine import agent_tools as at
from halo_mcp.engine.agent import tool_schemas
from halo_mcp.engine.schemas import parse_arguments
from halo_mcp.store import SpanFilter, open_store


def _span(trace: str, span: str, parent: str | None, name: str, *, out: str = "ok", err=None):
    return {
        "trace_id": trace,
        "span_id": span,
        "parent_span_id": parent,
        "name": name,
        "kind": "SPAN_KIND_INTERNAL",
        "start_time": "2026-01-01T00:00:00.000000000Z",
        "end_time": "2026-01-01T00:00:01.000000000Z",
        "status": {
            "code": "STATUS_CODE_ERROR" if err else "STATUS_CODE_OK",
            "message": err or "",
        },
        "resource": {"attributes": {"service.name": "svc"}},
        "scope": {"name": "test", "version": "1"},
        "attributes": {
            "openinference.span.kind": "TOOL",
            "tool.name": name,
            "input.value": "in " + name,
            "output.value": out,
        },
    }


@pytest.fixture
def store(tmp_path):
    """One huge trace (120 spans with 6 KB outputs), one giant span, and small traces."""
    lines = [_span("big", "root0", None, "agent run")]
    for i in range(120):
        err = "boom: disk full" if i % 10 == 0 else None
        out = f"output {i} " + "y" * 6000  # distinct values: a view cannot fold them
        lines.append(_span("big", f"s{i:03d}", "root0", f"step_{i % 4}", out=out, err=err))
    lines.append(_span("giant", "g0", None, "dump", out="z" * 60_000))
    for t in range(30):
        lines.append(_span(f"small{t}", f"p{t}", None, "lookup", out=f"result {t} " * 200))
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    with open_store([path], cache_dir=tmp_path / "cache") as opened:
        yield opened


def test_a_trace_too_big_to_view_comes_back_as_a_summary_with_advice(store):
    ctx = at.ToolContext(store=store)
    text = at.view_trace(ctx, at.ViewTraceArgs(trace_id="big"))
    data = json.loads(text)

    assert len(text.encode()) <= ctx.budgets.view_trace
    assert data["span_count"] == 121
    assert data["error_count"] == 12
    assert {"name": "step_0", "count": 30} in data["top_span_names"]
    assert data["raw_span_bytes"]["max"] > 6000
    assert "view_spans" in data["how_to_narrow"] and "search" in data["how_to_narrow"]
    assert "over the 80,000-byte view budget" in data["too_large_to_show"]


def test_a_small_trace_view_shows_content_with_values_capped(store):
    ctx = at.ToolContext(store=store, budgets=at.ToolBudgets(trace_value_chars=100))
    text = at.view_trace(ctx, at.ViewTraceArgs(trace_id="small3"))
    assert text.startswith("trace small3:")
    assert "lookup [p3]" in text
    assert "[truncated: " in text  # the output value is longer than 100 chars


def test_a_span_bigger_than_the_budget_is_shown_capped_and_says_so(store):
    ctx = at.ToolContext(store=store, budgets=at.ToolBudgets(view_spans=8000))
    text = at.view_spans(ctx, at.ViewSpansArgs(span_ids=["g0"]))
    assert len(text.encode()) <= 8000
    assert "to fit the 8,000-byte output budget" in text
    assert "[truncated: " in text


def test_spans_that_do_not_fit_are_listed_not_dropped_silently(store):
    ctx = at.ToolContext(store=store, budgets=at.ToolBudgets(view_spans=20_000))
    ids = ["s001", "s002", "s003", "s004", "nope"]
    text = at.view_spans(ctx, at.ViewSpansArgs(span_ids=ids, trace_id="big"))
    assert len(text.encode()) <= 20_000
    assert "omitted to stay under the 20,000-byte output budget" in text
    assert "not found: nope" in text


def test_a_query_over_the_budget_says_how_many_rows_were_left_out(store):
    ctx = at.ToolContext(store=store, budgets=at.ToolBudgets(default=6000))
    args = at.QuerySpansArgs(
        filter=SpanFilter(name="lookup"), limit=30, fields=["span_id", "output"], max_chars=1000
    )
    text = at.query_spans(ctx, args)
    head = json.loads(text.split("\n", 1)[0])
    assert len(text.encode()) <= 6000
    assert head["total"] == 30
    assert head["returned"] < 30 and "left out" in head["omitted"]
    assert len(text.split("\n")) - 1 == head["returned"]


def test_count_search_and_overview_answer_within_budget(store):
    ctx = at.ToolContext(store=store)
    counted = json.loads(at.count_spans(ctx, at.CountArgs(filter=SpanFilter(errors_only=True))))
    assert counted == {"spans": 12, "traces": 1, "traces_in_scope": 32, "trace_rate": 0.0312}

    found = at.search(ctx, at.SearchArgs(pattern="disk full", trace_id="big", limit=3))
    head = json.loads(found.split("\n", 1)[0])
    assert head["spans_matched"] == 12 and head["returned"] == 3

    overview = json.loads(at.get_overview(ctx, at.OverviewArgs()))
    assert overview["traces"] == 32
    assert sum(sig["spans"] for sig in overview["error_signatures"]) == 12
    assert overview["error_signatures"][0]["message"].startswith("boom: disk full")


def test_bad_arguments_become_messages_saying_what_to_fix():
    args, error = parse_arguments(at.QuerySpansArgs, '{"limit": 500}')
    assert args is None and "limit" in error and "Fix these" in error
    args, error = parse_arguments(at.SearchArgs, "{pattern: x}")
    assert args is None and "not valid JSON" in error
    args, error = parse_arguments(at.CountArgs, '{"filter": {"colour": "red"}}')
    assert args is None and "colour" in error
    args, error = parse_arguments(at.OverviewArgs, "")
    assert error is None
    # A nested object sent as a JSON string is accepted as the object.
    args, error = parse_arguments(at.CountArgs, '{"filter": "{\\"errors_only\\": true}"}')
    assert error is None and args.filter.errors_only is True


def test_only_the_root_can_submit_and_only_when_depth_allows_can_delegate():
    names = lambda tools: {t["function"]["name"] for t in tools}  # noqa: E731
    root = names(tool_schemas(True, True))
    leaf = names(tool_schemas(False, False))
    assert {"submit_findings", "add_findings", "delegate", "get_overview"} <= root
    assert "finish" in leaf and "submit_findings" not in leaf and "delegate" not in leaf
    for tool in tool_schemas(True, True):
        assert "$ref" not in json.dumps(tool)  # schemas are inlined
