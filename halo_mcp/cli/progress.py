"""Live progress of a run on stderr, readable on a terminal and in a plain log.

On a terminal: one status line rewritten in place (phase, agents running, turns, tokens,
elapsed), with findings printed above it as they are accepted. Elsewhere (CI, a pipe, a
log file): plain timestamped lines, written when the phase changes, when a finding
arrives, and otherwise at most once every `interval_s` seconds, so logs stay short.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from datetime import datetime
from typing import TextIO

from halo_mcp.engine.events import (
    AgentFinished,
    AgentStarted,
    FindingAccepted,
    ProgressUpdate,
    RunFailed,
    RunFinished,
    RunStarted,
    ToolCalled,
    ToolResult,
)

#: Minimum seconds between two redraws of the terminal status line.
_REDRAW_S = 0.1


def format_tokens(count: int) -> str:
    """12345 -> '12.3k', 2_500_000 -> '2.5M'."""
    if count >= 1_000_000:
        return f"{count / 1_000_000:.1f}M"
    if count >= 1_000:
        return f"{count / 1_000:.1f}k"
    return str(count)


def format_elapsed(seconds: float) -> str:
    """83 -> '1:23', 3725 -> '1:02:05'."""
    whole = int(max(0, seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _one_line(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class ProgressRenderer:
    """Turns engine events into progress output. Feed it events, call `tick()` about once
    a second (the elapsed time moves even when no event arrives), and `close()` at the end.
    """

    def __init__(
        self,
        stream: TextIO,
        *,
        live: bool,
        verbose: bool = False,
        interval_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = datetime.now,
    ) -> None:
        self.stream = stream
        self.live = live
        self.verbose = verbose
        self.interval_s = interval_s
        self.clock = clock
        self.now = now
        self.started = clock()
        self.run_id: str | None = None
        self.phase = "starting"
        self.fraction = 0.0
        self.message = ""
        self.tokens = 0
        self.findings = 0
        self.reported_agents: int | None = None
        self._agents_started: set[str] = set()
        self._agents_done: set[str] = set()
        self._turns: dict[str, int] = {}
        self._last_written = ""
        self._last_write_at: float | None = None
        self._line_shown = False

    # ----------------------------------------------------------------- state

    @property
    def agents_running(self) -> int:
        if self._agents_started:
            return len(self._agents_started - self._agents_done)
        return self.reported_agents or 0

    @property
    def turns(self) -> int:
        return sum(self._turns.values())

    def status(self, elapsed: bool = True) -> str:
        """The one-line summary: 'exploring 40% | 2 agents | 7 turns | 3.1k tokens | 0:12'."""
        parts = [f"{self.phase} {round(self.fraction * 100)}%"]
        agents = self.agents_running
        parts.append(f"{agents} agent{'s' if agents != 1 else ''}")
        parts.append(f"{self.turns} turn{'s' if self.turns != 1 else ''}")
        parts.append(f"{format_tokens(self.tokens)} tokens")
        if self.findings:
            parts.append(f"{self.findings} finding{'s' if self.findings != 1 else ''}")
        if elapsed:
            parts.append(format_elapsed(self.clock() - self.started))
        line = " | ".join(parts)
        return f"{line} - {self.message}" if self.message else line

    # ---------------------------------------------------------------- events

    def handle(self, event: object) -> None:
        """Update from one engine event and write whatever it warrants."""
        phase_before = self.phase
        if isinstance(event, RunStarted):
            self.run_id = event.run_id
            self.note(f"run {event.run_id} started")
        elif isinstance(event, ProgressUpdate):
            self.phase = event.progress.phase
            self.fraction = event.progress.fraction
            self.message = event.progress.message
            self.tokens = event.usage.input_tokens + event.usage.output_tokens
            self.reported_agents = event.agents_running
        elif isinstance(event, AgentStarted):
            self._agents_started.add(event.agent_id or "")
            if self.verbose:
                self.note(f"agent {event.agent_id} (depth {event.depth}) started: {event.task}")
        elif isinstance(event, AgentFinished):
            key = event.agent_id or ""
            self._agents_done.add(key)
            self._turns[key] = max(self._turns.get(key, 0), event.turns)
            if self.verbose:
                self.note(f"agent {event.agent_id} finished after {event.turns} turns")
        elif isinstance(event, ToolCalled):
            key = event.agent_id or ""
            self._turns[key] = max(self._turns.get(key, 0), event.turn)
            if self.verbose:
                self.note(f"{event.agent_id} turn {event.turn}: {event.tool}({event.arguments})")
        elif isinstance(event, ToolResult):
            if self.verbose and event.is_error:
                self.note(f"{event.agent_id}: {event.tool} failed: {event.summary}")
        elif isinstance(event, FindingAccepted):
            self.findings += 1
            finding = event.finding
            self.note(f"finding [{finding.severity.value}, {finding.status}] {finding.title}")
        elif isinstance(event, (RunFinished, RunFailed)):
            run = event.run
            self.phase = run.status.value
            self.fraction = 1.0 if isinstance(event, RunFinished) else self.fraction
            self.message = ""
            self.tokens = run.usage.input_tokens + run.usage.output_tokens
            self.findings = len(run.findings)
            self._agents_done |= self._agents_started
            self.reported_agents = 0
            self._write_status(force=True)
            return
        self._write_status(force=self.phase != phase_before)

    def tick(self) -> None:
        """Called periodically: keeps the elapsed time moving on a terminal and writes a
        plain line when something changed and the interval has passed."""
        self._write_status(force=False)

    def note(self, text: str) -> None:
        """A line of its own (finding, verbose detail), above the live status line."""
        text = _one_line(text, 300)
        if self.live:
            self._clear()
            self._emit(text + "\n")
            self._write_status(force=True)
        else:
            self._emit(f"[{self.now():%H:%M:%S}] {text}\n")

    def close(self) -> None:
        """End the live line so later output starts on a fresh line."""
        if self.live and self._line_shown:
            self._emit("\n")
            self._line_shown = False

    # ----------------------------------------------------------------- output

    def _write_status(self, force: bool) -> None:
        if self.phase == "starting":  # nothing to say before the engine's first progress
            return
        if self.live:
            now = self.clock()
            if force or self._last_write_at is None or now - self._last_write_at >= _REDRAW_S:
                self._draw()
            return
        signature = self.status(elapsed=False)
        changed = signature != self._last_written
        now = self.clock()
        due = self._last_write_at is None or now - self._last_write_at >= self.interval_s
        if force or (changed and due):
            self._emit(f"[{self.now():%H:%M:%S}] {self.status()}\n")
            self._last_written = signature
            self._last_write_at = now

    def _draw(self) -> None:
        width = max(20, shutil.get_terminal_size((100, 20)).columns - 1)
        self._emit("\r\x1b[2K" + _one_line(self.status(), width))
        self._line_shown = True
        self._last_write_at = self.clock()

    def _clear(self) -> None:
        if self._line_shown:
            self._emit("\r\x1b[2K")
            self._line_shown = False

    def _emit(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (BrokenPipeError, ValueError):  # stderr closed: progress is best effort
            pass
