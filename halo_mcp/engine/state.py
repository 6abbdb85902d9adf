"""What all agents of one run share: settings, provider, tools, limits, results, events.

Agents report into this object (findings accepted, sub-agent reports, turns) and it turns
that into events and progress; the runner persists what it holds, so a run that fails
still keeps what it had.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import anyio

from halo_mcp.engine.agent_tools import ToolContext
from halo_mcp.engine.events import EngineEvent, FindingAccepted, ProgressUpdate
from halo_mcp.engine.models import Progress, Usage
from halo_mcp.engine.provider import ChatProvider
from halo_mcp.engine.settings import EngineSettings
from halo_mcp.findings.models import Finding

_PHASE_FLOOR = {"queued": 0.0, "indexing": 0.01, "triage": 0.03, "reporting": 0.95, "done": 1.0}


@dataclass
class SubReport:
    agent_id: str
    task: str
    report: str


@dataclass
class RunState:
    run_id: str
    settings: EngineSettings
    provider: ChatProvider
    tools: ToolContext | None = None  # set once the traces are open
    emit: Callable[[EngineEvent], None] = lambda event: None
    limiter: anyio.CapacityLimiter = field(default_factory=lambda: anyio.CapacityLimiter(1))
    agent_slots: anyio.Semaphore = field(default_factory=lambda: anyio.Semaphore(1))
    phase: str = "indexing"
    root_turn: int = 0
    agents_running: int = 0
    agents_started: int = 0
    sub_agents_running: int = 0
    sub_agents_waiting: int = 0
    findings: dict[str, Finding] = field(default_factory=dict)  # by normalized title
    sub_reports: list[SubReport] = field(default_factory=list)
    summary: str = ""
    unstructured_final: str | None = None
    root_turns_used: int = 0
    _child_counters: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # max_parallel sub-agents hold a slot at once (a parent waiting on its children
        # gives its slot back meanwhile, see Agent). Provider calls get one more than
        # that, for the root: one agent's reply can fan out into parallel synthesize
        # calls, and this keeps the requests in flight to the endpoint bounded too. Neither
        # is held while waiting on children, so nesting cannot deadlock.
        self.agent_slots = anyio.Semaphore(self.settings.max_parallel)
        self.limiter = anyio.CapacityLimiter(self.settings.max_parallel + 1)

    @property
    def trace_tools(self) -> ToolContext:
        """The agents' tools' context; the agents start only once the traces are open."""
        if self.tools is None:
            raise RuntimeError("the traces are not open yet")
        return self.tools

    # -- ids

    def child_id(self, parent_id: str) -> str:
        n = self._child_counters.get(parent_id, 0) + 1
        self._child_counters[parent_id] = n
        return f"{parent_id}.{n}"

    # -- results

    def accept(
        self, finding: Finding, agent_id: str | None, parent_id: str | None = None
    ) -> Finding:
        """Record a verified finding; one with the same title replaces the earlier one."""
        key = " ".join(finding.title.lower().split())
        previous = self.findings.get(key)
        if previous is not None:
            finding = finding.model_copy(update={"id": previous.id})
        self.findings[key] = finding
        self.emit(
            FindingAccepted(
                run_id=self.run_id, agent_id=agent_id, parent_agent_id=parent_id, finding=finding
            )
        )
        return finding

    # -- progress

    @property
    def usage(self) -> Usage:
        return getattr(self.provider, "usage", None) or Usage()

    def progress(self) -> Progress:
        max_turns = self.settings.max_turns
        if self.phase in _PHASE_FLOOR:
            fraction = _PHASE_FLOOR[self.phase]
        else:
            fraction = 0.05 + 0.88 * min(1.0, self.root_turn / max_turns)
        if self.phase == "indexing":
            message = "indexing traces"
        elif self.phase == "triage":
            message = "counting symptoms (deterministic triage)"
        elif self.phase == "reporting":
            message = "verifying findings and writing the report"
        elif self.phase == "done":
            message = "done"
        else:
            subs, waiting = self.sub_agents_running, self.sub_agents_waiting
            prefix = f"{subs} sub-agent{'s' if subs != 1 else ''} exploring; " if subs else ""
            if waiting:
                prefix += f"{waiting} waiting for a slot (max_parallel); "
            turn = f"root turn {self.root_turn}/{max_turns}" if self.root_turn else "starting"
            message = prefix + turn
        return Progress(phase=self.phase, fraction=round(min(fraction, 1.0), 4), message=message)

    def set_phase(self, phase: str) -> None:
        self.phase = phase
        self.report_progress()

    def report_progress(self) -> None:
        if self.phase in ("exploring", "delegating"):
            self.phase = "delegating" if self.sub_agents_running else "exploring"
        self.emit(
            ProgressUpdate(
                run_id=self.run_id,
                progress=self.progress(),
                usage=self.usage.model_copy(),
                agents_running=self.agents_running,
            )
        )
