"""since/until: parsed in one place (store.timewindow), applied as a store of the window's
whole traces, through the store, the MCP tools and the CLI."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import pytest
from mcp import Client

from halo_mcp.cli import main
from halo_mcp.store import NoSpansError, open_store
from halo_mcp.store.timewindow import TimeWindow, parse_time_point, time_window
from halo_mcp.triage import run_triage
from tests.mcp_support import settings
from tests.store_spans import agent, tool, write
from tests.test_store_shards import _snapshot

NOW = datetime(2026, 5, 10, 12, 0, tzinfo=timezone.utc)
SINCE = "2025-03-01T10:00:30Z"


@pytest.fixture(autouse=True)
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("HALO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HALO_DATA_DIR", str(tmp_path / "data"))


def staggered(tmp_path):
    """12 traces starting 4 s apart from 10:00:00 (a failing search in i = 0, 3, 6, 9), and
    one trace that starts at 10:00:05 but has a child at 10:00:50."""
    spans = []
    for i in range(12):
        t = f"w{i}"
        spans.append(agent(t, f"{t}-a", "planner", i * 4, i * 4 + 3))
        error = f"Timeout after {i}s" if i % 3 == 0 else None
        spans.append(tool(t, f"{t}-s", f"{t}-a", i * 4 + 1, i * 4 + 2, "search", error=error))
    spans.append(agent("late", "late-a", "booker", 5, 55))
    spans.append(tool("late", "late-f", "late-a", 50, 51, "fetch", error="HTTP 503"))
    return write(tmp_path / "staggered.jsonl", spans)


def test_bounds_parse_relative_iso_and_say_what_is_wrong():
    assert parse_time_point("24h", now=NOW) == NOW - timedelta(hours=24)
    assert parse_time_point("30m", now=NOW) == NOW - timedelta(minutes=30)
    assert parse_time_point("7d", now=NOW) == NOW - timedelta(days=7)
    assert parse_time_point(" 1.5H ", now=NOW) == NOW - timedelta(minutes=90)
    assert parse_time_point("now", now=NOW) == NOW
    assert parse_time_point("2026-05-01") == datetime(2026, 5, 1, tzinfo=timezone.utc)
    assert parse_time_point("2026-05-01T12:00:00+02:00") == datetime(
        2026, 5, 1, 10, tzinfo=timezone.utc
    )
    with pytest.raises(ValueError, match=r"'yesterday' is not a time.*24h"):
        parse_time_point("yesterday")
    with pytest.raises(ValueError, match=r"since \(.*\) must be before until"):
        time_window("1h", "2h")  # an hour ago is after two hours ago
    assert time_window(None, "") is None
    window = TimeWindow.model_validate({"since": "2026-05-01", "until": "2026-05-02"})
    assert window.bounds_ns() == (1777593600 * 10**9, 1777680000 * 10**9)


def test_a_window_keeps_whole_traces_and_recounts_everything(tmp_path):
    path = staggered(tmp_path)
    with open_store([path], window=time_window(SINCE)) as store:
        assert store.count().traces == 4  # w8..w11 start at 32, 36, 40, 44 s
        overview = store.overview()
        assert overview.traces == 4 and overview.spans == 8
        assert overview.start_time == datetime(2025, 3, 1, 10, 0, 32, tzinfo=timezone.utc)
        assert [(t.name, t.calls, t.errors) for t in overview.tools] == [("search", 4, 1)]
        assert [s.message for s in overview.error_signatures] == ["Timeout after <N>s"]
        assert "late" not in {s.trace_id for s in store.query_spans(limit=50).spans}
        report = run_triage(store)
        assert report.items and all(i.prevalence.traces_in_scope == 4 for i in report.items)
        tree = store.trace_tree("w9", fields=["span_id", "source", "input"])
        assert tree.summary.first_error is not None
        assert tree.nodes[1].span.source is not None and tree.nodes[1].span.source.line == 20
        assert tree.nodes[1].span.input == "{}"  # content read from the trace file
        window_index = store.index_path
    assert not window_index.exists()  # the window's index goes with its store
    with open_store([path], window=time_window(None, SINCE)) as before:
        assert before.count().traces == 9  # w0..w7 and the late trace
        assert before.count({"tool_name": "fetch"}).spans == 1


def test_a_window_over_a_sharded_index_reads_like_one_over_a_serial_one(tmp_path, monkeypatch):
    from halo_mcp.store import index as index_module

    path = staggered(tmp_path)
    window = time_window("2025-03-01T10:00:10Z", "2025-03-01T10:00:45Z")
    with open_store([path], cache_dir=tmp_path / "serial", window=window) as serial:
        expected = _snapshot(serial)
    monkeypatch.setattr(index_module, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(index_module, "WORKERS", 3)
    with open_store([path], cache_dir=tmp_path / "sharded", window=window) as sharded:
        assert _snapshot(sharded) == expected


def test_an_empty_window_says_where_the_data_is(tmp_path):
    path = staggered(tmp_path)
    with pytest.raises(NoSpansError, match="traces run from 2025-03-01T10:00:00"):
        open_store([path], window=time_window("24h"))


def otlp_line(trace_hex: str, start: datetime) -> str:
    ns = int(start.timestamp() * 1e9)
    span = {"traceId": trace_hex, "spanId": "1" * 16, "name": "invoke_agent a", "kind": 1,
            "startTimeUnixNano": str(ns), "endTimeUnixNano": str(ns + 10**9),
            "status": {"code": 2, "message": "boom"}}  # fmt: skip
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]})


async def test_mcp_tools_and_cli_take_relative_windows(tmp_path, capsys):
    now = datetime.now(timezone.utc)
    path = tmp_path / "live.jsonl"
    path.write_text(
        otlp_line("a" * 32, now - timedelta(hours=2))
        + "\n"
        + otlp_line("b" * 32, now - timedelta(hours=30))
        + "\n"
    )
    async with Client(create_server_for_tests()) as client:
        args = {"trace_paths": [str(path)], "since": "24h"}
        overview = await client.call_tool("trace_overview", args)
        assert not overview.is_error, overview.content[0].text
        assert overview.structured_content["traces"] == 1
        spans = await client.call_tool("query_spans", args)
        assert [s["trace_id"] for s in spans.structured_content["spans"]] == ["a" * 32]
        triage = await client.call_tool("triage_traces", {**args, "since": "3d", "until": "1d"})
        assert not triage.is_error, triage.content[0].text
        items = triage.structured_content["items"]
        assert items and items[0]["prevalence"]["traces_in_scope"] == 1
        bad = await client.call_tool("trace_overview", {**args, "since": "last week"})
        assert bad.is_error and "'last week' is not a time" in bad.content[0].text
    assert main(["overview", str(path), "--since", "24h", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["traces"] == 1
    assert main(["triage", str(path), "--until", "1d", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["traces"] == 1
    assert main(["query", str(path), "--since", "soon"]) == 2
    assert "--since: 'soon' is not a time" in capsys.readouterr().err
    time.sleep(0)


def create_server_for_tests():
    from halo_mcp.server import create_server

    return create_server(settings())


async def test_analyze_traces_over_a_window_sees_only_its_traces(engine_env, tmp_path):
    from halo_mcp.server import create_server
    from tests.mcp_support import script_analysis

    path = staggered(tmp_path)
    script_analysis(engine_env.server)
    async with Client(create_server(settings())) as client:
        started = await client.call_tool(
            "analyze_traces",
            {"trace_paths": [str(path)], "since": SINCE, "wait_seconds": 0.1},
        )
        assert not started.is_error, started.content[0].text
        run_id = started.structured_content["run_id"]
        for _ in range(100):
            status = await client.call_tool("get_run", {"run_id": run_id, "wait_seconds": 5})
            if status.structured_content["done"]:
                break
        assert status.structured_content["status"] == "finished"
        bad = await client.call_tool("analyze_traces", {"trace_paths": [str(path)], "until": "x"})
        assert bad.is_error and "'x' is not a time" in bad.content[0].text
    sent = "".join(r.body.decode() for r in engine_env.server.requests)
    assert "Analyze 4 traces" in sent  # the root task counts the window's traces
    assert "Analyze 13 traces" not in sent


async def test_sql_over_a_window_sees_only_its_traces(tmp_path, capsys):
    path = staggered(tmp_path)
    query = "SELECT COUNT(*) AS traces FROM traces"
    async with Client(create_server_for_tests()) as client:
        result = await client.call_tool(
            "query_sql", {"trace_paths": [str(path)], "sql": query, "since": SINCE}
        )
        assert not result.is_error, result.content[0].text
        assert result.structured_content["rows"] == [[4]]
    assert main(["sql", str(path), query, "--until", SINCE, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"] == [[9]]


async def test_the_server_keeps_a_window_store_until_the_files_change(tmp_path):
    """Paging through one window reuses its store; an append makes the next call rebuild
    it; stores of windows no longer used are closed and their index files deleted."""
    path = staggered(tmp_path)
    windows = lambda: sorted((tmp_path / "cache").rglob("*.window-*.sqlite"))  # noqa: E731
    async with Client(create_server_for_tests()) as client:
        args = {"trace_paths": [str(path)], "since": SINCE, "limit": 3, "fields": ["span_id"]}
        first = await client.call_tool("query_spans", args)
        cursor = first.structured_content["next_cursor"]
        second = await client.call_tool("query_spans", {**args, "cursor": cursor})
        assert first.structured_content["total"] == second.structured_content["total"] == 8
        seen = [s["span_id"] for r in (first, second) for s in r.structured_content["spans"]]
        assert len(set(seen)) == 6
        [kept] = windows()
        with open(path, "a") as handle:
            handle.write(json.dumps(agent("w12", "w12-a", "planner", 50, 52)) + "\n")
        grown = await client.call_tool("query_spans", args)
        assert grown.structured_content["total"] == 9
        assert windows() and kept not in windows()
        for since in ("2025-03-01T10:00:10Z", "2025-03-01T10:00:20Z", "2025-03-01T10:00:40Z"):
            result = await client.call_tool(
                "trace_overview", {"trace_paths": [str(path)], "since": since}
            )
            assert not result.is_error, result.content[0].text
        assert len(windows()) == 2
    assert windows() == []
