"""The server never blocks its event loop on the file system: trace paths are resolved and the
run store is opened in worker threads, so one slow disk does not stall every other call."""

from __future__ import annotations

import threading

import pytest
from mcp import Client

from halo_mcp.engine.runstore import RunStore
from halo_mcp.server import create_server
from halo_mcp.tools import paths as tool_paths
from tests.mcp_support import make_traces, settings


@pytest.fixture
def traces(tmp_path, monkeypatch):
    monkeypatch.setenv("HALO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HALO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    return make_traces(tmp_path / "traces")


def _record_threads(monkeypatch, target, name, threads: list[int]) -> None:
    original = getattr(target, name)

    def wrapper(*args, **kwargs):
        threads.append(threading.get_ident())
        return original(*args, **kwargs)

    monkeypatch.setattr(target, name, wrapper)


async def test_trace_paths_are_checked_off_the_event_loop(traces, monkeypatch):
    stats: list[int] = []
    _record_threads(monkeypatch, tool_paths, "_existing", stats)
    loop_thread = threading.get_ident()
    async with Client(create_server(settings())) as client:
        for tool in ("query_spans", "trace_overview", "triage_traces"):
            result = await client.call_tool(tool, {"trace_paths": [str(traces)]})
            assert not result.is_error, result.content[0].text
        missing = await client.call_tool("query_spans", {"trace_paths": [str(traces) + ".nope"]})
        assert missing.is_error and "Trace file not found" in missing.content[0].text
    assert len(stats) == 4 and loop_thread not in stats


async def test_the_run_store_is_opened_off_the_event_loop(traces, monkeypatch):
    opened: list[int] = []
    _record_threads(monkeypatch, RunStore, "__init__", opened)
    loop_thread = threading.get_ident()
    async with Client(create_server(settings())) as client:
        listed = await client.call_tool("list_runs", {})
        assert listed.structured_content["runs"] == []
        unknown = await client.call_tool("get_run", {"run_id": "run_x", "wait_seconds": 0})
        assert unknown.is_error
        again = await client.call_tool("get_finding", {"finding_id": "f_x"})
        assert again.is_error
    assert len(opened) == 1 and loop_thread not in opened  # opened once, in a worker thread


async def test_query_results_are_built_off_the_event_loop(traces, monkeypatch):
    """Many clients share one event loop: a result's serialisation runs in the store's
    thread with its query, not on the loop."""
    from halo_mcp.tools import spans

    built: list[int] = []
    _record_threads(monkeypatch, spans, "tool_result", built)
    loop_thread = threading.get_ident()
    async with Client(create_server(settings())) as client:
        page = await client.call_tool("query_spans", {"trace_paths": [str(traces)], "limit": 3})
        trace_id = page.structured_content["spans"][0]["trace_id"]
        for tool, extra in (("trace_overview", {}), ("get_trace", {"trace_id": trace_id})):
            result = await client.call_tool(tool, {"trace_paths": [str(traces)], **extra})
            assert not result.is_error, result.content[0].text
    assert len(built) == 3 and loop_thread not in built
