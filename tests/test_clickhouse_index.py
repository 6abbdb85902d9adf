"""The companion table (`halo-mcp index`): spans normalized once inside ClickHouse, extended
by new spans, rebuilt when spans arrive late, and read in place (saying so) while it does
not cover the window.

Real ClickHouse (chDB) behind the loopback HTTP endpoint, the real clickhouse-connect
client; answers are compared with the file store over the same spans.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from halo_mcp.cli import main as cli_main
from halo_mcp.store import SpanFilter, open_store
from halo_mcp.store.api import TraceReader
from halo_mcp.store.clickhouse.client import connect
from halo_mcp.store.clickhouse.load import load_files
from halo_mcp.store.clickhouse.location import parse_location
from halo_mcp.store.clickhouse.materialize import IndexResult, build_index
from halo_mcp.store.clickhouse.store import ClickHouseTraceStore, open_clickhouse
from halo_mcp.synth import generate
from tests.fakes import clickhouse_http

PASSWORD = "ch-index-secret-1a2b"
OVERVIEW_FIELDS = (
    "traces", "spans", "error_spans", "error_traces", "services", "agents", "models",
    "tools", "span_kinds", "tokens", "error_signatures",
)  # fmt: skip


@pytest.fixture(scope="module")
def traces(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(all spans, the older 60% by start time, the newer rest): traces that straddle the
    split have their root in the older part and spans that inherit from it in the newer."""
    folder = tmp_path_factory.mktemp("traces")
    everything = folder / "all.jsonl"
    generate(everything, traces=40, seed=23)
    lines = sorted(
        everything.read_bytes().splitlines(), key=lambda line: orjson.loads(line)["start_time"]
    )
    cut = len(lines) * 6 // 10
    older, newer = folder / "older.jsonl", folder / "newer.jsonl"
    older.write_bytes(b"\n".join(lines[:cut]) + b"\n")
    newer.write_bytes(b"\n".join(lines[cut:]) + b"\n")
    return everything, older, newer


@pytest.fixture(scope="module")
def file_store(traces, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TraceReader]:
    with open_store([traces[0]], cache_dir=tmp_path_factory.mktemp("cache")) as store:
        yield store


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    process, port = clickhouse_http.start(tmp_path_factory.mktemp("chdb-http"), PASSWORD)
    yield port
    process.kill()
    process.wait()


def _url(port: int, table: str) -> str:
    return f"clickhouse://default@127.0.0.1:{port}/otel?table={table}"


def _load(port: int, table: str, *paths: Path) -> None:
    location = parse_location(_url(port, table), password=PASSWORD)
    client = connect(location)
    try:
        load_files(list(paths), client, location)
    finally:
        client.close()


def _index(port: int, table: str) -> IndexResult:
    location = parse_location(_url(port, table), password=PASSWORD)
    client = connect(location)
    try:
        return build_index(client, location)
    finally:
        client.close()


def _reads_the_same(store: ClickHouseTraceStore, files: TraceReader) -> None:
    expected, found = files.overview(), store.overview()
    for field in OVERVIEW_FIELDS:
        assert getattr(found, field) == getattr(expected, field), field
    agent = expected.agents[-1].name
    for flt in (SpanFilter(agent=agent), SpanFilter(kind=["tool"], errors_only=True)):
        assert store.count(flt) == files.count(flt)
    for trace_id in expected.sample_trace_ids[:3]:
        assert _tree(store, trace_id) == _tree(files, trace_id)


def _tree(store: TraceReader, trace_id: str) -> dict:
    """A trace tree; its summary's agents and models as sets (the file index lists them in
    file order, which the split files here change, ClickHouse in sorted order)."""
    tree = store.trace_tree(trace_id).model_dump()
    for name in ("agents", "models"):
        tree["summary"][name] = set(tree["summary"][name])
    return tree


def test_new_spans_extend_the_companion_table_inheriting_from_stored_ones(
    endpoint: int, traces, file_store
) -> None:
    _, older, newer = traces
    _load(endpoint, "grown", older)
    first = _index(endpoint, "grown")
    assert first.rebuilt and first.spans == first.spans_added > 0
    _load(endpoint, "grown", newer)
    location = parse_location(_url(endpoint, "grown"), password=PASSWORD)
    # Opening with write access extends it by the new spans, then reads from it.
    with open_clickhouse(location) as store:
        assert store.source.materialized and store.notes == []
        assert store.report.index_path == "otel.grown_halo"
        _reads_the_same(store, file_store)
    again = _index(endpoint, "grown")
    assert not again.rebuilt and again.spans_added == 0
    assert again.spans == file_store.count().spans


def test_late_spans_make_reads_fall_back_in_place_until_index_rebuilds(
    endpoint: int, traces, file_store, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    _, older, newer = traces
    _load(endpoint, "late", newer)
    assert _index(endpoint, "late").spans_added > 0
    _load(endpoint, "late", older)  # started before the table's watermark: arrived late
    url = _url(endpoint, "late")
    location = parse_location(url, password=PASSWORD)
    with open_clickhouse(location) as store:
        assert not store.source.materialized
        (note,) = store.notes
        assert "out of date" in note and f"halo-mcp index {location.display}" in note
        assert store.overview().notes == [note]
        _reads_the_same(store, file_store)  # in place: still right, only slower
    monkeypatch.setenv("HALO_CLICKHOUSE_PASSWORD", PASSWORD)
    assert cli_main(["index", url, "--json"]) == 0
    rebuilt = IndexResult.model_validate_json(capsys.readouterr().out)
    assert rebuilt.rebuilt and rebuilt.spans == file_store.count().spans
    with open_clickhouse(location) as store:
        assert store.source.materialized and store.notes == []
        _reads_the_same(store, file_store)


def test_without_a_companion_table_reads_run_in_place_and_say_how_to_build_it(
    endpoint: int, traces, file_store
) -> None:
    _load(endpoint, "plain", traces[0])
    location = parse_location(_url(endpoint, "plain"), password=PASSWORD)
    with open_clickhouse(location) as store:
        assert not store.source.materialized
        assert store.report.index_path is None
        (note,) = store.overview().notes
        assert "no companion table otel.plain_halo" in note
        assert f"halo-mcp index {location.display}" in note
        assert store.count() == file_store.count()
    # A window that ends before the table's newest span is covered once it is built.
    _index(endpoint, "plain")
    with open_clickhouse(location, until=file_store.overview().end_time) as store:
        assert store.source.materialized and store.count() == file_store.count()
