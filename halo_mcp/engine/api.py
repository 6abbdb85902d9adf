"""The engine's public Python API: stream a run's events, or run to completion."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from halo_mcp.engine.events import EngineEvent
from halo_mcp.engine.models import RunRecord
from halo_mcp.engine.settings import EngineSettings


async def stream_run(
    trace_paths: Sequence[str | Path],
    prompt: str,
    settings: EngineSettings,
    *,
    run_id: str | None = None,
    owner: str | None = None,
) -> AsyncIterator[EngineEvent]:
    """Run an analysis, yielding events; the last one is RunFinished or RunFailed.

    The run is persisted in the run store (settings.data_dir) from its first event on.
    Pass `run_id` to execute a run already recorded as queued (the MCP server does this).
    Cancelling the consuming task cancels every agent and records the run as cancelled.
    Raises NoApiKeyError before starting when no credentials are configured.
    """
    raise NotImplementedError
    yield  # pragma: no cover


async def run_analysis(
    trace_paths: Sequence[str | Path], prompt: str, settings: EngineSettings
) -> RunRecord:
    """Run an analysis to the end and return the finished (or failed) run."""
    raise NotImplementedError
