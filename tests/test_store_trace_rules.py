"""Trace rules: each kind's SQL agrees with the same rule computed in Python from the spans
(and raw input hashes), on one index and on a sharded one; bad rules say what is valid."""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict

import pytest
from pydantic import ValidationError

from halo_mcp.store import SpanFilter, TraceRule, open_store
from halo_mcp.synth import generate

FIELDS = (
    "trace_id",
    "span_id",
    "parent_span_id",
    "kind",
    "status",
    "tool_name",
    "agent",
    "start_time",
    "input",
    "output",
)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rules")
    path = tmp / "traces.jsonl"
    generate(str(path), traces=60, seed=5, profile="tiny",
             failure_rates={"retry_loop": 0.3, "max_turns_giveup": 0.2})  # fmt: skip
    store = open_store([path], cache_dir=tmp / "cache")
    spans = []
    cursor = None
    while True:
        page = store.query_spans(
            None, fields=FIELDS, limit=2000, cursor=cursor, max_chars=1_000_000
        )
        spans += page.spans
        cursor = page.next_cursor
        if cursor is None:
            break
    traces = {t.trace_id: t for t in store.query_traces(limit=1000).traces}
    yield store, spans, traces
    store.close()


def _by_trace(spans):
    out = defaultdict(list)
    for s in spans:
        out[s.trace_id].append(s)
    for items in out.values():
        items.sort(key=lambda s: s.start_time)
    return out


def _store_traces(store, rule: dict) -> set[str]:
    page = store.query_traces(SpanFilter(trace_rule=TraceRule(**rule)), limit=1000)
    return {t.trace_id for t in page.traces}


def test_repeated_call(data):
    store, spans, _ = data
    counts = Counter(
        (s.trace_id, s.tool_name, s.input) for s in spans if s.tool_name and s.input is not None
    )
    expected = {t for (t, tool, _), n in counts.items() if tool == "http_get" and n >= 3}
    assert expected
    rule = {"kind": "repeated_call", "tool_name": "http_get", "min_count": 3}
    assert _store_traces(store, rule) == expected
    assert store.count(SpanFilter(trace_rule=TraceRule(**rule))).traces == len(expected)


def test_step_limit(data):
    store, spans, _ = data
    calls = Counter(
        (s.trace_id, s.agent) for s in spans if s.kind == "llm" and s.agent and s.status != "error"
    )
    top = max(calls.values())
    expected = {t for (t, _), n in calls.items() if n >= top - 2}
    assert _store_traces(store, {"kind": "step_limit", "min_count": top - 2}) == expected


def test_no_final_answer(data):
    store, spans, _ = data
    expected = {
        s.trace_id for s in spans if s.parent_span_id is None and not (s.output or "").strip()
    }
    assert expected
    assert _store_traces(store, {"kind": "no_final_answer"}) == expected


def test_ends_after_tool_error(data):
    store, spans, _ = data
    expected = set()
    for trace_id, items in _by_trace(spans).items():
        tools = [s for s in items if s.kind == "tool"]
        if tools and tools[-1].status == "error":
            expected.add(trace_id)
    assert _store_traces(store, {"kind": "ends_after_tool_error"}) == expected


def test_a_tool_error_followed_by_no_retry_of_that_tool(data):
    store, spans, _ = data
    expected = set()
    for trace_id, items in _by_trace(spans).items():
        for i, s in enumerate(items):
            if s.kind == "tool" and s.status == "error":
                later = [
                    b
                    for b in items[i + 1 :]
                    if b.kind == "tool"
                    and b.tool_name == s.tool_name
                    and b.start_time > s.start_time
                ]
                if not later:
                    expected.add(trace_id)
    rule = {
        "kind": "followed_by",
        "first": {"kind": ["tool"], "errors_only": True},
        "then": {"kind": ["tool"]},
        "same_tool": True,
        "then_absent": True,
    }
    assert _store_traces(store, rule) == expected
    retried = {**rule, "then_absent": False}
    with_retry = _store_traces(store, retried)
    assert with_retry and with_retry != expected


def test_duration_and_token_thresholds(data):
    store, _, traces = data
    durations = sorted(t.duration_ms for t in traces.values())
    cut = durations[len(durations) * 3 // 4]
    expected = {t for t, s in traces.items() if s.duration_ms >= cut}
    assert _store_traces(store, {"kind": "trace_duration", "min_duration_ms": cut}) == expected
    tokens = sorted(s.input_tokens + s.output_tokens for s in traces.values())
    floor = tokens[len(tokens) // 2] or 1
    expected = {t for t, s in traces.items() if s.input_tokens + s.output_tokens >= floor}
    assert _store_traces(store, {"kind": "trace_tokens", "min_tokens": floor}) == expected


def test_a_rule_combines_with_span_conditions(data):
    store, spans, _ = data
    rule = TraceRule(kind="repeated_call", tool_name="http_get")
    looping = _store_traces(store, rule.model_dump())
    flt = SpanFilter(kind=["tool"], errors_only=True, trace_rule=rule)
    expected = [
        s for s in spans if s.trace_id in looping and s.kind == "tool" and s.status == "error"
    ]
    assert store.count(flt).spans == len(expected)


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"kind": "loops"}, "Input should be"),
        ({"kind": "trace_tokens"}, "needs min_tokens"),
        ({"kind": "no_final_answer", "tool_name": "x"}, "does not use tool_name"),
        ({"kind": "followed_by", "first": {"colour": "red"}}, "Extra inputs"),
    ],
)
def test_bad_rules_say_what_is_valid(data, rule, message):
    store, _, _ = data
    with pytest.raises(ValidationError, match=message):
        TraceRule.model_validate(rule)
    with pytest.raises(Exception, match="trace_rule kinds: repeated_call"):
        store.count({"trace_rule": rule})


def test_rules_on_a_sharded_index_agree(tmp_path, monkeypatch):
    from halo_mcp.store import index

    path = tmp_path / "traces.jsonl"
    generate(str(path), traces=80, seed=6, profile="tiny", failure_rates={"retry_loop": 0.3})
    rules = [
        {"kind": "repeated_call", "min_count": 3},
        {"kind": "ends_after_tool_error"},
        {"kind": "step_limit", "min_count": 3},
        {"kind": "no_final_answer"},
        {"kind": "followed_by", "first": {"errors_only": True}, "then": {"kind": ["llm"]}},
    ]
    with open_store([path], cache_dir=tmp_path / "one") as store:
        single = [json.dumps(sorted(_store_traces(store, r))) for r in rules]
    monkeypatch.setattr(index, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(index, "WORKERS", 2)
    with open_store([path], cache_dir=tmp_path / "many") as store:
        sharded = [json.dumps(sorted(_store_traces(store, r))) for r in rules]
        index = store.index_path
    shard_files = [p for p in index.parent.iterdir() if re.search(r"\.s\d+$", p.name)]
    assert len(shard_files) == 2  # one shard per worker
    assert sharded == single
