"""Live progress on stderr: one updating line on a terminal, a short readable log elsewhere."""

from __future__ import annotations

import io
from datetime import datetime, timezone

from halo_mcp.cli.progress import ProgressRenderer, format_elapsed, format_tokens
from halo_mcp.engine.events import (
    AgentFinished,
    AgentStarted,
    FindingAccepted,
    ProgressUpdate,
    RunFinished,
    RunStarted,
    ToolCalled,
)
from halo_mcp.engine.models import Progress, RunRecord, RunStatus, Usage
from halo_mcp.findings.models import Finding, Severity

RUN = "run_test"


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def renderer(live: bool, verbose: bool = False) -> tuple[ProgressRenderer, io.StringIO, Clock]:
    stream, clock = io.StringIO(), Clock()
    fixed = datetime(2026, 11, 24, 7, 30, 5)
    r = ProgressRenderer(
        stream, live=live, verbose=verbose, interval_s=5, clock=clock, now=lambda: fixed
    )
    return r, stream, clock


def progress(phase: str, fraction: float, tokens: int, message: str = "") -> ProgressUpdate:
    return ProgressUpdate(
        run_id=RUN,
        progress=Progress(phase=phase, fraction=fraction, message=message),
        usage=Usage(input_tokens=tokens, output_tokens=0),
    )


def finding(title: str = "read_file gets bad paths") -> Finding:
    return Finding(
        id="f_1",
        run_id=RUN,
        title=title,
        category="tool-error",
        severity=Severity.high,
        description="d",
        root_cause="r",
        suggested_change="s",
        validation="v",
    )


def finished_run() -> RunRecord:
    return RunRecord(
        id=RUN,
        status=RunStatus.finished,
        prompt="p",
        trace_paths=["t.jsonl"],
        created_at=datetime.now(timezone.utc),
        usage=Usage(input_tokens=5000, output_tokens=200),
        findings=[finding()],
    )


def test_numbers_are_short_and_human() -> None:
    assert format_tokens(950) == "950"
    assert format_tokens(12_345) == "12.3k"
    assert format_tokens(2_500_000) == "2.5M"
    assert format_elapsed(83) == "1:23"
    assert format_elapsed(3725) == "1:02:05"


def test_the_status_line_shows_phase_agents_turns_tokens_and_elapsed() -> None:
    r, _, clock = renderer(live=False)
    r.handle(AgentStarted(run_id=RUN, agent_id="root", depth=0, task="t"))
    r.handle(AgentStarted(run_id=RUN, agent_id="root.1", depth=1, task="t"))
    r.handle(ToolCalled(run_id=RUN, agent_id="root", tool="get_overview", arguments="{}", turn=3))
    r.handle(ToolCalled(run_id=RUN, agent_id="root.1", tool="count", arguments="{}", turn=4))
    r.handle(progress("exploring", 0.4, 3100, "1 sub-agent exploring"))
    clock.t += 12
    assert r.status() == (
        "exploring 40% | 2 agents | 7 turns | 3.1k tokens | 0:12 - 1 sub-agent exploring"
    )
    r.handle(AgentFinished(run_id=RUN, agent_id="root.1", turns=5))
    assert r.agents_running == 1
    assert r.turns == 8


def test_a_plain_log_gets_a_line_per_phase_and_at_most_one_per_interval_otherwise() -> None:
    r, stream, clock = renderer(live=False)
    r.handle(RunStarted(run_id=RUN))
    r.handle(progress("indexing", 0.01, 0))
    r.handle(progress("exploring", 0.05, 100))
    for tokens in range(200, 2000, 100):  # many updates within the same second
        clock.t += 0.05
        r.handle(progress("exploring", 0.1, tokens))
    lines = stream.getvalue().splitlines()
    assert lines[0] == f"[07:30:05] run {RUN} started"
    assert [line.split("] ")[1].split(" ")[0] for line in lines[1:]] == ["indexing", "exploring"]

    clock.t += 5  # the interval passed and something changed: one more line
    r.tick()
    r.tick()
    assert len(stream.getvalue().splitlines()) == 4
    assert "1.9k tokens" in stream.getvalue().splitlines()[-1]

    clock.t += 60  # nothing changed since: a quiet log, even after a long while
    r.tick()
    assert len(stream.getvalue().splitlines()) == 4
    assert "\r" not in stream.getvalue() and "\x1b" not in stream.getvalue()


def test_findings_and_the_end_of_the_run_always_get_their_own_line() -> None:
    r, stream, _ = renderer(live=False)
    r.handle(progress("exploring", 0.5, 100))
    r.handle(FindingAccepted(run_id=RUN, finding=finding()))
    r.handle(RunFinished(run_id=RUN, run=finished_run()))
    lines = stream.getvalue().splitlines()
    assert lines[1] == "[07:30:05] finding [high, unverified] read_file gets bad paths"
    assert lines[2].startswith("[07:30:05] finished 100% | 0 agents")
    assert "5.2k tokens | 1 finding" in lines[2]


def test_verbose_adds_agents_and_tool_calls() -> None:
    quiet, quiet_stream, _ = renderer(live=False)
    loud, loud_stream, _ = renderer(live=False, verbose=True)
    for r in (quiet, loud):
        r.handle(AgentStarted(run_id=RUN, agent_id="root.1", depth=1, task="look at errors"))
        r.handle(ToolCalled(run_id=RUN, agent_id="root.1", tool="count", arguments="{}", turn=1))
    assert quiet_stream.getvalue() == ""
    text = loud_stream.getvalue()
    assert "agent root.1 (depth 1) started: look at errors" in text
    assert "root.1 turn 1: count({})" in text


def test_on_a_terminal_one_line_is_rewritten_in_place() -> None:
    r, stream, clock = renderer(live=True)
    r.handle(progress("indexing", 0.01, 0))
    clock.t += 1
    r.handle(progress("exploring", 0.2, 500))
    clock.t += 1
    r.tick()  # the elapsed time moves without events
    out = stream.getvalue()
    assert "\n" not in out
    assert out.count("\r\x1b[2K") == 3
    assert out.endswith("exploring 20% | 0 agents | 0 turns | 500 tokens | 0:02")

    r.handle(FindingAccepted(run_id=RUN, finding=finding()))
    after = stream.getvalue()[len(out) :]
    # The status line is cleared, the finding printed on its own line, the status redrawn.
    assert after.startswith(
        "\r\x1b[2Kfinding [high, unverified] read_file gets bad paths\n\r\x1b[2K"
    )
    r.close()
    assert stream.getvalue().endswith("\n")
