"""Findings are checked against the store before they are accepted."""

from __future__ import annotations

import pytest

from halo_mcp.engine.findings import (
    FindingDraft,
    parse_drafts,
    parse_final_json,
    sort_findings,
    verify,
)
from halo_mcp.engine.report import render_report
from halo_mcp.findings.models import Finding, Prevalence, Severity
from halo_mcp.store import SpanFilter, open_store
from tests.engine_helpers import finding_args, make_traces


@pytest.fixture
def store(tmp_path):
    path = make_traces(tmp_path)
    with open_store([path], cache_dir=tmp_path / "cache") as opened:
        yield opened


def _error(store, tool="read_file"):
    return store.query_spans(SpanFilter(tool_name=tool, errors_only=True), limit=1).spans[0]


def _draft(matcher, evidence) -> FindingDraft:
    drafts, problems = parse_drafts([finding_args("t", matcher, evidence)])
    assert problems == []
    return drafts[0]


def test_prevalence_comes_from_the_store_not_the_model(store):
    span = _error(store)
    matcher = {"tool_name": "read_file", "errors_only": True}
    finding = verify(store, _draft(matcher, [{"trace_id": span.trace_id}]), "run_x")
    counted = store.count(SpanFilter(**matcher))

    assert finding.verified
    assert finding.prevalence.traces_matched == counted.traces
    assert finding.prevalence.traces_in_scope == counted.traces_in_scope
    assert finding.prevalence.spans_matched == counted.spans
    assert finding.id.startswith("f_") and finding.run_id == "run_x"


def test_unknown_ids_are_dropped_with_reasons_and_the_finding_is_partial(store):
    span = _error(store)
    other = _error(store, "http_get")
    evidence = [
        {"trace_id": "made-up-trace", "excerpt": "x"},
        {"trace_id": span.trace_id, "span_id": "made-up-span"},
        {"trace_id": span.trace_id, "span_id": other.span_id},  # a span of another trace
    ]
    finding = verify(store, _draft({"tool_name": "read_file"}, evidence), "run_x")
    reasons = {r.code: r for r in finding.status_reasons}

    assert [(e.trace_id, e.span_id) for e in finding.evidence] == [(span.trace_id, None)]
    assert reasons["unknown_trace"].ids == ["made-up-trace"]
    assert reasons["unknown_span"].ids == ["made-up-span"]
    assert reasons["span_in_other_trace"].ids == [other.span_id]
    assert finding.status == "partial" and finding.verified is False


def test_a_finding_citing_only_unknown_ids_is_unverified(store):
    finding = verify(store, _draft({"tool_name": "read_file"}, [{"trace_id": "nope"}]), "r")
    assert not finding.verified and finding.evidence == []
    assert finding.status == "unverified"
    assert "no_evidence" in {r.code for r in finding.status_reasons}


@pytest.mark.parametrize(
    ("matcher", "note"),
    [
        ({"colour": "red"}, "not a valid span filter"),
        ({"text": "(unclosed"}, "not a valid span filter"),
        ({}, "matcher is empty"),
        ({"name": "no-such-span"}, "matches no span"),
        (None, "no matcher given"),
    ],
)
def test_a_bad_or_empty_matcher_leaves_the_finding_unverified(store, matcher, note):
    span = _error(store)
    finding = verify(store, _draft(matcher, [{"trace_id": span.trace_id}]), "r")
    assert not finding.verified
    assert any(note in n for n in finding.verification_notes)
    assert finding.status == "unverified"


def test_a_matcher_missing_the_cited_traces_is_noted(store):
    span = _error(store)
    other = _error(store, "http_get")
    finding = verify(
        store, _draft({"span_ids": [other.span_id]}, [{"trace_id": span.trace_id}]), "r"
    )
    codes = {r.code for r in finding.status_reasons}
    assert {"matcher_misses_all_evidence", "matcher_lists_ids"} <= codes
    assert finding.status == "unverified"


def test_findings_sort_by_severity_then_prevalence():
    def f(title, severity, matched):
        return Finding(
            id=title,
            run_id="r",
            title=title,
            category="c",
            severity=severity,
            description="d",
            root_cause="r",
            suggested_change="s",
            validation="v",
            prevalence=Prevalence(traces_matched=matched, traces_in_scope=100, spans_matched=1),
        )

    ordered = sort_findings(
        [f("a", Severity.low, 90), f("b", Severity.high, 5), f("c", Severity.high, 40)]
    )
    assert [x.title for x in ordered] == ["c", "b", "a"]


def test_the_final_answer_is_parsed_from_fenced_or_chatty_json():
    body = '{"findings": [{"title": "x"}]}'
    assert parse_final_json(body) == [{"title": "x"}]
    assert parse_final_json(f"Here you go:\n```json\n{body}\n```\nThanks") == [{"title": "x"}]
    assert parse_final_json('[{"title": "y"}]') == [{"title": "y"}]
    assert parse_final_json("no json at all") is None


def test_drafts_with_missing_fields_are_rejected_with_a_reason():
    drafts, problems = parse_drafts([{"title": "only a title"}, finding_args("ok", {}, [])])
    assert len(drafts) == 1
    assert problems and problems[0].index == 1 and problems[0].title == "only a title"
    assert "finding #1 'only a title' rejected" in problems[0].line()
    assert any("severity" in reason for reason in problems[0].reasons)


def test_the_report_shows_prevalence_as_a_share_of_traces(store):
    from datetime import datetime, timezone

    from halo_mcp.engine.models import RunRecord, RunStatus

    span = _error(store)
    finding = verify(
        store,
        _draft(
            {"tool_name": "read_file", "errors_only": True},
            [{"trace_id": span.trace_id, "span_id": span.span_id, "excerpt": "No such file"}],
        ),
        "run_r",
    )
    run = RunRecord(
        id="run_r",
        status=RunStatus.finished,
        prompt="why?",
        trace_paths=["t.jsonl"],
        config={"model": "m", "max_turns": 20},
        created_at=datetime.now(timezone.utc),
        findings=[finding],
    )
    text = render_report(run, summary="All good.", traces_in_scope=40, turns=3)
    p = finding.prevalence
    assert f"{p.traces_matched}/{p.traces_in_scope} traces ({p.rate * 100:.1f}%)" in text
    assert "| 1 | `f_" in text and "No such file" in text and "Root turns:** 3 of 20" in text
