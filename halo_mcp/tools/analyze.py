"""analyze_traces: start an LLM analysis in the background and wait a bounded time for it.

Clients abort tool calls after about a minute, and an analysis takes minutes. So the tool
starts (or joins) a run, waits at most `wait_seconds` while sending progress, and returns a
run handle; the client polls with get_run (or analyze_traces with run_id) until done.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult
from pydantic import Field, ValidationError

from halo_mcp.engine.settings import EngineSettings
from halo_mcp.settings import clickhouse_url
from halo_mcp.tools.manager import RunOverrides
from halo_mcp.tools.models import (
    RunId,
    RunStatusResult,
    TracePaths,
    WaitSeconds,
    tool_annotations,
)
from halo_mcp.tools.paths import resolve_paths, resolve_repo_path
from halo_mcp.tools.results import tool_result
from halo_mcp.tools.runs import status_links, wait_for_run
from halo_mcp.tools.state import caller_owner, server_state
from halo_mcp.tools.window import Since, Until, window_arg

DEFAULT_PROMPT = (
    "Find the systemic failure modes of this agent harness: recurring tool errors, loops, "
    "wasted turns, bad instructions, retries, latency and cost problems. For each, give the "
    "root cause, the harness change that fixes it, and how to validate the fix."
)

NO_CREDENTIALS = (
    "No LLM credentials configured for the halo-mcp server: set OPENAI_API_KEY (and "
    "OPENAI_BASE_URL for an OpenAI-compatible endpoint) in the server's environment and forward "
    'it from your shell rather than writing the key into a file: "env": {"OPENAI_API_KEY": '
    '"${OPENAI_API_KEY}"} in .mcp.json, or `halo-mcp install <client>`, which writes that for '
    "Claude Code, Cursor, Codex and VS Code; then restart the server. query_spans, get_trace "
    "and triage_traces work without credentials."
)


def settings_for_run(base: EngineSettings) -> Callable[[RunOverrides], EngineSettings]:
    """The settings of one analysis: the server's, with the caller's overrides; a ToolError
    when they are invalid or no LLM is configured."""

    def build(overrides: RunOverrides) -> EngineSettings:
        try:
            settings = EngineSettings.model_validate(
                {**base.model_dump(), **overrides.model_dump(exclude_none=True)}
            )
        except ValidationError as exc:
            raise ToolError(f"Invalid analysis settings: {exc.errors()[0]['msg']}.") from None
        if settings.api_key is None and settings.base_url is None:
            raise ToolError(NO_CREDENTIALS)
        return settings

    return build


def register(server: MCPServer) -> None:
    @server.tool(
        title="Analyze agent traces",
        annotations=tool_annotations(
            "Analyze agent traces", read_only=False, idempotent=False, open_world=True
        ),
    )
    async def analyze_traces(
        ctx: Context,
        trace_paths: TracePaths | None = None,
        prompt: Annotated[
            str | None,
            Field(
                max_length=4000,
                description="What to look for; default: the systemic failure modes of the harness.",
            ),
        ] = None,
        run_id: Annotated[
            RunId | None,
            Field(description="Wait on this earlier run instead of starting a new one."),
        ] = None,
        wait_seconds: WaitSeconds = 25,
        model: Annotated[
            str | None, Field(max_length=200, description="LLM model; default: the server's.")
        ] = None,
        max_depth: Annotated[
            int | None, Field(ge=0, le=5, description="Sub-agent nesting depth (default 2).")
        ] = None,
        max_turns: Annotated[
            int | None, Field(ge=1, le=500, description="Turns of the root agent (default 20).")
        ] = None,
        max_run_tokens: Annotated[
            int | None,
            Field(
                ge=1,
                description="Token budget of the whole run (all agents, input + output); "
                "when reached the run ends early, keeping its findings.",
            ),
        ] = None,
        repo_path: Annotated[
            str | None,
            Field(
                max_length=4096,
                description="The harness's source repository (a folder, ideally its git "
                "root): agents read its code and history, and findings cite code_refs "
                "(path:lines) and suspect_commits, verified against HEAD.",
            ),
        ] = None,
        context: Annotated[
            str | None,
            Field(max_length=20_000, description="A description of the harness for every agent."),
        ] = None,
        since: Since = None,
        until: Until = None,
    ) -> Annotated[CallToolResult, RunStatusResult]:
        """Find the systemic failure modes of an LLM agent harness in its OpenTelemetry traces.
        LLM agents explore the traces, delegate to sub-agents, and report findings verified
        against the data. Takes minutes: this starts the run in the background, waits up to
        `wait_seconds` (sending progress), and returns the run id and status. While `done` is
        false, call get_run(run_id, wait_seconds=50) (or this tool with run_id) until it is.
        When finished: findings in brief (id, title, severity, prevalence) and the report link.
        Then get_finding(id) for root cause and fix, query_spans with the finding's matcher for
        concrete cases, and edit the harness. An identical request while one is running joins it.
        since/until analyze only the traces that started in a window (e.g. since "24h").
        """
        if run_id is not None:
            result = await wait_for_run(ctx, run_id, wait_seconds)
            return tool_result(result, status_links(result))
        if not trace_paths and not clickhouse_url():
            raise ToolError(
                "Pass trace_paths (trace files or directories) to start an analysis, or run_id "
                "to wait on an earlier one (list_runs lists them)."
            )
        state = server_state(ctx)
        paths = [str(p) for p in await resolve_paths(trace_paths, state.roots)]
        repo = await resolve_repo_path(repo_path, state.roots) if repo_path else None
        overrides = RunOverrides(
            model=model,
            max_depth=max_depth,
            max_turns=max_turns,
            max_run_tokens=max_run_tokens,
            repo_path=repo,
            context=context.strip() if context and context.strip() else None,
            window=window_arg(since, until),
        )
        text = (prompt or "").strip() or DEFAULT_PROMPT
        run, deduplicated = await state.manager.start(
            paths, text, overrides, caller_owner(ctx), request_meta=ctx.request_context.meta
        )
        result = await wait_for_run(ctx, run.run_id, wait_seconds, deduplicated=deduplicated)
        return tool_result(result, status_links(result))
