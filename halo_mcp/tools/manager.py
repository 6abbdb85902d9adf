"""Background analysis runs for the MCP server: start, queue, dedupe, follow, cancel.

A tool call must answer within a client's timeout (~60 s), while an analysis takes minutes.
So `analyze_traces` only starts a run here and waits a bounded time; the run itself lives in
the manager's task group for the life of the server. At most `max_concurrent` runs execute
at once; the others wait in FIFO order and say how many are ahead. An identical request
(same owner, files, prompt and settings) while one is in flight joins that run.

The engine is imported on first use, so starting the server stays fast. Runs execute through
the engine's `execute_run` with an event callback (its recommended form for background runs).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import TaskGroup
from mcp.server.mcpserver.exceptions import ToolError

from halo_mcp.settings import DirectoryError

log = logging.getLogger(__name__)

RunKey = tuple[Any, ...]
#: Ended runs whose live state is kept in memory (the run store has them all).
KEEP_DONE = 100


@dataclass
class LiveRun:
    """What this process knows about a run it executes; updated from engine events."""

    run_id: str
    key: RunKey
    owner: str | None
    prompt: str
    trace_paths: list[str]
    created_at: datetime
    status: str = "queued"
    phase: str = "queued"
    fraction: float = 0.0
    message: str = ""
    usage: dict[str, int] = field(default_factory=dict)
    agents_running: int = 0
    findings: list[Any] = field(default_factory=list)  # engine Finding objects
    record: Any = None  # the final engine RunRecord
    error: str | None = None
    done: anyio.Event = field(default_factory=anyio.Event)
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    started: float = field(default_factory=time.monotonic)

    @property
    def is_done(self) -> bool:
        return self.done.is_set()


class RunManager:
    """Runs executing (or queued) in this server process. Enter it to get a task group."""

    def __init__(
        self,
        settings_factory: Callable[[dict[str, Any]], Any],
        *,
        max_concurrent: int = 2,
        data_dir: Path | None = None,
    ) -> None:
        self._settings_factory = settings_factory
        self.max_concurrent = max_concurrent
        self._data_dir = data_dir
        self._slots = anyio.Semaphore(max_concurrent)
        self._waiting: list[str] = []  # queued run ids, first in line first
        self._runs: dict[str, LiveRun] = {}
        self._inflight: dict[RunKey, str] = {}
        self._tg: TaskGroup | None = None
        self._store: Any = None
        self._start_lock = anyio.Lock()  # dedupe check and registration are one step
        self._store_lock = anyio.Lock()

    async def __aenter__(self) -> RunManager:
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        assert self._tg is not None
        for run in self._runs.values():
            run.scope.cancel()
        self._tg.cancel_scope.cancel()
        await self._tg.__aexit__(None, None, None)
        self._tg = None

    # ------------------------------------------------------------------ queries

    @property
    def store(self) -> Any:
        """The engine's RunStore (imported and opened on first use). Opening creates the data
        directory and connects to SQLite: from async code use `open_store()` instead."""
        if self._store is None:
            from halo_mcp.engine.runstore import RunStore

            self._store = RunStore(self._data_dir)
        return self._store

    async def open_store(self) -> Any:
        """The RunStore, opened in a worker thread on first use (never on the event loop)."""
        if self._store is None:
            async with self._store_lock:
                if self._store is None:
                    try:
                        await anyio.to_thread.run_sync(lambda: self.store)
                    except DirectoryError as exc:
                        raise ToolError(str(exc)) from None
        return self._store

    def live(self, run_id: str) -> LiveRun | None:
        return self._runs.get(run_id)

    def runs(self) -> list[LiveRun]:
        """Runs this process has started, oldest first."""
        return list(self._runs.values())

    def queue_position(self, run_id: str) -> int | None:
        """How many queued runs are ahead of this one (None when it is not queued)."""
        try:
            return self._waiting.index(run_id)
        except ValueError:
            return None

    # ------------------------------------------------------------------ start

    async def start(
        self,
        trace_paths: list[str],
        prompt: str,
        overrides: dict[str, Any],
        owner: str | None,
        request_meta: Any = None,
    ) -> tuple[LiveRun, bool]:
        """Start a run, or return the identical one in flight. Returns (run, deduplicated).

        With telemetry on, a `traceparent` in `request_meta` (the request's `_meta`) makes the
        run's spans join the caller's trace.

        Raises whatever `settings_factory` raises (e.g. a ToolError for missing credentials).
        """
        key: RunKey = (owner, tuple(trace_paths), prompt.strip(), tuple(sorted(overrides.items())))
        # The first analysis imports the engine and the OpenAI client (about a second of
        # CPU): in a worker thread, so the event loop keeps answering other clients.
        await anyio.to_thread.run_sync(_load_engine)
        async with self._start_lock:
            existing = self._inflight.get(key)
            if existing and not self._runs[existing].is_done:
                return self._runs[existing], True
            settings = self._settings_factory(overrides)
            store = await self.open_store()
            record = await anyio.to_thread.run_sync(
                lambda: store.create(prompt, trace_paths, settings.public_dict(), owner=owner)
            )
            run = LiveRun(
                run_id=record.id,
                key=key,
                owner=owner,
                prompt=prompt,
                trace_paths=list(trace_paths),
                created_at=record.created_at,
            )
            self._runs[run.run_id] = run
            self._inflight[key] = run.run_id
            self._waiting.append(run.run_id)
            self._forget_old_runs()
        if settings.telemetry:
            from halo_mcp.engine import telemetry

            telemetry.register_parent(record.id, telemetry.context_from_meta(request_meta))
        assert self._tg is not None, "RunManager used outside its context"
        self._tg.start_soon(self._execute, run, settings)
        log.info("run %s created (%d queued)", run.run_id, len(self._waiting))
        return run, False

    def _forget_old_runs(self) -> None:
        """Keep the live state of the last KEEP_DONE ended runs; older ones are read from the
        run store, so a long-lived server does not grow without bound."""
        done = [run_id for run_id, run in self._runs.items() if run.is_done]
        for run_id in done[: max(0, len(done) - KEEP_DONE)]:
            del self._runs[run_id]

    async def _execute(self, run: LiveRun, settings: Any) -> None:
        with run.scope:
            try:
                async with self._slots:
                    self._waiting.remove(run.run_id)
                    run.status, run.phase = "running", "starting"
                    await self._consume(run, settings)
            except Exception as exc:  # a bug, or an engine error escaping execute_run
                log.exception("run %s failed", run.run_id)
                run.status, run.error = "failed", _error_text(exc)
                await self._record_end(run)
            finally:
                if run.run_id in self._waiting:
                    self._waiting.remove(run.run_id)
        if run.scope.cancelled_caught or run.status in ("queued", "running"):
            if run.scope.cancelled_caught:
                run.status = "cancelled"
            else:
                run.status = "failed"
                run.error = run.error or "the engine stopped without reporting a result"
            with anyio.CancelScope(shield=True):
                await self._record_end(run)
        self._inflight.pop(run.key, None)
        run.done.set()

    async def _consume(self, run: LiveRun, settings: Any) -> None:
        from halo_mcp.engine.runner import execute_run

        store = await self.open_store()
        record = await execute_run(
            run.trace_paths,
            run.prompt,
            settings,
            run_id=run.run_id,
            owner=run.owner,
            on_event=lambda event: apply_event(run, event),
            run_store=store,
        )
        apply_record(run, record)

    async def _record_end(self, run: LiveRun) -> None:
        """Persist a terminal status the engine could not record itself (best effort)."""
        try:
            await anyio.to_thread.run_sync(self._save_status, run)
        except Exception:
            log.exception("could not record the end of run %s", run.run_id)

    def _save_status(self, run: LiveRun) -> None:
        from halo_mcp.engine.models import RunStatus

        record = self.store.get(run.run_id)
        if record.status.done:
            run.record = record
            run.status = record.status.value
            return
        record.status = RunStatus(run.status)
        record.error = run.error or record.error
        record.finished_at = datetime.now(timezone.utc)
        self.store.save(record)
        run.record = record

    # ------------------------------------------------------------------ cancel

    def cancel(self, run_id: str) -> bool:
        """Cancel a live run; False when it is not executing in this process."""
        run = self._runs.get(run_id)
        if run is None or run.is_done:
            return False
        run.scope.cancel()
        return True


def apply_event(run: LiveRun, event: Any) -> None:
    """Fold one engine event into the live state."""
    kind = getattr(event, "type", None)
    if kind == "run_started":
        run.status = "running"
    elif kind == "progress":
        run.phase = event.progress.phase
        run.fraction = event.progress.fraction
        run.message = event.progress.message
        run.usage = event.usage.model_dump()
        run.agents_running = event.agents_running
    elif kind == "agent_started":
        run.agents_running += 1
    elif kind == "agent_finished":
        run.agents_running = max(0, run.agents_running - 1)
    elif kind == "tool_called" and not run.message:
        run.message = f"{event.agent_id or 'agent'} called {event.tool}"
    elif kind == "finding_accepted":
        run.findings.append(event.finding)
    elif kind in ("run_finished", "run_failed"):
        # The status changes only when execute_run returns: by then the run is saved, so a
        # client told "finished" can read the report and findings from the run store.
        run.phase, run.fraction = event.run.progress.phase, event.run.progress.fraction
        run.usage = event.run.usage.model_dump()
        run.findings = list(event.run.findings)


def apply_record(run: LiveRun, record: Any) -> None:
    """Take the final state from the engine's run record."""
    run.record = record
    run.status = record.status.value
    run.error = record.error
    run.phase, run.fraction = record.progress.phase, record.progress.fraction
    run.message = record.progress.message
    run.usage = record.usage.model_dump()
    run.findings = list(record.findings)
    run.agents_running = 0


def _error_text(exc: BaseException) -> str:
    from halo_mcp.engine.errors import EngineError

    if isinstance(exc, EngineError):
        return str(exc)
    return f"internal error ({type(exc).__name__}); see the server's log (stderr)"


def _load_engine() -> None:
    """Import the engine (a no-op once done); see RunManager.start."""
    import halo_mcp.engine.runner
    import halo_mcp.engine.settings  # noqa: F401
