"""A run's states have one owner, RunLifecycle: every move is checked and recorded, and a
run whose executor stopped early is ended once, never overwritten."""

from __future__ import annotations

from pathlib import Path

import pytest

from halo_mcp.engine.lifecycle import RunLifecycle, RunStateError
from halo_mcp.engine.models import RunStatus
from halo_mcp.engine.runstore import RunStore
from halo_mcp.engine.settings import EngineSettings


@pytest.fixture
def lifecycle(tmp_path: Path) -> RunLifecycle:
    return RunLifecycle(RunStore(tmp_path / "data"))


def test_a_run_is_queued_started_ended_and_saved(lifecycle: RunLifecycle) -> None:
    settings = EngineSettings(api_key="sk-secret-value-123")
    run = lifecycle.queue("why?", ["a.jsonl"], settings, owner="tok-1")
    assert run.status == RunStatus.queued and "api_key" not in run.config
    running = lifecycle.start(run.id)
    assert running.status == RunStatus.running and running.started_at is not None
    lifecycle.end(running, RunStatus.finished)
    running.report_markdown = "# report"
    lifecycle.save(running)
    stored = lifecycle.runs.get(run.id)
    assert stored.status == RunStatus.finished and stored.finished_at is not None
    assert stored.report_markdown == "# report" and stored.owner == "tok-1"


def test_only_a_queued_run_starts_and_only_end_states_end_a_run(
    lifecycle: RunLifecycle,
) -> None:
    run = lifecycle.start(lifecycle.queue("p", ["a.jsonl"], EngineSettings()).id)
    with pytest.raises(RunStateError, match="not queued"):
        lifecycle.start(run.id)
    with pytest.raises(RunStateError, match="not an end state"):
        lifecycle.end(run, RunStatus.running)
    lifecycle.end(run, RunStatus.failed, "boom")
    with pytest.raises(RunStateError, match="already ended"):
        lifecycle.end(run, RunStatus.finished)


def test_a_run_whose_executor_stopped_is_ended_once(lifecycle: RunLifecycle) -> None:
    queued = lifecycle.queue("p", ["a.jsonl"], EngineSettings())
    ended = lifecycle.end_stored(queued.id, RunStatus.cancelled, "Cancelled with Ctrl-C.")
    assert ended.status == RunStatus.cancelled and ended.error == "Cancelled with Ctrl-C."
    again = lifecycle.end_stored(queued.id, RunStatus.failed, "later")
    assert again.status == RunStatus.cancelled and again.error == "Cancelled with Ctrl-C."
    assert lifecycle.runs.get(queued.id).status == RunStatus.cancelled
