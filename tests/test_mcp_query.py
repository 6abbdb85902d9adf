"""The server as a coding agent sees it through the real SDK client, in both protocol eras:
the tool list, query_spans and get_trace on real trace files, the errors an agent meets, the
prompt and the instructions. None of this needs an LLM."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from mcp import Client

from halo_mcp.engine.models import RunStatus, Usage
from halo_mcp.server import INSTRUCTIONS, create_server
from halo_mcp.synth import generate
from halo_mcp.tools.results import RESULT_BUDGET_CHARS
from tests.mcp_support import make_traces, settings

MODES = ["legacy", "auto"]
READ_ONLY_TOOLS = {
    "get_run",
    "list_runs",
    "get_finding",
    "query_spans",
    "get_trace",
    "trace_overview",
}


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("HALO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HALO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    return tmp_path


@pytest.fixture
def traces(env):
    return make_traces(env / "traces")


@pytest.mark.parametrize("mode", MODES)
async def test_tools_are_listed_with_schemas_and_honest_annotations(env, mode):
    async with Client(create_server(settings()), mode=mode) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert client.instructions == INSTRUCTIONS
    assert READ_ONLY_TOOLS | {"analyze_traces", "cancel_run"} <= set(tools)
    for name, tool in tools.items():
        assert tool.output_schema and tool.output_schema["type"] == "object", name
        assert tool.description and len(tool.description) > 80, name
        assert tool.annotations.destructive_hint is False, name
        if name in READ_ONLY_TOOLS | {"analyze_traces", "cancel_run"}:
            assert tool.annotations.read_only_hint is (name in READ_ONLY_TOOLS), name
    analyze = tools["analyze_traces"]
    assert analyze.annotations.open_world_hint is True
    assert analyze.annotations.idempotent_hint is False
    assert "get_run" in analyze.description  # the polling protocol is taught
    assert analyze.input_schema["properties"]["wait_seconds"]["maximum"] == 50
    assert "findings" in analyze.output_schema["properties"]
    query = tools["query_spans"]
    filter_schema = query.input_schema["properties"]["filter"]["anyOf"][0]
    assert "errors_only" in filter_schema["properties"]
    assert "input" in json.dumps(query.input_schema["properties"]["fields"])
    assert "next_cursor" in query.output_schema["properties"]
    # Every result stays under Claude Code's 50,000-char file threshold (see the budget test),
    # so no tool needs to declare anthropic/maxResultSizeChars.
    assert all(not (t.meta or {}).get("anthropic/maxResultSizeChars") for t in tools.values())


@pytest.mark.parametrize("mode", MODES)
async def test_query_spans_pages_through_error_spans_with_a_cursor(traces, mode):
    async with Client(create_server(settings()), mode=mode) as client:
        args = {"trace_paths": [str(traces)], "filter": {"errors_only": True}, "limit": 2}
        first = await client.call_tool("query_spans", args)
        assert not first.is_error, first.content[0].text
        page = first.structured_content
        assert page["total"] >= 3 and len(page["spans"]) == 2
        assert all(span["status"] == "error" for span in page["spans"])
        assert page["trace_paths"] == [str(traces.resolve())]
        assert "input" not in page["spans"][0]  # only the chosen fields are returned
        second = await client.call_tool("query_spans", {**args, "cursor": page["next_cursor"]})
        ids = {s["span_id"] for s in page["spans"]}
        assert ids.isdisjoint(s["span_id"] for s in second.structured_content["spans"])
        assert json.loads(first.content[0].text) == page  # the text copy is the same JSON


async def test_query_spans_returns_content_fields_clipped_with_a_marker(traces):
    async with Client(create_server(settings())) as client:
        result = await client.call_tool(
            "query_spans",
            {
                "trace_paths": [str(traces)],
                "filter": {"kind": "llm"},
                "fields": ["span_id", "input", "output"],
                "limit": 3,
                "max_chars": 50,
            },
        )
    page = result.structured_content
    assert page["clipped_values"] >= 1
    assert any("…[truncated:" in (s.get("input") or "") for s in page["spans"])


async def test_relative_paths_are_read_from_the_working_directory_and_reported_absolute(
    traces, monkeypatch
):
    monkeypatch.chdir(traces.parent)
    async with Client(create_server(settings())) as client:
        result = await client.call_tool("query_spans", {"trace_paths": "traces.jsonl", "limit": 1})
    assert result.structured_content["trace_paths"] == [str(traces.resolve())]


async def test_the_largest_query_result_stays_under_the_budget(traces):
    """All content fields, the largest limit and max_chars: the page is shortened instead."""
    async with Client(create_server(settings())) as client:
        result = await client.call_tool(
            "query_spans",
            {
                "trace_paths": [str(traces)],
                "fields": [
                    "trace_id",
                    "span_id",
                    "name",
                    "input",
                    "output",
                    "attributes",
                    "events",
                ],
                "limit": 200,
                "max_chars": 20000,
            },
        )
        page = result.structured_content
        assert len(result.content[0].text) <= RESULT_BUDGET_CHARS < 50_000
        assert page["limit_reduced_to"] == len(page["spans"]) < 200
        assert page["next_cursor"]
        rest = await client.call_tool(
            "query_spans",
            {
                "trace_paths": [str(traces)],
                "fields": ["span_id"],
                "limit": 200,
                "cursor": page["next_cursor"],
            },
        )
        assert len(page["spans"]) + len(rest.structured_content["spans"]) == page["total"]


async def test_the_largest_trace_tree_stays_under_the_budget(env):
    big = env / "big.jsonl"
    generate(big, traces=3, seed=5)  # the realistic profile: long prompts and outputs
    everything = ["trace_id", "span_id", "name", "input", "output", "attributes", "events"]
    async with Client(create_server(settings())) as client:
        spans = await client.call_tool("query_spans", {"trace_paths": [str(big)], "limit": 1})
        trace_id = spans.structured_content["spans"][0]["trace_id"]
        result = await client.call_tool(
            "get_trace",
            {
                "trace_paths": [str(big)],
                "trace_id": trace_id,
                "fields": everything,
                "max_chars": 20000,
                "limit": 1000,
            },
        )
    assert not result.is_error, result.content[0].text
    assert len(result.content[0].text) <= RESULT_BUDGET_CHARS
    tree = result.structured_content
    assert tree["truncated"] is True and len(tree["nodes"]) < tree["summary"]["span_count"]


async def test_the_overview_gives_names_and_ids_to_filter_on(traces):
    async with Client(create_server(settings())) as client:
        result = await client.call_tool("trace_overview", {"trace_paths": [str(traces)]})
        assert not result.is_error, result.content[0].text
        overview = result.structured_content
        assert overview["traces"] == 12 and overview["error_spans"] >= 1
        tool = overview["tools"][0]
        signature = overview["error_signatures"][0]
        calls = await client.call_tool(
            "query_spans",
            {"trace_paths": [str(traces)], "filter": {"tool_name": tool["name"]}, "limit": 1},
        )
        assert calls.structured_content["total"] == tool["calls"]
        example = await client.call_tool(
            "query_spans",
            {
                "trace_paths": [str(traces)],
                "filter": {"span_ids": signature["example_span_ids"][:1]},
            },
        )
        assert example.structured_content["spans"][0]["status"] == "error"


async def test_get_trace_returns_the_span_tree_of_one_trace(traces):
    async with Client(create_server(settings())) as client:
        errors = await client.call_tool(
            "query_spans", {"trace_paths": [str(traces)], "filter": {"errors_only": True}}
        )
        trace_id = errors.structured_content["spans"][0]["trace_id"]
        result = await client.call_tool(
            "get_trace", {"trace_paths": [str(traces)], "trace_id": trace_id}
        )
        assert not result.is_error, result.content[0].text
        tree = result.structured_content
        assert tree["trace_id"] == trace_id and tree["summary"]["error_count"] >= 1
        assert tree["nodes"][0]["depth"] == 0
        assert all(n["span"]["trace_id"] == trace_id for n in tree["nodes"])
        assert len(tree["nodes"]) == tree["summary"]["span_count"]
        unknown = await client.call_tool(
            "get_trace", {"trace_paths": [str(traces)], "trace_id": "no-such-trace"}
        )
        assert unknown.is_error and "no-such-trace" in unknown.content[0].text
        assert "query_spans" in unknown.content[0].text


@pytest.mark.parametrize("mode", MODES)
async def test_expected_failures_are_tool_errors_that_say_what_to_do(traces, tmp_path, mode):
    missing = tmp_path / "nowhere" / "traces.jsonl"
    async with Client(create_server(settings()), mode=mode) as client:

        async def error(tool: str, args: dict) -> str:
            result = await client.call_tool(tool, args)
            assert result.is_error, result
            return result.content[0].text

        text = await error("query_spans", {"trace_paths": [str(missing)]})
        assert "not found" in text and str(missing) in text
        text = await error(
            "query_spans", {"trace_paths": [str(traces)], "filter": {"status": "error"}}
        )
        assert "Invalid filter" in text and "errors_only" in text and "tool_name" in text
        text = await error("query_spans", {"trace_paths": [str(traces)], "filter": {"text": "("}})
        assert "regex" in text
        text = await error("query_spans", {"trace_paths": [str(traces)], "fields": ["nope"]})
        assert "input" in text and "duration_ms" in text  # the valid fields are named
        text = await error("query_spans", {"trace_paths": [str(traces)], "cursor": "garbage"})
        assert "cursor" in text.lower()
        text = await error("query_spans", {"trace_paths": ["bad\x00name"]})
        assert "NUL" in text
        text = await error("analyze_traces", {"trace_paths": [str(traces)]})
        assert "OPENAI_API_KEY" in text
        text = await error("get_run", {"run_id": "run_unknown", "wait_seconds": 0})
        assert "list_runs" in text
        text = await error("cancel_run", {"run_id": "run_unknown"})
        assert "list_runs" in text


async def test_a_file_that_holds_no_spans_is_reported(env):
    empty = env / "empty.jsonl"
    empty.write_text("not json\n")
    async with Client(create_server(settings())) as client:
        result = await client.call_tool("query_spans", {"trace_paths": [str(empty)]})
    assert result.is_error and str(empty) in result.content[0].text


async def test_list_runs_is_empty_before_any_analysis(env):
    async with Client(create_server(settings())) as client:
        result = await client.call_tool("list_runs", {})
    assert result.structured_content == {"runs": [], "more": False}


@pytest.mark.parametrize("mode", MODES)
async def test_the_analyze_and_fix_prompt_walks_through_the_whole_loop(env, mode):
    async with Client(create_server(settings()), mode=mode) as client:
        [prompt] = (await client.list_prompts()).prompts
        assert prompt.name == "analyze_and_fix"
        assert [a.name for a in prompt.arguments] == ["trace_path", "goal"]
        got = await client.get_prompt(
            "analyze_and_fix", {"trace_path": "/data/t.jsonl", "goal": "fewer tool errors"}
        )
    text = got.messages[0].content.text
    for step in ("analyze_traces", "get_run", "get_finding", "query_spans", "fewer tool errors"):
        assert step in text
    assert '"/data/t.jsonl"' in text


@pytest.mark.parametrize("mode", MODES)
async def test_resource_templates_for_reports_and_findings_are_listed(env, mode):
    async with Client(create_server(settings()), mode=mode) as client:
        templates = (await client.list_resource_templates()).resource_templates
        assert {t.uri_template for t in templates} == {
            "halo://runs/{run_id}/report",
            "halo://runs/{run_id}/report.html",
            "halo://findings/{finding_id}",
        }
        with pytest.raises(Exception, match="list_runs"):
            await client.read_resource("halo://runs/run_missing/report")


def test_the_size_a_budget_measures_is_the_size_of_the_text_sent():
    """Nulls count: a result's text is exactly the JSON its budget was measured on."""
    from halo_mcp.tools.models import RunList, RunStatusResult
    from halo_mcp.tools.results import dump, tool_result
    from halo_mcp.tools.runs import status_result

    status = status_result(
        run_id="run_x",
        status=RunStatus.running,
        created_at=datetime.now(timezone.utc),
        finished_at=None,
        phase="exploring",
        fraction=0.5,
        message="",
        usage=Usage(),
        agents_running=1,
        trace_paths=["/t.jsonl"],
        prompt="why?",
        findings=[],
        error=None,
    )
    for model in (status, RunList(runs=[], more=False)):
        sent = tool_result(model)
        assert sent.content[0].text == dump(model)
        assert json.loads(sent.content[0].text) == sent.structured_content
    assert isinstance(status, RunStatusResult) and '"report_uri":null' in dump(status)


async def test_answers_follow_trace_files_that_change_while_the_server_runs(env):
    """A long-lived server keeps stores open; when the user appends to a trace file,
    rewrites it or drops a new file into a traced directory, the next call sees it."""
    folder = env / "live"
    path = make_traces(folder, traces=6, seed=7)
    extra = make_traces(env / "more", traces=4, seed=8)

    async def overview(client, target):
        result = await client.call_tool("trace_overview", {"trace_paths": [str(target)]})
        assert not result.is_error, result.content[0].text
        return result.structured_content

    async with Client(create_server(settings()), mode="auto") as client:
        first = await overview(client, path)
        assert first["traces"] == 6
        with path.open("ab") as handle:  # appended spans: the index is extended
            handle.write(extra.read_bytes())
        grown = await overview(client, path)
        assert grown["traces"] == 10
        assert grown["spans"] == first["spans"] + (await overview(client, extra))["spans"]

        path.write_bytes(extra.read_bytes())  # rewritten: the old traces are gone
        rewritten = await overview(client, path)
        assert rewritten["traces"] == 4
        old_trace = json.loads(
            make_traces(env / "again", traces=6, seed=7).read_text().split("\n")[0]
        )
        gone = await client.call_tool(
            "get_trace", {"trace_paths": [str(path)], "trace_id": old_trace["trace_id"]}
        )
        assert gone.is_error

        in_folder = await overview(client, folder)
        (folder / "second.jsonl").write_bytes(make_traces(env / "third", seed=9).read_bytes())
        assert (await overview(client, folder))["traces"] == in_folder["traces"] + 12
