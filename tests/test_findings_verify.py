"""Verification of findings: excerpts, matcher vs evidence, too broad, statuses, trace rules."""

from __future__ import annotations

import pytest

from halo_mcp.findings.drafts import parse_drafts
from halo_mcp.findings.verify import excerpt_occurs, verify_draft
from halo_mcp.store import SpanFilter, TraceRule, open_store
from halo_mcp.triage import run_triage
from tests.engine_helpers import finding_args, make_traces


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("verify")
    path = make_traces(tmp)
    with open_store([path], cache_dir=tmp / "cache") as opened:
        yield opened


def _draft(matcher, evidence, **extra):
    drafts, rejected = parse_drafts([{**finding_args("t", matcher, evidence), **extra}])
    assert rejected == []
    return drafts[0]


def _error(store, tool="read_file", n=0):
    page = store.query_spans(
        SpanFilter(tool_name=tool, errors_only=True),
        limit=n + 1,
        fields=("trace_id", "span_id", "error_message"),
    )
    return page.spans[n]


def _codes(finding):
    return {r.code for r in finding.status_reasons}


def test_an_excerpt_must_occur_whitespace_normalized():
    assert excerpt_occurs("No  such\nfile", "FileNotFoundError: No such file or directory")
    assert excerpt_occurs("FileNotFound... directory", "FileNotFoundError: No such directory")
    assert not excerpt_occurs("I made this up", "FileNotFoundError: No such file")
    assert not excerpt_occurs("   ", "anything")


def test_a_real_excerpt_of_the_cited_span_keeps_the_finding_verified(store):
    span = _error(store)
    quote = "  ".join(span.error_message.split()[:4])  # doubled spaces: still found
    matcher = {"tool_name": "read_file", "errors_only": True}
    evidence = [{"trace_id": span.trace_id, "span_id": span.span_id, "excerpt": quote}]
    finding = verify_draft(store, _draft(matcher, evidence), "r")

    assert finding.status == "verified" and finding.verified and finding.status_reasons == []
    assert finding.evidence[0].excerpt == quote
    assert finding.first_seen is not None and finding.last_seen >= finding.first_seen


def test_an_invented_excerpt_is_dropped_with_a_reason(store):
    span = _error(store)
    matcher = {"tool_name": "read_file", "errors_only": True}
    evidence = [{"trace_id": span.trace_id, "span_id": span.span_id, "excerpt": "I made this up"}]
    finding = verify_draft(store, _draft(matcher, evidence), "r")

    assert finding.status == "partial" and not finding.verified
    assert finding.evidence[0].excerpt is None and finding.evidence[0].span_id == span.span_id
    reason = next(r for r in finding.status_reasons if r.code == "excerpt_not_found")
    assert reason.ids == [span.span_id]


def test_an_excerpt_cited_with_a_trace_only_is_found_in_one_of_its_spans(store):
    span = _error(store)
    quote = span.error_message[:30]
    matcher = {"tool_name": "read_file", "errors_only": True}
    finding = verify_draft(
        store, _draft(matcher, [{"trace_id": span.trace_id, "excerpt": quote}]), "r"
    )
    assert finding.status == "verified"
    assert finding.evidence[0].span_id is not None


def test_a_matcher_that_misses_a_cited_span_makes_the_finding_partial(store):
    read = _error(store)
    http = _error(store, "http_get")
    matcher = {"tool_name": "read_file", "errors_only": True}
    evidence = [
        {"trace_id": read.trace_id, "span_id": read.span_id},
        {"trace_id": http.trace_id, "span_id": http.span_id},
    ]
    finding = verify_draft(store, _draft(matcher, evidence), "r")

    assert finding.status == "partial"
    reason = next(r for r in finding.status_reasons if r.code == "matcher_misses_evidence")
    assert http.span_id in reason.ids and read.span_id not in reason.ids


def test_kind_llm_alone_is_too_broad_and_unverified_with_the_figure(store):
    span = store.query_spans(SpanFilter(kind=["llm"]), limit=1).spans[0]
    finding = verify_draft(store, _draft({"kind": ["llm"]}, [{"trace_id": span.trace_id}]), "r")
    assert finding.status == "unverified" and not finding.verified
    reason = next(r for r in finding.status_reasons if r.code == "matcher_not_discriminating")
    p = finding.prevalence
    assert f"{p.traces_matched}/{p.traces_in_scope} traces" in reason.detail


def test_a_matcher_selecting_nearly_all_spans_of_its_kind_is_too_broad(store):
    total = store.count(SpanFilter(kind=["llm"])).spans
    ok = store.count(SpanFilter(kind=["llm"], text="."))  # a condition that holds nearly always
    assert ok.spans / total > 0.8
    span = store.query_spans(SpanFilter(kind=["llm"]), limit=1).spans[0]
    finding = verify_draft(
        store, _draft({"kind": ["llm"], "text": "."}, [{"trace_id": span.trace_id}]), "r"
    )
    reason = next(r for r in finding.status_reasons if r.code == "matcher_too_broad")
    assert f"of {total} llm spans" in reason.detail
    assert finding.status == "partial"


def test_a_trace_rule_matcher_is_counted_exactly(store):
    rule = TraceRule(kind="repeated_call", tool_name="http_get", min_count=3)
    looping = sorted(
        {t.trace_id for t in store.query_traces(SpanFilter(trace_rule=rule), limit=50).traces}
    )
    assert looping  # the tiny set plants http_get retry loops
    span = store.query_spans(
        SpanFilter(trace_ids=looping[:1], tool_name="http_get"), limit=1
    ).spans[0]
    matcher = {"tool_name": "http_get", "trace_rule": rule.model_dump(exclude_defaults=True)}
    finding = verify_draft(
        store, _draft(matcher, [{"trace_id": span.trace_id, "span_id": span.span_id}]), "r"
    )
    assert finding.status == "verified"
    assert finding.prevalence.traces_matched == len(looping)


def test_a_finding_adopts_a_triage_item_by_id(store):
    report = run_triage(store)
    loop = next(i for i in report.items if i.category == "loop")
    draft = _draft(None, [], adopt=loop.id)
    finding = verify_draft(store, draft, "r", adoptable={i.id: i for i in report.items})

    assert finding.matcher == loop.matcher and finding.matcher.trace_rule is not None
    assert finding.prevalence.traces_matched == loop.prevalence.traces_matched
    assert finding.status == "verified", finding.status_reasons
    assert "[triage-rule]" in finding.validation


def test_adopting_an_unknown_id_is_unverified(store):
    finding = verify_draft(store, _draft(None, [], adopt="t_nope"), "r", adoptable={})
    assert finding.status == "unverified" and "adopt_unknown" in _codes(finding)


def test_a_matcher_listing_ids_covers_only_those_ids(store):
    first, second = _error(store), _error(store, n=1)
    matcher = {"span_ids": [first.span_id]}
    evidence = [
        {"trace_id": first.trace_id, "span_id": first.span_id},
        {"trace_id": second.trace_id, "span_id": second.span_id},
    ]
    finding = verify_draft(store, _draft(matcher, evidence), "r")
    reasons = {r.code: r for r in finding.status_reasons}
    assert second.span_id in reasons["matcher_misses_evidence"].ids
    assert first.span_id not in reasons["matcher_misses_evidence"].ids
    assert "matcher_lists_ids" in reasons and finding.status == "partial"
