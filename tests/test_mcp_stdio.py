"""`halo-mcp serve` as a subprocess over stdio, as Claude Code, Codex or Cursor start it: the
protocol alone on stdout, tools listed and callable; and the `--test` self-check."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from tests.mcp_support import make_traces


@pytest.fixture
def env(tmp_path):
    values = {
        **os.environ,
        "HALO_CACHE_DIR": str(tmp_path / "cache"),
        "HALO_DATA_DIR": str(tmp_path / "data"),
    }
    values.pop("OPENAI_API_KEY", None)
    values.pop("OPENAI_BASE_URL", None)
    return values


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_a_client_starts_the_server_over_stdio_and_queries_spans(env, tmp_path, mode):
    traces = make_traces(tmp_path / "t")
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "halo_mcp", "serve"], env=env, cwd=str(tmp_path)
    )
    async with Client(params, mode=mode) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert {"analyze_traces", "query_spans", "get_run", "get_finding"} <= names
        result = await client.call_tool(
            "query_spans", {"trace_paths": ["t/traces.jsonl"], "limit": 1}
        )
        assert not result.is_error, result.content[0].text
        assert result.structured_content["trace_paths"] == [str(traces.resolve())]
        missing = await client.call_tool("analyze_traces", {"trace_paths": [str(traces)]})
        assert missing.is_error and "OPENAI_API_KEY" in missing.content[0].text


def test_serve_test_prints_one_health_line(env):
    done = subprocess.run(
        [sys.executable, "-m", "halo_mcp", "serve", "--test"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    [line] = done.stdout.splitlines()
    assert line.startswith("halo-mcp serve: OK, ") and " tools over stdio in " in line
    assert "analyze_traces" in line and "query_spans" in line
    assert "LLM credentials: MISSING" in line


def test_serve_test_reports_a_server_that_fails_to_start_on_stderr(env, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "halo_mcp", "serve", "--test", "--root", str(tmp_path / "no")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and done.stdout == ""
    assert "FAILED to start over stdio" in done.stderr and "halo-mcp serve -v" in done.stderr
    assert "is not a directory" in done.stderr  # the server's own error, also on stderr


def test_a_bad_configuration_is_a_usage_error_on_stderr(env):
    done = subprocess.run(
        [sys.executable, "-m", "halo_mcp", "serve", "--http", "--host", "0.0.0.0"],
        env={k: v for k, v in env.items() if k != "HALO_MCP_TOKEN"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert "HALO_MCP_TOKEN" in done.stderr


def test_stdout_carries_nothing_but_protocol_messages(env, tmp_path):
    """Every stdout line is a JSON-RPC message, even when a tool fails; logs go to stderr."""
    traces = make_traces(tmp_path / "t")
    messages = [
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "raw", "version": "0"},
            },
        },
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        {
            "jsonrpc": "2.0",
            "id": 3,
            "method": "tools/call",
            "params": {"name": "query_spans", "arguments": {"trace_paths": [str(traces)]}},
        },
        {
            "jsonrpc": "2.0",
            "id": 4,
            "method": "tools/call",
            "params": {"name": "query_spans", "arguments": {"trace_paths": ["/nope.jsonl"]}},
        },
    ]
    log = (tmp_path / "stderr.log").open("w")  # a file: a full pipe could block the server
    proc = subprocess.Popen(
        [sys.executable, "-m", "halo_mcp", "serve", "-v"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log,
        env=env,
        text=True,
    )
    watchdog = threading.Timer(60, proc.kill)  # a hung server fails the test, not the run
    watchdog.start()
    try:
        assert proc.stdin and proc.stdout
        proc.stdin.write("".join(json.dumps(m) + "\n" for m in messages))
        proc.stdin.flush()
        replies = []
        while {r.get("id") for r in replies} < {1, 2, 3, 4}:
            line = proc.stdout.readline()
            assert line, "the server closed stdout early"
            replies.append(json.loads(line))  # a stray print would fail here
        proc.stdin.close()
        rest = proc.stdout.read()
        proc.wait(30)
    finally:
        watchdog.cancel()
        log.close()
    errors = (tmp_path / "stderr.log").read_text()
    replies += [json.loads(line) for line in rest.splitlines()]
    assert all(reply["jsonrpc"] == "2.0" for reply in replies)
    by_id = {reply.get("id"): reply for reply in replies}
    assert by_id[3]["result"]["isError"] is False
    assert by_id[4]["result"]["isError"] is True
    assert "DEBUG" in errors  # -v logs went to stderr
