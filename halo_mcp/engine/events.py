"""Typed events the engine emits while it runs, for the CLI and MCP progress.

Every event names the agent that produced it and that agent's parent, so a stream of
interleaved sub-agent events can be rendered as a tree.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from halo_mcp.engine.models import Progress, RunRecord, Usage
from halo_mcp.findings.models import Finding


class _Event(BaseModel):
    run_id: str
    agent_id: str | None = None
    parent_agent_id: str | None = None


class RunStarted(_Event):
    type: Literal["run_started"] = "run_started"


class AgentStarted(_Event):
    type: Literal["agent_started"] = "agent_started"
    depth: int
    task: str


class AgentFinished(_Event):
    type: Literal["agent_finished"] = "agent_finished"
    turns: int
    summary: str = ""


class ToolCalled(_Event):
    type: Literal["tool_called"] = "tool_called"
    tool: str
    arguments: str = Field(description="Arguments, clipped.")
    turn: int


class ToolResult(_Event):
    type: Literal["tool_result"] = "tool_result"
    tool: str
    summary: str = Field(description="First line of the result, clipped.")
    size_bytes: int
    is_error: bool = False


class TextDelta(_Event):
    type: Literal["text_delta"] = "text_delta"
    text: str


class FindingAccepted(_Event):
    type: Literal["finding_accepted"] = "finding_accepted"
    finding: Finding


class ProgressUpdate(_Event):
    type: Literal["progress"] = "progress"
    progress: Progress
    usage: Usage
    agents_running: int = 0


class RunFinished(_Event):
    type: Literal["run_finished"] = "run_finished"
    run: RunRecord


class RunFailed(_Event):
    type: Literal["run_failed"] = "run_failed"
    error: str
    run: RunRecord


EngineEvent = Annotated[
    RunStarted
    | AgentStarted
    | AgentFinished
    | ToolCalled
    | ToolResult
    | TextDelta
    | FindingAccepted
    | ProgressUpdate
    | RunFinished
    | RunFailed,
    Field(discriminator="type"),
]
