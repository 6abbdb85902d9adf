"""Traces where they live: an exporter `otel_traces` table in ClickHouse, read with the same
answers as the same traces in a file.

The real ClickHouse engine runs in chDB (embedded, `chdb:PATH`), and behind a loopback HTTP
endpoint (tests/fakes/clickhouse_http.py) that the real `clickhouse-connect` client talks to.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from halo_mcp.cli import main as cli_main
from halo_mcp.store import SpanFilter, open_store
from halo_mcp.store import sql as sql_views
from halo_mcp.store.clickhouse.client import ClickHouseError, connect
from halo_mcp.store.clickhouse.load import LoadResult, load_files
from halo_mcp.store.clickhouse.location import (
    ClickHouseLocationError,
    parse_location,
)
from halo_mcp.store.clickhouse.materialize import build_index
from halo_mcp.store.clickhouse.schema import REQUIRED_COLUMNS, create_tables, exporter_ddl
from halo_mcp.store.clickhouse.store import ClickHouseTraceStore, open_clickhouse
from halo_mcp.store.errors import InvalidFilterError, UnknownIdError
from halo_mcp.store.formats.payload import span_payloads
from halo_mcp.synth import generate
from tests.fakes import clickhouse_http

REPO = Path(__file__).resolve().parent.parent
PASSWORD = "ch-test-secret-9f8e7d"
VIEW_FIELDS = [
    "trace_id", "span_id", "parent_span_id", "name", "kind", "status", "error_message",
    "start_time", "duration_ms", "agent", "model", "tool_name", "input_tokens",
    "output_tokens", "session_id", "input", "output",
]  # fmt: skip


@pytest.fixture(scope="module")
def traces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("traces") / "traces.jsonl"
    generate(path, traces=90, seed=11)
    return path


@pytest.fixture(scope="module")
def file_store(traces: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    with open_store([traces], cache_dir=tmp_path_factory.mktemp("cache")) as store:
        yield store


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The loopback ClickHouse HTTP endpoint over chDB, in its own process."""
    process, port = clickhouse_http.start(tmp_path_factory.mktemp("chdb-http"), PASSWORD)
    yield port
    process.kill()
    process.wait()


@pytest.fixture(scope="module")
def http_location(endpoint: int, traces: Path) -> str:
    """The generated traces loaded through the real HTTP client into otel.otel_traces, and
    normalized into its companion table."""
    url = f"clickhouse://default@127.0.0.1:{endpoint}/otel?table=otel_traces"
    location = parse_location(url, password=PASSWORD)
    client = connect(location)
    try:
        result = load_files([traces], client, location)
        built = build_index(client, location)
    finally:
        client.close()
    assert result.spans > 0 and result.bad_lines == 0
    assert built.spans == built.spans_added == result.spans
    return url


@pytest.fixture(params=["in place", "materialized"])
def ch_store(http_location: str, request: pytest.FixtureRequest) -> Iterator[ClickHouseTraceStore]:
    """The store both ways: normalizing the exporter table in place, and reading the
    companion table."""
    materialized = request.param == "materialized"
    location = parse_location(http_location, password=PASSWORD)
    with open_clickhouse(location, companion=materialized) as store:
        assert store.source.materialized is materialized
        yield store


def test_the_exporters_ddl_runs_verbatim_in_clickhouse(tmp_path: Path) -> None:
    location = parse_location(f"chdb:{tmp_path / 'db'}")
    client = connect(location)
    try:
        create_tables(client, location)
        tables = {name for (name,) in client.rows("SHOW TABLES FROM otel")}
        columns = {name for (name,) in client.rows("SELECT name FROM system.columns "
                   "WHERE database = 'otel' AND table = 'otel_traces'")}  # fmt: skip
    finally:
        client.close()
    assert tables == {"otel_traces", "otel_traces_trace_id_ts", "otel_traces_trace_id_ts_mv"}
    assert set(REQUIRED_COLUMNS) <= columns
    assert {"Events.Timestamp", "Events.Name", "Links.TraceId", "ScopeName"} <= columns
    statements = exporter_ddl("otel", "otel_traces")
    assert len(statements) == 3 and "PARTITION BY toDate(Timestamp)" in statements[0]


def test_load_writes_every_span_and_reports_bad_lines_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    messy = tmp_path / "messy.jsonl"
    manifest = generate(messy, traces=20, seed=5, bad_lines=3)
    target = f"chdb:{tmp_path / 'db'}"
    code = cli_main(["load", str(messy), "--to", target, "--json"])
    assert code == 0
    result = LoadResult.model_validate_json(capsys.readouterr().out)
    assert result.index is not None and result.index.spans == result.spans  # normalized too
    planted = {record.line for record in manifest.bad_lines}
    assert result.bad_lines == len(planted)
    assert {(bad.file, bad.line) for bad in result.bad_line_examples} == {
        (str(messy), line) for line in planted
    }
    with open_store([messy], cache_dir=tmp_path / "cache") as files:
        expected = files.count().spans
    store = open_clickhouse(parse_location(target))
    try:
        assert store.count().spans == expected
    finally:
        store.close()


def test_load_keeps_span_events(tmp_path: Path) -> None:
    """Events are nested columns (Events.Name, ...): each span's events arrive whole."""
    recording = Path(__file__).parent / "data" / "frameworks" / "crewai_oi" / "traces.jsonl.gz"
    expected: dict[str, list[str]] = {}
    with gzip.open(recording, "rb") as lines:
        for line in lines:
            for span_id, payload in span_payloads(line):
                if payload.events:
                    expected[span_id] = [event["name"] for event in payload.events]
    assert expected, "the recording holds exception events"
    location = parse_location(f"chdb:{tmp_path / 'db'}")
    client = connect(location)
    try:
        load_files([recording], client, location)
        rows = client.rows(
            f"SELECT SpanId, `Events.Name` FROM {location.qualified_table} "
            "WHERE length(`Events.Name`) > 0"
        )
    finally:
        client.close()
    assert {str(span): list(names) for span, names in rows} == expected


def test_every_read_answers_the_same_from_clickhouse_and_from_the_file(
    file_store, ch_store: ClickHouseTraceStore
) -> None:
    overview, ch_overview = file_store.overview(), ch_store.overview()
    for field in ("traces", "spans", "error_spans", "error_traces", "start_time", "end_time",
                  "services", "agents", "models", "tools", "span_kinds", "tokens",
                  "error_signatures", "sample_trace_ids"):  # fmt: skip
        assert getattr(ch_overview, field) == getattr(overview, field), field
    agent, tool = overview.agents[0].name, overview.tools[0].name
    # Each filter field at least once (statements cost ~0.3 s each on a loaded machine).
    filters = [
        SpanFilter(kind=["llm"]),
        SpanFilter(agent=agent, kind=["tool"], errors_only=True),
        SpanFilter(tool_name=tool),
        SpanFilter(name="*Chat*"),
        SpanFilter(min_duration_ms=500, max_duration_ms=60_000),
        SpanFilter(text="timeout|rate.limit"),
        SpanFilter(attributes={"openinference.span.kind": "TOOL"}),
    ]
    for number, flt in enumerate(filters):
        label = flt.model_dump(exclude_defaults=True)
        assert ch_store.count(flt) == file_store.count(flt), label
        for sort in ("-duration", "start_time")[: 2 if number < 2 else 1]:
            a = file_store.query_spans(flt, sort=sort, limit=9, fields=VIEW_FIELDS)
            b = ch_store.query_spans(flt, sort=sort, limit=9, fields=VIEW_FIELDS)
            assert b.total == a.total, label
            assert [s.model_dump() for s in b.spans] == [s.model_dump() for s in a.spans], label
        traces_a = file_store.query_traces(flt, sort="-errors", limit=6)
        traces_b = ch_store.query_traces(flt, sort="-errors", limit=6)
        assert traces_b.total == traces_a.total, label
        assert [t.error_count for t in traces_b.traces] == [t.error_count for t in traces_a.traces]
    trace_id = overview.sample_trace_ids[0]
    assert ch_store.trace_summary(trace_id) == file_store.trace_summary(trace_id)
    tree_a = file_store.trace_tree(trace_id, fields=VIEW_FIELDS)
    tree_b = ch_store.trace_tree(trace_id, fields=VIEW_FIELDS)
    assert tree_b.model_dump() == tree_a.model_dump()
    search_a, search_b = file_store.search("error", limit=5), ch_store.search("error", limit=5)
    assert search_b.spans_matched == search_a.spans_matched
    assert [(m.span_id, m.excerpt) for m in search_b.matches] == [
        (m.span_id, m.excerpt) for m in search_a.matches
    ]
    span_id = tree_a.nodes[0].span.span_id
    assert ch_store.known_ids([trace_id, "f" * 32], [span_id, "0" * 16]) == (
        {trace_id},
        {span_id},
    )


def test_pages_follow_cursors_to_the_same_spans(file_store, ch_store) -> None:
    def every_span(store) -> list[str]:
        seen, cursor = [], None
        while True:
            page = store.query_spans(
                SpanFilter(kind=["tool"]), sort="-duration", limit=100, cursor=cursor,
                fields=["span_id", "duration_ms"],
            )  # fmt: skip
            seen += [(s.duration_ms, s.span_id) for s in page.spans]
            cursor = page.next_cursor
            if cursor is None:
                return seen

    from_file, from_clickhouse = every_span(file_store), every_span(ch_store)
    assert len(from_clickhouse) == len(from_file) == file_store.count({"kind": ["tool"]}).spans
    assert sorted(from_clickhouse) == sorted(from_file)
    durations = [d for d, _ in from_clickhouse]
    assert durations == sorted(durations, reverse=True)


def test_a_hostile_regex_runs_in_linear_time_inside_clickhouse(ch_store) -> None:
    # Catastrophic for a backtracking engine; RE2 (ClickHouse's) answers at once.
    result = ch_store.count(SpanFilter(text="(a+)+$"))
    assert result.spans >= 0
    with pytest.raises(InvalidFilterError, match="cursor"):
        ch_store.query_spans(SpanFilter(), cursor="not-a-cursor")


def test_the_window_hides_older_spans_until_asked_for(http_location: str, file_store) -> None:
    location = parse_location(http_location, password=PASSWORD)
    newest = file_store.overview().end_time
    narrow = open_clickhouse(location, since=newest - timedelta(seconds=1))
    try:
        assert narrow.count().spans < file_store.count().spans
        trace_id = file_store.overview().sample_trace_ids[-1]
        if trace_id not in narrow.known_ids([trace_id])[0]:
            with pytest.raises(UnknownIdError, match="within the window"):
                narrow.trace_summary(trace_id)
    finally:
        narrow.close()


def test_credentials_come_from_the_environment_and_never_show(endpoint: int) -> None:
    url = f"clickhouse://default:{PASSWORD}@127.0.0.1:{endpoint}/otel"
    with pytest.raises(ClickHouseLocationError, match="HALO_CLICKHOUSE_PASSWORD") as refused:
        parse_location(url)
    assert PASSWORD not in str(refused.value)
    wrong = parse_location(f"clickhouse://default@127.0.0.1:{endpoint}/otel", password="nope")
    with pytest.raises(ClickHouseError) as failed:
        open_clickhouse(wrong)
    assert "HALO_CLICKHOUSE_PASSWORD" in str(failed.value) and "nope" not in str(failed.value)
    location = parse_location(f"clickhouse://default@127.0.0.1:{endpoint}/otel", password=PASSWORD)
    assert PASSWORD not in location.display and PASSWORD not in repr(location)


def test_a_table_that_is_not_an_exporter_table_is_refused(endpoint: int) -> None:
    location = parse_location(
        f"clickhouse://default@127.0.0.1:{endpoint}/otel?table=no_such_table", password=PASSWORD
    )
    with pytest.raises(ClickHouseError, match=r"no table otel\.no_such_table"):
        open_clickhouse(location)
    client = connect(location)
    try:
        client.command("CREATE TABLE IF NOT EXISTS otel.other (x UInt8) ENGINE = Memory")
    finally:
        client.close()
    other = parse_location(
        f"clickhouse://default@127.0.0.1:{endpoint}/otel?table=other", password=PASSWORD
    )
    with pytest.raises(ClickHouseError, match="lacks Timestamp"):
        open_clickhouse(other)


# -- query_sql: the same views inside ClickHouse -------------------------------------------

SAME_ANSWERS = [
    # error rates per tool
    "SELECT tool_name, COUNT(*) AS calls, SUM(is_error) AS errors, AVG(is_error) AS error_rate "
    "FROM spans WHERE tool_name IS NOT NULL GROUP BY tool_name ORDER BY tool_name",
    "SELECT kind, agent, SUM(spans) AS spans, SUM(input_tokens) AS tokens_in FROM span_counts "
    "WHERE is_error = 1 OR kind = 'llm' GROUP BY kind, agent ORDER BY kind, agent",
    "SELECT t.root_name AS root, s.agent AS agent, COUNT(*) AS failures FROM spans s "
    "JOIN traces t ON t.trace_id = s.trace_id WHERE s.is_error = 1 GROUP BY t.root_name, s.agent "
    "ORDER BY failures DESC, agent",
    "WITH failed AS (SELECT trace_id, COUNT(*) AS n FROM spans WHERE is_error = 1 "
    "GROUP BY trace_id) SELECT n, COUNT(*) AS traces FROM failed GROUP BY n ORDER BY n",
    "SELECT trace_id, root_name, service, span_count, error_count, start_ns, end_ns, start_time, "
    "duration_ms, input_tokens, output_tokens, first_error_span_id, first_error_name, "
    "first_error_message, has_root FROM traces ORDER BY duration_ms DESC, trace_id LIMIT 7",
    "SELECT span_id, parent_span_id, name, kind, status, is_error, error_message, start_time, "
    "duration_ms, service, agent, model, tool_name, tokens, session_id FROM spans "
    "ORDER BY start_ns, span_id LIMIT 40",
    "SELECT substr(start_time, 1, 13) AS hour, COUNT(*) AS spans FROM spans "
    "GROUP BY hour ORDER BY hour",
]


def test_sql_answers_the_same_from_clickhouse_and_from_the_file(
    file_store, ch_store: ClickHouseTraceStore
) -> None:
    for sql in SAME_ANSWERS:
        expected, found = file_store.query_sql(sql, limit=200), ch_store.query_sql(sql, limit=200)
        assert found.columns == expected.columns, sql
        assert found.rows == expected.rows, sql
        assert expected.returned > 0 and found.truncated is expected.truncated is False, sql
    for view in ("spans", "traces", "span_counts"):
        every = f"SELECT * FROM {view} LIMIT 1"
        assert ch_store.query_sql(every).columns == file_store.query_sql(every).columns, view
    # agents and models are JSON arrays; the file index keeps first-seen order.
    names = "SELECT trace_id, agents, models FROM traces ORDER BY trace_id"
    as_sets = [
        [(t, sorted(json.loads(a)), sorted(json.loads(m))) for t, a, m in store.query_sql(
            names, limit=1000).rows]
        for store in (file_store, ch_store)
    ]  # fmt: skip
    assert as_sets[1] == as_sets[0] and len(as_sets[0]) == file_store.count().traces


@pytest.mark.parametrize(
    ("sql", "why"),
    [
        ("INSERT INTO spans VALUES (1)", "the statement INSERT"),
        ("DROP TABLE otel.otel_traces", "the statement DROP"),
        ("SET readonly = 0", "the statement SET"),
        ("SELECT count() FROM spans SETTINGS readonly = 0", "a SETTINGS clause"),
        ("SELECT * FROM file('/etc/passwd', LineAsString)", "the table function file()"),
        ("SELECT * FROM url('http://127.0.0.1:9/x', CSV, 'a String')", "the table function url()"),
        ("SELECT sum(number) FROM numbers(10)", "the table function numbers()"),
        ("SELECT file('/etc/passwd')", "the function file()"),
        ("SELECT dictGet('d', 'a', toUInt64(1))", "the function dictGet()"),
        ("SELECT name FROM system.tables", "the table system.tables"),
        ("SELECT count() FROM otel.otel_traces", "the table otel.otel_traces"),
        ("WITH x AS (SELECT * FROM otel.otel_traces_halo) SELECT count() FROM x",
         "the table otel.otel_traces_halo"),
        ("SELECT 1; SELECT 2", "More than one statement"),
        ("SELECT count() FROM spans; DROP TABLE otel.otel_traces", "More than one statement"),
    ],
)  # fmt: skip
def test_sql_refuses_anything_but_a_select_over_the_views(
    ch_store: ClickHouseTraceStore, sql: str, why: str
) -> None:
    with pytest.raises(sql_views.SqlError) as refused:
        ch_store.query_sql(sql)
    message = str(refused.value)
    assert why in message, message
    assert "spans(trace_id, span_id" in message and "span_counts(kind" in message  # the schema
    assert PASSWORD not in message
    # Nothing changed.
    assert ch_store.query_sql("SELECT count() AS n FROM spans").rows == [[ch_store.count().spans]]


def test_sql_resolves_names_as_clickhouse_does_and_refuses_other_tables(endpoint: int) -> None:
    """A table of the current database, named bare (even where a CTE of that name is out of
    scope), is found by ClickHouse's analyzer and refused."""
    location = parse_location(f"clickhouse://default@127.0.0.1:{endpoint}/otel", password=PASSWORD)
    client = connect(location)
    try:
        client.command("CREATE TABLE IF NOT EXISTS default.leaky (x UInt8) ENGINE = Memory")
    finally:
        client.close()
    with open_clickhouse(location) as store:
        for sql in (
            "SELECT x FROM leaky",
            "SELECT * FROM (WITH leaky AS (SELECT 1 AS x) SELECT x FROM leaky) AS a, leaky",
            "SELECT (SELECT max(x) FROM leaky) FROM spans LIMIT 1",
        ):
            with pytest.raises(
                sql_views.SqlError, match=r"Refused \(the table (default\.)?leaky\)"
            ):
                store.query_sql(sql)
        shadowed = "WITH leaky AS (SELECT count() AS x FROM spans) SELECT x FROM leaky"
        assert store.query_sql(shadowed).rows == [[store.count().spans]]
        with pytest.raises(sql_views.SqlError, match="Unknown expression identifier `nope`"):
            store.query_sql("SELECT nope FROM spans")


def test_sql_stops_a_runaway_query_at_its_time_limit(ch_store: ClickHouseTraceStore) -> None:
    with pytest.raises(sql_views.SqlError, match="stopped at its time limit of 1 s"):
        ch_store.query_sql("SELECT count() FROM spans a, spans b, spans c, spans d", time_limit_s=1)


def test_sql_bounds_rows_and_characters_with_markers(ch_store: ClickHouseTraceStore) -> None:
    result = ch_store.query_sql("SELECT span_id, name FROM spans ORDER BY span_id", limit=5)
    assert result.returned == 5 and result.truncated is True
    assert result.note is not None and "more rows than the limit of 5" in result.note
    wide = ch_store.query_sql("SELECT repeat('x', 3000) AS big FROM spans", max_chars=3000)
    assert wide.returned == 2 and wide.truncated is True
    assert wide.rows[0][0].endswith("…[truncated: 3000 chars]")
    assert wide.note is not None and "long values cut" in wide.note and "left out" in wide.note
    with pytest.raises(sql_views.SqlError, match="Limit for result exceeded"):
        ch_store.query_sql("SELECT groupArray(repeat('x', 100000)) FROM spans")


def test_the_sql_command_runs_on_a_chdb_folder(
    traces: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = f"chdb:{tmp_path / 'db'}"
    assert cli_main(["load", str(traces), "--to", target]) == 0
    capsys.readouterr()
    sql = "SELECT kind, COUNT(*) AS spans FROM spans GROUP BY kind ORDER BY kind"
    assert cli_main(["sql", target, sql, "--json"]) == 0
    printed = sql_views.SqlResult.model_validate_json(capsys.readouterr().out)
    with open_store([traces], cache_dir=tmp_path / "cache") as files:
        assert printed.rows == files.query_sql(sql).rows
    assert cli_main(["sql", target, "SELECT * FROM system.tables"]) != 0
    assert "Refused (the table system.tables)" in capsys.readouterr().err
