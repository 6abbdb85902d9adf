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
from halo_mcp.findings.ids import new_finding_id
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
    #: Triage items and sub-agent drafts a finding may adopt by id.
    adoptable: dict[str, Finding] = field(default_factory=dict)
    #: Sub-agent drafts (verified on return) by id, and the agent that made each.
    drafts: dict[str, Finding] = field(default_factory=dict)
    draft_agents: dict[str, str] = field(default_factory=dict)
    adopted: set[str] = field(default_factory=set)
    rejected_drafts: int = 0
    #: Model replies, and how many of them were refusals (after refusal retries).
    replies: int = 0
    refusals: int = 0
    cut_replies: int = 0
    budget_reached: bool = False
    agent_usage: dict[str, Usage] = field(default_factory=dict)
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

    def add_draft(self, draft: Finding, agent_id: str) -> None:
        self.drafts[draft.id] = draft
        self.draft_agents[draft.id] = agent_id
        self.adoptable[draft.id] = draft

    def merge_drafts(self) -> list[Finding]:
        """Sub-agent drafts the root neither adopted nor restated (same title or matcher)
        become findings of the run, so nothing a sub-agent confirmed is lost. Returns them."""
        matchers = {
            f.matcher.model_dump_json(exclude_defaults=True)
            for f in self.findings.values()
            if f.matcher is not None
        }
        merged = []
        for draft_id, draft in self.drafts.items():
            key = " ".join(draft.title.lower().split())
            matcher = (
                draft.matcher.model_dump_json(exclude_defaults=True) if draft.matcher else None
            )
            if (
                draft_id in self.adopted
                or key in self.findings
                or (matcher and matcher in matchers)
            ):
                continue
            if matcher:
                matchers.add(matcher)
            agent = self.draft_agents.get(draft_id, "a sub-agent")
            finding = draft.model_copy(
                update={
                    "id": new_finding_id(),
                    "verification_notes": [
                        f"merged from draft {draft_id} of sub-agent {agent}",
                        *draft.verification_notes,
                    ],
                }
            )
            merged.append(self.accept(finding, agent))
        return merged

    def over_token_budget(self) -> bool:
        """Whether the run's token budget (settings.max_run_tokens) is used up."""
        limit = self.settings.max_run_tokens
        if limit is None:
            return False
        used = self.usage.input_tokens + self.usage.output_tokens
        if used >= limit:
            self.budget_reached = True
        return self.budget_reached

    def record_reply(self, agent_id: str, usage: Usage, refused: bool, cut: bool) -> None:
        self.replies += 1
        self.refusals += int(refused)
        self.cut_replies += int(cut)
        self.agent_usage.setdefault(agent_id, Usage()).add(usage)

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
