"""A run's telemetry from start to end: the run scope the engine's runner opens, and
(with the whole engine) a run streamed through stream_run."""

from __future__ import annotations

from types import SimpleNamespace

import anyio
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from halo_mcp.engine.models import Usage
from halo_mcp.engine.provider import ChatProvider
from halo_mcp.engine.telemetry import (
    ExportTarget,
    agent_span,
    current,
    describe_output,
    record_run,
    run_scope,
)
from halo_mcp.engine.telemetry import core as telemetry_core
from tests.fakes.openai_server import reply, usage
from tests.telemetry_support import fake_agent, one, parent_of


@pytest.fixture(autouse=True)
def no_capture(monkeypatch):
    """Content capture is off unless a test turns it on."""
    monkeypatch.delenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", raising=False)


@pytest.fixture
def memory(monkeypatch) -> InMemorySpanExporter:
    """Spans of runs started by run_scope are kept in memory."""
    exporter = InMemorySpanExporter()
    monkeypatch.setattr(
        telemetry_core, "choose_exporter", lambda run_id: ExportTarget(exporter, "memory")
    )
    return exporter


async def test_the_run_scope_puts_agents_and_provider_calls_under_the_run_span(engine_env, memory):
    engine_env.server.script([reply("ok", usage=usage(100, 10))])
    settings = engine_env.settings(telemetry=True)
    provider = ChatProvider(settings)
    async with run_scope(settings, "run_scope1", prompt="why", trace_paths=["x"]) as tel:
        assert current() is tel
        with agent_span(fake_agent()):
            await provider.complete([{"role": "user", "content": "hi"}])
        record_run(
            tel,
            SimpleNamespace(
                status=SimpleNamespace(value="finished"),
                error=None,
                usage=Usage(input_tokens=100, output_tokens=10, calls=1),
                findings=[object(), object()],
                report_markdown="# report",
            ),
        )
    await provider.aclose()
    assert current() is None
    spans = memory.get_finished_spans()
    run = one(spans, "halo.run")
    assert parent_of(spans, parent_of(spans, one(spans, "chat "))) is run
    assert run.attributes["halo.run.status"] == "finished"
    assert run.attributes["halo.run.findings_count"] == 2
    assert run.attributes["halo.usage.input_tokens"] == 100
    assert run.attributes["halo.run.prompt_length"] == 3
    assert run.attributes["halo.run.trace_paths_count"] == 1
    assert "output.value" not in run.attributes  # the report is content: capture is off
    assert run.status.status_code == StatusCode.OK
    assert describe_output("run_scope1") == "memory"  # what the CLI prints at the end


async def test_a_run_that_raises_ends_its_span_as_failed(engine_env, memory):
    settings = engine_env.settings(telemetry=True)
    with pytest.raises(RuntimeError):
        async with run_scope(settings, "run_boom"):
            raise RuntimeError("index is corrupt")
    run = one(memory.get_finished_spans(), "halo.run")
    assert run.status.status_code == StatusCode.ERROR
    assert run.attributes["halo.run.status"] == "failed"
    assert run.events[0].attributes["exception.message"] == "index is corrupt"


async def test_a_cancelled_run_is_recorded_as_cancelled_not_as_an_error(engine_env, memory):
    settings = engine_env.settings(telemetry=True)
    with anyio.CancelScope() as scope:
        async with run_scope(settings, "run_cancel"):
            with agent_span(fake_agent()):
                scope.cancel()
                await anyio.sleep(10)
    run = one(memory.get_finished_spans(), "halo.run")
    assert run.attributes["halo.run.status"] == "cancelled"
    assert run.status.status_code == StatusCode.UNSET
    agent = one(memory.get_finished_spans(), "invoke_agent")
    assert agent.attributes["halo.cancelled"] is True


async def test_telemetry_that_cannot_start_leaves_the_run_alone(engine_env, monkeypatch, caplog):
    def broken(run_id):
        raise OSError("no space left on device")

    monkeypatch.setattr(telemetry_core, "choose_exporter", broken)
    ran = False
    async with run_scope(engine_env.settings(telemetry=True), "run_broken") as tel:
        assert tel is None
        ran = True
    assert ran
    assert "telemetry disabled for this run" in caplog.text


async def test_telemetry_off_yields_nothing_and_records_nothing(engine_env, memory):
    async with run_scope(engine_env.settings(), "run_quiet") as tel:
        assert tel is None and current() is None
    assert memory.get_finished_spans() == ()
