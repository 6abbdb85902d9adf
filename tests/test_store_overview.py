"""The dataset overview on generated traces with planted failure modes, and the error
signatures that group messages differing only by volatile parts."""

from __future__ import annotations

import random

import pytest

from halo_mcp.store import SpanFilter, open_store
from halo_mcp.store.error_text import informative_message
from halo_mcp.store.signatures import MAX_MESSAGE_CHARS, RULES, SPACES, normalize_message
from halo_mcp.synth import generate


@pytest.mark.parametrize(
    ("message", "signature"),
    [
        ("Timeout after 30s calling https://api.x.com/v1?id=3", "Timeout after <N>s calling <URL>"),
        ("File /home/ann/data/x.csv not found", "File <PATH> not found"),
        ("user 550e8400-e29b-41d4-a716-446655440000 failed", "user <UUID> failed"),
        ("at 2025-05-01T12:00:00.123Z and 12:30:01", "at <TS> and <TS>"),
        ("span 4bf92f3577b34da6 code 0x1F", "span <ID> code <ID>"),
        ("request req_9f8a7b6c5d4e3 failed", "request <ID> failed"),
        ("mail bob@example.com bounced", "mail <EMAIL> bounced"),
        ("bad value 'Paris' for \"city\"", "bad value '<S>' for \"<S>\""),
        ("limit on gpt-5.4-mini: used 2999 of 3000", "limit on gpt-5.4-mini: used <N> of <N>"),
        ("  many\n  spaces  ", "many spaces"),
        (None, ""),
    ],
)
def test_volatile_parts_of_error_messages_are_normalized(message, signature) -> None:
    assert normalize_message(message) == signature


def test_messages_that_differ_only_by_numbers_share_a_signature() -> None:
    a = normalize_message("Read timed out after 30.5s (attempt 3 of 5)")
    b = normalize_message("Read timed out after 12s (attempt 1 of 5)")
    assert a == b


def test_skipping_rules_whose_strings_are_absent_never_changes_a_signature() -> None:
    """normalize_message skips a rule when the message lacks every string a match needs;
    the result must be what trying every rule gives."""

    def every_rule(message: str) -> str:
        text = informative_message(message[: MAX_MESSAGE_CHARS * 16])[: MAX_MESSAGE_CHARS * 4]
        for pattern, placeholder, _ in RULES:
            text = pattern.sub(placeholder, text)
        return SPACES.sub(" ", text).strip()[:MAX_MESSAGE_CHARS]

    parts = [
        "http://x.y/a?b=1", "HTTPS://Q.R/s", "user@mail.com", "a@b", "2024-01-02T03:04:05Z",
        "12:30:45.123", "0xDEADbeef", "0X1f", "deadbeef12", "abc_def1234x", "req-ab12cd34ef",
        "/usr/lib/x.py", "~/a/b", "C:\\Users\\x", "'quoted 12'", '"dq 5"', "-12.5e3", "+4",
        "550e8400-e29b-41d4-a716-446655440000", "a-b", "x_y", "é", "\t\n", " ", "(", "=",
        "42", "v1.2.3", ":", "/", "'", '"', "Timeout", "org-bd00379ef09c",
    ]  # fmt: skip
    rng = random.Random(5)
    for _ in range(3000):
        message = rng.choice((" ", "")).join(rng.choices(parts, k=rng.randint(1, 6)))
        assert normalize_message(message) == every_rule(message), message


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("synth")
    path = root / "traces.jsonl"
    manifest = generate(str(path), traces=150, seed=7, bad_lines=2)
    with open_store([path], cache_dir=root / "cache") as store:
        yield store, manifest


def test_overview_counts_match_what_was_generated(planted) -> None:
    store, manifest = planted
    view = store.overview()
    assert view.traces == manifest.traces
    assert view.spans == manifest.spans
    assert view.error_spans == manifest.error_spans
    assert view.error_traces == manifest.error_traces
    assert view.bad_lines == 2 == len(store.report.bad_line_examples)
    assert {s.name: store.count(SpanFilter(service=s.name)).traces for s in view.services} == (
        manifest.services
    )
    assert {a.name: store.count(SpanFilter(agent=a.name)).traces for a in view.agents} == (
        manifest.agents
    )
    assert {m.name: m.count for m in view.models} == manifest.models
    assert {t.name: (t.calls, t.errors) for t in view.tools} == {
        name: (tool.calls, tool.errors) for name, tool in manifest.tools.items()
    }
    assert view.start_time is not None and view.end_time > view.start_time
    assert view.tokens.input > 0 and view.tokens.output > 0
    assert len(view.sample_trace_ids) == 5


def test_each_planted_failure_mode_surfaces_as_an_error_signature(planted) -> None:
    store, manifest = planted
    signatures = store.overview().error_signatures
    assert signatures == sorted(signatures, key=lambda s: -s.traces)
    for mode in manifest.failure_modes:
        if not mode.planted_traces or not mode.matcher:
            continue
        matched = store.count(SpanFilter(**mode.matcher))
        assert matched.traces == mode.planted_traces, mode.name
        if mode.matcher.get("errors_only") and mode.matcher.get("tool_name"):
            top = next(s for s in signatures if s.span_name == mode.matcher["tool_name"])
            assert top.traces == mode.planted_traces
            assert set(top.example_trace_ids) <= set(mode.trace_ids)
            assert store.known_ids(top.example_trace_ids, top.example_span_ids) == (
                set(top.example_trace_ids),
                set(top.example_span_ids),
            )


def test_the_retry_loop_shows_up_as_repeated_identical_tool_calls(planted) -> None:
    store, manifest = planted
    mode = next(m for m in manifest.failure_modes if m.name == "retry_loop")
    with store.aggregates() as reader:
        loops = list(reader.repeated_calls(min_repeats=4))
    assert mode.planted_traces > 0
    assert {r.trace_id for r in loops} == set(mode.trace_ids)


def test_precomputed_counts_equal_a_recount_over_every_span(planted) -> None:
    import sqlite3

    store, _ = planted
    with sqlite3.connect(store.report.index_path) as conn:
        stored = {(d, n): (c, e) for d, n, c, e in conn.execute("SELECT * FROM dims")}
        recount: dict = {}
        for column, dim in (("kind", "kind"), ("service", "service"), ("agent", "agent"),
                            ("model", "model"), ("tool_name", "tool")):  # fmt: skip
            for name, count, errors in conn.execute(
                f"SELECT {column}, COUNT(*), SUM(status = 'error') FROM spans "
                f"WHERE {column} IS NOT NULL GROUP BY 1"
            ):
                recount[(dim, name)] = (count, errors)
    assert stored == recount
