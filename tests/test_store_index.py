"""The on-disk index: built once, reused, extended on append, rebuilt on change, safe
under concurrent opens, and honest about what it had to skip."""

from __future__ import annotations

import gzip
import json
import multiprocessing
import os
import signal
import sqlite3
from pathlib import Path

import pytest

from halo_mcp.store import (
    NoSpansError,
    SpanFilter,
    TraceFileNotFoundError,
    open_store,
)
from halo_mcp.store import index as index_module
from tests.store_spans import agent, llm, shop_traces, span, tool, write


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("HALO_CACHE_DIR", str(cache))
    return cache


def test_index_lives_in_the_cache_dir_and_a_second_open_reuses_it(tmp_path: Path) -> None:
    traces = tmp_path / "traces"
    traces.mkdir()
    path = write(traces / "shop.jsonl", shop_traces())
    with open_store([path]) as first:
        assert not first.report.reused
        assert first.report.spans == 11
        assert Path(first.report.index_path).is_relative_to(tmp_path / "cache")
    assert sorted(p.name for p in traces.iterdir()) == ["shop.jsonl"]
    with open_store([str(path)]) as second:
        assert second.report.reused
        assert second.report.index_path == first.report.index_path
        assert second.count().spans == 11


def test_cache_dir_argument_overrides_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path / "shop.jsonl", shop_traces())
    with open_store([path], cache_dir=tmp_path / "elsewhere") as store:
        assert Path(store.report.index_path).is_relative_to(tmp_path / "elsewhere")


def test_appended_spans_extend_the_index_without_reparsing_the_old_part(tmp_path: Path) -> None:
    filler = [tool(f"f{i}", f"f{i}-t", None, 1, 2, "noop", args="x" * 300) for i in range(40)]
    path = write(tmp_path / "grow.jsonl", [*shop_traces(), *filler])
    with open_store([path]) as store:
        assert store.count().spans == 51
    # Change a name in the middle of the file (outside the fingerprinted head and tail):
    # an extension never re-reads those bytes, so the index keeps the old name.
    data = path.read_bytes()
    middle = data.index(b'"name": "tool noop"', len(data) // 2 - 600)
    assert 4096 < middle < len(data) - 4096
    path.write_bytes(data[:middle] + b'"name": "tool NOOP"' + data[middle + 19 :])
    with open(path, "a") as handle:
        handle.write(json.dumps(agent("t9", "t9-a", "late", 55, 59)) + "\n")
        handle.write(json.dumps(tool("t9", "t9-x", "t9-a", 56, 57, "search")) + "\n")
    with open_store([path]) as store:
        assert not store.report.reused
        assert store.count().spans == 53
        assert store.count(SpanFilter(name="tool NOOP")).spans == 0
        late = store.query_spans(SpanFilter(trace_ids=["t9"]), fields=["span_id", "agent"])
        assert [(s.span_id, s.agent) for s in late.spans] == [("t9-a", "late"), ("t9-x", "late")]
        assert store.trace_summary("t9").span_count == 2


def test_a_line_still_being_written_is_indexed_once_it_is_complete(tmp_path: Path) -> None:
    """A live trace file is often caught mid-line: that line is reported, not lost, and
    the next open extends the index over it (the older lines are not parsed again)."""
    filler = [tool(f"f{i}", f"f{i}-t", None, 1, 2, "noop", args="x" * 300) for i in range(20)]
    path = write(tmp_path / "live.jsonl", [*shop_traces(), *filler])
    late = json.dumps(agent("t9", "t9-a", "late", 55, 59)).encode() + b"\n"
    with open(path, "ab") as handle:
        handle.write(late[:25])
    with open_store([path]) as store:
        assert store.count().spans == 31
        assert store.report.bad_lines == 1
        (unfinished,) = store.report.bad_line_examples
        assert (unfinished.file, unfinished.line) == (str(path), 32)
        assert "unfinished last line" in unfinished.reason
    # The middle changes too: an extension never re-reads it, so the old name stays.
    data = path.read_bytes()
    middle = data.index(b'"name": "tool noop"', len(data) // 2 - 600)
    assert 4096 < middle < len(data) - 4096
    path.write_bytes(data[:middle] + b'"name": "tool NOOP"' + data[middle + 19 :] + late[25:])
    with open_store([path]) as store:
        assert not store.report.reused
        assert store.count().spans == 32 and store.report.bad_lines == 0
        assert store.count(SpanFilter(name="tool NOOP")).spans == 0
        (span,) = store.query_spans(SpanFilter(trace_ids=["t9"]), fields=["source"]).spans
        assert span.source.line == 32


def test_a_last_line_without_a_line_end_that_parses_is_indexed(tmp_path: Path) -> None:
    path = tmp_path / "no-newline.jsonl"
    path.write_text("\n".join(json.dumps(item) for item in shop_traces()))
    with open_store([path]) as store:
        assert store.count().spans == 11 and store.report.bad_lines == 0


def test_a_rewritten_file_is_indexed_again(tmp_path: Path) -> None:
    path = write(tmp_path / "shop.jsonl", shop_traces())
    with open_store([path]) as store:
        assert store.count().spans == 11
    write(path, [agent("n1", "n1-a", "fresh")])
    with open_store([path]) as store:
        assert not store.report.reused
        assert store.count().spans == 1
        assert store.known_ids(["t1", "n1"]) == ({"n1"}, set())


def test_a_grown_file_whose_start_changed_is_rebuilt_not_extended(tmp_path: Path) -> None:
    path = write(tmp_path / "shop.jsonl", shop_traces())
    open_store([path]).close()
    write(path, [agent("z1", "z1-a", "other"), *shop_traces(), agent("z2", "z2-a", "more")])
    with open_store([path]) as store:
        assert store.count().spans == 13
        assert store.report.duplicate_spans == 0


def test_gzip_files_are_read_and_their_spans_read_back(tmp_path: Path) -> None:
    path = tmp_path / "shop.jsonl.gz"
    with gzip.open(path, "wt") as handle:
        for item in shop_traces():
            handle.write(json.dumps(item) + "\n")
    with open_store([path]) as store:
        assert store.count().spans == 11
        page = store.query_spans(SpanFilter(span_ids=["t3-l"]), fields=["input", "source"])
        assert page.spans[0].input == "Book a hotel in Paris, near the Louvre"
        assert page.spans[0].source.file == str(path)
        assert store.count(SpanFilter(text="louvre")).spans == 1
        assert store.raw_span("t3", "t3-w")["attributes"]["tool.name"] == "weather"


def test_a_directory_expands_to_its_trace_files_recursively(tmp_path: Path) -> None:
    spans = shop_traces()
    (tmp_path / "d" / "sub").mkdir(parents=True)
    write(tmp_path / "d" / "a.jsonl", spans[:3])
    write(tmp_path / "d" / "sub" / "b.ndjson", spans[3:])
    (tmp_path / "d" / "notes.txt").write_text("not traces")
    with open_store([tmp_path / "d"]) as store:
        assert [Path(f.path).name for f in store.report.files] == ["a.jsonl", "b.ndjson"]
        assert store.count().traces == 3


def test_duplicate_spans_across_files_are_counted_and_the_first_kept(tmp_path: Path) -> None:
    first = write(tmp_path / "a.jsonl", shop_traces())
    copy = shop_traces()[:2]
    copy[1]["name"] = "chat (copy)"
    second = write(tmp_path / "b.jsonl", [*copy, agent("t4", "t4-a", "solo")])
    with open_store([first, second]) as store:
        assert store.report.duplicate_spans == 2
        assert store.overview().duplicate_spans == 2
        assert store.count().spans == 12
        names = store.query_spans(SpanFilter(span_ids=["t1-l"]), fields=["name"]).spans
        assert [s.name for s in names] == ["chat"]


def test_orphans_and_rootless_traces_are_reported_not_fatal(tmp_path: Path) -> None:
    spans = [
        agent("r1", "r1-a", "main"),
        tool("r1", "r1-x", "missing-parent", 1, 2, "search"),
        tool("r2", "r2-x", "gone", 1, 2, "search"),
    ]
    with open_store([write(tmp_path / "o.jsonl", spans)]) as store:
        assert store.report.orphan_spans == 2
        assert store.report.rootless_traces == 1
        assert store.trace_summary("r2").root_name is None
        tree = store.trace_tree("r1")
        assert [(n.span.span_id, n.depth) for n in tree.nodes] == [("r1-a", 0), ("r1-x", 0)]


def test_bad_lines_are_skipped_and_reported_with_file_and_line(tmp_path: Path) -> None:
    path = write(
        tmp_path / "messy.jsonl",
        shop_traces()[:2],
        extra_lines=["{truncated", "", "\x00\xff garbage", json.dumps({"no": "span"})],
    )
    with open(path, "ab") as handle:
        handle.write(b'{"trace_id": "cut')  # a truncated last line without newline
    with open_store([path]) as store:
        report = store.report
        assert report.spans == 2
        assert report.bad_lines == 4
        assert [b.line for b in report.bad_line_examples] == [3, 5, 6, 7]
        assert all(b.file == str(path) and b.reason for b in report.bad_line_examples)
        assert report.files[0].bad_lines == 4


def test_a_file_with_a_bom_and_crlf_line_ends_loads(tmp_path: Path) -> None:
    path = tmp_path / "bom.jsonl"
    lines = [json.dumps(s) for s in shop_traces()[:3]]
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(lines).encode() + b"\r\n")
    with open_store([path]) as store:
        assert store.report.bad_lines == 0
        assert store.count().spans == 3
        first = store.query_spans(SpanFilter(span_ids=["t1-a"]), fields=["attributes"])
        assert first.spans[0].attributes["agent.name"] == "planner"
        assert store.count(SpanFilter(text="planner")).spans == 1


def test_a_file_without_spans_is_a_clear_error(tmp_path: Path) -> None:
    good = write(tmp_path / "good.jsonl", shop_traces())
    bad = tmp_path / "bad.jsonl"
    bad.write_text("hello\nworld\n")
    with pytest.raises(NoSpansError) as caught:
        open_store([good, bad])
    message = str(caught.value)
    assert str(bad) in message and "2 bad line" in message and "OTLP" in message
    (tmp_path / "d").mkdir()
    write(tmp_path / "d" / "good.jsonl", shop_traces())
    (tmp_path / "d" / "good.jsonl.manifest.json").write_text('{"about": "these traces"}')
    with open_store([tmp_path / "d"]) as store:
        assert store.count().spans == 11
        assert [f.spans for f in store.report.files] == [11, 0]
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "config.json").write_text('{"about": "no traces here"}')
    with pytest.raises(NoSpansError, match=r"config\.json"):
        open_store([tmp_path / "e"])
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(NoSpansError, match="empty"):
        open_store([empty])


def test_a_missing_path_names_the_absolute_path(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(TraceFileNotFoundError) as caught:
        open_store(["nope/traces.jsonl"])
    assert str(tmp_path / "nope" / "traces.jsonl") in str(caught.value)
    (tmp_path / "emptydir").mkdir()
    with pytest.raises(TraceFileNotFoundError, match="holds no trace file"):
        open_store([tmp_path / "emptydir"])


def test_agent_and_service_are_inherited_from_the_nearest_ancestor(tmp_path: Path) -> None:
    spans = [
        agent("h1", "h1-a", "outer"),
        span("h1", "h1-c", "h1-a", "step", service=None),
        agent("h1", "h1-b", "inner", parent="h1-c", service=None),
        tool("h1", "h1-x", "h1-b", 1, 2, "search", service=None),
        tool("h1", "h1-y", "h1-c", 1, 2, "search", service=None),
    ]
    with open_store([write(tmp_path / "h.jsonl", spans)]) as store:
        page = store.query_spans(fields=["span_id", "agent", "service"], limit=10)
        got = {s.span_id: (s.agent, s.service) for s in page.spans}
        assert got == {
            "h1-a": ("outer", "shop"),
            "h1-c": ("outer", "shop"),
            "h1-b": ("inner", "shop"),
            "h1-x": ("inner", "shop"),
            "h1-y": ("outer", "shop"),
        }
        assert sorted(store.trace_summary("h1").agents) == ["inner", "outer"]
        assert store.count(SpanFilter(agent="inner")).spans == 2
        view = store.overview()
        assert {a.name: a.count for a in view.agents} == {"outer": 3, "inner": 2}
        assert {s.name: s.count for s in view.services} == {"shop": 5}


def test_parallel_build_gives_the_same_index_as_a_serial_one(tmp_path, monkeypatch) -> None:
    spans = [s for i in range(60) for s in _trace(f"p{i}")]
    path = write(tmp_path / "p.jsonl", spans, extra_lines=["oops"])
    monkeypatch.setattr(index_module, "SLICE_BYTES", 4096)
    with open_store([path], cache_dir=tmp_path / "serial") as serial:
        expected = serial.overview().model_dump()
    monkeypatch.setattr(index_module, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(index_module, "WORKERS", 2)
    with open_store([path], cache_dir=tmp_path / "parallel") as parallel:
        assert parallel.overview().model_dump() == expected
        # Each worker built one shard file; no temporary file is left behind.
        names = [p.name for p in (tmp_path / "parallel" / "indexes").iterdir()]
        assert sum(name.endswith((".s1", ".s2")) for name in names) == 2
        assert not [name for name in names if ".tmp" in name]
        assert parallel.report.bad_line_examples[0].line == len(spans) + 1
        tree = parallel.trace_tree("p59")
        assert [n.span.span_id for n in tree.nodes] == ["p59-a", "p59-l", "p59-t"]
    packed = tmp_path / "p.jsonl.gz"
    packed.write_bytes(gzip.compress(path.read_bytes()))
    with open_store([packed], cache_dir=tmp_path / "gz") as from_gz:
        assert from_gz.count().spans == len(spans)
        assert from_gz.report.bad_line_examples[0].line == len(spans) + 1
        assert from_gz.count(SpanFilter(text="HTTP 503")).spans == 60


def _trace(trace: str) -> list[dict]:
    return [
        agent(trace, f"{trace}-a", "worker"),
        llm(trace, f"{trace}-l", f"{trace}-a", 1, 2, prompt="x" * 200),
        tool(trace, f"{trace}-t", f"{trace}-a", 3, 4, "fetch", error="HTTP 503 from /api/7"),
    ]


def _open_in_child(args: tuple[str, str]) -> tuple[bool, int, int]:
    path, cache = args
    with open_store([path], cache_dir=cache) as store:
        return store.report.reused, store.count().spans, store.overview().error_spans


def test_concurrent_opens_build_once_and_agree(tmp_path: Path) -> None:
    spans = [s for i in range(300) for s in _trace(f"c{i}")]
    path = str(write(tmp_path / "c.jsonl", spans))
    cache = str(tmp_path / "shared-cache")
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        results = pool.map(_open_in_child, [(path, cache)] * 3)
    assert sorted(r[0] for r in results) == [False, True, True]
    assert {r[1:] for r in results} == {(900, 300)}
    indexes = list((Path(cache) / "indexes").glob("*.sqlite"))
    assert len(indexes) == 1
    with sqlite3.connect(indexes[0]) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert not [p for p in os.listdir(Path(cache) / "indexes") if ".tmp" in p]


def test_a_file_repeating_another_is_reported_as_duplicates_not_an_error(tmp_path) -> None:
    first = write(tmp_path / "a.jsonl", shop_traces())
    backup = write(tmp_path / "a-backup.jsonl", shop_traces())
    with open_store([first, backup]) as store:
        assert store.report.duplicate_spans == 11
        assert store.count().spans == 11


def test_an_unwritable_cache_dir_is_a_store_error_saying_what_to_do(tmp_path) -> None:
    from halo_mcp.store import StoreError

    path = write(tmp_path / "a.jsonl", shop_traces())
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache dir should be")
    with pytest.raises(StoreError, match="HALO_CACHE_DIR"):
        open_store([path], cache_dir=blocker)


def test_parser_workers_leave_ctrl_c_to_the_parent() -> None:
    pool = index_module.worker_pool()
    try:
        assert pool.submit(signal.getsignal, signal.SIGINT).result() == signal.SIG_IGN
    finally:
        pool.shutdown()


def test_identical_tool_inputs_group_whatever_the_attribute_shape(tmp_path: Path) -> None:
    args = '{"path": "/tmp/a b\\n", "quote": "say \\"hi\\""}'
    flat = tool("r1", "r1-t1", "r1-a", 1, 2, "read", args=args)
    nested = tool("r1", "r1-t2", "r1-a", 3, 4, "read")
    del nested["attributes"]["input.value"]
    nested["attributes"]["input"] = {"value": args}
    other = tool("r1", "r1-t3", "r1-a", 5, 6, "read", args='{"path": "/tmp/other"}')
    path = write(tmp_path / "r.jsonl", [agent("r1", "r1-a", "w"), flat, nested, other])
    with open_store([path], cache_dir=tmp_path / "cache") as store, store.aggregates() as reader:
        repeats = list(reader.repeated_calls(min_repeats=2))
    assert [(r.trace_id, r.tool_name, r.calls) for r in repeats] == [("r1", "read", 2)]
    assert sorted(repeats[0].span_ids) == ["r1-t1", "r1-t2"]


def test_a_second_builder_is_told_it_waits_for_the_first(tmp_path: Path) -> None:
    import fcntl
    import threading

    db_path = tmp_path / "indexes" / "x.sqlite"
    db_path.parent.mkdir()
    events: list[str] = []
    told = threading.Event()

    def on_wait() -> None:
        events.append("waiting")
        told.set()

    def second() -> None:
        with index_module.build_lock(db_path, on_wait=on_wait):
            events.append("built")

    with open(str(db_path) + ".lock", "a+b") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        worker = threading.Thread(target=second)
        worker.start()
        assert told.wait(timeout=30)
        assert events == ["waiting"]  # told, and it cannot build while the lock is held
        fcntl.flock(held.fileno(), fcntl.LOCK_UN)
    worker.join(timeout=30)
    assert events == ["waiting", "built"]
