"""Triage, check, the engine's agent tools and the MCP path rules on a ClickHouse table.

The same generated traces (with planted failures) go into a file store and, through
`halo-mcp load`'s writer, into embedded ClickHouse (chDB, the real engine): triage and
check must give the same items and counts on both. One shared pair of stores keeps the
module fast.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from mcp.server.mcpserver.exceptions import ToolError

from halo_mcp.check.recount import check_findings
from halo_mcp.engine import RunStatus, stream_run
from halo_mcp.engine.events import RunFinished
from halo_mcp.store import QueryTimeoutError, SpanFilter, open_store
from halo_mcp.store.api import TraceReader
from halo_mcp.store.clickhouse.client import connect
from halo_mcp.store.clickhouse.load import load_files
from halo_mcp.store.clickhouse.location import parse_location
from halo_mcp.store.clickhouse.materialize import build_index
from halo_mcp.store.clickhouse.schema import exporter_ddl
from halo_mcp.store.clickhouse.store import ClickHouseTraceStore, open_clickhouse
from halo_mcp.store.models import EventFilter, TraceRule
from halo_mcp.synth import generate
from halo_mcp.tools.paths import normalize_roots, resolve_trace_paths
from halo_mcp.triage.measure import count_matcher
from halo_mcp.triage.run import run_triage
from tests.engine_helpers import finding_args, is_root
from tests.fakes.openai_server import tool_call


@pytest.fixture(scope="module")
def traces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("traces") / "traces.jsonl"
    generate(path, traces=60, seed=5)
    return path


@pytest.fixture(scope="module")
def chdb_folder(traces: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("chdb") / "db"
    location = parse_location(f"chdb:{folder}")
    client = connect(location)
    try:
        load_files([traces], client, location)
        build_index(client, location)  # the companion table: reads use it unless told not to
    finally:
        client.close()
    return folder


@pytest.fixture(scope="module", params=["in place", "materialized"])
def stores(
    traces: Path,
    chdb_folder: Path,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[tuple[TraceReader, TraceReader]]:
    """(file store, ClickHouse store) over the same traces: the ClickHouse one through
    open_store (the companion table), and over the exporter table read in place."""
    with open_store([traces], cache_dir=tmp_path_factory.mktemp("cache")) as files:
        if request.param == "materialized":
            clickhouse = open_store([f"chdb:{chdb_folder}"])
        else:
            clickhouse = open_clickhouse(parse_location(f"chdb:{chdb_folder}"), companion=False)
        with clickhouse:
            assert isinstance(clickhouse, ClickHouseTraceStore)
            assert clickhouse.source.materialized is (request.param == "materialized")
            yield files, clickhouse


def _comparable(item: Any) -> dict[str, Any]:
    """A triage item without its id (which hashes the source paths)."""
    return item.model_dump(mode="json", exclude={"id"})


def test_triage_finds_the_same_items_with_the_same_counts_in_clickhouse(stores) -> None:
    files, clickhouse = stores
    expected, found = run_triage(files), run_triage(clickhouse)

    assert expected.items, "the planted failures give triage items"
    assert {i.category for i in expected.items} >= {"loop", "tool-error", "rate-limit"}
    assert [i.title for i in found.items] == [i.title for i in expected.items]
    assert [_comparable(i) for i in found.items] == [_comparable(i) for i in expected.items]
    assert (found.traces, found.spans, found.error_spans) == (
        expected.traces,
        expected.spans,
        expected.error_spans,
    )
    assert found.tools == expected.tools and found.notes == expected.notes
    assert found.paths == [clickhouse.location.display]


def test_check_and_counts_recount_the_same_on_both_backends(stores) -> None:
    files, clickhouse = stores
    findings = run_triage(files).items
    expected = check_findings(findings, files, baseline_store=files)
    found = check_findings(findings, clickhouse, baseline_store=clickhouse)

    assert [r.model_dump(exclude={"elapsed_ms"}) for r in found.results] == [
        r.model_dump(exclude={"elapsed_ms"}) for r in expected.results
    ]
    assert found.traces_in_scope == expected.traces_in_scope == 60
    # Every triage matcher, and each trace rule, selects the same spans in both.
    agent = files.overview().agents[0].name
    rules = [
        TraceRule(kind="repeated_call"),
        TraceRule(kind="step_limit", min_count=3),
        TraceRule(kind="ends_after_tool_error"),
        TraceRule(kind="trace_duration", min_duration_ms=60_000),
        TraceRule(kind="trace_tokens", min_tokens=20_000),
        TraceRule(kind="no_final_answer"),
        TraceRule(  # a tool error retried with that tool
            kind="followed_by",
            first=EventFilter(kind=["tool"], errors_only=True),
            then=EventFilter(kind=["tool"]),
            same_tool=True,
        ),
        TraceRule(  # an error never followed by a model call (none here: still counted)
            kind="followed_by",
            first=EventFilter(errors_only=True),
            then=EventFilter(kind=["llm"]),
            then_absent=True,
        ),
        TraceRule(
            kind="followed_by",
            first=EventFilter(errors_only=True),
            then=EventFilter(kind=["llm"], agent=agent),
        ),
    ]
    matchers = [f.matcher for f in findings if f.matcher is not None]
    for flt in [*matchers, *(SpanFilter(trace_rule=rule) for rule in rules)]:
        assert clickhouse.count(flt) == files.count(flt), flt.model_dump(exclude_defaults=True)
    assert files.count(SpanFilter(trace_rule=rules[-3])).traces > 0
    assert files.count(SpanFilter(trace_rule=rules[-1])).traces > 0
    assert any(files.count(SpanFilter(trace_rule=rule)).traces for rule in rules)
    # A plain matcher (what an engine finding carries) counts the same too.
    matcher = SpanFilter(tool_name="read_file", errors_only=True)
    a, b = count_matcher(files, matcher), count_matcher(clickhouse, matcher)
    assert (b.traces, b.spans, b.trace_count) == (a.traces, a.spans, a.trace_count)
    assert a.spans > 0


def test_every_exporter_schema_variant_is_read(
    tmp_path: Path, traces: Path, chdb_folder: Path
) -> None:
    """Newer exporters add ScopeAttributes, ServiceVersion...; older setups lack the trace
    id lookup table. Both open and give the same counts. (One chDB folder per process: the
    variant is another table in the same folder.)"""
    folder = chdb_folder
    location = parse_location(f"chdb:{folder}")
    client = connect(location)
    try:
        client.command("CREATE DATABASE IF NOT EXISTS otel")
        table_ddl = exporter_ddl("otel", "wide")[0]  # the table alone: no lookup table
        wide = table_ddl.replace(
            "    ScopeName ", "    ScopeAttributes Map(LowCardinality(String), String) "
            "CODEC(ZSTD(1)),\n    ServiceVersion LowCardinality(String) CODEC(ZSTD(1)),\n"
            "    ScopeName ", 1
        )  # fmt: skip
        assert wide != table_ddl
        client.command(wide)
        wide_location = parse_location(f"chdb:{folder}?table=wide")
        load_files([traces], client, wide_location)  # this also creates the lookup table:
        client.command("DROP TABLE otel.wide_trace_id_ts_mv")  # drop it, as on a setup
        client.command("DROP TABLE otel.wide_trace_id_ts")  # that never had one
        tables = {name for (name,) in client.rows("SHOW TABLES FROM otel")}
    finally:
        client.close()
    assert "wide" in tables and not any(t.startswith("wide_") for t in tables)
    with open_clickhouse(wide_location) as store, open_store([traces], cache_dir=tmp_path) as ref:
        assert {"ScopeAttributes", "ServiceVersion"} <= set(store.shape.columns)
        flt = SpanFilter(kind=["tool"], errors_only=True)
        assert store.count(flt) == ref.count(flt)
        with store.aggregates() as reader, ref.aggregates() as ref_reader:
            assert reader.span_totals() == ref_reader.span_totals()


def test_the_window_bounds_triage_and_counts(stores, chdb_folder: Path) -> None:
    files, clickhouse = stores
    end = files.overview().end_time
    assert end is not None
    since = end - timedelta(hours=12)
    inside = SpanFilter(start_after=since)
    location = parse_location(f"chdb:{chdb_folder}")
    with open_clickhouse(location, since=since) as recent:
        counted = recent.count()
        assert counted.spans == files.count(inside).spans < files.count().spans
        with recent.aggregates() as reader:
            assert reader.span_totals().spans == counted.spans
            low, high = reader.time_range()
            assert int(since.timestamp() * 1e9) <= low <= high
        assert run_triage(recent).traces == counted.traces_in_scope
    # The default window (7 days up to the newest span) holds all of this 3-day set.
    assert clickhouse.count().spans == files.count().spans


def test_clickhouse_stops_a_statement_past_the_time_limit(chdb_folder: Path) -> None:
    location = parse_location(f"chdb:{chdb_folder}")
    client = connect(location)
    try:
        with pytest.raises(QueryTimeoutError, match="time limit"):
            # An endless scan: only the time limit ends it.
            endless = "SELECT count() FROM system.numbers WHERE sipHash64(number) = 1"
            client.rows(endless, time_limit=1)
    finally:
        client.close()
    # A request of several statements shares one limit: none is left after the first.
    store = open_clickhouse(location, query_time_limit=1e-6)
    try:
        with pytest.raises(QueryTimeoutError, match="narrow it"):
            store.search("error")
    finally:
        store.close()


def test_mcp_paths_accept_clickhouse_only_where_the_server_allows(
    tmp_path: Path, chdb_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = "clickhouse://reader@ch.internal:8123/otel?table=otel_traces"
    roots = normalize_roots([chdb_folder.parent])
    monkeypatch.delenv("HALO_CLICKHOUSE_URL", raising=False)
    with pytest.raises(ToolError, match="configured location"):
        resolve_trace_paths([url], roots)  # over HTTP: no arbitrary hosts
    assert resolve_trace_paths([url], None) == [url]  # stdio: the local user's own choice
    monkeypatch.setenv("HALO_CLICKHOUSE_URL", url)
    assert resolve_trace_paths([url], roots) == [url]
    assert resolve_trace_paths([], roots) == [url]  # the server's default
    with pytest.raises(ToolError, match="configured location"):
        resolve_trace_paths([url.replace("ch.internal", "elsewhere")], roots)
    assert resolve_trace_paths([f"chdb:{chdb_folder}"], roots) == [f"chdb:{chdb_folder}"]
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    with pytest.raises(ToolError, match="outside the allowed roots"):
        resolve_trace_paths([f"chdb:{outside}"], roots)
    with pytest.raises(ToolError, match="on its own"):
        resolve_trace_paths([f"chdb:{chdb_folder}", str(outside)], None)


async def test_an_analysis_runs_its_agent_tools_on_a_clickhouse_table(
    engine_env, stores, chdb_folder: Path
) -> None:
    files, _ = stores
    page = files.query_spans(SpanFilter(tool_name="read_file", errors_only=True), limit=1)
    trace_id, span_id = page.spans[0].trace_id, page.spans[0].span_id
    finding = finding_args(
        "read_file fails", {"tool_name": "read_file", "errors_only": True},
        [{"trace_id": trace_id, "span_id": span_id}],
    )  # fmt: skip
    engine_env.server.route(
        is_root,
        [
            tool_call("get_overview", {}),
            tool_call("count_spans", {"filter": {"tool_name": "read_file", "errors_only": True}}),
            tool_call("query_spans", {"filter": {"errors_only": True}, "limit": 3}),
            tool_call("view_trace", {"trace_id": trace_id}),
            tool_call("search", {"pattern": "not found", "trace_id": trace_id}),
            tool_call("submit_findings", {"findings": [finding], "summary": "One."}),
        ],
    )
    location = f"chdb:{chdb_folder}"
    events = [e async for e in stream_run([location], "Diagnose", engine_env.settings())]

    assert isinstance(events[-1], RunFinished)
    assert events[-1].run.status == RunStatus.finished
    results = [
        m.get("content", "")
        for r in engine_env.server.chat_requests
        if is_root(r.json)
        for m in r.messages
        if m.get("role") == "tool"
    ]
    assert len(results) >= 5
    expected = files.count(SpanFilter(tool_name="read_file", errors_only=True))
    assert any(str(expected.spans) in text for text in results)
    assert any(trace_id in text for text in results[3:])
    run = events[-1].run
    assert [f.title for f in run.findings] == ["read_file fails"]
    assert run.findings[0].evidence[0].verified
    assert json.dumps(run.trace_paths) == json.dumps([location])
