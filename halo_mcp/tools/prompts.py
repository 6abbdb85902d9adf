"""The analyze-then-fix prompt: the whole loop a coding agent runs with these tools."""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import MCPServer
from pydantic import Field


def analyze_and_fix_text(trace_path: str, goal: str) -> str:
    goal = goal.strip() or "make the agent fail less often"
    return f"""Improve the agent harness in this repository using its traces at {trace_path}.
Goal: {goal}

1. Call analyze_traces(trace_paths=["{trace_path}"], prompt=<the goal above, in your words>,
   repo_path=<this repository's root, absolute>). It returns quickly with a run_id. While
   `done` is false, call get_run(run_id=..., wait_seconds=50) again; do not start another
   analysis.
2. When it is finished, read the findings, most severe first: get_finding(finding_id) gives
   the root cause, the suggested change and how to validate it.
3. For each finding you act on, look at concrete cases: query_spans(trace_paths=["{trace_path}"],
   filter=<the finding's matcher>, fields=[..., "input", "output"]) and get_trace for one of
   the traces, so the fix addresses what really happens.
4. Find the code that produces this behaviour (prompts, tool definitions, retries, limits),
   starting from the finding's code_refs (path:lines verified at HEAD) and suspect_commits,
   and make the smallest change that fixes the root cause. Explain each change.
5. Say how to validate: which traces to collect after the change, and which matcher should
   then select fewer traces (the finding's `validation` field).
Do not invent evidence: cite trace and span ids from the tools' results."""


def register(server: MCPServer) -> None:
    @server.prompt(
        name="analyze_and_fix",
        title="Analyze traces, then fix the harness",
        description=(
            "The whole loop: analyze the traces, read the findings, look at concrete spans, "
            "edit the harness, and say how to validate the fix."
        ),
    )
    def analyze_and_fix(
        trace_path: Annotated[str, Field(description="Trace file or directory to analyze.")],
        goal: Annotated[
            str, Field(description="What to improve, e.g. 'fewer failed tool calls'.")
        ] = "",
    ) -> str:
        return analyze_and_fix_text(trace_path, goal)
