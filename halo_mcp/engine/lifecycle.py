"""The one owner of a run's states: queued -> running -> finished | failed | cancelled.

Every front end moves runs through `RunLifecycle`: the engine's runner (its normal path),
the Python API (a queued run that cannot start), the MCP run manager and the CLI (a run whose
executor stopped before it could record its end). Nothing else sets a run's status.
`interrupted` is never written: the run store reports it on read, for a queued or running
run whose process is gone.

Cheap to import (no LLM client): the MCP server and the CLI use it at start-up.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from halo_mcp.engine.errors import EngineError
from halo_mcp.engine.models import RunRecord, RunStatus
from halo_mcp.engine.runstore import RunStore
from halo_mcp.engine.settings import EngineSettings

#: The states a run ends in (`interrupted` is read, not written: see the module doc).
END_STATES = frozenset({RunStatus.finished, RunStatus.failed, RunStatus.cancelled})


class RunStateError(EngineError):
    """A run asked to move to a state it cannot reach from where it is."""


def _now() -> datetime:
    return datetime.now(timezone.utc)


class RunLifecycle:
    """Moves runs of one run store between states and records every move."""

    def __init__(self, runs: RunStore) -> None:
        self.runs = runs

    def queue(
        self,
        prompt: str,
        trace_paths: Sequence[str | Path],
        settings: EngineSettings,
        *,
        owner: str | None = None,
    ) -> RunRecord:
        """Record a new queued run (with the settings safe to persist)."""
        return self.runs.create(
            prompt, [str(p) for p in trace_paths], settings.public_dict(), owner=owner
        )

    def start(self, run_id: str) -> RunRecord:
        """queued -> running, claimed by this process. RunStateError for any other state."""
        run = self.runs.get(run_id)
        if run.status != RunStatus.queued:
            raise RunStateError(
                f"Run {run_id} is {run.status.value}, not queued; only a queued run can be "
                "started. Start a new analysis instead."
            )
        return self.runs.mark_running(run_id)

    def end(self, run: RunRecord, status: RunStatus, error: str | None = None) -> RunRecord:
        """Move `run` (in memory) to an end state: status, error, finished time.

        The engine completes the record (findings, usage, report) before it calls `save`,
        so a client told 'finished' can always read the report.
        """
        if status not in END_STATES:
            raise RunStateError(f"{status.value} is not an end state of a run.")
        if run.status in END_STATES:
            raise RunStateError(f"Run {run.id} already ended ({run.status.value}).")
        run.status, run.error = status, error
        run.finished_at = _now()
        return run

    def save(self, run: RunRecord) -> None:
        """Write an ended run with everything it carries (findings, usage, report)."""
        self.runs.save(run)

    def end_stored(self, run_id: str, status: RunStatus, error: str | None = None) -> RunRecord:
        """End a stored run whose executor stopped before recording its end (cancelled
        before it started, a crash, Ctrl-C). A run that already ended is left as it is.
        Returns the run as stored."""
        run = self.runs.get(run_id)
        if run.status in END_STATES:
            return run
        if run.status == RunStatus.interrupted:  # as read; stored as queued or running
            run.status = RunStatus.running
        self.end(run, status, error or run.error)
        self.runs.save(run)
        return run


def open_lifecycle(settings: EngineSettings | None = None) -> RunLifecycle:
    """The lifecycle of the run store for these settings (their data_dir, else the default)."""
    return RunLifecycle(RunStore(settings.data_dir if settings is not None else None))
