"""analyze_traces over MCP against the fake OpenAI server: progress while it runs, polling to
completion, findings and resources, dedupe, the queue, cancel, and the errors a user meets."""

from __future__ import annotations

import json

import anyio
import pytest
from mcp import Client

from halo_mcp.engine.models import RunStatus, Usage
from halo_mcp.server import create_server
from tests.fakes.openai_server import delay, reply, tool_call
from tests.mcp_support import ProgressLog, make_traces, script_analysis, settings

MODES = ["legacy", "auto"]


@pytest.fixture
def traces(tmp_path):
    return make_traces(tmp_path / "traces")


async def _poll_until_done(client: Client, run_id: str) -> dict:
    for _ in range(100):
        result = await client.call_tool("get_run", {"run_id": run_id, "wait_seconds": 5})
        assert not result.is_error, result.content[0].text
        if result.structured_content["done"]:
            return result.structured_content
    raise AssertionError("the run never finished")


@pytest.mark.parametrize("mode", MODES)
async def test_analysis_reports_progress_then_findings_with_links(engine_env, traces, mode):
    script_analysis(engine_env.server, slow_s=1.0)
    progress = ProgressLog()
    async with Client(create_server(settings()), mode=mode) as client:
        first = await client.call_tool(
            "analyze_traces",
            {"trace_paths": [str(traces)], "prompt": "why do runs fail?", "wait_seconds": 0.3},
            progress_callback=progress,
        )
        assert not first.is_error, first.content[0].text
        status = first.structured_content
        assert status["run_id"].startswith("run_") and status["done"] is False
        assert status["status"] in ("queued", "running")
        assert "get_run" in status["next_step"]
        assert progress.events, "no progress notification during analyze_traces"
        values = [p for p, _, _ in progress.events]
        assert values == sorted(values) and len(set(values)) == len(values)

        done = await _poll_until_done(client, status["run_id"])
        assert done["status"] == "finished"
        assert done["usage"]["calls"] >= 2 and done["elapsed_s"] > 0
        [finding] = done["findings"]
        assert finding["title"].startswith("Rate-limit errors")
        assert finding["severity"] == "high" and "traces" in finding["prevalence"]
        assert done["report_uri"] == f"halo://runs/{status['run_id']}/report"

        again = await client.call_tool("get_run", {"run_id": status["run_id"], "wait_seconds": 0})
        links = [c for c in again.content if c.type == "resource_link"]
        assert {str(link.uri) for link in links} == {
            done["report_uri"],
            done["report_uri"] + ".html",  # the same report as a self-contained page
            finding["uri"],
        }

        report = await client.read_resource(done["report_uri"])
        assert "Rate-limit errors" in report.contents[0].text
        whole = await client.read_resource(finding["uri"])
        assert json.loads(whole.contents[0].text)["root_cause"].startswith("The harness")

        detail = await client.call_tool("get_finding", {"finding_id": finding["id"]})
        assert not detail.is_error
        body = detail.structured_content
        assert body["suggested_change"].startswith("Retry 429s")
        assert body["matcher"]["errors_only"] is True
        assert body["prevalence"]["traces_matched"] >= 1

        # The matcher is a query_spans filter: the concrete cases behind the finding.
        cases = await client.call_tool(
            "query_spans", {"trace_paths": [str(traces)], "filter": body["matcher"], "limit": 5}
        )
        assert cases.structured_content["total"] == body["prevalence"]["spans_matched"]


async def test_calling_analyze_again_with_the_run_id_waits_on_that_run(engine_env, traces):
    script_analysis(engine_env.server, slow_s=0.5)
    async with Client(create_server(settings())) as client:
        first = await client.call_tool(
            "analyze_traces", {"trace_paths": [str(traces)], "wait_seconds": 0}
        )
        run_id = first.structured_content["run_id"]
        second = await client.call_tool("analyze_traces", {"run_id": run_id, "wait_seconds": 30})
        assert second.structured_content["run_id"] == run_id
        assert second.structured_content["status"] == "finished"
        assert len(engine_env.server.chat_requests) == 2  # one run, not two


async def test_an_identical_request_joins_the_run_in_flight(engine_env, traces):
    script_analysis(engine_env.server, slow_s=1.0)
    args = {"trace_paths": [str(traces)], "prompt": "find loops", "wait_seconds": 0}
    async with Client(create_server(settings())) as client:
        first = await client.call_tool("analyze_traces", args)
        second = await client.call_tool("analyze_traces", args)
        assert second.structured_content["run_id"] == first.structured_content["run_id"]
        assert second.structured_content["deduplicated"] is True
        listed = await client.call_tool("list_runs", {})
        assert [r["run_id"] for r in listed.structured_content["runs"]] == [
            first.structured_content["run_id"]
        ]
        await _poll_until_done(client, first.structured_content["run_id"])


async def test_a_run_beyond_the_concurrency_limit_waits_in_the_queue(engine_env, traces):
    # The first run stalls on a slow model call; the second must wait for its slot.
    engine_env.server.script(
        [delay(1.5, then=tool_call("submit_findings", {"findings": [], "summary": "x"}))]
    )
    engine_env.server.responder = None
    async with Client(create_server(settings(max_concurrent_runs=1))) as client:
        first = await client.call_tool(
            "analyze_traces", {"trace_paths": [str(traces)], "prompt": "a", "wait_seconds": 0.2}
        )
        progress = ProgressLog()
        second = await client.call_tool(
            "analyze_traces",
            {"trace_paths": [str(traces)], "prompt": "b", "wait_seconds": 0},
            progress_callback=progress,
        )
        status = second.structured_content
        assert status["status"] == "queued" and status["queue_position"] == 0
        assert "Queued (0 ahead)" in status["next_step"]
        assert progress.messages and progress.messages[0].startswith("queued (0 ahead)")
        cancelled = await client.call_tool("cancel_run", {"run_id": status["run_id"]})
        assert cancelled.structured_content["status"] == "cancelled"
        await client.call_tool("cancel_run", {"run_id": first.structured_content["run_id"]})


@pytest.mark.parametrize("mode", MODES)
async def test_cancel_stops_a_running_analysis_and_is_recorded(engine_env, traces, mode):
    engine_env.server.script([delay(5, then=reply("too late"))])
    async with Client(create_server(settings()), mode=mode) as client:
        started = await client.call_tool(
            "analyze_traces", {"trace_paths": [str(traces)], "wait_seconds": 0.3}
        )
        run_id = started.structured_content["run_id"]
        early = await client.read_resource(f"halo://runs/{run_id}/report")
        assert "Still running" in early.contents[0].text  # and how to wait:
        assert f"get_run(run_id='{run_id}'" in early.contents[0].text
        cancelled = await client.call_tool("cancel_run", {"run_id": run_id})
        assert not cancelled.is_error
        assert cancelled.structured_content["status"] == "cancelled"
        status = await client.call_tool("get_run", {"run_id": run_id, "wait_seconds": 0})
        assert status.structured_content["status"] == "cancelled"
        assert status.structured_content["done"] is True
        again = await client.call_tool("cancel_run", {"run_id": run_id})
        assert "already ended" in again.structured_content["message"]
        listed = await client.call_tool("list_runs", {"status": "cancelled"})
        assert [r["run_id"] for r in listed.structured_content["runs"]] == [run_id]


async def test_a_finished_run_is_readable_from_a_new_server_process(engine_env, traces):
    script_analysis(engine_env.server)
    async with Client(create_server(settings())) as client:
        first = await client.call_tool(
            "analyze_traces", {"trace_paths": [str(traces)], "wait_seconds": 30}
        )
        run_id = first.structured_content["run_id"]
        assert first.structured_content["status"] == "finished"
    async with Client(create_server(settings())) as client:  # a restarted server
        status = await client.call_tool("get_run", {"run_id": run_id, "wait_seconds": 0})
        assert status.structured_content["status"] == "finished"
        assert len(status.structured_content["findings"]) == 1


@pytest.mark.parametrize("mode", MODES)
async def test_no_credentials_is_an_error_that_says_which_variable_to_set(
    engine_env, traces, monkeypatch, mode
):
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.delenv("OPENAI_BASE_URL")
    async with Client(create_server(settings()), mode=mode) as client:
        result = await client.call_tool("analyze_traces", {"trace_paths": [str(traces)]})
    assert result.is_error
    text = result.content[0].text
    assert "OPENAI_API_KEY" in text and '"env"' in text
    assert "sk-" not in text.replace("sk-...", "")


async def test_unknown_ids_are_errors_that_list_runs_to_pick_from(engine_env, traces):
    script_analysis(engine_env.server)
    async with Client(create_server(settings())) as client:
        done = await client.call_tool(
            "analyze_traces", {"trace_paths": [str(traces)], "wait_seconds": 30}
        )
        run_id = done.structured_content["run_id"]
        missing = await client.call_tool("get_run", {"run_id": "run_nope", "wait_seconds": 0})
        assert missing.is_error and run_id in missing.content[0].text
        assert "list_runs" in missing.content[0].text
        no_finding = await client.call_tool("get_finding", {"finding_id": "f_nope"})
        assert no_finding.is_error and "list_runs" in no_finding.content[0].text
        no_args = await client.call_tool("analyze_traces", {})
        assert no_args.is_error and "trace_paths" in no_args.content[0].text


async def test_an_analysis_left_running_does_not_block_the_client(engine_env, traces):
    """The tool returns within wait_seconds even though the model has not answered."""
    engine_env.server.script([delay(3, then=reply("late"))])
    async with Client(create_server(settings())) as client:
        result = await client.call_tool(
            "analyze_traces", {"trace_paths": [str(traces)], "wait_seconds": 0.5}
        )
        assert result.structured_content["done"] is False
        assert "get_run(run_id=" in result.structured_content["next_step"]
        await client.call_tool("cancel_run", {"run_id": result.structured_content["run_id"]})


async def test_a_client_that_stops_waiting_does_not_stop_the_analysis(engine_env, traces):
    script_analysis(engine_env.server, slow_s=1.0)
    async with Client(create_server(settings())) as client:
        with anyio.move_on_after(0.5) as waited:  # the client gives up on the call
            await client.call_tool(
                "analyze_traces", {"trace_paths": [str(traces)], "wait_seconds": 30}
            )
        assert waited.cancelled_caught
        [run] = (await client.call_tool("list_runs", {})).structured_content["runs"]
        done = await _poll_until_done(client, run["run_id"])
        assert done["status"] == "finished" and len(done["findings"]) == 1


async def test_progress_messages_name_the_phase_and_the_agents_at_work(engine_env, traces):
    script_analysis(engine_env.server, slow_s=1.0)
    progress = ProgressLog()
    async with Client(create_server(settings())) as client:
        result = await client.call_tool(
            "analyze_traces",
            {"trace_paths": [str(traces)], "wait_seconds": 30},
            progress_callback=progress,
        )
    assert result.structured_content["status"] == "finished"
    running = [m for m in progress.messages if "agents running" in m]
    assert running and any(m.startswith(("exploring", "indexing", "starting")) for m in running)
    assert progress.events[-1][0] == 100.0 and progress.events[-1][1] == 100.0
    assert progress.messages[-1] == "finished: 1 findings"


@pytest.mark.parametrize("mode", MODES)
async def test_a_run_that_fails_says_why_and_what_to_do(engine_env, tmp_path, mode):
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_text("this is not a trace\n")
    async with Client(create_server(settings()), mode=mode) as client:
        result = await client.call_tool(
            "analyze_traces", {"trace_paths": [str(garbage)], "wait_seconds": 30}
        )
    status = result.structured_content
    assert status["status"] == "failed" and status["done"] is True
    assert str(garbage) in status["error"]
    assert status["next_step"].startswith("The run failed:")
    assert engine_env.server.chat_requests == []  # no LLM call for unreadable traces


def test_the_largest_finding_and_run_status_stay_under_the_budget():
    """Huge texts, 100 evidence items, 100 findings: results are cut and say what they left."""
    from datetime import datetime, timezone

    from halo_mcp.findings.models import Evidence, Finding, Prevalence, Severity
    from halo_mcp.tools.findings import full_finding
    from halo_mcp.tools.results import RESULT_BUDGET_CHARS, dump
    from halo_mcp.tools.runs import status_result

    long = "x" * 20_000
    findings = [
        Finding(
            id=f"f_{i}",
            run_id="run_big",
            title=long,
            category="tool-error",
            severity=Severity.high,
            description=long,
            root_cause=long,
            suggested_change=long,
            validation=long,
            evidence=[Evidence(trace_id="t" * 64, span_id="s" * 32, excerpt=long)] * 100,
            prevalence=Prevalence(traces_matched=5, traces_in_scope=10, spans_matched=7),
            verification_notes=[long] * 50,
        )
        for i in range(100)
    ]
    whole = full_finding(findings[0])
    assert len(dump(whole)) <= RESULT_BUDGET_CHARS
    assert whole.evidence_omitted == 75 and "…[truncated: 20000 chars]" in whole.root_cause
    status = status_result(
        run_id="run_big",
        status=RunStatus.finished,
        created_at=datetime.now(timezone.utc),
        finished_at=datetime.now(timezone.utc),
        phase="done",
        fraction=1.0,
        message=long,
        usage=Usage(),
        agents_running=0,
        trace_paths=[long] * 64,
        prompt=long,
        findings=findings,
        error=None,
    )
    assert len(dump(status)) <= RESULT_BUDGET_CHARS
    assert status.findings_omitted == 70
