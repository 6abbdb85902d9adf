"""The root agent starts from the deterministic triage: its first message carries the
triage summary of the traces, and a triage that fails never fails the run."""

from __future__ import annotations

import logging

import pytest

from halo_mcp.engine import RunStatus, runner, stream_run
from halo_mcp.engine.events import ProgressUpdate, RunFinished
from halo_mcp.engine.prompts import TRIAGE_HEADER
from halo_mcp.store import open_store
from halo_mcp.triage import run_triage, triage_summary
from tests.engine_helpers import error_span, finding_args, is_root, make_traces
from tests.fakes.openai_server import tool_call


@pytest.fixture
def traces(tmp_path):
    return make_traces(tmp_path)


def _script_quick_root(engine_env, traces) -> None:
    """The root submits one finding on its first turn."""
    trace_id, span_id = error_span(traces, engine_env.cache_dir)
    finding = finding_args(
        "read_file fails", {"tool_name": "read_file", "errors_only": True},
        [{"trace_id": trace_id, "span_id": span_id}],
    )  # fmt: skip
    engine_env.server.route(
        is_root, [tool_call("submit_findings", {"findings": [finding], "summary": "One."})]
    )


def _first_root_message(server) -> str:
    first = next(r for r in server.chat_requests if is_root(r.json))
    return first.messages[1]["content"]


async def test_the_root_agent_starts_from_the_triage_summary_of_its_traces(engine_env, traces):
    _script_quick_root(engine_env, traces)
    events = [e async for e in stream_run([traces], "Diagnose errors", engine_env.settings())]

    assert isinstance(events[-1], RunFinished)
    assert events[-1].run.status == RunStatus.finished
    with open_store([traces], cache_dir=engine_env.cache_dir) as store:
        expected = triage_summary(run_triage(store))
    first = _first_root_message(engine_env.server)
    assert first.startswith("Analyze 40 traces")  # the task comes first
    assert f"{TRIAGE_HEADER}\n{expected}" in first
    assert "loop" in expected.lower()  # the planted loops are among the counts handed over
    system = engine_env.server.chat_requests[0].messages[0]["content"]
    assert "explain why they happen" in system  # the prompt says what the counts are for
    phases = [e.progress.phase for e in events if isinstance(e, ProgressUpdate)]
    assert phases.index("indexing") < phases.index("triage") < phases.index("exploring")


async def test_a_failing_triage_is_logged_and_the_run_goes_on_without_it(
    engine_env, traces, monkeypatch, caplog
):
    def broken(store, **kwargs):
        raise RuntimeError("triage exploded")

    monkeypatch.setattr(runner, "run_triage", broken)
    _script_quick_root(engine_env, traces)
    with caplog.at_level(logging.WARNING, logger="halo_mcp.engine.runner"):
        events = [e async for e in stream_run([traces], "Diagnose", engine_env.settings())]

    assert isinstance(events[-1], RunFinished)
    assert events[-1].run.status == RunStatus.finished
    assert TRIAGE_HEADER not in _first_root_message(engine_env.server)
    assert any("triage failed" in r.getMessage() for r in caplog.records)
