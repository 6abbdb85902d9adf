"""A run joins its caller's trace: `traceparent` from an MCP request's `_meta`, a parent
registered for the run id, or the ambient OpenTelemetry context of the host."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from pydantic import BaseModel, ConfigDict

from halo_mcp.engine.telemetry import (
    context_from_meta,
    context_from_traceparent,
    parent_context,
    register_parent,
    traceparent_from_meta,
)
from tests.telemetry_support import memory_telemetry, one

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"


def run_span_of(engine_env, run_id="run_prop", **start):
    tel, exporter = memory_telemetry(engine_env.settings(telemetry=True), run_id, **start)
    tel.end_run(status="finished")
    tel.close()
    return one(exporter.get_finished_spans(), "halo.run")


def joined(span) -> bool:
    return (
        format(span.context.trace_id, "032x") == TRACE_ID
        and span.parent is not None
        and format(span.parent.span_id, "016x") == PARENT_ID
        and span.parent.is_remote
    )


def test_a_traceparent_makes_the_run_span_a_child_of_the_callers_span(engine_env):
    span = run_span_of(engine_env, parent=context_from_traceparent(TRACEPARENT))
    assert joined(span)


def test_an_invalid_traceparent_starts_a_new_trace(engine_env):
    span = run_span_of(engine_env, parent=context_from_traceparent("00-garbage-01"))
    assert span.parent is None
    assert format(span.context.trace_id, "032x") != TRACE_ID


def test_the_traceparent_is_read_from_mcp_meta_as_dict_or_model():
    class Meta(BaseModel):
        model_config = ConfigDict(extra="allow")

    assert traceparent_from_meta({"traceparent": TRACEPARENT}) == TRACEPARENT
    assert traceparent_from_meta(Meta(traceparent=TRACEPARENT)) == TRACEPARENT
    assert traceparent_from_meta({"progressToken": 3}) is None
    assert traceparent_from_meta(None) is None
    assert context_from_meta({"traceparent": "not a traceparent"}) is None
    ctx = context_from_meta({"traceparent": TRACEPARENT, "tracestate": "vendor=1"})
    assert format(trace.get_current_span(ctx).get_span_context().span_id, "016x") == PARENT_ID


def test_a_parent_registered_for_a_run_id_is_used_once_by_that_run(engine_env):
    assert register_parent("run_queued", TRACEPARENT)
    assert not register_parent("run_other", "bogus")
    assert joined(run_span_of(engine_env, "run_queued"))
    assert run_span_of(engine_env, "run_queued").parent is None  # consumed


def test_runs_started_inside_parent_context_join_that_trace(engine_env):
    with parent_context(TRACEPARENT):
        assert joined(run_span_of(engine_env))
    assert run_span_of(engine_env).parent is None


def test_the_hosts_current_span_is_the_default_parent(engine_env):
    """E.g. the MCP SDK's request span (non-recording without a global provider)."""
    remote = SpanContext(int(TRACE_ID, 16), int(PARENT_ID, 16), True, TraceFlags(1))
    with trace.use_span(NonRecordingSpan(remote)):
        assert joined(run_span_of(engine_env))


def test_the_global_tracer_provider_is_never_replaced(engine_env):
    before = trace.get_tracer_provider()
    run_span_of(engine_env)
    assert trace.get_tracer_provider() is before
