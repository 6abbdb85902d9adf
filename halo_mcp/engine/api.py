"""The engine's public Python API: stream a run's events, or run to completion.

For background runs (the MCP server) `execute_run` with an `on_event` callback is the
simplest and most robust form; `stream_run` wraps it as an async generator. Consume a
stream to the end, or wrap it in ``contextlib.aclosing`` if you may stop early, so that
leaving the loop cancels the run at once.
"""

from __future__ import annotations

import math
from collections.abc import AsyncGenerator, Sequence
from pathlib import Path

import anyio

from halo_mcp.engine.errors import NoApiKeyError
from halo_mcp.engine.events import EngineEvent
from halo_mcp.engine.lifecycle import open_lifecycle
from halo_mcp.engine.models import RunRecord, RunStatus
from halo_mcp.engine.provider import ChatProvider
from halo_mcp.engine.runner import execute_run
from halo_mcp.engine.settings import EngineSettings


async def stream_run(
    trace_paths: Sequence[str | Path],
    prompt: str,
    settings: EngineSettings,
    *,
    run_id: str | None = None,
    owner: str | None = None,
) -> AsyncGenerator[EngineEvent, None]:
    """Run an analysis, yielding events; the last one is RunFinished or RunFailed.

    The run is persisted in the run store (settings.data_dir) from its first event on.
    Pass `run_id` to execute a run already recorded as queued (the MCP server does this).
    Cancelling the consuming task cancels every agent and records the run as cancelled.
    Raises NoApiKeyError before starting when no credentials are configured.
    """
    try:
        provider = ChatProvider(settings)  # before any run is recorded
    except NoApiKeyError as exc:
        if run_id:  # a queued run must not stay queued forever
            lifecycle = open_lifecycle(settings)
            await anyio.to_thread.run_sync(lifecycle.end_stored, run_id, RunStatus.failed, str(exc))
        raise
    send, receive = anyio.create_memory_object_stream[EngineEvent](math.inf)

    errors: list[Exception] = []

    async def produce() -> None:
        async with send:
            try:
                await execute_run(
                    trace_paths,
                    prompt,
                    settings,
                    run_id=run_id,
                    owner=owner,
                    on_event=send.send_nowait,
                    provider=provider,
                )
            except Exception as exc:  # raised to the consumer below, not as a group
                errors.append(exc)
            finally:
                with anyio.CancelScope(shield=True):
                    await provider.aclose()

    closed_early = False
    async with anyio.create_task_group() as tg:
        tg.start_soon(produce)
        try:
            async with receive:
                async for event in receive:
                    try:
                        yield event
                    except GeneratorExit:  # aclose(): stop the run, then end quietly
                        closed_early = True
                        break
        finally:
            tg.cancel_scope.cancel()
    if errors and not closed_early:
        raise errors[0]


async def run_analysis(
    trace_paths: Sequence[str | Path], prompt: str, settings: EngineSettings
) -> RunRecord:
    """Run an analysis to the end and return the finished (or failed) run."""
    return await execute_run(trace_paths, prompt, settings)
