"""Runs persist across restarts, and a run whose process died reads as interrupted."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading

import pytest

from halo_mcp.engine import runstore as rs
from halo_mcp.engine.errors import UnknownFindingError, UnknownRunError
from halo_mcp.engine.models import Progress, RunOutcome, RunStatus, Usage
from halo_mcp.engine.settings import EngineSettings
from halo_mcp.findings.models import Finding, Severity


def _finding(run_id: str, title: str = "t") -> Finding:
    return Finding(
        id=f"f_{title}",
        run_id=run_id,
        title=title,
        category="c",
        severity=Severity.high,
        description="d",
        root_cause="r",
        suggested_change="s",
        validation="v",
    )


def test_a_run_reads_back_after_a_restart(tmp_path):
    settings = EngineSettings(api_key="sk-secret-should-not-persist", data_dir=tmp_path)
    store = rs.open_run_store(settings)
    run = store.create("why?", ["a.jsonl"], settings.public_dict(), owner="alice")
    run = store.mark_running(run.id)
    run.status = RunStatus.finished
    run.findings = [_finding(run.id, "one"), _finding(run.id, "two")]
    run.report_markdown = "# report"
    run.usage = Usage(input_tokens=10, calls=2)
    store.save(run)

    again = rs.RunStore(tmp_path).get(run.id)
    assert again.status == RunStatus.finished
    assert [f.title for f in again.findings] == ["one", "two"]
    assert again.report_markdown == "# report" and again.usage.calls == 2
    assert again.owner == "alice" and again.trace_paths == ["a.jsonl"]
    assert rs.RunStore(tmp_path).get_finding("f_two").title == "two"
    assert "api_key" not in again.config
    assert b"sk-secret-should-not-persist" not in (tmp_path / rs.DB_NAME).read_bytes()


def test_a_running_run_whose_process_died_reads_as_interrupted(tmp_path):
    store = rs.RunStore(tmp_path)
    run = store.mark_running(store.create("p", [], {}).id)
    assert store.get(run.id).status == RunStatus.running  # we are alive

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with sqlite3.connect(store.path) as db:
        db.execute("UPDATE runs SET pid=? WHERE id=?", (dead.pid, run.id))
    read = rs.RunStore(tmp_path).get(run.id)
    assert read.status == RunStatus.interrupted
    assert "ended before it finished" in read.error
    assert [r.id for r in store.list(status=RunStatus.interrupted)] == [run.id]


def test_a_reused_pid_is_told_apart_by_its_start_marker(tmp_path):
    store = rs.RunStore(tmp_path)
    run = store.mark_running(store.create("p", [], {}).id)
    with sqlite3.connect(store.path) as db:
        db.execute("UPDATE runs SET proc_marker='1' WHERE id=?", (run.id,))
    alive_marker = rs.process_marker(os.getpid())
    # Where the OS exposes process start times, a different marker means another process.
    expected = RunStatus.interrupted if alive_marker is not None else RunStatus.running
    assert store.get(run.id).status == expected


def test_unknown_ids_name_recent_runs_and_how_to_list_them(tmp_path):
    store = rs.RunStore(tmp_path)
    known = store.create("p", [], {})
    with pytest.raises(UnknownRunError) as err:
        store.get("run_nope")
    assert known.id in str(err.value) and "list" in str(err.value)
    with pytest.raises(UnknownFindingError, match="f_nope"):
        store.get_finding("f_nope")


def test_the_event_log_is_bounded_per_run(tmp_path, monkeypatch):
    monkeypatch.setattr(rs, "MAX_EVENTS_PER_RUN", 10)
    store = rs.RunStore(tmp_path)
    run = store.create("p", [], {})
    for batch in range(5):
        store.append_events(run.id, [{"type": "x", "n": batch * 4 + i} for i in range(4)])
    events = store.events(run.id, limit=100)
    assert [e["n"] for e in events] == list(range(10, 20))
    assert [e["n"] for e in store.events(run.id, after=events[-3]["seq"])] == [18, 19]


def test_many_threads_can_write_progress_and_events_at_once(tmp_path):
    store = rs.RunStore(tmp_path)
    runs = [store.create(f"p{i}", [], {}) for i in range(4)]
    errors: list[BaseException] = []

    def work(run_id: str) -> None:
        try:
            other = rs.RunStore(tmp_path)
            for i in range(25):
                other.append_events(run_id, [{"type": "progress", "i": i}])
                other.update_progress(
                    run_id, Progress(phase="exploring", fraction=i / 25), Usage(calls=i)
                )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(r.id,)) for r in runs for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for r in runs:
        assert len(store.events(r.id, limit=1000)) == 50


def test_listing_filters_by_owner_newest_first(tmp_path):
    store = rs.RunStore(tmp_path)
    a = store.create("a", [], {}, owner="alice")
    store.create("b", [], {}, owner="bob")
    c = store.create("c", [], {}, owner="alice")
    assert [r.id for r in store.list(owner="alice")] == [c.id, a.id]
    assert len(store.list(limit=2)) == 2


def test_the_outcome_warning_and_usage_per_agent_are_kept(tmp_path):
    store = rs.RunStore(tmp_path)
    run = store.create("p", ["t.jsonl"], {})
    run.status = RunStatus.finished
    run.outcome, run.warning = RunOutcome.refused, "The model refused every one of its replies."
    run.usage_by_agent = {"root": Usage(calls=2, input_tokens=100), "root.1": Usage(calls=1)}
    store.save(run)

    again = rs.RunStore(tmp_path).get(run.id)
    assert again.outcome == RunOutcome.refused and again.warning == run.warning
    assert again.usage_by_agent["root"].input_tokens == 100


def test_a_version_1_run_store_gains_the_new_column(tmp_path):
    store = rs.RunStore(tmp_path)
    run = store.create("p", ["t.jsonl"], {})
    with sqlite3.connect(store.path) as db:  # as version 1 left it
        db.execute("ALTER TABLE runs DROP COLUMN ending")
        db.execute("PRAGMA user_version=1")
    again = rs.RunStore(tmp_path)
    assert again.get(run.id).outcome is None
    run.warning = "w"
    again.save(run)
    assert again.get(run.id).warning == "w"
