"""End-to-end engine runs through the real openai client against the fake server."""

from __future__ import annotations

import json
import threading

import anyio
import pytest

from halo_mcp.engine import RunStatus, RunStore, run_analysis, stream_run
from halo_mcp.engine.events import AgentStarted, ProgressUpdate, RunFailed, RunFinished
from tests.engine_helpers import (
    count,
    error_span,
    finding_args,
    is_root,
    is_sub,
    make_traces,
    tool_messages,
    types,
)
from tests.fakes.openai_server import reply, status, tool_call, tool_calls


@pytest.fixture
def traces(tmp_path):
    return make_traces(tmp_path)


async def test_root_delegates_to_two_parallel_sub_agents_and_submits_verified_findings(
    engine_env, traces
):
    server = engine_env.server
    trace_id, span_id = error_span(traces, engine_env.cache_dir)
    matcher = {"tool_name": "read_file", "errors_only": True}
    # Both sub-agents must be in flight at once: each first request waits for the other.
    barrier = threading.Barrier(2, timeout=20)
    met = []

    def rendezvous(request: dict):
        if is_sub(request) and len(request["messages"]) == 3:
            barrier.wait()
            met.append(True)
        return None

    server.responder = rendezvous
    server.route(
        lambda r: is_sub(r, "ALPHA"),
        [
            tool_call("count_spans", {"filter": matcher}),
            reply(f"ALPHA report: read_file fails, e.g. trace {trace_id} span {span_id}."),
        ],
    )
    server.route(
        lambda r: is_sub(r, "BETA"),
        [
            tool_call("query_spans", {"filter": {"tool_name": "http_get"}, "limit": 3}),
            tool_call("finish", {"report": "BETA report: http_get timeouts."}),
        ],
    )
    findings = [
        finding_args(
            "read_file called with paths that do not exist",
            matcher,
            [
                {"trace_id": trace_id, "span_id": span_id, "excerpt": "FileNotFoundError"},
                {"trace_id": "bogus-trace-id-000", "excerpt": "made up"},
            ],
        ),
        finding_args(
            "A failure nothing matches",
            {"name": "no-such-span-name"},
            [{"trace_id": trace_id}],
            severity="low",
        ),
    ]
    server.route(
        is_root,
        [
            tool_call("get_overview", {}),
            tool_calls(
                [
                    ("delegate", {"task": "ALPHA: investigate read_file errors"}),
                    ("delegate", {"task": "BETA: investigate http_get"}),
                ]
            ),
            tool_call("submit_findings", {"findings": findings, "summary": "Two issues."}),
        ],
    )
    settings = engine_env.settings()
    events = [e async for e in stream_run([traces], "Diagnose errors", settings)]

    assert met == [True, True]
    assert isinstance(events[-1], RunFinished)
    run = events[-1].run
    assert run.status == RunStatus.finished
    started = [e for e in events if isinstance(e, AgentStarted)]
    assert sorted(e.depth for e in started) == [0, 1, 1]
    assert {e.parent_agent_id for e in started if e.depth == 1} == {"root"}
    phases = {e.progress.phase for e in events if isinstance(e, ProgressUpdate)}
    assert {"indexing", "exploring", "delegating", "reporting", "done"} <= phases
    assert types(events).count("finding_accepted") == 2

    # The root saw both reports.
    last_root = [r for r in server.chat_requests if is_root(r.json)][-1]
    seen = "\n".join(tool_messages(last_root))
    assert "ALPHA report" in seen and "BETA report" in seen
    assert server.unscripted_calls == []

    real, nothing = run.findings  # sorted: high before low
    # a bogus trace id among the evidence: dropped, so the finding is partial, not verified
    assert real.status == "partial" and real.verified is False
    assert [r.code for r in real.status_reasons] == ["unknown_trace"]
    assert real.status_reasons[0].ids == ["bogus-trace-id-000"]
    traces_matched, in_scope, spans = count(traces, engine_env.cache_dir, matcher)
    assert real.prevalence.traces_matched == traces_matched
    assert real.prevalence.traces_in_scope == in_scope
    assert real.prevalence.spans_matched == spans
    assert [e.trace_id for e in real.evidence] == [trace_id]
    assert any("bogus-trace-id-000" in n for n in real.verification_notes)
    assert nothing.verified is False
    assert any("matches no span" in n for n in nothing.verification_notes)
    assert real.id.startswith("f_") and len(real.id) == 24
    assert run.id.startswith("run_") and len(run.id) == 26

    report = run.report_markdown
    assert f"{traces_matched}/{in_scope} traces" in report
    assert real.id in report and "Two issues." in report

    # Read back from a fresh store instance, as after a restart.
    again = RunStore(engine_env.data_dir).get(run.id)
    assert again.status == RunStatus.finished
    assert [f.id for f in again.findings] == [real.id, nothing.id]
    assert RunStore(engine_env.data_dir).get_finding(real.id).title == real.title
    logged = RunStore(engine_env.data_dir).events(run.id, limit=1000)
    assert logged[0]["type"] == "run_started" and logged[-1]["type"] == "run_finished"

    # No secret anywhere in the run store files.
    for path in engine_env.data_dir.iterdir():
        assert engine_env.api_key.encode() not in path.read_bytes()


async def test_malformed_arguments_and_unknown_tools_go_back_as_tool_errors(engine_env, traces):
    server = engine_env.server
    trace_id, span_id = error_span(traces, engine_env.cache_dir)
    server.route(
        is_root,
        [
            tool_calls(
                [
                    ("view_trace", '{"trace_id": "abc'),
                    ("launch_rockets", {"count": 3}),
                    ("query_spans", {"limit": "many"}),
                    ("view_trace", {"trace_id": "no-such-trace"}),
                ]
            ),
            tool_call(
                "submit_findings",
                {
                    "findings": [
                        finding_args(
                            "read_file errors",
                            {"tool_name": "read_file", "errors_only": True},
                            [{"trace_id": trace_id, "span_id": span_id}],
                        )
                    ]
                },
            ),
        ],
    )
    run = await run_analysis([traces], "Find problems", engine_env.settings())

    assert run.status == RunStatus.finished
    second = [r for r in server.chat_requests if is_root(r.json)][1]
    bad_json, unknown, bad_schema, bad_id = tool_messages(second)
    assert bad_json.startswith("ERROR:") and "not valid JSON" in bad_json
    assert unknown.startswith("ERROR:") and "unknown tool 'launch_rockets'" in unknown
    assert "get_overview" in unknown  # tells the model what exists
    assert bad_schema.startswith("ERROR:") and "limit" in bad_schema
    assert bad_id.startswith("ERROR:") and "no-such-trace" in bad_id
    assert run.findings[0].verified


async def test_a_root_out_of_turns_is_asked_once_more_without_tools(engine_env, traces):
    server = engine_env.server
    trace_id, span_id = error_span(traces, engine_env.cache_dir)
    final = {
        "summary": "read_file keeps failing",
        "findings": [
            finding_args(
                "read_file errors",
                {"tool_name": "read_file", "errors_only": True},
                [{"trace_id": trace_id, "span_id": span_id}],
            )
        ],
    }
    server.route(
        is_root,
        [
            tool_call("get_overview", {}),
            tool_call("count_spans", {"filter": {"errors_only": True}}),
            reply("```json\n" + json.dumps(final) + "\n```"),
        ],
    )
    run = await run_analysis([traces], "Find problems", engine_env.settings(max_turns=2))

    assert run.status == RunStatus.finished
    requests = [r for r in server.chat_requests if is_root(r.json)]
    assert len(requests) == 3
    assert "turn 2 of 2" in requests[1].messages[-1]["content"]
    assert "LAST turn" in requests[1].messages[-1]["content"]
    assert requests[2].json.get("tool_choice") == "none"
    assert [f.title for f in run.findings] == ["read_file errors"]
    assert run.findings[0].verified
    assert "read_file keeps failing" in run.report_markdown


async def test_an_unparseable_final_answer_still_ends_in_a_report(engine_env, traces):
    engine_env.server.route(
        is_root,
        [tool_call("get_overview", {}), reply("I think read_file is broken, not sure.")],
    )
    run = await run_analysis([traces], "Find problems", engine_env.settings(max_turns=1))

    assert run.status == RunStatus.finished
    assert run.findings == []
    assert "I think read_file is broken" in run.report_markdown


async def test_provider_failure_mid_run_keeps_findings_and_sub_agent_reports(engine_env, traces):
    server = engine_env.server
    trace_id, span_id = error_span(traces, engine_env.cache_dir)
    server.route(lambda r: is_sub(r), [reply("SUB report: http_get times out in many traces")])
    server.route(
        is_root,
        [
            tool_call(
                "add_findings",
                {
                    "findings": [
                        finding_args(
                            "read_file errors",
                            {"tool_name": "read_file", "errors_only": True},
                            [{"trace_id": trace_id, "span_id": span_id}],
                        )
                    ]
                },
            ),
            tool_call("delegate", {"task": "look at http_get"}),
            status(503, "upstream overloaded"),
            status(503, "upstream overloaded"),
        ],
    )
    settings = engine_env.settings(max_retries=1)
    events = [e async for e in stream_run([traces], "Find problems", settings)]

    failed = events[-1]
    assert isinstance(failed, RunFailed)
    run = failed.run
    assert run.status == RunStatus.failed
    assert "503" in run.error and engine_env.api_key not in run.error
    assert [f.title for f in run.findings] == ["read_file errors"]
    assert "SUB report: http_get times out" in run.report_markdown
    stored = RunStore(engine_env.data_dir).get(run.id)
    assert stored.status == RunStatus.failed and len(stored.findings) == 1


async def test_cancelling_the_consumer_cancels_the_run(engine_env, traces):
    server = engine_env.server
    arrived = threading.Event()

    def hang(request: dict):
        if is_root(request):
            arrived.set()
            from tests.fakes.openai_server import delay

            return delay(60)
        return None

    server.responder = hang
    run_id = None
    with anyio.CancelScope() as scope:
        async for event in stream_run([traces], "Find problems", engine_env.settings()):
            run_id = event.run_id
            if isinstance(event, AgentStarted):
                await anyio.to_thread.run_sync(arrived.wait, 20)
                scope.cancel()
    assert scope.cancelled_caught
    run = RunStore(engine_env.data_dir).get(run_id)
    assert run.status == RunStatus.cancelled


async def test_a_bad_trace_path_fails_the_run_with_a_clear_error(engine_env, tmp_path):
    run = await run_analysis([tmp_path / "missing.jsonl"], "x", engine_env.settings())
    assert run.status == RunStatus.failed
    assert "missing.jsonl" in run.error


async def test_a_poller_in_another_thread_sees_progress_and_findings_while_the_run_goes(
    engine_env, traces
):
    from tests.fakes.openai_server import delay

    server = engine_env.server
    trace_id, span_id = error_span(traces, engine_env.cache_dir)
    server.route(
        is_root,
        [
            tool_call(
                "add_findings",
                {
                    "findings": [
                        finding_args(
                            "read_file errors",
                            {"tool_name": "read_file", "errors_only": True},
                            [{"trace_id": trace_id, "span_id": span_id}],
                        )
                    ]
                },
            ),
            delay(60),  # the root then "thinks" until the run is cancelled
        ],
    )
    seen = {}

    def poll(run_id: str) -> None:
        store = RunStore(engine_env.data_dir)
        for _ in range(400):  # bounded wait for the periodic flush
            run = store.get(run_id)
            if run.findings and run.progress.phase == "exploring":
                seen["run"] = run
                return
            threading.Event().wait(0.05)

    with anyio.CancelScope() as scope:
        async for event in stream_run([traces], "Find problems", engine_env.settings()):
            if event.type == "finding_accepted":
                await anyio.to_thread.run_sync(poll, event.run_id)
                scope.cancel()
    live = seen["run"]
    assert live.status == RunStatus.running
    assert live.progress.message.startswith("root turn 2/")
    assert live.usage.calls >= 1
    final = RunStore(engine_env.data_dir).get(live.id)
    assert final.status == RunStatus.cancelled
    assert [f.title for f in final.findings] == ["read_file errors"]  # kept


async def test_a_queued_run_whose_process_died_reads_as_interrupted(engine_env, tmp_path):
    import sqlite3
    import subprocess
    import sys

    store = RunStore(engine_env.data_dir)
    run = store.create("p", ["x.jsonl"], {})
    assert store.get(run.id).status == RunStatus.queued
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    with sqlite3.connect(store.path) as db:
        db.execute("UPDATE runs SET pid=? WHERE id=?", (gone.pid, run.id))
    assert RunStore(engine_env.data_dir).get(run.id).status == RunStatus.interrupted


async def test_leaving_an_aclosing_stream_early_cancels_the_run(engine_env, traces):
    from contextlib import aclosing

    from tests.fakes.openai_server import delay

    engine_env.server.route(is_root, [delay(60)])
    run_id = None
    async with aclosing(stream_run([traces], "x", engine_env.settings())) as events:
        async for event in events:
            run_id = event.run_id
            if isinstance(event, AgentStarted):
                break
    assert RunStore(engine_env.data_dir).get(run_id).status == RunStatus.cancelled


async def test_ids_and_counts_from_tool_outputs_make_verified_findings(engine_env, traces):
    """A responder that acts like a model: it reads the overview, counts the top error
    signature, and cites the example ids the tools gave it."""
    state: dict = {}

    def model(request: dict):
        if not is_root(request):
            return None
        results = [m["content"] for m in request["messages"] if m.get("role") == "tool"]
        if not results:
            return tool_call("get_overview", {})
        if len(results) == 1:
            top = json.loads(results[0])["error_signatures"][0]
            state["sig"] = top
            flt = {"name": top["span_name"], "errors_only": True}
            return tool_call("count_spans", {"filter": flt})
        sig, counted = state["sig"], json.loads(results[1])
        evidence = [
            {"trace_id": t, "span_id": s}
            for t, s in zip(sig["example_trace_ids"], sig["example_span_ids"], strict=False)
        ]
        finding = finding_args(
            f"{sig['span_name']} fails: {sig['message']}",
            {"name": sig["span_name"], "errors_only": True},
            evidence,
        )
        finding["description"] = f"{counted['traces']} of {counted['traces_in_scope']} traces"
        return tool_call("submit_findings", {"findings": [finding], "summary": "s"})

    engine_env.server.responder = model
    run = await run_analysis([traces], "Diagnose errors", engine_env.settings())

    assert run.status == RunStatus.finished
    (finding,) = run.findings
    assert finding.verified and finding.verification_notes == []
    assert len(finding.evidence) == len(state["sig"]["example_trace_ids"])
    assert finding.prevalence.traces_matched >= state["sig"]["traces"]
