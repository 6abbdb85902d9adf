"""Background analysis runs for the MCP server: start, queue, dedupe, follow, cancel.

A tool call must answer within a client's timeout (~60 s), while an analysis takes minutes.
So `analyze_traces` only starts a run here and waits a bounded time; the run itself lives in
the manager's task group for the life of the server. At most `max_concurrent` runs execute
at once; the others wait in FIFO order and say how many are ahead. An identical request
(same owner, files, prompt and settings) while one is in flight joins that run.

Every state change goes through the engine's `RunLifecycle` (the one owner of run states);
the LLM machinery (`execute_run`) is imported on the first run, so starting the server stays
fast. Runs execute through `execute_run` with an event callback (its recommended form for
background runs).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import anyio
from anyio.abc import TaskGroup
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import RequestParamsMeta
from pydantic import BaseModel

from halo_mcp.engine import events
from halo_mcp.engine.errors import EngineError
from halo_mcp.engine.lifecycle import RunLifecycle
from halo_mcp.engine.models import RunRecord, RunStatus, Usage
from halo_mcp.engine.runstore import RunStore
from halo_mcp.engine.settings import EngineSettings
from halo_mcp.findings.models import Finding
from halo_mcp.settings import DirectoryError
from halo_mcp.store.timewindow import TimeWindow

log = logging.getLogger(__name__)


class RunOverrides(BaseModel, frozen=True):
    """The engine settings an analyze_traces call may choose (None: the server's)."""

    model: str | None = None
    max_depth: int | None = None
    max_turns: int | None = None
    max_run_tokens: int | None = None
    repo_path: str | None = None  # resolved inside the server's roots
    context: str | None = None
    window: TimeWindow | None = None  # since/until, resolved when the call came


#: What makes two requests the same run: owner, files, prompt and the settings overrides.
RunKey = tuple[str | None, tuple[str, ...], str, RunOverrides]
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
    status: RunStatus = RunStatus.queued
    phase: str = "queued"
    fraction: float = 0.0
    message: str = ""
    usage: Usage = field(default_factory=Usage)
    agents_running: int = 0
    findings: list[Finding] = field(default_factory=list)
    record: RunRecord | None = None  # the final record, once the run ended
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
        settings_for: Callable[[RunOverrides], EngineSettings],
        *,
        max_concurrent: int = 2,
        data_dir: Path | None = None,
    ) -> None:
        self._settings_for = settings_for
        self.max_concurrent = max_concurrent
        self._data_dir = data_dir
        self._slots = anyio.Semaphore(max_concurrent)
        self._waiting: list[str] = []  # queued run ids, first in line first
        self._runs: dict[str, LiveRun] = {}
        self._inflight: dict[RunKey, str] = {}
        self._tg: TaskGroup | None = None
        self._lifecycle: RunLifecycle | None = None
        self._start_lock = anyio.Lock()  # dedupe check and registration are one step
        self._store_lock = anyio.Lock()

    async def __aenter__(self) -> RunManager:
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._tg is not None
        for run in self._runs.values():
            run.scope.cancel()
        self._tg.cancel_scope.cancel()
        await self._tg.__aexit__(None, None, None)
        self._tg = None

    # ------------------------------------------------------------------ queries

    async def open_store(self) -> RunStore:
        """The run store, opened in a worker thread on first use (opening creates the data
        directory and connects to SQLite: never on the event loop)."""
        return (await self._open_lifecycle()).runs

    async def _open_lifecycle(self) -> RunLifecycle:
        if self._lifecycle is None:
            async with self._store_lock:
                if self._lifecycle is None:
                    try:
                        runs = await anyio.to_thread.run_sync(RunStore, self._data_dir)
                    except DirectoryError as exc:
                        raise ToolError(str(exc)) from None
                    self._lifecycle = RunLifecycle(runs)
        return self._lifecycle

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
        overrides: RunOverrides,
        owner: str | None,
        request_meta: RequestParamsMeta | None = None,
    ) -> tuple[LiveRun, bool]:
        """Start a run, or return the identical one in flight. Returns (run, deduplicated).

        With telemetry on, a `traceparent` in `request_meta` (the request's `_meta`) makes the
        run's spans join the caller's trace.

        Raises whatever `settings_for` raises (e.g. a ToolError for missing credentials).
        """
        key: RunKey = (owner, tuple(trace_paths), prompt.strip(), overrides)
        # The first analysis imports the engine's runner and the OpenAI client (about a
        # second of CPU): in a worker thread, so the event loop keeps answering other clients.
        await anyio.to_thread.run_sync(load_engine)
        async with self._start_lock:
            existing = self._inflight.get(key)
            if existing and not self._runs[existing].is_done:
                return self._runs[existing], True
            settings = self._settings_for(overrides)
            lifecycle = await self._open_lifecycle()
            queue = functools.partial(lifecycle.queue, prompt, trace_paths, settings, owner=owner)
            record = await anyio.to_thread.run_sync(queue)
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
            # The OpenTelemetry SDK is imported only when telemetry is on (start-up time).
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

    async def _execute(self, run: LiveRun, settings: EngineSettings) -> None:
        with run.scope:
            try:
                async with self._slots:
                    self._waiting.remove(run.run_id)
                    run.status, run.phase = RunStatus.running, "starting"
                    await self._consume(run, settings)
            except Exception as exc:  # a bug, or an engine error escaping execute_run
                log.exception("run %s failed", run.run_id)
                await self._end_stored(run, RunStatus.failed, _error_text(exc))
            finally:
                if run.run_id in self._waiting:
                    self._waiting.remove(run.run_id)
        if run.scope.cancelled_caught:
            with anyio.CancelScope(shield=True):
                await self._end_stored(run, RunStatus.cancelled, run.error)
        elif not run.status.done:
            error = run.error or "the engine stopped without reporting a result"
            with anyio.CancelScope(shield=True):
                await self._end_stored(run, RunStatus.failed, error)
        self._inflight.pop(run.key, None)
        run.done.set()

    async def _consume(self, run: LiveRun, settings: EngineSettings) -> None:
        # The engine's runner imports the LLM client (over a second): on the first run only.
        from halo_mcp.engine.runner import execute_run

        record = await execute_run(
            run.trace_paths,
            run.prompt,
            settings,
            run_id=run.run_id,
            owner=run.owner,
            on_event=functools.partial(apply_event, run),
            run_store=await self.open_store(),
        )
        apply_record(run, record)

    async def _end_stored(self, run: LiveRun, status: RunStatus, error: str | None) -> None:
        """End a run the engine could not end itself (best effort), and take its record."""
        try:
            lifecycle = await self._open_lifecycle()
            record = await anyio.to_thread.run_sync(lifecycle.end_stored, run.run_id, status, error)
        except Exception:
            log.exception("could not record the end of run %s", run.run_id)
            run.status, run.error = status, error
            return
        run.record, run.status, run.error = record, record.status, record.error

    # ------------------------------------------------------------------ cancel

    def cancel(self, run_id: str) -> bool:
        """Cancel a live run; False when it is not executing in this process."""
        run = self._runs.get(run_id)
        if run is None or run.is_done:
            return False
        run.scope.cancel()
        return True


def apply_event(run: LiveRun, event: events.EngineEvent) -> None:
    """Fold one engine event into the live state."""
    if isinstance(event, events.RunStarted):
        run.status = RunStatus.running
    elif isinstance(event, events.ProgressUpdate):
        run.phase = event.progress.phase
        run.fraction = event.progress.fraction
        run.message = event.progress.message
        run.usage = event.usage.model_copy()
        run.agents_running = event.agents_running
    elif isinstance(event, events.AgentStarted):
        run.agents_running += 1
    elif isinstance(event, events.AgentFinished):
        run.agents_running = max(0, run.agents_running - 1)
    elif isinstance(event, events.ToolCalled) and not run.message:
        run.message = f"{event.agent_id or 'agent'} called {event.tool}"
    elif isinstance(event, events.FindingAccepted):
        run.findings.append(event.finding)
    elif isinstance(event, events.RunFinished | events.RunFailed):
        # The status changes only when execute_run returns: by then the run is saved, so a
        # client told "finished" can read the report and findings from the run store.
        run.phase, run.fraction = event.run.progress.phase, event.run.progress.fraction
        run.usage = event.run.usage.model_copy()
        run.findings = list(event.run.findings)


def apply_record(run: LiveRun, record: RunRecord) -> None:
    """Take the final state from the engine's run record."""
    run.record = record
    run.status = record.status
    run.error = record.error
    run.phase, run.fraction = record.progress.phase, record.progress.fraction
    run.message = record.progress.message
    run.usage = record.usage.model_copy()
    run.findings = list(record.findings)
    run.agents_running = 0


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, EngineError):
        return str(exc)
    return f"internal error ({type(exc).__name__}); see the server's log (stderr)"


@functools.cache
def load_engine() -> None:
    """Import the engine and its LLM client, and make its agents' tool schemas (once): on the
    first analysis (RunManager.start, in a worker thread), or when the HTTP server starts
    (see server.serve). Agents are made on the event loop, where making the schemas
    would stall every other client for tens of milliseconds."""
    import halo_mcp.engine.runner  # noqa: F401
    from halo_mcp.engine.agent import tool_schemas
    from halo_mcp.engine.provider import ChatProvider

    # (is_root, can_delegate, has_repo, is_git), as Agent asks: the root's tools without a
    # repository, then a sub-agent's; with a repository only its own tools are left to make
    tool_schemas(True, True, False, False)
    tool_schemas(False, False, False, False)
    ChatProvider.import_client()
