"""Span and trace queries: every filter, sorts, pages, fields and bounded values."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from halo_mcp.store import InvalidFilterError, SpanFilter, UnknownIdError, open_store
from halo_mcp.store.models import SPAN_FIELDS
from halo_mcp.store.store import TraceStore
from halo_mcp.text import truncation_marker
from tests.store_spans import agent, shop_traces, span, tool, write

T0 = datetime(2025, 3, 1, 10, 0, tzinfo=timezone.utc)


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> TraceStore:
    monkeypatch.setenv("HALO_CACHE_DIR", str(tmp_path / "cache"))
    with open_store([write(tmp_path / "shop.jsonl", shop_traces())]) as opened:
        yield opened


def ids(store: TraceStore, **filter_args) -> list[str]:
    page = store.query_spans(SpanFilter(**filter_args), fields=["span_id"], limit=100)
    assert page.total == len(page.spans)
    return [s.span_id for s in page.spans]


def test_the_empty_filter_selects_every_span_in_start_order(store: TraceStore) -> None:
    assert ids(store)[:3] == ["t1-a", "t1-l", "t1-w"]
    assert store.count().spans == 11 and store.count().traces == 3


@pytest.mark.parametrize(
    ("filter_args", "expected"),
    [
        ({"trace_ids": ["t1", "t3"]}, ["t1-a", "t1-l", "t1-w", "t3-a", "t3-l", "t3-w"]),
        ({"span_ids": ["t2-s2", "t3-w", "nope"]}, ["t2-s2", "t3-w"]),
        ({"name": "chat"}, ["t1-l", "t2-l", "t3-l"]),
        ({"name": "tool *"}, ["t1-w", "t2-s1", "t2-s2", "t2-s3", "t3-w"]),
        ({"name": "tool s?arch"}, ["t2-s1", "t2-s2", "t2-s3"]),
        ({"name": "tool"}, []),
        ({"kind": "agent"}, ["t1-a", "t2-a", "t3-a"]),
        ({"kind": ["llm", "tool"], "trace_ids": ["t1"]}, ["t1-l", "t1-w"]),
        ({"errors_only": True}, ["t2-s1", "t2-s2", "t2-s3"]),
        ({"service": "travel"}, ["t3-a"]),
        ({"agent": "booker"}, ["t3-a", "t3-l", "t3-w"]),
        ({"model": "gpt-y"}, ["t2-l"]),
        ({"tool_name": "weather"}, ["t1-w", "t3-w"]),
        ({"tool_name": "search", "errors_only": True, "trace_ids": ["t1"]}, []),
        ({"min_duration_ms": 10_000}, ["t2-a", "t3-a", "t3-l"]),
        ({"max_duration_ms": 500, "kind": "tool"}, ["t1-w"]),
        ({"start_after": T0 + timedelta(seconds=30)}, ["t3-a", "t3-l", "t3-w"]),
        ({"start_before": T0 + timedelta(seconds=1)}, ["t1-a", "t1-l"]),
        ({"start_after": datetime(2025, 3, 1, 12, 0, 30, tzinfo=timezone(timedelta(hours=2)))},
         ["t3-a", "t3-l", "t3-w"]),
        ({"attributes": {"tool.name": "weather", "retry.count": 2}}, ["t3-w"]),
        ({"attributes": {"retry.count": "2", "cached": "true"}}, ["t3-w"]),
        ({"attributes": {"service.name": "travel", "openinference.span.kind": "AGENT"}}, ["t3-a"]),
        ({"attributes": {"retry.count": 3}}, []),
        ({"text": "LOUVRE"}, ["t3-l"]),
        ({"text": "h.tel du"}, ["t3-l"]),
        ({"text": r"timeout after \d+s", "trace_ids": ["t2"]}, ["t2-s1", "t2-s2", "t2-s3"]),
        ({"text": "cats", "attributes": {"tool.name": "search"}}, ["t2-s1", "t2-s2", "t2-s3"]),
        ({"text": "lyon", "kind": "tool"}, ["t1-w"]),
    ],
)  # fmt: skip
def test_each_filter_selects_exactly_its_spans(store, filter_args, expected) -> None:
    assert ids(store, **filter_args) == expected
    count = store.count(SpanFilter(**filter_args))
    assert count.spans == len(expected)
    assert count.traces == len({e.split("-")[0] for e in expected})
    assert count.traces_in_scope == 3


def test_sorts_order_by_duration_and_tokens(store: TraceStore) -> None:
    slowest = store.query_spans(sort="-duration", limit=3, fields=["span_id", "duration_ms"])
    assert [s.span_id for s in slowest.spans] == ["t3-a", "t3-l", "t2-a"]
    assert slowest.spans[0].duration_ms == 20_000
    tokens = store.query_spans(SpanFilter(kind="llm"), sort="-tokens", fields=["span_id"])
    assert [s.span_id for s in tokens.spans] == ["t3-l", "t2-l", "t1-l"]
    latest = store.query_spans(sort="-start_time", limit=1, fields=["span_id"])
    assert latest.spans[0].span_id == "t3-w"


@pytest.mark.parametrize("sort", ["start_time", "-start_time", "duration", "-tokens"])
def test_pages_cover_every_span_once(store: TraceStore, sort: str) -> None:
    seen, cursor, pages = [], None, 0
    while True:
        page = store.query_spans(sort=sort, limit=4, cursor=cursor, fields=["span_id"])
        assert page.total == 11
        seen += [s.span_id for s in page.spans]
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break
    assert pages == 3
    assert sorted(seen) == sorted(ids(store))
    full = store.query_spans(sort=sort, limit=11, fields=["span_id"])
    assert seen == [s.span_id for s in full.spans]


def test_a_bad_or_foreign_cursor_is_refused(store: TraceStore) -> None:
    page = store.query_spans(limit=2)
    with pytest.raises(InvalidFilterError, match="cursor is not valid"):
        store.query_spans(limit=2, cursor="not-a-cursor")
    with pytest.raises(InvalidFilterError, match="another query"):
        store.query_spans(SpanFilter(errors_only=True), limit=2, cursor=page.next_cursor)
    with pytest.raises(InvalidFilterError, match="another query"):
        store.query_spans(sort="-duration", limit=2, cursor=page.next_cursor)


def test_fields_choose_what_comes_back(store: TraceStore) -> None:
    page = store.query_spans(SpanFilter(span_ids=["t3-w"]), fields=list(SPAN_FIELDS))
    view = page.spans[0]
    assert view.tool_name == "weather" and view.agent == "booker" and view.service == "shop"
    assert view.input == '{"city": "Paris"}' and view.output == "ok"
    assert view.attributes["retry.count"] == 2
    assert view.events == []
    assert view.source.line == 11 and view.source.offset > 0 and view.source.length > 0
    assert view.start_time == T0 + timedelta(seconds=46)
    lean = store.query_spans(SpanFilter(span_ids=["t3-w"]), fields=["name"]).spans[0]
    assert lean.model_dump(exclude_none=True) == {"name": "tool weather"}


def test_an_unknown_field_or_sort_lists_the_valid_ones(store: TraceStore) -> None:
    with pytest.raises(InvalidFilterError) as caught:
        store.query_spans(fields=["span_id", "colour"])
    assert "'colour'" in str(caught.value) and "duration_ms" in str(caught.value)
    with pytest.raises(InvalidFilterError, match="-duration"):
        store.query_spans(sort="size")
    with pytest.raises(InvalidFilterError, match="limit"):
        store.query_spans(limit=0)
    with pytest.raises(InvalidFilterError, match="regex"):
        store.search("([unclosed")
    with pytest.raises(InvalidFilterError, match="invalid filter"):
        store.query_spans({"colour": "red"})


def test_long_values_are_cut_with_a_marker_and_counted(store: TraceStore) -> None:
    page = store.query_spans(
        SpanFilter(span_ids=["t3-l"]), fields=["input", "output", "attributes"], max_chars=10
    )
    view = page.spans[0]
    assert view.input == "Book a hot" + truncation_marker(38)
    assert view.output == "Booked: Hô" + truncation_marker(23)
    assert view.attributes["input.value"].endswith(truncation_marker(38))
    assert view.attributes["llm.model_name"] == "gpt-x"
    assert page.max_chars == 10 and page.clipped_values == 4


def test_trace_queries_summarize_and_page(store: TraceStore) -> None:
    page = store.query_traces(sort="-errors", limit=1)
    assert page.total == 3 and page.next_cursor
    top = page.traces[0]
    assert (top.trace_id, top.error_count, top.span_count) == ("t2", 3, 5)
    assert top.root_name == "planner.run" and top.agents == ["planner"]
    assert top.first_error.span_id == "t2-s1"
    assert top.first_error.message.startswith("Timeout after 30s")
    assert (top.input_tokens, top.output_tokens) == (100, 50)
    rest = store.query_traces(sort="-errors", limit=5, cursor=page.next_cursor)
    assert {t.trace_id for t in rest.traces} == {"t1", "t3"}
    assert rest.next_cursor is None
    weather = store.query_traces(SpanFilter(tool_name="weather"), sort="-duration")
    assert [t.trace_id for t in weather.traces] == ["t3", "t1"]
    assert weather.traces[0].duration_ms == 20_000 and weather.traces[0].service == "travel"
    assert weather.traces[0].models == ["gpt-x"]
    by_text = store.query_traces(SpanFilter(text="paris"))
    assert [t.trace_id for t in by_text.traces] == ["t3"]


def test_unknown_ids_say_how_to_find_valid_ones(store: TraceStore) -> None:
    with pytest.raises(UnknownIdError, match="query_traces"):
        store.trace_summary("nope")
    with pytest.raises(UnknownIdError, match="query_spans"):
        store.raw_span("t1", "nope")
    assert store.known_ids(["t1", "x"], ["t2-s1", "y"]) == ({"t1"}, {"t2-s1"})


def test_trace_tree_is_depth_first_and_can_be_cut(store: TraceStore) -> None:
    tree = store.trace_tree("t2", fields=["span_id"])
    assert [(n.span.span_id, n.depth) for n in tree.nodes] == [
        ("t2-a", 0), ("t2-l", 1), ("t2-s1", 1), ("t2-s2", 1), ("t2-s3", 1)
    ]  # fmt: skip
    assert tree.nodes[0].children == 4 and not tree.truncated
    cut = store.trace_tree("t2", limit=2)
    assert len(cut.nodes) == 2 and cut.truncated


def test_search_returns_excerpts_around_the_match(store: TraceStore) -> None:
    result = store.search("timeout after", context_chars=5)
    assert result.spans_matched == 3 and len(result.matches) == 3 and not result.truncated
    assert "Timeout after" in result.matches[0].excerpt
    assert result.matches[0].excerpt.startswith("…")
    within = store.search("paris", filter=SpanFilter(kind="tool"), limit=1)
    assert [m.span_id for m in within.matches] == ["t3-w"] and not within.truncated
    more = store.search("a", limit=2)
    assert more.truncated and len(more.matches) == 2


def test_repeated_identical_tool_calls_are_found(store: TraceStore) -> None:
    with store.aggregates() as reader:
        loops = list(reader.repeated_calls(min_repeats=3))
        assert list(reader.repeated_calls(min_repeats=4)) == []
    assert [(r.trace_id, r.tool_name, r.calls) for r in loops] == [("t2", "search", 3)]


def test_one_store_serves_many_threads(store: TraceStore) -> None:
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(20):
                assert store.count(SpanFilter(errors_only=True)).spans == 3
                assert len(store.query_spans(SpanFilter(text="cats")).spans) == 3
                assert store.overview().error_traces == 1
        except BaseException as exc:  # collected and re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors


def test_text_search_scans_big_inputs_and_confirms_on_decoded_text(tmp_path, monkeypatch):
    monkeypatch.setenv("HALO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr("halo_mcp.store.filters.SCAN_THRESHOLD", 1)
    spans = [
        agent("q1", "q1-a", "main"),
        tool("q1", "q1-x", "q1-a", 1, 2, "shell", args='say "quoted"\nnext'),
        span("q1", "q1-k", "q1-a", "needle", attributes={"note": "haystack"}),
        tool("q1", "q1-y", "q1-a", 3, 4, "shell", args="café crème"),
    ]
    with open_store([write(tmp_path / "q.jsonl", spans)]) as store:
        assert ids(store, text="needle", kind="chain") == []  # in a key/name only, not content
        assert ids(store, text="haystack", kind=["chain", "tool"]) == ["q1-k"]
        assert ids(store, text='say "quoted"\\snext') == ["q1-x"]
        assert ids(store, text="CAFÉ") == ["q1-y"]
        assert ids(store, text=r"caf. cr.me") == ["q1-y"]
        assert ids(store, text=r"quoted.\snext") == ["q1-x"]
        assert ids(store, text=r"^say\b") == ["q1-x"]
        assert ids(store, text=r"\w+ \S+quoted") == ["q1-x"]
        assert ids(store, text="hay.*stack|nothing") == ["q1-k"]
        assert ids(store, text="note: hay") == ["q1-k"]


def _otlp_span(span_id: str, parent: str, name: str, text: str, error: bool = False) -> dict:
    return {
        "traceId": "0af7651916cd43dd8448eb211c80319c",
        "spanId": span_id,
        "parentSpanId": parent,
        "name": name,
        "kind": 1,
        "startTimeUnixNano": "1740823200000000000",
        "endTimeUnixNano": "1740823201000000000",
        "attributes": [{"key": "input.value", "value": {"stringValue": text}}],
        "status": {"code": 2, "message": "boom"} if error else {"code": 1},
    }


def test_text_search_finds_the_right_span_on_a_line_holding_many(tmp_path, monkeypatch):
    import json

    monkeypatch.setenv("HALO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr("halo_mcp.store.filters.SCAN_THRESHOLD", 1)
    spans = [
        _otlp_span("b7ad6b7169203331", "", "root", "nothing here"),
        _otlp_span("00f067aa0ba902b7", "b7ad6b7169203331", "step", "the otter swims"),
        _otlp_span("00f067aa0ba902b8", "b7ad6b7169203331", "step", "a beaver", error=True),
    ]
    envelope = {"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [
        {"scope": {"name": "t"}, "spans": spans}]}]}  # fmt: skip
    path = tmp_path / "otlp.jsonl"
    path.write_text(json.dumps(envelope) + "\n")
    with open_store([path]) as store:
        assert store.report.files[0].format.startswith("otlp")
        assert ids(store, text="otter") == ["00f067aa0ba902b7"]
        assert ids(store, text="beaver|otter", errors_only=True) == ["00f067aa0ba902b8"]
        assert ids(store, text="o.ter") == ["00f067aa0ba902b7"]
        assert ids(store, attributes={"input.value": "a beaver"}) == ["00f067aa0ba902b8"]


@pytest.mark.parametrize(
    "pattern",
    [r"a.b", r"say\s+hi", r'"quoted"', r"\w+ch", r"x\\y", r"^line", r"end$", r"a/b", r"<tag>",
     r"[a-z]+\d", r"\bword\b", r"tab\there", r"\S+@\S+", r"no\Dpe", r"(?:ab|cd)+",
     r"Error: \[Errno \d+\]"],
)  # fmt: skip
def test_a_raw_scan_never_misses_what_the_decoded_text_matches(pattern: str) -> None:
    import json
    import re

    from halo_mcp.store.content import raw_safe

    texts = ['a\nb say \t hi "quoted" x\\y', "line one\nend", "a/b <tag> &", "Zürich a\u00e9b",
             "abc1 word\tword", "tab\there", "me@x.org no\"pe", "abcdab",
             "FileNotFoundError: [Errno 2] gone"]  # fmt: skip
    raw = raw_safe(pattern)
    assert raw is not None
    decoded = re.compile(pattern, re.IGNORECASE)
    for text in texts:
        if decoded.search(text):
            for ascii_only in (True, False):
                line = json.dumps({"v": text}, ensure_ascii=ascii_only).encode()
                assert re.search(raw, line, re.IGNORECASE), (pattern, text, ascii_only)


@pytest.mark.parametrize("pattern", ["Zürich", "[^a]", r"(?=x)", r"\1", r"a\Zb"])
def test_patterns_a_raw_scan_could_miss_are_tested_span_by_span(pattern: str) -> None:
    from halo_mcp.store.content import raw_safe

    assert raw_safe(pattern) is None


def test_a_search_within_one_trace_does_not_scan_the_whole_file(store, monkeypatch) -> None:
    def no_scan(*args, **kwargs):
        raise AssertionError("the whole file was scanned for a search within one trace")

    monkeypatch.setattr("halo_mcp.store.content.matching_lines", no_scan)
    result = store.search("(?i)TIMEOUT after", filter=SpanFilter(trace_ids=["t2"]))
    assert result.spans_matched == 3
    assert {m.trace_id for m in result.matches} == {"t2"}
    assert store.search("timeout after", filter=SpanFilter(trace_ids=["t1"])).matches == []


def test_a_leading_case_flag_still_allows_the_fast_raw_scan() -> None:
    from halo_mcp.store.content import raw_safe

    assert raw_safe("(?i)timed out|rate limit") == raw_safe("timed out|rate limit") is not None
    assert raw_safe("(?s)timed out") is None


def test_broad_filters_are_totalled_from_the_span_group_tally(tmp_path, monkeypatch) -> None:
    """query_spans totals filters on kinds, errors, service, agent, model or tool from
    the tally kept at build time; they must equal a real count, duplicates and inherited
    agents included."""
    from halo_mcp.store import span_queries
    from halo_mcp.synth import generate

    path = tmp_path / "synth.jsonl"
    generate(path, traces=60, seed=3, profile="tiny")
    lines = path.read_text().splitlines()
    with open(path, "a") as handle:  # a few spans again: duplicates leave the tally
        handle.write("\n".join(lines[:5]) + "\n")
    with open_store([path], cache_dir=tmp_path / "cache") as opened:
        overview = opened.overview()
        filters = [
            {"kind": ["llm"]},
            {"kind": ["tool", "agent"], "errors_only": True},
            {"errors_only": True},
            {"kind": []},
            {"service": overview.services[0].name},
            {"agent": overview.agents[-1].name, "kind": ["llm"]},
            {"model": overview.models[0].name, "errors_only": True},
            {"tool_name": overview.tools[0].name},
            {"tool_name": overview.tools[0].name, "agent": "nobody"},
        ]
        listed = [
            opened.query_spans(SpanFilter(**f), limit=10_000, fields=["trace_id"]).spans
            for f in filters
        ]
        spans = [len(page) for page in listed]
        traces = [len({s.trace_id for s in page}) for page in listed]
        assert opened.report.duplicate_spans == 5 and any(spans)

        def no_counting(*args, **kwargs):
            raise AssertionError("counted span by span")

        monkeypatch.setattr(span_queries, "count_where", no_counting)
        assert [opened.query_spans(SpanFilter(**f), limit=1).total for f in filters] == spans
        counts = [opened.count(SpanFilter(**f)) for f in filters]
        assert [(c.spans, c.traces) for c in counts] == list(zip(spans, traces, strict=True))
        assert [opened.query_traces(SpanFilter(**f), limit=1).total for f in filters] == traces


def test_a_pattern_scanned_by_one_thread_is_not_scanned_again_by_another(
    tmp_path, monkeypatch
) -> None:
    """Each thread has its own connection and hit tables; the ids a text scan found are
    the store's, so a second thread answers the same pattern without reading the files."""
    from halo_mcp.store import content
    from halo_mcp.store.filters import SCAN_THRESHOLD
    from halo_mcp.synth import generate

    path = tmp_path / "synth.jsonl"
    generate(path, traces=600, seed=5, profile="tiny")
    scans: list[str] = []
    original = content.matching_lines

    def counted(*args, **kwargs):
        scans.append(threading.current_thread().name)
        return original(*args, **kwargs)

    monkeypatch.setattr(content, "matching_lines", counted)
    with open_store([path], cache_dir=tmp_path / "cache") as opened:
        assert opened.count().spans > SCAN_THRESHOLD  # large enough for the file scan
        pages: list[object] = []

        def query(text: str) -> None:
            pages.append(opened.query_spans(SpanFilter(text=text), limit=5).model_dump())

        for text in ("error|timeout", "error|timeout", "rate limit"):
            worker = threading.Thread(target=query, args=(text,), name=f"reader-{len(pages)}")
            worker.start()
            worker.join()
        assert pages[0] == pages[1] and pages[0]["total"] > 0
        assert scans == ["reader-0", "reader-2"]  # one scan per pattern, whichever thread
        together = [
            threading.Thread(target=query, args=("no such file",), name=f"together-{n}")
            for n in range(3)
        ]
        for worker in together:
            worker.start()
        for worker in together:
            worker.join()
        assert pages[3] == pages[4] == pages[5]
        assert len(scans) == 3  # one scan, the others waited for it or took its ids
