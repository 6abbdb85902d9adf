"""A client nobody here wrote: the MCP Inspector CLI (npm @modelcontextprotocol/inspector, the
official TypeScript SDK) starts `halo-mcp serve` over stdio, lists the tools and queries the
example traces. Install it with `npm ci --prefix tests/inspector`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.mcp_support import make_traces

REPO = Path(__file__).resolve().parent.parent
INSPECTOR = REPO / "tests" / "inspector" / "node_modules" / ".bin" / "mcp-inspector"
EXAMPLE = REPO / "examples" / "traces.jsonl"


@pytest.fixture
def inspector(tmp_path):
    """Runs the inspector CLI against `python -m halo_mcp serve`; returns (exit code, stdout)."""
    if shutil.which("node") is None:
        pytest.fail("node is not installed: the MCP Inspector smoke test needs Node.js >= 18")
    if not INSPECTOR.exists():
        pytest.fail(
            f"MCP Inspector not found at {INSPECTOR}: run `npm ci --prefix tests/inspector`"
        )
    env = {
        **os.environ,
        "HALO_CACHE_DIR": str(tmp_path / "cache"),
        "HALO_DATA_DIR": str(tmp_path / "data"),
    }
    env.pop("OPENAI_API_KEY", None)

    def run(*args: str) -> tuple[int, str]:
        command = [str(INSPECTOR), "--cli", sys.executable, "-m", "halo_mcp", "serve", *args]
        done = subprocess.run(
            command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
        )
        return done.returncode, done.stdout + done.stderr

    return run


@pytest.fixture
def example_traces(tmp_path):
    """examples/traces.jsonl when the repository ships it, else a generated file."""
    return EXAMPLE if EXAMPLE.exists() else make_traces(tmp_path / "examples")


def test_the_inspector_lists_every_tool_with_its_schemas(inspector):
    code, out = inspector("--method", "tools/list")
    assert code == 0, out
    tools = {tool["name"]: tool for tool in json.loads(out)["tools"]}
    assert {"analyze_traces", "get_run", "get_finding", "query_spans", "get_trace"} <= set(tools)
    assert tools["query_spans"]["annotations"]["readOnlyHint"] is True
    assert "outputSchema" in tools["query_spans"]


def test_the_inspector_queries_error_spans_in_the_example_traces(inspector, example_traces):
    code, out = inspector(
        "--method",
        "tools/call",
        "--tool-name",
        "query_spans",
        "--tool-arg",
        f"trace_paths={json.dumps([str(example_traces)])}",
        "--tool-arg",
        'filter={"errors_only": true}',
        "--tool-arg",
        "limit=3",
    )
    assert code == 0, out
    result = json.loads(out)
    assert result.get("isError") is not True
    page = result["structuredContent"]
    assert page["total"] >= 1 and 1 <= len(page["spans"]) <= 3
    assert all(span["status"] == "error" for span in page["spans"])


def test_a_tool_error_reaches_the_inspector_with_its_message(inspector, tmp_path):
    missing = tmp_path / "missing.jsonl"
    code, out = inspector(
        "--method",
        "tools/call",
        "--tool-name",
        "query_spans",
        "--tool-arg",
        f"trace_paths={json.dumps([str(missing)])}",
    )
    assert "Trace file not found" in out and str(missing) in out
    assert code != 0 or json.loads(out).get("isError") is True
