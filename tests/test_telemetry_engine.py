"""A whole engine run with telemetry on: its spans land in a JSONL file that halo-mcp's own
store loads, as the tree run -> root agent -> (chat, tools -> sub-agent -> chat, tools)."""

from __future__ import annotations

import pytest

from halo_mcp.engine import RunStatus, stream_run
from halo_mcp.engine.events import RunFailed, RunFinished
from halo_mcp.engine.telemetry import describe_output
from halo_mcp.store import SpanFilter, open_store
from tests.engine_helpers import error_span, finding_args, is_root, is_sub, make_traces
from tests.fakes.openai_server import reply, status, tool_call, usage

OTLP_ENVS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


@pytest.fixture
def traces(tmp_path):
    return make_traces(tmp_path, traces=20)


@pytest.fixture(autouse=True)
def file_export(monkeypatch):
    for name in (
        *OTLP_ENVS,
        "HALO_TELEMETRY_PATH",
        "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",
    ):
        monkeypatch.delenv(name, raising=False)


def _spans(store, **flt):
    return store.query_spans(
        SpanFilter(**flt),
        limit=100,
        max_chars=50_000,
        fields=(
            "span_id",
            "parent_span_id",
            "name",
            "kind",
            "status",
            "error_message",
            "agent",
            "model",
            "tool_name",
            "input_tokens",
            "output_tokens",
            "attributes",
        ),
    ).spans


async def test_a_streamed_run_writes_its_span_tree_for_halo_mcp_to_read(engine_env, traces):
    server = engine_env.server
    trace_id, span_id = error_span(traces, engine_env.cache_dir)
    matcher = {"tool_name": "read_file", "errors_only": True}
    server.route(
        lambda r: is_sub(r, "ALPHA"),
        [
            tool_call("count_spans", {"filter": matcher}, usage=usage(700, 30)),
            reply("ALPHA report: read_file fails.", usage=usage(800, 40)),
        ],
    )
    finding = finding_args(
        "read_file gets bad paths", matcher, [{"trace_id": trace_id, "span_id": span_id}]
    )
    server.route(
        is_root,
        [
            tool_call("get_overview", {}, usage=usage(1000, 20, cached_tokens=600)),
            tool_call("delegate", {"task": "ALPHA: look at read_file"}, usage=usage(1100, 25)),
            tool_call(
                "submit_findings",
                {"findings": [finding], "summary": "One issue."},
                usage=usage(1200, 300, reasoning_tokens=100),
            ),
        ],
    )
    settings = engine_env.settings(telemetry=True)
    events = [e async for e in stream_run([traces], "Diagnose errors", settings)]
    assert isinstance(events[-1], RunFinished)
    run = events[-1].run
    path = engine_env.data_dir / "telemetry" / f"{run.id}.jsonl"
    assert describe_output(run.id) == str(path)
    assert server.unscripted_calls == []

    with open_store([path], cache_dir=engine_env.cache_dir) as store:
        assert store.report.bad_lines == 0
        (run_span,) = _spans(store, name="halo.run")
        assert run_span.parent_span_id is None
        assert run_span.attributes["halo.run.id"] == run.id
        assert run_span.attributes["halo.run.status"] == "finished"
        assert run_span.attributes["halo.run.findings_count"] == 1
        assert run_span.attributes["halo.usage.input_tokens"] == run.usage.input_tokens

        agents = {s.attributes["gen_ai.agent.id"]: s for s in _spans(store, kind="agent")}
        assert set(agents) == {"root", "root.1"}
        root, sub = agents["root"], agents["root.1"]
        assert root.parent_span_id == run_span.span_id
        assert root.agent == "halo-root" and sub.agent == "halo-sub-agent"

        chats = _spans(store, kind="llm")
        assert len(chats) == len(server.chat_requests) == 5
        assert {c.model for c in chats} == {"fake-model"}
        assert sum(c.input_tokens for c in chats) == run.usage.input_tokens == 4800
        assert sum(c.output_tokens for c in chats) == run.usage.output_tokens
        by_parent = {}
        for chat in chats:
            by_parent.setdefault(chat.parent_span_id, []).append(chat)
        assert {k: len(v) for k, v in by_parent.items()} == {root.span_id: 3, sub.span_id: 2}

        tools = {s.tool_name: s for s in _spans(store, kind="tool")}
        assert set(tools) == {"get_overview", "delegate", "count_spans", "submit_findings"}
        assert tools["delegate"].parent_span_id == root.span_id
        assert sub.parent_span_id == tools["delegate"].span_id  # the sub-agent nests
        assert tools["count_spans"].parent_span_id == sub.span_id
        assert all(t.status.value != "error" for t in tools.values())
        assert "gen_ai.tool.call.arguments" not in tools["delegate"].attributes  # no capture


async def test_a_run_whose_provider_is_down_records_the_failure_in_its_spans(engine_env, traces):
    engine_env.server.route(is_root, [status(503), status(503)])
    settings = engine_env.settings(telemetry=True, max_retries=1)
    events = [e async for e in stream_run([traces], "Diagnose errors", settings)]
    assert isinstance(events[-1], RunFailed)
    run = events[-1].run
    assert run.status == RunStatus.failed

    path = engine_env.data_dir / "telemetry" / f"{run.id}.jsonl"
    with open_store([path], cache_dir=engine_env.cache_dir) as store:
        failed = {s.name: s for s in _spans(store, errors_only=True)}
        assert {"halo.run", "chat fake-model", "invoke_agent halo-root"} <= set(failed)
        chat = failed["chat fake-model"]
        assert chat.attributes["halo.llm.retries"] == 1
        assert failed["halo.run"].attributes["halo.run.status"] == "failed"
        assert "503" in (failed["halo.run"].error_message or "")


async def test_telemetry_that_cannot_write_does_not_fail_the_run(engine_env, traces, monkeypatch):
    blocker = engine_env.data_dir / "not-a-folder"
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("x")
    monkeypatch.setenv("HALO_TELEMETRY_PATH", str(blocker / "t.jsonl"))
    engine_env.server.route(
        is_root,
        [
            tool_call("get_overview", {}),
            tool_call(
                "submit_findings",
                {"findings": [finding_args("x", {"errors_only": True}, [])], "summary": "s"},
            ),
        ],
    )
    events = [e async for e in stream_run([traces], "go", engine_env.settings(telemetry=True))]
    assert isinstance(events[-1], RunFinished)
    assert events[-1].run.status == RunStatus.finished


async def test_with_capture_a_run_records_content_and_tool_errors_but_never_the_key(
    engine_env, traces, monkeypatch
):
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    engine_env.server.route(
        is_root,
        [
            tool_call("no_such_tool", {"x": 1}),
            tool_call(
                "submit_findings",
                {"findings": [finding_args("y", {"errors_only": True}, [])], "summary": "s"},
            ),
        ],
    )
    prompt = f"Diagnose errors (my key is {engine_env.api_key})"
    events = [e async for e in stream_run([traces], prompt, engine_env.settings(telemetry=True))]
    run = events[-1].run
    path = engine_env.data_dir / "telemetry" / f"{run.id}.jsonl"
    data = path.read_bytes()
    assert engine_env.api_key.encode() not in data
    assert b"my key is ***" in data

    with open_store([path], cache_dir=engine_env.cache_dir) as store:
        (bad,) = _spans(store, tool_name="no_such_tool")
        assert bad.status.value == "error"
        assert bad.error_message.startswith("unknown tool 'no_such_tool'")
        assert bad.attributes["gen_ai.tool.call.arguments"] == '{"x": 1}'
        assert "Available tools" in bad.attributes["gen_ai.tool.call.result"]
        first_chat = _spans(store, kind="llm")[0]
        assert "Diagnose errors" in first_chat.attributes["input.value"]
        (run_span,) = _spans(store, name="halo.run")
        assert run_span.attributes["output.value"].startswith("#")  # the markdown report
