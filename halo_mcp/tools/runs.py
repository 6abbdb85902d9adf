"""What a polling client needs around analyze_traces: a run's status (waiting a bounded time
with progress notifications), cancelling a run, listing recent runs, and the report resource.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Annotated

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, ResourceLink
from pydantic import Field

from halo_mcp.engine.errors import UnknownRunError
from halo_mcp.engine.models import Progress, RunRecord, RunStatus, Usage
from halo_mcp.findings.models import Finding
from halo_mcp.text import clip
from halo_mcp.tools.findings import by_severity, summarize
from halo_mcp.tools.manager import LiveRun
from halo_mcp.tools.models import (
    READ_ONLY,
    CancelResult,
    RunId,
    RunList,
    RunListItem,
    RunStatusResult,
    WaitSeconds,
    tool_annotations,
)
from halo_mcp.tools.results import link, report_html_uri, report_uri, tool_result
from halo_mcp.tools.state import ServerState, caller_owner, for_resource, server_state, visible

MAX_FINDINGS_LISTED = 30
PROMPT_CHARS = 300


# ----------------------------------------------------------------------------- status


def _outcome(record: RunRecord | None) -> str | None:
    return record.outcome.value if record is not None and record.outcome is not None else None


def _next_step(
    run_id: str,
    status: RunStatus,
    position: int | None,
    findings: int,
    error: str | None,
    warning: str | None = None,
) -> str:
    wait = f"call get_run(run_id='{run_id}', wait_seconds=50)"
    if status == RunStatus.queued:
        ahead = f"{position} ahead" if position is not None else "waiting for a slot"
        return f"Queued ({ahead}). To wait, {wait}; to give up, call cancel_run."
    if status == RunStatus.running:
        return f"Still running. To keep waiting, {wait} (repeat until done is true)."
    if status == RunStatus.finished and warning:
        return (
            f"Done, with a warning: {clip(warning, 300)[0]} Read the report_uri resource; "
            "read each finding with get_finding and check its status before acting on it."
        )
    if status == RunStatus.finished and findings:
        return (
            "Done. Read each finding with get_finding(finding_id); pass its matcher as "
            "query_spans' filter to see concrete cases; then edit the harness. The full "
            "report is the report_uri resource."
        )
    if status == RunStatus.finished:
        return "Done, no failure mode found. Try a narrower prompt or more traces."
    if status == RunStatus.failed:
        reason = error or "unknown error"
        return f"The run failed: {reason}. Fix the cause, then call analyze_traces again."
    if status == RunStatus.cancelled:
        return "Cancelled. Call analyze_traces to start again."
    return "The process running it stopped before it finished. Call analyze_traces again."


def status_result(
    *,
    run_id: str,
    status: RunStatus,
    created_at: datetime,
    finished_at: datetime | None,
    phase: str,
    fraction: float,
    message: str,
    usage: Usage,
    agents_running: int,
    trace_paths: list[str],
    prompt: str,
    findings: Sequence[Finding],
    error: str | None,
    position: int | None = None,
    deduplicated: bool = False,
    outcome: str | None = None,
    warning: str | None = None,
) -> RunStatusResult:
    done = status.done
    end = finished_at if (done and finished_at) else datetime.now(timezone.utc)
    listed = by_severity(findings) if status == RunStatus.finished else []
    return RunStatusResult(
        run_id=run_id,
        status=status,
        done=done,
        queue_position=position if status == RunStatus.queued else None,
        progress=Progress(
            phase=phase, fraction=min(1.0, max(0.0, fraction)), message=clip(message, 300)[0]
        ),
        elapsed_s=round(max(0.0, (end - created_at).total_seconds()), 1),
        usage=usage,
        agents_running=agents_running if not done else 0,
        trace_paths=[clip(path, 300)[0] for path in trace_paths[:20]],
        prompt=clip(prompt, PROMPT_CHARS)[0],
        deduplicated=deduplicated,
        findings=[summarize(f) for f in listed[:MAX_FINDINGS_LISTED]]
        if status == RunStatus.finished
        else None,
        findings_omitted=max(0, len(listed) - MAX_FINDINGS_LISTED),
        report_uri=report_uri(run_id) if done else None,
        error=clip(error, 1000)[0] if error else None,
        outcome=outcome if done else None,
        warning=clip(warning, 1000)[0] if warning and done else None,
        next_step=_next_step(run_id, status, position, len(listed), error, warning),
    )


def live_status(state: ServerState, run: LiveRun, deduplicated: bool = False) -> RunStatusResult:
    record = run.record
    return status_result(
        run_id=run.run_id,
        status=run.status,
        created_at=run.created_at,
        finished_at=record.finished_at if record is not None else None,
        phase=run.phase,
        fraction=run.fraction,
        message=run.message,
        usage=run.usage,
        agents_running=run.agents_running,
        trace_paths=run.trace_paths,
        prompt=run.prompt,
        findings=run.findings,
        error=run.error,
        position=state.manager.queue_position(run.run_id),
        deduplicated=deduplicated,
        outcome=_outcome(record),
        warning=record.warning if record is not None else None,
    )


def record_status(record: RunRecord) -> RunStatusResult:
    return status_result(
        run_id=record.id,
        status=record.status,
        created_at=record.created_at,
        finished_at=record.finished_at,
        phase=record.progress.phase,
        fraction=record.progress.fraction,
        message=record.progress.message,
        usage=record.usage,
        agents_running=0,
        trace_paths=record.trace_paths,
        prompt=record.prompt,
        findings=record.findings,
        error=record.error,
        outcome=_outcome(record),
        warning=record.warning,
    )


async def load_record(state: ServerState, run_id: str, caller: str | None) -> RunRecord:
    """The stored run, or a ToolError listing a few runs the caller may ask about."""
    store = await state.manager.open_store()
    record: RunRecord | None
    try:
        record = await anyio.to_thread.run_sync(store.get, run_id)
    except UnknownRunError:
        record = None
    if record is None or not visible(record.owner, caller):
        recent = await anyio.to_thread.run_sync(lambda: store.list(5, owner=caller))
        ids = ", ".join(r.id for r in recent)
        hint = f" Your recent runs: {ids}." if ids else " You have no runs yet."
        raise ToolError(
            f"No run with id {run_id!r}.{hint} Call list_runs to see runs, or analyze_traces "
            "to start one."
        )
    return record


# ----------------------------------------------------------------------------- waiting


def _progress_message(result: RunStatusResult, findings_so_far: int) -> str:
    if result.status == "queued":
        return f"queued ({result.queue_position or 0} ahead)"
    if result.done:
        return f"{result.status}: {len(result.findings or [])} findings"
    parts = [result.progress.phase]
    if result.progress.message:
        parts.append(result.progress.message)
    detail = f"{result.agents_running} agents running, {findings_so_far} findings so far"
    return f"{': '.join(parts)} ({detail}, {result.elapsed_s:.0f}s)"


class _Progress:
    """Sends progress notifications. Each value is higher than the last (the spec requires
    it) and below 100 until the run is done."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.last = -1.0

    async def send(self, result: RunStatusResult, findings_so_far: int) -> None:
        if result.done:
            value = 100.0
        else:  # creep towards (never reaching) 100 while the engine's fraction stands still
            value = max(min(99.0, result.progress.fraction * 100), self.last)
            value += (99.99 - value) * 0.01
        self.last = value
        await self.ctx.report_progress(value, 100.0, _progress_message(result, findings_so_far))


async def wait_for_run(
    ctx: Context, run_id: str, wait_seconds: float, deduplicated: bool = False
) -> RunStatusResult:
    """Wait up to `wait_seconds` for the run to end, reporting progress every few seconds."""
    state = server_state(ctx)
    caller = caller_owner(ctx)
    run = state.manager.live(run_id)
    if run is not None and not visible(run.owner, caller):
        run = None
    progress = _Progress(ctx)
    deadline = time.monotonic() + wait_seconds
    interval = state.progress_interval_s
    if run is None:  # run elsewhere (another process or an earlier server): poll the store
        record = await load_record(state, run_id, caller)
        while True:
            result = record_status(record)
            await progress.send(result, len(record.findings))
            remaining = deadline - time.monotonic()
            if result.done or remaining <= 0:
                return result
            await anyio.sleep(min(interval, remaining))
            record = await load_record(state, run_id, caller)
    while True:
        result = live_status(state, run, deduplicated)
        await progress.send(result, len(run.findings))
        remaining = deadline - time.monotonic()
        if result.done or remaining <= 0:
            return result
        with anyio.move_on_after(min(interval, remaining)):
            await run.done.wait()


def status_links(result: RunStatusResult) -> list[ResourceLink]:
    links = []
    if result.report_uri:
        links.append(
            link(result.report_uri, f"report {result.run_id}", "Run report", "text/markdown")
        )
        links.append(
            link(
                report_html_uri(result.run_id),
                f"report {result.run_id} (HTML)",
                "Run report as one self-contained HTML page (charts, evidence waterfalls)",
                "text/html",
            )
        )
    for finding in result.findings or []:
        links.append(link(finding.uri, f"finding {finding.id}", finding.title, "application/json"))
    return links


# ----------------------------------------------------------------------------- tools


def register(server: MCPServer) -> None:
    @server.tool(title="Get an analysis run", annotations=READ_ONLY)
    async def get_run(
        run_id: RunId, ctx: Context, wait_seconds: WaitSeconds = 25
    ) -> Annotated[CallToolResult, RunStatusResult]:
        """Status of an analysis run started by analyze_traces. Waits up to `wait_seconds` for it
        to finish (sending progress), then returns status, progress, usage, elapsed time and,
        once finished, the findings in brief with links to each finding and the report. Poll
        this until `done` is true; it never starts or changes a run."""
        result = await wait_for_run(ctx, run_id, wait_seconds)
        return tool_result(result, status_links(result))

    @server.tool(
        title="Cancel an analysis run",
        annotations=tool_annotations(read_only=False),
    )
    async def cancel_run(run_id: RunId, ctx: Context) -> Annotated[CallToolResult, CancelResult]:
        """Cancel a queued or running analysis (stops its LLM calls). Findings already recorded
        are kept. Cancelling a run that already ended changes nothing."""
        state = server_state(ctx)
        caller = caller_owner(ctx)
        run = state.manager.live(run_id)
        if run is not None and visible(run.owner, caller):
            if state.manager.cancel(run_id):
                with anyio.move_on_after(10):
                    await run.done.wait()
                message = f"Run {run_id} is {run.status}."
            else:
                message = f"Run {run_id} had already ended ({run.status}); nothing to cancel."
            return tool_result(CancelResult(run_id=run_id, status=run.status, message=message))
        record = await load_record(state, run_id, caller)
        if not record.status.done:
            raise ToolError(
                f"Run {run_id} is executed by another halo-mcp process (not this server); stop "
                "it there (Ctrl-C in its terminal), or wait for it with get_run."
            )
        return tool_result(
            CancelResult(
                run_id=run_id,
                status=record.status,
                message=f"Run {run_id} had already ended ({record.status}).",
            )
        )

    @server.tool(title="List analysis runs", annotations=READ_ONLY)
    async def list_runs(
        ctx: Context,
        limit: Annotated[int, Field(ge=1, le=50, description="How many runs, newest first.")] = 10,
        status: Annotated[RunStatus | None, Field(description="Only runs in this status.")] = None,
    ) -> Annotated[CallToolResult, RunList]:
        """Recent analysis runs, newest first, with their status and number of findings. Use a
        run id with get_run (status, findings) or cancel_run."""
        state = server_state(ctx)
        caller = caller_owner(ctx)
        store = await state.manager.open_store()
        wanted = RunStatus(status) if status else None
        records = await anyio.to_thread.run_sync(
            lambda: store.list(limit + 1, owner=caller, status=wanted)
        )
        items = []
        for record in records[:limit]:
            live = state.manager.live(record.id)
            items.append(
                RunListItem(
                    run_id=record.id,
                    status=live.status if live else record.status,
                    created_at=record.created_at,
                    prompt=clip(record.prompt, 120)[0],
                    trace_paths=[clip(path, 300)[0] for path in record.trace_paths[:5]],
                    findings=len(live.findings if live else record.findings),
                    outcome=_outcome(record),
                )
            )
        return tool_result(RunList(runs=items, more=len(records) > limit))

    @server.resource(
        "halo://runs/{run_id}/report",
        name="run-report",
        title="Analysis report (markdown)",
        description="The full markdown report of a finished analysis run.",
        mime_type="text/markdown",
    )
    async def run_report(run_id: str, ctx: Context) -> str:
        state = server_state(ctx)
        record = await for_resource(load_record(state, run_id, caller_owner(ctx)))
        live = state.manager.live(run_id)
        if live is not None and live.record is not None and live.record.report_markdown:
            return live.record.report_markdown
        if record.report_markdown:
            return record.report_markdown
        status = live.status if live else record.status
        if not status.done:
            return (
                f"# Run {run_id}\n\nStill {status}; the report is written when it finishes. "
                f"Wait with get_run(run_id='{run_id}', wait_seconds=50).\n"
            )
        error = f"\n\nError: {record.error}" if record.error else ""
        return f"# Run {run_id}\n\nThe run ended ({status}) without a report.{error}\n"
