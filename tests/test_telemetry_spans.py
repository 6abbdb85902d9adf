"""A run's telemetry as a span tree: run -> agent -> provider call / tool call -> sub-agent.

Driven through the real provider client against the fake OpenAI server; spans are kept in
memory so the tree and its attributes can be read back exactly.
"""

from __future__ import annotations

import json

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from halo_mcp.engine.provider import ChatProvider, InvalidRequestError
from halo_mcp.engine.telemetry import Telemetry, agent_span, current, llm_span, tool_span
from halo_mcp.engine.telemetry.core import CONTENT_CHARS
from tests.fakes.openai_server import reply, status, tool_call, usage
from tests.telemetry_support import fake_agent, memory_telemetry, named, one, parent_of

CAPTURE = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"


@pytest.fixture(autouse=True)
def no_capture(monkeypatch):
    """Content capture is off unless a test turns it on."""
    monkeypatch.delenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", raising=False)


async def _one_call(engine_env, messages=None, **settings_overrides):
    settings = engine_env.settings(telemetry=True, **settings_overrides)
    tel, exporter = memory_telemetry(settings)
    provider = ChatProvider(settings)
    error = None
    try:
        with tel.activate(), agent_span(fake_agent()):
            await provider.complete(messages or [{"role": "user", "content": "hi"}])
    except Exception as exc:
        error = exc
    finally:
        await provider.aclose()
        tel.end_run(status="failed" if error else "finished", error=error)
        await tel.aclose()
    return exporter.get_finished_spans(), error


async def test_a_provider_call_is_a_chat_span_under_its_agent_under_the_run(engine_env):
    engine_env.server.script(
        [reply("all good", usage=usage(1200, 80, cached_tokens=1000, reasoning_tokens=30))]
    )
    spans, error = await _one_call(engine_env, temperature=0.2, max_output_tokens=500)
    assert error is None

    run = one(spans, "halo.run")
    agent = one(spans, "invoke_agent")
    chat = one(spans, "chat ")
    assert parent_of(spans, chat) is agent
    assert parent_of(spans, agent) is run
    assert run.parent is None
    assert {s.context.trace_id for s in spans} == {run.context.trace_id}

    a = chat.attributes
    assert chat.name == "chat fake-model" and chat.kind == SpanKind.CLIENT
    assert a["gen_ai.operation.name"] == "chat"
    assert a["openinference.span.kind"] == "LLM"
    assert a["gen_ai.request.model"] == "fake-model"
    assert a["gen_ai.response.model"] == "fake-model"
    assert a["llm.model_name"] == "fake-model"
    assert a["gen_ai.usage.input_tokens"] == 1200 and a["llm.token_count.prompt"] == 1200
    assert a["gen_ai.usage.output_tokens"] == 80 and a["llm.token_count.completion"] == 80
    assert a["gen_ai.usage.cache_read.input_tokens"] == 1000
    assert a["gen_ai.usage.reasoning.output_tokens"] == 30
    assert a["gen_ai.response.finish_reasons"] == ("stop",)
    assert a["gen_ai.request.temperature"] == 0.2
    assert a["gen_ai.request.max_tokens"] == 500
    assert a["halo.llm.retries"] == 0
    assert a["gen_ai.agent.name"] == "halo-root" and a["gen_ai.agent.id"] == "root"
    assert a["server.address"] == "127.0.0.1"
    assert chat.status.status_code == StatusCode.UNSET

    b = agent.attributes
    assert b["gen_ai.operation.name"] == "invoke_agent"
    assert b["openinference.span.kind"] == "AGENT"
    assert b["gen_ai.agent.id"] == "root" and b["halo.agent.depth"] == 0

    r = run.attributes
    assert r["halo.run.id"] == "run_telemetry_test"
    assert r["gen_ai.request.model"] == "fake-model"
    assert r["halo.run.status"] == "finished"
    assert run.status.status_code == StatusCode.OK
    assert run.resource.attributes["service.name"] == "halo-mcp"


async def test_content_is_not_recorded_unless_capture_is_enabled(engine_env, monkeypatch):
    monkeypatch.delenv(CAPTURE, raising=False)
    engine_env.server.script([reply("the secret completion")])
    spans, _ = await _one_call(engine_env, [{"role": "user", "content": "the secret prompt"}])
    for span in spans:
        text = json.dumps(dict(span.attributes), default=str)
        assert "secret prompt" not in text and "secret completion" not in text
        assert "input.value" not in span.attributes and "output.value" not in span.attributes


async def test_capture_records_prompts_and_completions(engine_env, monkeypatch):
    monkeypatch.setenv(CAPTURE, "true")
    engine_env.server.script([reply("the visible completion")])
    spans, _ = await _one_call(engine_env, [{"role": "user", "content": "the visible prompt"}])
    chat = one(spans, "chat ")
    assert "the visible prompt" in chat.attributes["input.value"]
    assert "the visible prompt" in chat.attributes["gen_ai.input.messages"]
    assert chat.attributes["output.value"] == "the visible completion"
    assert "the visible completion" in chat.attributes["gen_ai.output.messages"]
    agent = one(spans, "invoke_agent")
    assert agent.attributes["input.value"] == "find the failures"


async def test_retries_and_their_reasons_are_recorded_on_the_provider_span(engine_env):
    engine_env.server.script(
        [status(429, retry_after=0), status(500), reply("finally", usage=usage(10, 2))]
    )
    spans, error = await _one_call(engine_env)
    assert error is None
    chat = one(spans, "chat ")
    assert chat.attributes["halo.llm.retries"] == 2
    retries = [e for e in chat.events if e.name == "halo.llm.retry"]
    assert [e.attributes["halo.retry.attempt"] for e in retries] == [1, 2]
    assert "429" in retries[0].attributes["halo.retry.reason"]
    assert "500" in retries[1].attributes["halo.retry.reason"]


async def test_a_failed_provider_call_is_an_error_span_with_an_exception_event(engine_env):
    engine_env.server.script([status(400, "unknown parameter: frobnicate")])
    spans, error = await _one_call(engine_env)
    assert isinstance(error, InvalidRequestError)
    chat = one(spans, "chat ")
    assert chat.status.status_code == StatusCode.ERROR
    assert "rejected the request" in chat.status.description
    assert chat.attributes["error.type"] == "InvalidRequestError"
    event = next(e for e in chat.events if e.name == "exception")
    assert event.attributes["exception.type"] == "InvalidRequestError"
    assert "frobnicate" in event.attributes["exception.message"]
    # the error travels up: the agent and the run are marked failed too
    assert one(spans, "invoke_agent").status.status_code == StatusCode.ERROR
    run = one(spans, "halo.run")
    assert run.status.status_code == StatusCode.ERROR
    assert run.attributes["halo.run.status"] == "failed"


async def test_tool_calls_nest_and_a_sub_agent_runs_under_the_delegate_call(engine_env):
    engine_env.server.script([tool_call("overview", {}), reply("child report", usage=usage(50, 5))])
    settings = engine_env.settings(telemetry=True)
    tel, exporter = memory_telemetry(settings)
    provider = ChatProvider(settings)
    with tel.activate(), agent_span(fake_agent()):
        await provider.complete([{"role": "user", "content": "start"}])
        with tool_span("overview", "call_1", "{}") as tool:
            tool.result("12 traces, 3 errors")
        with tool_span("query_spans", "call_2", '{"text": "("}') as tool:
            tool.result("query_spans: text is not a valid regex\nescape it", is_error=True)
        with tool_span("delegate", "call_3", '{"task": "look at errors"}') as tool:
            child = fake_agent("root.1", depth=1, parent_id="root", task="look at errors")
            with agent_span(child):
                await provider.complete([{"role": "user", "content": "sub task"}])
                child.turns = 1
            tool.result("report from sub-agent root.1")
    await provider.aclose()
    tel.end_run(status="finished")
    await tel.aclose()
    spans = exporter.get_finished_spans()

    root = next(
        s for s in named(spans, "invoke_agent") if s.attributes["gen_ai.agent.id"] == "root"
    )
    overview = one(spans, "execute_tool overview")
    assert parent_of(spans, overview) is root
    a = overview.attributes
    assert a["gen_ai.operation.name"] == "execute_tool"
    assert a["openinference.span.kind"] == "TOOL"
    assert a["gen_ai.tool.name"] == "overview" and a["tool.name"] == "overview"
    assert a["gen_ai.tool.call.id"] == "call_1"
    assert a["halo.tool.result_bytes"] == len("12 traces, 3 errors")
    assert "gen_ai.tool.call.result" not in a and "gen_ai.tool.call.arguments" not in a
    assert overview.status.status_code == StatusCode.UNSET

    bad = one(spans, "execute_tool query_spans")
    assert bad.status.status_code == StatusCode.ERROR
    assert bad.status.description == "query_spans: text is not a valid regex"
    assert bad.attributes["halo.tool.is_error"] is True

    delegate = one(spans, "execute_tool delegate")
    sub = next(
        s for s in named(spans, "invoke_agent") if s.attributes["gen_ai.agent.id"] == "root.1"
    )
    assert parent_of(spans, sub) is delegate
    assert sub.name == "invoke_agent halo-sub-agent"
    assert sub.attributes["halo.agent.depth"] == 1
    assert sub.attributes["halo.agent.parent_id"] == "root"
    assert sub.attributes["halo.agent.turns"] == 1
    chats = named(spans, "chat ")
    assert {parent_of(spans, c).attributes["gen_ai.agent.id"] for c in chats} == {"root", "root.1"}
    sub_chat = next(c for c in chats if parent_of(spans, c) is sub)
    assert sub_chat.attributes["gen_ai.agent.name"] == "halo-sub-agent"


async def test_captured_tool_arguments_and_results_are_bounded(engine_env, monkeypatch):
    monkeypatch.setenv(CAPTURE, "1")
    tel, exporter = memory_telemetry(engine_env.settings(telemetry=True))
    huge = "x" * (CONTENT_CHARS * 3)
    with tel.activate(), agent_span(fake_agent()), tool_span("view_trace", "c1", '{"id": 1}') as t:
        t.result(huge)
    tel.end_run(status="finished")
    tel.close()
    span = one(exporter.get_finished_spans(), "execute_tool")
    assert span.attributes["gen_ai.tool.call.arguments"] == '{"id": 1}'
    result = span.attributes["gen_ai.tool.call.result"]
    assert len(result) < CONTENT_CHARS + 100
    assert result.endswith(f"[truncated: {len(huge)} chars]")
    assert span.attributes["halo.tool.result_bytes"] == len(huge)


async def test_with_telemetry_off_the_helpers_do_nothing(engine_env):
    settings = engine_env.settings()  # telemetry defaults to off
    assert Telemetry.start(settings, "run_off") is None
    assert current() is None
    engine_env.server.script([reply("plain")])
    provider = ChatProvider(settings)
    with agent_span(fake_agent()) as span, tool_span("overview") as tool:
        assert span is None
        tool.result("ignored")
        completion = await provider.complete([{"role": "user", "content": "hi"}])
    await provider.aclose()
    assert completion.content == "plain"
    with llm_span({"model": "m"}) as llm:
        llm.retry("nothing", 1, 0.0)  # no span, no error


async def test_an_exception_inside_a_tool_marks_it_failed_and_propagates(engine_env):
    tel, exporter = memory_telemetry(engine_env.settings(telemetry=True))
    with pytest.raises(RuntimeError), tel.activate(), tool_span("synthesize"):
        raise RuntimeError("store went away")
    tel.end_run(status="finished")
    tel.close()
    span = one(exporter.get_finished_spans(), "execute_tool synthesize")
    assert span.status.status_code == StatusCode.ERROR
    assert span.events[0].attributes["exception.message"] == "store went away"
