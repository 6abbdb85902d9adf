"""Parallel builds keep their spans in one shard file per worker. Whatever the layout,
every answer must be the one a serial build gives: traces cut by a shard boundary, split
over several files, duplicated across shards, children inheriting their agent from a
parent in another shard, line numbers counted across the cut, appends and rebuilds."""

from __future__ import annotations

import gzip
import itertools
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from halo_mcp.store import SpanFilter, TraceStore, open_store
from halo_mcp.store import index as index_module
from halo_mcp.store.shard_build import build_shard
from tests.store_spans import agent, llm, span, tool, write

FIELDS = ["trace_id", "span_id", "name", "status", "agent", "service", "duration_ms", "source"]


def _interleaved(traces: int, prefix: str = "i") -> list[dict[str, Any]]:
    """Spans of every trace spread over the whole file (round robin), so a cut anywhere
    splits every trace; children carry no agent or service (inherited from the root)."""
    steps = []
    for i in range(traces):
        t = f"{prefix}{i}"
        steps.append(
            [
                agent(t, f"{t}-a", "planner" if i % 2 else "booker"),
                llm(t, f"{t}-l", f"{t}-a", 1, 2, service=None, tokens=(i, 1)),
                tool(
                    t,
                    f"{t}-s",
                    f"{t}-a",
                    2,
                    3 + i % 5,
                    "search",
                    service=None,
                    error="Timeout after 30s" if i % 3 == 0 else None,
                ),
                tool(t, f"{t}-f", f"{t}-gone", 4, 5, "fetch", error="HTTP 503 from /api/9"),
            ]
        )
    return [trace[step] for step in range(4) for trace in steps]


def _snapshot(store: TraceStore) -> dict[str, Any]:
    """Everything a user can ask, minus what names the index file or row ids."""
    report = store.report.model_dump()
    report.pop("index_path", None)
    report.pop("reused", None)
    out: dict[str, Any] = {"report": report, "overview": store.overview().model_dump()}
    filters = [
        SpanFilter(),
        SpanFilter(errors_only=True),
        SpanFilter(tool_name="search", errors_only=True),
        SpanFilter(agent="planner"),
        SpanFilter(text="Timeout|503"),
        SpanFilter(name="tool *", min_duration_ms=1500),
    ]
    for n, flt in enumerate(filters):
        out[f"count{n}"] = store.count(flt).model_dump()
        for sort in ("start_time", "-duration", "-tokens"):
            pages, cursor = [], None
            while True:
                page = store.query_spans(flt, sort=sort, limit=7, cursor=cursor, fields=FIELDS)
                pages.append([s.model_dump() for s in page.spans])
                cursor = page.next_cursor
                if not cursor:
                    break
            out[f"spans{n}{sort}"] = (page.total, pages)
        out[f"traces{n}"] = [t.model_dump() for t in store.query_traces(flt, limit=200).traces]
    first = out["traces0"][0]["trace_id"]
    out["tree"] = store.trace_tree(first).model_dump()
    out["search"] = store.search("HTTP 5\\d\\d", limit=50).model_dump()
    with store.aggregates() as reader:
        loops = reader.repeated_calls(min_repeats=2)
        out["loops"] = sorted((*r[:4], sorted(r.span_ids)) for r in loops)
    return out


@pytest.fixture
def parallel(monkeypatch: pytest.MonkeyPatch):
    def use(workers: int) -> None:
        monkeypatch.setattr(index_module, "PARALLEL_MIN_BYTES", 0)
        monkeypatch.setattr(index_module, "WORKERS", workers)

    return use


def _shard_files(cache: Path) -> list[Path]:
    return sorted(p for p in (cache / "indexes").iterdir() if re.search(r"\.s\d+$", p.name))


def test_traces_cut_by_shard_boundaries_read_like_a_serial_build(tmp_path, parallel) -> None:
    spans = _interleaved(30)
    spans.append(spans[3])  # the same span again, in the last shard: a duplicate
    path = write(tmp_path / "t.jsonl", spans, extra_lines=["{not json"])
    with open_store([path], cache_dir=tmp_path / "serial") as serial:
        expected = _snapshot(serial)
    parallel(3)
    with open_store([path], cache_dir=tmp_path / "sharded") as sharded:
        assert len(_shard_files(tmp_path / "sharded")) == 3
        got = _snapshot(sharded)
        assert sharded.report.duplicate_spans == 1
        assert sharded.report.bad_line_examples[0].line == len(spans) + 1
        last = sharded.query_spans(sort="-start_time", limit=1, fields=["source"]).spans[0]
        assert last.source is not None and last.source.line > len(spans) // 2
        tree = sharded.trace_tree("i7")
        assert {n.span.span_id: n.span.agent for n in tree.nodes}["i7-s"] == "planner"
    assert got == expected


def test_a_trace_split_over_several_files_and_a_gz_file(tmp_path, parallel) -> None:
    spans = _interleaved(24, prefix="m")
    half = len(spans) // 2
    first = write(tmp_path / "a.jsonl", spans[:half])
    second = write(tmp_path / "b.jsonl", spans[half:])
    packed = tmp_path / "c.jsonl.gz"
    extra = [span("m1", "m1-x", "m1-a", "late", start=8, end=9, service=None)]
    packed.write_bytes(gzip.compress(write(tmp_path / "c.jsonl", extra).read_bytes()))
    (tmp_path / "c.jsonl").unlink()
    files = [first, second, packed]
    with open_store(files, cache_dir=tmp_path / "serial") as serial:
        expected = _snapshot(serial)
    parallel(2)
    with open_store(files, cache_dir=tmp_path / "sharded") as sharded:
        got = _snapshot(sharded)
        assert sharded.trace_summary("m1").span_count == 5
    assert got == expected


def test_appending_to_a_sharded_index_extends_it(tmp_path, parallel) -> None:
    spans = _interleaved(20)
    path = write(tmp_path / "t.jsonl", spans[:60])
    cache = tmp_path / "sharded"
    parallel(2)
    with open_store([path], cache_dir=cache) as store:
        assert store.report.spans == 60
    shards = _shard_files(cache)
    with open(path, "a", encoding="utf-8") as handle:  # more spans of the same traces
        handle.write("".join(_line(s) for s in spans[60:]))
        handle.write(_line(spans[0]))  # and a duplicate of a span in the first shard
    with open_store([path], cache_dir=cache) as store:
        assert not store.report.reused
        assert _shard_files(cache) == shards  # extended in place: same shard files
        assert store.report.duplicate_spans == 1
        got = _snapshot(store)
    with open_store([path], cache_dir=tmp_path / "serial") as serial:
        assert _snapshot(serial) == got


def test_a_sharded_build_leaves_an_unfinished_last_line_for_the_extension(
    tmp_path, parallel
) -> None:
    spans = _interleaved(20)
    path = write(tmp_path / "t.jsonl", spans[:60])
    pending = _line(spans[60])
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(pending[:30])
    cache = tmp_path / "sharded"
    parallel(2)
    with open_store([path], cache_dir=cache) as store:
        assert store.report.spans == 60 and store.report.bad_lines == 1
        assert store.report.bad_line_examples[0].line == 61
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(pending[30:] + "".join(_line(s) for s in spans[61:]))
    with open_store([path], cache_dir=cache) as store:
        assert store.report.bad_lines == 0
        got = _snapshot(store)
    with open_store([path], cache_dir=tmp_path / "serial") as serial:
        assert _snapshot(serial) == got


def test_a_changed_file_gets_new_shards_and_the_old_ones_are_deleted(tmp_path, parallel) -> None:
    path = write(tmp_path / "t.jsonl", _interleaved(10))
    cache = tmp_path / "sharded"
    parallel(2)
    with open_store([path], cache_dir=cache):
        pass
    old = _shard_files(cache)
    write(path, _interleaved(12, prefix="n"))
    with open_store([path], cache_dir=cache) as store:
        assert store.count().traces == 12
        assert store.trace_summary("n11").span_count == 4
    new = _shard_files(cache)
    assert len(new) == 2 and not set(old) & set(new)
    assert all(not p.exists() for p in old)


def _line(item: dict[str, Any]) -> str:
    return json.dumps(item) + "\n"


def test_the_input_is_cut_into_line_aligned_runs_covering_every_byte_once(tmp_path) -> None:
    from halo_mcp.store.files import file_state
    from halo_mcp.store.index import Plan
    from halo_mcp.store.shard_merge import cut_runs

    small = write(tmp_path / "a.jsonl", _interleaved(3))
    big = write(tmp_path / "b.jsonl", _interleaved(40))
    plans = [Plan(file_state(p), "new", file_id=i) for i, p in enumerate([small, big], 1)]
    runs = cut_runs(plans, 3)
    assert len(runs) == 3
    for plan in plans:
        data = plan.state.path.read_bytes()
        pieces = sorted((s.start, s.stop) for run in runs for s in run if s.file_id == plan.file_id)
        assert pieces[0][0] == 0 and pieces[-1][1] == len(data)
        assert all(a[1] == b[0] for a, b in itertools.pairwise(pieces))
        assert all(data[stop - 1 : stop] == b"\n" for _, stop in pieces)
    sizes = [sum(s.stop - s.start for s in run) for run in runs]
    assert max(sizes) - min(sizes) < 2 * max(len(_line(s)) for s in _interleaved(40))


def test_triage_and_counts_read_every_shard(tmp_path, parallel) -> None:
    """Readers other than the store (triage's aggregates, check) see all the shards."""
    from halo_mcp.synth import generate
    from halo_mcp.triage import run_triage

    path = tmp_path / "planted.jsonl"
    generate(path, traces=200, seed=5, profile="tiny")
    with open_store([path], cache_dir=tmp_path / "serial") as serial:
        expected = run_triage(serial)
    parallel(2)
    with open_store([path], cache_dir=tmp_path / "sharded") as sharded:
        assert len(_shard_files(tmp_path / "sharded")) == 2
        got = run_triage(sharded)
    assert got.spans == expected.spans and got.traces == expected.traces == 200
    assert expected.items
    assert [(i.title, i.prevalence, i.matcher) for i in got.items] == [
        (i.title, i.prevalence, i.matcher) for i in expected.items
    ]


_PARENT = os.getpid()


def _dying_build_shard(shard, db_path, segments):
    """build_shard that kills the worker process running it (the parent still builds)."""
    if os.getpid() != _PARENT:
        os._exit(3)
    return build_shard(shard, db_path, segments)


def test_a_dead_worker_costs_time_not_the_index(tmp_path, parallel, monkeypatch, caplog) -> None:
    path = write(tmp_path / "t.jsonl", _interleaved(16))
    with open_store([path], cache_dir=tmp_path / "serial") as serial:
        expected = _snapshot(serial)
    parallel(2)
    monkeypatch.setattr(index_module, "build_shard", _dying_build_shard)
    with open_store([path], cache_dir=tmp_path / "sharded") as sharded:
        assert _snapshot(sharded) == expected
    assert "building shard" in caplog.text
