"""Read-only SQL over the documented views: aggregations answer what filters cannot,
anything but a SELECT over the views is refused, runaway statements are stopped, results
are bounded, and errors show the schema. The same through the CLI and over MCP."""

from __future__ import annotations

import json
import sqlite3

import pytest
from mcp import Client

from halo_mcp.cli import main
from halo_mcp.server import create_server
from halo_mcp.store import SpanFilter, open_store
from halo_mcp.store import index as index_module
from halo_mcp.store.connections import open_reader
from halo_mcp.store.shards import span_tables
from halo_mcp.store.sql import SqlError
from tests.harness_repo import regression_traces
from tests.mcp_support import settings
from tests.store_spans import shop_traces, write


@pytest.fixture
def store(tmp_path):
    path = regression_traces(tmp_path / "traces.jsonl")
    with open_store([path], cache_dir=tmp_path / "cache") as opened:
        yield opened


def test_an_aggregation_gives_error_rates_per_tool_and_first_failure(store):
    result = store.query_sql(
        "SELECT tool_name, COUNT(*) AS calls, SUM(is_error) AS errors, "
        "MIN(CASE WHEN is_error THEN start_time END) AS first_error "
        "FROM spans WHERE kind = 'tool' GROUP BY tool_name"
    )
    assert result.columns == ["tool_name", "calls", "errors", "first_error"]
    assert result.rows == [["search_orders", 12, 7, "2025-03-01T10:00:26.500Z"]]
    assert result.truncated is False and result.note is None
    count = store.count(SpanFilter(tool_name="search_orders", errors_only=True))
    assert count.spans == 7
    traces = store.query_sql("SELECT COUNT(*), SUM(error_count > 0) FROM traces")
    assert traces.rows == [[12, 7]]
    assert store.query_sql("SELECT COUNT(*) FROM traces").rows == [[12]]


def test_span_counts_gives_the_same_rates_from_the_tally(store):
    tally = store.query_sql(
        "SELECT tool_name, SUM(spans), SUM(spans) FILTER (WHERE is_error) FROM span_counts "
        "WHERE tool_name IS NOT NULL GROUP BY 1"
    )
    assert tally.rows == [["search_orders", 12, 7]]
    assert store.query_sql("SELECT SUM(spans) FROM span_counts").rows == [[36]]
    assert store.query_sql("SELECT COUNT(*) FROM span_counts").returned == 1


def test_a_join_pairs_each_tool_error_with_the_trace_agent(store):
    result = store.query_sql(
        "SELECT a.agent, COUNT(*) FROM spans t JOIN spans a "
        "ON a.trace_id = t.trace_id AND a.kind = 'agent' WHERE t.is_error GROUP BY 1"
    )
    assert result.rows == [["support", 7]]


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM main.spans",
        "INSERT INTO main.traces(trace_id) VALUES ('x')",
        "UPDATE main.spans SET name = 'x'",
        "CREATE TABLE t(x)",
        "ATTACH DATABASE '/tmp/evil.db' AS evil",
        "PRAGMA table_info(spans)",
        "PRAGMA writable_schema = ON",
        "VACUUM INTO '/tmp/copy.db'",
        "SELECT * FROM pragma_table_info('spans')",
        "WITH x AS (SELECT * FROM main.spans) SELECT COUNT(*) FROM x",
        "SELECT name FROM main.spans",
        "SELECT path FROM files",
        "SELECT sql FROM sqlite_master",
        "SELECT load_extension('/tmp/evil.so')",
        "SELECT sqlite_version()",
    ],
)
def test_anything_but_a_select_over_the_views_is_refused(store, sql):
    with pytest.raises(SqlError) as err:
        store.query_sql(sql)
    message = str(err.value)
    assert message.startswith("Refused") or "cannot modify" in message, message
    assert "spans(trace_id, span_id" in message and "traces(trace_id" in message  # the schema
    # Nothing changed.
    assert store.query_sql("SELECT COUNT(*) FROM spans").rows == [[36]]


def test_a_value_too_big_is_refused(store):
    with pytest.raises(SqlError, match="too big"):
        store.query_sql("SELECT zeroblob(100000000)")


def test_two_statements_are_refused(store):
    with pytest.raises(SqlError, match="one statement"):
        store.query_sql("SELECT 1; DELETE FROM main.spans")


def test_a_runaway_recursive_statement_is_stopped_at_its_limit(store):
    runaway = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT MAX(i) FROM n"
    with pytest.raises(SqlError, match="stopped at its budget of 2,000,000 steps"):
        store.query_sql(runaway, max_steps=2_000_000)
    with pytest.raises(SqlError, match=r"stopped at its time limit of 0\.2 s"):
        store.query_sql(runaway, time_limit_s=0.2)


def test_rows_and_characters_are_bounded_with_a_marker(store):
    result = store.query_sql("SELECT span_id, name FROM spans ORDER BY span_id", limit=5)
    assert result.returned == 5 and result.truncated is True
    assert "more rows than the limit of 5" in result.note
    wide = store.query_sql("SELECT printf('%.3000c', 'x') AS big FROM spans", max_chars=3000)
    assert wide.returned == 2 and wide.truncated is True
    assert wide.rows[0][0].endswith("…[truncated: 3000 chars]")
    assert "long values cut" in wide.note and "left out" in wide.note


def test_the_index_file_is_opened_read_only(store):
    from halo_mcp.store.sql import _open

    conn = _open(store.index_path, "SELECT 1")
    conn.set_authorizer(None)  # even without the authorizer, the file cannot be written
    with pytest.raises(sqlite3.OperationalError, match=r"readonly|read-only"):
        conn.execute("INSERT INTO main.meta VALUES ('x', 'y')")
    conn.close()


def test_a_sharded_index_answers_through_the_same_views(tmp_path, monkeypatch):
    monkeypatch.setattr(index_module, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(index_module, "WORKERS", 3)
    path = write(tmp_path / "shop.jsonl", shop_traces() * 1)
    with open_store([path], cache_dir=tmp_path / "cache") as sharded:
        reader = open_reader(sharded.index_path)
        assert len(span_tables(reader)) == 4  # main + three shards
        reader.close()
        rows = sharded.query_sql(
            "SELECT tool_name, COUNT(*), SUM(is_error) FROM spans "
            "WHERE tool_name IS NOT NULL GROUP BY 1 ORDER BY 1"
        ).rows
        counts = {
            name: (sharded.count(SpanFilter(tool_name=name)).spans,
                   sharded.count(SpanFilter(tool_name=name, errors_only=True)).spans)
            for name, _, _ in rows
        }  # fmt: skip
        with pytest.raises(SqlError):
            sharded.query_sql("SELECT name FROM s1.spans")
        # The view is narrowed to the columns a query reads; '*' still reads them all.
        star = sharded.query_sql("SELECT * FROM spans WHERE span_id = 't2-s1'")
        assert len(star.columns) == 20 and star.rows[0][star.columns.index("is_error")] == 1
    assert {name: (calls, errors) for name, calls, errors in rows} == counts


def test_the_cli_prints_a_table_and_refuses_writes(tmp_path, capsys):
    path = regression_traces(tmp_path / "traces.jsonl")
    cache = str(tmp_path / "cache")
    sql = (
        "SELECT tool_name, SUM(is_error) AS errors FROM spans "
        "WHERE tool_name IS NOT NULL GROUP BY 1"
    )
    assert main(["sql", str(path), sql, "--cache-dir", cache]) == 0
    out = capsys.readouterr().out
    assert "tool_name" in out and "search_orders  7" in out
    assert main(["sql", str(path), "DROP TABLE spans", "--cache-dir", cache, "--json"]) == 1
    assert "Refused" in capsys.readouterr().err
    assert main(["sql", str(path), "SELECT 1 AS one", "--cache-dir", cache, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"] == [[1]]


async def test_query_sql_over_mcp_answers_and_refuses_with_the_schema(tmp_path, monkeypatch):
    monkeypatch.setenv("HALO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HALO_DATA_DIR", str(tmp_path / "data"))
    path = regression_traces(tmp_path / "traces.jsonl")
    async with Client(create_server(settings())) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert "spans(trace_id" in tools["query_sql"].description
        assert tools["query_sql"].annotations.read_only_hint is True
        ok = await client.call_tool(
            "query_sql",
            {"trace_paths": [str(path)], "sql": "SELECT COUNT(*) AS n FROM spans WHERE is_error"},
        )
        assert not ok.is_error, ok.content[0].text
        assert ok.structured_content["rows"] == [[7]]
        refused = await client.call_tool(
            "query_sql", {"trace_paths": [str(path)], "sql": "ATTACH 'x.db' AS x"}
        )
        assert refused.is_error
        assert "Refused" in refused.content[0].text and "traces(trace_id" in refused.content[0].text
