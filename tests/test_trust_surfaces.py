"""Statuses and outcomes where a user meets them: get_run / get_finding over MCP,
`halo-mcp run` (exit code 3 on a warning), `halo-mcp show`, and trace rules in query_spans
and `halo-mcp query`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from mcp import Client

from halo_mcp.cli import EXIT_WARNING, main
from halo_mcp.server import create_server
from tests.engine_helpers import error_span, finding_args, is_root, make_traces
from tests.fakes.openai_server import refusal, tool_call
from tests.mcp_support import settings


@pytest.fixture
def traces(tmp_path):
    return make_traces(tmp_path)  # 40 traces, with http_get loops


def _partial_finding(engine_env, traces):
    trace_id, span_id = error_span(traces, engine_env.cache_dir)
    return finding_args(
        "read_file fails on paths with spaces",
        {"tool_name": "read_file", "errors_only": True},
        [{"trace_id": trace_id, "span_id": span_id, "excerpt": "I made this up"}],
    )


async def test_get_run_and_get_finding_show_outcome_status_and_reasons(engine_env, traces):
    finding = _partial_finding(engine_env, traces)
    engine_env.server.route(
        is_root, [tool_call("submit_findings", {"findings": [finding], "summary": "s"})]
    )
    async with Client(create_server(settings())) as client:
        started = await client.call_tool(
            "analyze_traces", {"trace_paths": [str(traces)], "wait_seconds": 30}
        )
        status = started.structured_content
        while not status["done"]:
            status = (
                await client.call_tool("get_run", {"run_id": status["run_id"], "wait_seconds": 5})
            ).structured_content
        assert status["outcome"] == "findings" and status["warning"] is None
        (brief,) = status["findings"]
        assert brief["status"] == "partial" and brief["verified"] is False

        detail = await client.call_tool("get_finding", {"finding_id": brief["id"]})
        body = detail.structured_content
        assert body["status"] == "partial" and body["verified"] is False
        (reason,) = body["status_reasons"]
        assert reason["code"] == "excerpt_not_found" and reason["ids"]
        assert all(e["excerpt"] is None for e in body["evidence"])


async def test_get_run_warns_when_the_model_refused_every_turn(engine_env, traces):
    engine_env.server.responder = lambda request: refusal()
    async with Client(create_server(settings())) as client:
        started = await client.call_tool(
            "analyze_traces",
            {"trace_paths": [str(traces)], "wait_seconds": 30, "max_turns": 1},
        )
        status = started.structured_content
        while not status["done"]:
            status = (
                await client.call_tool("get_run", {"run_id": status["run_id"], "wait_seconds": 5})
            ).structured_content
        listed = (await client.call_tool("list_runs", {})).structured_content["runs"]
    assert listed[0]["run_id"] == status["run_id"] and listed[0]["outcome"] == "refused"
    assert status["status"] == "finished" and status["outcome"] == "refused"
    assert "refused every one" in status["warning"]
    assert status["next_step"].startswith("Done, with a warning")


async def test_max_run_tokens_is_an_analyze_traces_argument(engine_env, traces):
    async with Client(create_server(settings())) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert "max_run_tokens" in tools["analyze_traces"].input_schema["properties"]


def test_the_cli_exits_3_on_a_warning_and_show_prints_statuses(
    engine_env, traces, tmp_path, capsys
):
    finding = {**_partial_finding(engine_env, traces), "matcher": {"kind": ["llm"]}}
    engine_env.server.route(
        is_root,
        [
            tool_call("submit_findings", {"findings": [finding], "summary": "s"}),
            tool_call("submit_findings", {"findings": [], "summary": "s"}),
        ],
    )
    done = subprocess.run(
        [sys.executable, "-m", "halo_mcp", "run", str(traces), "-p", "x"],
        env=engine_env.env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == EXIT_WARNING == 3, done.stderr
    assert "warning (only_unverified)" in done.stderr
    assert "| unverified |" in done.stdout and "I made this up" not in done.stdout

    run_id = json.loads(_cli(capsys, "runs", "--json")[1])[0]["id"]
    code, out, _ = _cli(capsys, "show", run_id)
    assert code == 0 and "Warning (only_unverified)" in out
    finding_id = json.loads(_cli(capsys, "show", run_id, "--json")[1])["findings"][0]["id"]
    code, out, _ = _cli(capsys, "show", finding_id)
    assert code == 0
    assert "- Status: unverified" in out and "`matcher_not_discriminating`" in out


async def test_query_spans_takes_a_trace_rule_filter(traces):
    rule = {"kind": "repeated_call", "tool_name": "http_get", "min_count": 3}
    async with Client(create_server(settings())) as client:
        looped = await client.call_tool(
            "query_spans",
            {"trace_paths": [str(traces)], "filter": {"trace_rule": rule}, "limit": 5},
        )
        bad = await client.call_tool(
            "query_spans",
            {"trace_paths": [str(traces)], "filter": {"trace_rule": {"kind": "loops"}}},
        )
    assert not looped.is_error and looped.structured_content["total"] > 0
    assert bad.is_error
    text = bad.content[0].text
    assert "Valid filter fields" in text and "repeated_call" in text and "Example" in text


def test_halo_mcp_query_takes_a_trace_rule(traces: Path, capsys):
    rule = '{"kind": "repeated_call", "tool_name": "http_get", "min_count": 3}'
    code, out, _ = _cli(
        capsys, "query", str(traces), "--trace-rule", rule, "--tool", "http_get", "--json"
    )
    assert code == 0
    spans = json.loads(out)["spans"]
    assert spans and {s["tool_name"] for s in spans} == {"http_get"}
    code, _, err = _cli(capsys, "query", str(traces), "--trace-rule", '{"kind": "nope"}')
    assert code == 2 and "trace_rule kinds" in err


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err
