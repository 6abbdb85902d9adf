"""Findings a coding agent can trust: scripted models through the fake provider and the
real openai client, end to end (verification, statuses, trace rules, sub-agent drafts,
honest outcomes, cut replies, partial acceptance, token budget, cache breakpoints)."""

from __future__ import annotations

import json
import re

import pytest

from halo_mcp.check.recount import check_findings
from halo_mcp.engine import RunStatus, run_analysis
from halo_mcp.store import SpanFilter, TraceRule, open_store
from halo_mcp.synth import generate
from tests.engine_helpers import error_span, finding_args, is_root, is_sub, make_traces
from tests.fakes.openai_server import (
    cache_breakpoints,
    refusal,
    reply,
    tool_call,
    tool_calls,
    usage,
)


@pytest.fixture
def traces(tmp_path):
    return make_traces(tmp_path)


def _spans(traces, cache_dir, flt, n=2):
    with open_store([traces], cache_dir=cache_dir) as store:
        page = store.query_spans(SpanFilter.model_validate(flt), limit=n)
        return [(s.trace_id, s.span_id) for s in page.spans]


def _root_tool_results(server):
    last = [r for r in server.chat_requests if is_root(r.json)][-1]
    return [m.get("content", "") for m in last.messages if m.get("role") == "tool"]


async def test_the_issue_example_is_not_verified_and_its_invented_excerpt_is_not_printed(
    engine_env, traces
):
    """kind llm alone, a real trace id, a span of another trace, an invented excerpt."""
    spans = _spans(traces, engine_env.cache_dir, {"kind": ["llm"]}, 200)
    trace_a = spans[0][0]
    _, span_b = next((t, s) for t, s in spans if t != trace_a)
    finding = finding_args(
        "LLM calls go wrong",
        {"kind": ["llm"]},
        [{"trace_id": trace_a, "span_id": span_b, "excerpt": "I made this up"}],
    )
    engine_env.server.route(
        is_root,
        [
            tool_call("submit_findings", {"findings": [finding], "summary": "s"}),
            tool_call("submit_findings", {"findings": [], "summary": "s"}),  # cannot narrow
        ],
    )
    run = await run_analysis([traces], "x", engine_env.settings())

    (f,) = run.findings
    assert f.status == "unverified" and f.verified is False
    codes = {r.code for r in f.status_reasons}
    assert {"matcher_not_discriminating", "span_in_other_trace"} <= codes
    assert "I made this up" not in run.report_markdown
    assert "| unverified |" in run.report_markdown
    assert run.outcome == "only_unverified" and "unverified" in run.warning
    assert "Warning (only_unverified)" in run.report_markdown
    # the model got the figure back and was asked to narrow the matcher
    result = _root_tool_results(engine_env.server)[0]
    assert "matcher_not_discriminating" in result and "Narrow the matcher" in result
    assert "Run NOT submitted yet: 1 matcher(s) are too broad" in result
    assert f"{f.prevalence.traces_matched}/{f.prevalence.traces_in_scope} traces" in result


async def test_an_invented_excerpt_is_dropped_and_a_missed_span_is_named(engine_env, traces):
    (t1, s1), (t2, s2) = _spans(
        traces, engine_env.cache_dir, {"tool_name": "read_file", "errors_only": True}
    )
    (t3, s3) = _spans(traces, engine_env.cache_dir, {"tool_name": "http_get"}, 1)[0]
    finding = finding_args(
        "read_file fails on paths with spaces",
        {"tool_name": "read_file", "errors_only": True},
        [
            {"trace_id": t1, "span_id": s1, "excerpt": "I made this up"},
            {"trace_id": t2, "span_id": s2},
            {"trace_id": t3, "span_id": s3},  # exists, but the matcher does not select it
        ],
    )
    engine_env.server.route(
        is_root, [tool_call("submit_findings", {"findings": [finding], "summary": "s"})]
    )
    run = await run_analysis([traces], "x", engine_env.settings())

    (f,) = run.findings
    assert f.status == "partial" and run.outcome == "findings" and run.warning is None
    reasons = {r.code: r for r in f.status_reasons}
    assert reasons["excerpt_not_found"].ids == [s1]
    assert s3 in reasons["matcher_misses_evidence"].ids
    assert all(e.excerpt is None for e in f.evidence)
    assert "I made this up" not in run.report_markdown
    assert "`excerpt_not_found`" in run.report_markdown


async def test_a_loop_as_a_trace_rule_is_counted_exactly_and_resolved_by_check(
    engine_env, tmp_path
):
    old = tmp_path / "old.jsonl"
    manifest = generate(str(old), traces=60, seed=11, profile="tiny",
                        failure_rates={"retry_loop": 0.5})  # fmt: skip
    planted = set(manifest.mode("retry_loop").trace_ids)
    rule = {"kind": "repeated_call", "tool_name": "http_get", "min_count": 3}
    with open_store([old], cache_dir=engine_env.cache_dir) as store:
        span = store.query_spans(
            SpanFilter(tool_name="http_get", trace_rule=TraceRule(**rule)), limit=1
        ).spans[0]
    matcher = {"kind": ["tool"], "tool_name": "http_get", "trace_rule": rule}
    finding = finding_args(
        "The agent loops on http_get with identical arguments",
        matcher,
        [{"trace_id": span.trace_id, "span_id": span.span_id}],
    )
    engine_env.server.route(
        is_root,
        [
            tool_call("count_spans", {"filter": matcher}),
            tool_call("submit_findings", {"findings": [finding], "summary": "loops"}),
        ],
    )
    run = await run_analysis([old], "x", engine_env.settings())

    (f,) = run.findings
    assert f.status == "verified", f.status_reasons
    assert f.prevalence.traces_matched == len(planted)  # exact, not "every http_get call"
    counted = json.loads(_root_tool_results(engine_env.server)[0])
    assert counted["traces"] == len(planted)

    new = tmp_path / "new.jsonl"
    generate(str(new), traces=60, seed=12, profile="tiny", failure_rates={"retry_loop": 0.0})
    with open_store([new], cache_dir=engine_env.cache_dir) as new_store:
        assert new_store.count(SpanFilter(tool_name="http_get")).spans > 0  # tool still used
        report = check_findings(run.findings, new_store, run_id=run.id)
    (result,) = report.results
    assert result.verdict == "resolved" and result.after.traces_matched == 0
    assert result.status == "verified"


async def test_a_sub_agent_draft_with_a_bogus_id_is_caught_at_the_source(engine_env, traces):
    trace_id, span_id = error_span(traces, engine_env.cache_dir)
    matcher = {"tool_name": "read_file", "errors_only": True}
    bad = finding_args("read_file fails", matcher, [{"trace_id": "bogus-trace", "span_id": "x"}])
    good = finding_args("read_file fails", matcher, [{"trace_id": trace_id, "span_id": span_id}])
    server = engine_env.server
    server.route(
        lambda r: is_sub(r),
        [
            tool_call("finish", {"report": "read_file fails", "findings": [bad]}),
            tool_call("finish", {"report": "read_file fails (ids fixed)", "findings": [good]}),
        ],
    )
    server.route(
        is_root,
        [
            tool_call("delegate", {"task": "look at read_file"}),
            tool_call("submit_findings", {"findings": [], "summary": "see the drafts"}),
        ],
    )
    run = await run_analysis([traces], "x", engine_env.settings())

    sub_requests = [r for r in server.chat_requests if is_sub(r.json)]
    bounced = next(m["content"] for m in sub_requests[1].messages if m.get("role") == "tool")
    assert "not sent yet" in bounced and "unknown_trace" in bounced and "bogus-trace" in bounced
    # the root saw the verified draft, not a prose rebuild of it
    seen = "\n".join(
        m["content"]
        for r in server.chat_requests
        if is_root(r.json)
        for m in r.messages
        if m.get("role") == "tool"
    )
    assert "finding draft(s), verified against the traces" in seen and "status=verified" in seen
    (merged,) = run.findings
    assert merged.title == "read_file fails" and merged.status == "verified"
    assert merged.id.startswith("f_") and merged.evidence[0].span_id == span_id
    assert "merged from draft d_" in merged.verification_notes[0]
    assert run.status == RunStatus.finished


async def test_the_root_adopts_a_sub_agent_draft_by_id(engine_env, traces):
    trace_id, span_id = error_span(traces, engine_env.cache_dir)
    matcher = {"tool_name": "read_file", "errors_only": True}
    good = finding_args("read_file fails", matcher, [{"trace_id": trace_id, "span_id": span_id}])
    server = engine_env.server
    server.route(lambda r: is_sub(r), [tool_call("finish", {"report": "r", "findings": [good]})])
    draft_ids: list[str] = []

    def root(request: dict):
        if not is_root(request):
            return None
        tools = [m["content"] for m in request["messages"] if m.get("role") == "tool"]
        if not tools:
            return tool_call("delegate", {"task": "look at read_file"})
        if len(tools) == 1:
            draft_ids.extend(re.findall(r"\bd_[\w-]+", tools[0])[:1])
            adopted = {**finding_args("Missing files", None, []), "adopt": draft_ids[0]}
            return tool_call("submit_findings", {"findings": [adopted], "summary": "s"})
        return None

    server.responder = root
    run = await run_analysis([traces], "x", engine_env.settings())

    assert draft_ids and draft_ids[0].startswith("d_")
    (f,) = run.findings  # adopted, so the draft is not merged a second time
    assert f.title == "Missing files" and f.status == "verified"
    assert f.matcher.tool_name == "read_file" and f.evidence[0].span_id == span_id


async def test_refusal_on_every_turn_ends_with_a_distinct_outcome(engine_env, traces):
    engine_env.server.responder = lambda request: refusal("I can't help with that.")
    run = await run_analysis([traces], "x", engine_env.settings(max_turns=2, refusal_retries=0))

    assert run.status == RunStatus.finished and run.findings == []
    assert run.outcome == "refused" and "refused every one" in run.warning
    assert "Warning (refused)" in run.report_markdown


async def test_a_reply_cut_by_length_is_continued_in_smaller_parts(engine_env, traces):
    trace_id, span_id = error_span(traces, engine_env.cache_dir)
    matcher = {"tool_name": "read_file", "errors_only": True}
    good = finding_args("read_file fails", matcher, [{"trace_id": trace_id, "span_id": span_id}])
    cut = tool_call("submit_findings", '{"findings": [{"title": "read_file fa')
    cut.finish_reason = "length"
    server = engine_env.server
    server.route(
        is_root,
        [cut, tool_call("submit_findings", {"findings": [good], "summary": "s"})],
    )
    run = await run_analysis([traces], "x", engine_env.settings())

    second = [r for r in server.chat_requests if is_root(r.json)][1]
    told = [m["content"] for m in second.messages if m.get("role") == "user"]
    assert any("cut at the output token limit" in t and "smaller parts" in t for t in told)
    assert not any(m.get("role") == "tool" for m in second.messages)  # the cut call never ran
    assert [f.title for f in run.findings] == ["read_file fails"]


async def test_one_bad_finding_among_three_good_ones_is_rejected_alone(engine_env, traces):
    (t1, s1), (t2, s2) = _spans(
        traces, engine_env.cache_dir, {"tool_name": "read_file", "errors_only": True}
    )
    matcher = {"tool_name": "read_file", "errors_only": True}
    good = [
        finding_args(f"good {i}", matcher, [{"trace_id": t, "span_id": s}])
        for i, (t, s) in enumerate([(t1, s1), (t2, s2), (t1, s1)])
    ]
    bad = {"title": "no severity or anything"}
    server = engine_env.server
    server.route(
        is_root,
        [
            tool_call("submit_findings", {"findings": [good[0], bad, *good[1:]], "summary": "s"}),
            tool_call("submit_findings", {"findings": [], "summary": "s"}),
        ],
    )
    run = await run_analysis([traces], "x", engine_env.settings())

    assert sorted(f.title for f in run.findings) == ["good 0", "good 1", "good 2"]
    result = _root_tool_results(server)[0]
    assert "recorded 3 of 4" in result
    assert "finding #2 'no severity or anything' rejected" in result and "severity" in result
    assert "Run NOT submitted yet" in result
    assert run.outcome == "findings"


async def test_the_run_token_budget_ends_the_run_keeping_its_findings(engine_env, traces):
    trace_id, span_id = error_span(traces, engine_env.cache_dir)
    matcher = {"tool_name": "read_file", "errors_only": True}
    good = finding_args("read_file fails", matcher, [{"trace_id": trace_id, "span_id": span_id}])
    big = usage(4000, 100)
    server = engine_env.server
    server.route(
        is_root,
        [
            tool_call("add_findings", {"findings": [good]}, usage=big),
            tool_call("get_overview", {}, usage=big),
            tool_call("get_overview", {}, usage=big),
        ],
    )
    run = await run_analysis([traces], "x", engine_env.settings(max_run_tokens=6000))

    assert run.status == RunStatus.finished
    assert run.outcome == "budget_reached" and "6,000 tokens" in run.warning
    assert [f.title for f in run.findings] == ["read_file fails"]
    assert len([r for r in server.chat_requests if is_root(r.json)]) == 2
    assert server.pending() == 1  # the third turn was never asked for
    assert run.usage_by_agent["root"].input_tokens == 8000
    assert "## Usage per agent" in run.report_markdown


async def test_cache_control_adds_breakpoints_the_fake_server_records(engine_env, traces):
    trace_id, span_id = error_span(traces, engine_env.cache_dir)
    matcher = {"tool_name": "read_file", "errors_only": True}
    good = finding_args("read_file fails", matcher, [{"trace_id": trace_id, "span_id": span_id}])
    server = engine_env.server
    server.route(
        is_root,
        [
            tool_call("get_overview", {}),
            tool_call("submit_findings", {"findings": [good], "summary": "s"}),
        ],
    )
    await run_analysis([traces], "x", engine_env.settings(cache_control=True))

    first, second = [r for r in server.chat_requests if is_root(r.json)]
    assert cache_breakpoints(first)[0] == (0, "system")
    assert (len(second.messages) - 1, second.messages[-1]["role"]) in cache_breakpoints(second)
    assert is_root(second.json)  # the system prompt is still read as text

    server.route(is_root, [tool_calls([("submit_findings", {"findings": [good]})])])
    await run_analysis([traces], "x", engine_env.settings())
    assert cache_breakpoints(server.chat_requests[-1]) == []  # off by default


async def test_a_prose_only_answer_ends_with_the_no_findings_outcome(engine_env, traces):
    server = engine_env.server
    server.route(is_root, [reply("Everything looks fine to me.")] * 3)
    run = await run_analysis([traces], "x", engine_env.settings(max_turns=2))

    assert run.status == RunStatus.finished and run.findings == []
    assert run.outcome == "no_findings" and "no structured finding" in run.warning
    assert "Everything looks fine" in run.report_markdown


async def test_the_root_adopts_a_triage_item_and_check_recounts_it_with_the_rule(
    engine_env, traces
):
    ids: list[str] = []

    def root(request: dict):
        if not is_root(request):
            return None
        first = request["messages"][1]["content"]
        ids.extend(re.findall(r"Loop: [^\n]*\(id (t_\w+)\)", first)[:1])
        adopted = {**finding_args("The agent loops on http_get", None, []), "adopt": ids[0]}
        return tool_call("submit_findings", {"findings": [adopted], "summary": "s"})

    engine_env.server.responder = root
    run = await run_analysis([traces], "x", engine_env.settings())

    (f,) = run.findings
    assert f.status == "verified", f.status_reasons
    assert f.matcher.trace_rule.kind == "repeated_call"
    with open_store([traces], cache_dir=engine_env.cache_dir) as store:
        looping = store.count(SpanFilter(trace_rule=f.matcher.trace_rule)).traces
        (result,) = check_findings(run.findings, store).results
    assert f.prevalence.traces_matched == looping
    assert result.method == "repeated_call" and result.verdict in ("unchanged", "unknown")


async def test_a_bad_filter_comes_back_with_the_valid_fields_and_an_example(engine_env, traces):
    trace_id, span_id = error_span(traces, engine_env.cache_dir)
    good = finding_args(
        "read_file fails",
        {"tool_name": "read_file", "errors_only": True},
        [{"trace_id": trace_id, "span_id": span_id}],
    )
    server = engine_env.server
    server.route(
        is_root,
        [
            tool_call("count_spans", {"filter": {"tool": "read_file"}}),
            tool_call("submit_findings", {"findings": [good], "summary": "s"}),
        ],
    )
    await run_analysis([traces], "x", engine_env.settings())

    (error,) = _root_tool_results(server)[:1]
    assert error.startswith("ERROR: count_spans:") and "filter.tool" in error
    assert "Valid filter fields: trace_ids, span_ids, name" in error
    assert "trace_rule kinds: repeated_call" in error and "Example: {" in error
