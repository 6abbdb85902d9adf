"""Running one analysis end to end: run record, trace store, root agent, findings, report.

`execute_run` is the callback-based core; `api.stream_run` wraps it as an async generator.
The run is persisted as it goes (progress, usage and a compact event log, flushed in a
worker thread at most every FLUSH_INTERVAL_S), and its end state is written inside a
shielded scope so that cancellation still records "cancelled".
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anyio

from halo_mcp.engine import prompts, telemetry
from halo_mcp.engine.agent import Agent
from halo_mcp.engine.agent_tools import ToolBudgets, ToolContext
from halo_mcp.engine.errors import EngineError, NoApiKeyError
from halo_mcp.engine.events import (
    EngineEvent,
    FindingAccepted,
    RunFailed,
    RunFinished,
    RunStarted,
    TextDelta,
)
from halo_mcp.engine.findings import sort_findings
from halo_mcp.engine.lifecycle import RunLifecycle
from halo_mcp.engine.models import RunRecord, RunStatus
from halo_mcp.engine.outcome import judge_outcome
from halo_mcp.engine.provider import ChatProvider
from halo_mcp.engine.report import render_report
from halo_mcp.engine.runstore import RunStore, open_run_store
from halo_mcp.engine.settings import EngineSettings
from halo_mcp.engine.state import RunState
from halo_mcp.engine.telemetry import Telemetry
from halo_mcp.excgroups import first_error
from halo_mcp.harness.paths import HarnessPathError, Repository, open_repository
from halo_mcp.store.api import TraceReader
from halo_mcp.store.errors import StoreError
from halo_mcp.store.store import open_store
from halo_mcp.text import clip
from halo_mcp.triage import run_triage, triage_summary

log = logging.getLogger(__name__)

FLUSH_INTERVAL_S = 0.5
EVENT_TEXT_CHARS = 300


class Recorder:
    """Buffers events and progress; a flusher writes them to the run store off the loop."""

    def __init__(self, runs: RunStore, run_id: str, state: RunState) -> None:
        self.runs = runs
        self.run_id = run_id
        self.state = state
        self.pending: list[dict[str, Any]] = []
        self.dirty = False
        self.findings_dirty = False

    def on_event(self, event: EngineEvent) -> None:
        if isinstance(event, TextDelta):
            return  # too chatty for the log; the final texts are in the report
        self.dirty = True
        if isinstance(event, FindingAccepted):
            self.findings_dirty = True
        self.pending.append(_compact_event(event))

    async def flush(self) -> None:
        events, self.pending = self.pending, []
        if not events and not self.dirty:
            return
        self.dirty = False
        progress, usage = self.state.progress(), self.state.usage.model_copy()
        findings = sort_findings(self.state.findings.values()) if self.findings_dirty else None
        self.findings_dirty = False

        def write() -> None:
            self.runs.append_events(self.run_id, events)
            self.runs.update_progress(self.run_id, progress, usage)
            if findings is not None:
                self.runs.save_findings(self.run_id, findings)

        try:
            await anyio.to_thread.run_sync(write)
        except Exception:  # a flaky disk must not kill the analysis
            log.exception("could not persist progress of run %s", self.run_id)

    async def flush_forever(self) -> None:
        while True:
            await anyio.sleep(FLUSH_INTERVAL_S)
            await self.flush()


def _compact_event(event: EngineEvent) -> dict[str, Any]:
    if isinstance(event, RunFinished | RunFailed):
        data = event.model_dump(mode="json", exclude={"run"})
        data["status"] = event.run.status.value
        return data
    data = event.model_dump(mode="json")
    if "finding" in data:
        f = data.pop("finding")
        data["finding"] = {k: f.get(k) for k in ("id", "title", "severity", "verified", "status")}
    for key in ("arguments", "summary", "task"):
        if isinstance(data.get(key), str):
            data[key] = clip(data[key], EVENT_TEXT_CHARS)[0]
    return data


async def execute_run(
    trace_paths: Sequence[str | Path],
    prompt: str,
    settings: EngineSettings,
    *,
    run_id: str | None = None,
    owner: str | None = None,
    on_event: Callable[[EngineEvent], None] | None = None,
    provider: ChatProvider | None = None,
    budgets: ToolBudgets | None = None,
    run_store: RunStore | None = None,
    on_state: Callable[[RunState], None] | None = None,
) -> RunRecord:
    """Run one analysis and return its final record (finished, failed or cancelled).

    Expected failures (bad trace path, provider down) end as a failed run, not an
    exception. Cancellation propagates after the run is recorded as cancelled.
    Raises NoApiKeyError (before starting) when no credentials are configured.
    `on_state` receives the run's shared state once created (benchmarks inspect its
    tool counters through it).
    """
    if run_store is None:
        run_store = await anyio.to_thread.run_sync(open_run_store, settings)
    lifecycle = RunLifecycle(run_store)
    if run_id is None:
        queued = functools.partial(lifecycle.queue, prompt, trace_paths, settings, owner=owner)
        run_id = (await anyio.to_thread.run_sync(queued)).id
    run = await anyio.to_thread.run_sync(lifecycle.start, run_id)
    if provider is None:
        try:
            # In a worker thread: making the client loads the CA certificates and imports
            # the HTTP stack (tens of milliseconds), which must not stall the event loop.
            provider = await anyio.to_thread.run_sync(ChatProvider, settings)
        except NoApiKeyError as exc:
            await anyio.to_thread.run_sync(lifecycle.end_stored, run.id, RunStatus.failed, str(exc))
            raise
    return await _drive(run, settings, lifecycle, provider, on_event, budgets, on_state)


async def _drive(
    run: RunRecord,
    settings: EngineSettings,
    lifecycle: RunLifecycle,
    provider: ChatProvider,
    on_event: Callable[[EngineEvent], None] | None,
    budgets: ToolBudgets | None,
    on_state: Callable[[RunState], None] | None = None,
) -> RunRecord:
    state = RunState(run_id=run.id, settings=settings, provider=provider)
    if on_state is not None:
        on_state(state)
    recorder = Recorder(lifecycle.runs, run.id, state)

    def emit(event: EngineEvent) -> None:
        recorder.on_event(event)
        if on_event is not None:
            try:
                on_event(event)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                pass  # the consumer left; the run store still records everything
            except Exception:
                log.exception("event consumer failed; continuing the run")

    state.emit = emit
    store: TraceReader | None = None
    root: Agent | None = None
    traces_in_scope: int | None = None
    scope = telemetry.run_scope(settings, run.id, prompt=run.prompt, trace_paths=run.trace_paths)
    async with scope as tel:  # spans of this run, when settings.telemetry is on
        emit(RunStarted(run_id=run.id))
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(recorder.flush_forever)
                state.set_phase("indexing")
                # Indexing a big file takes a while: a cancel must not wait for it (the
                # thread finishes on its own and leaves its index for the next run).
                store = await anyio.to_thread.run_sync(
                    functools.partial(
                        open_store,
                        run.trace_paths,
                        cache_dir=settings.cache_dir,
                        window=settings.window,
                    ),
                    abandon_on_cancel=True,
                )
                repo = await anyio.to_thread.run_sync(_open_repo, settings)
                state.tools = ToolContext(store=store, budgets=budgets or ToolBudgets(), repo=repo)
                traces_in_scope = (await anyio.to_thread.run_sync(store.count)).traces_in_scope
                state.set_phase("triage")
                triage = await _triage_context(store, run.id, state)
                state.set_phase("exploring")
                task = _root_task(run.prompt, run.trace_paths, traces_in_scope)
                root = Agent(state, task, context=triage)
                await root.run()
                state.set_phase("reporting")
                tg.cancel_scope.cancel()
        except BaseException as exc:
            error = first_error(exc)
            if error is None:  # only cancellation: record it, then let it propagate
                with anyio.CancelScope(shield=True):
                    lifecycle.end(run, RunStatus.cancelled, "The run was cancelled.")
                    await _finish(run, state, recorder, lifecycle, root, traces_in_scope, None, tel)
                    await _close(store, provider)
                raise
            if not isinstance(error, Exception):
                raise
            lifecycle.end(run, RunStatus.failed, _error_message(error, settings))
            if not isinstance(error, EngineError | StoreError):
                log.error("run %s failed", run.id, exc_info=error)
        else:
            lifecycle.end(run, RunStatus.finished)
        with anyio.CancelScope(shield=True):
            await _finish(run, state, recorder, lifecycle, root, traces_in_scope, emit, tel)
            await _close(store, provider)
    return run


async def _finish(
    run: RunRecord,
    state: RunState,
    recorder: Recorder,
    lifecycle: RunLifecycle,
    root: Agent | None,
    traces_in_scope: int | None,
    emit: Callable[[EngineEvent], None] | None,
    tel: Telemetry | None = None,
) -> None:
    """Complete an ended run (`lifecycle.end`) and save it: findings kept whatever happened,
    report, final events."""
    run.usage = state.usage.model_copy()
    state.merge_drafts()  # what sub-agents confirmed is kept, whatever the root did
    run.findings = sort_findings(state.findings.values())
    run.usage_by_agent = {k: v.model_copy() for k, v in state.agent_usage.items()}
    if run.status == RunStatus.finished:
        run.outcome, run.warning = judge_outcome(state, run.findings)
    notes: list[tuple[str, str]] = []
    if state.unstructured_final:
        notes.append(("Final answer (not structured)", state.unstructured_final))
    if run.status != RunStatus.finished and state.sub_reports:
        for sub in state.sub_reports:
            notes.append((f"Sub-agent {sub.agent_id} report", f"Task: {sub.task}\n\n{sub.report}"))
    if run.status == RunStatus.finished:
        if emit is not None:
            state.set_phase("done")  # a last ProgressUpdate at 100%
        state.phase = "done"
    run.progress = state.progress()
    if run.status != RunStatus.finished:
        run.progress.message = f"{run.status.value}: {clip(run.error or '', 200)[0]}"
    run.report_markdown = render_report(
        run,
        summary=state.summary,
        traces_in_scope=traces_in_scope,
        turns=root.turns if root else None,
        notes=notes,
    )
    try:
        telemetry.record_run(tel, run)
    except Exception:
        log.warning("telemetry: could not record the end of run %s", run.id, exc_info=True)
    if emit is not None:
        if run.status == RunStatus.finished:
            emit(RunFinished(run_id=run.id, run=run))
        else:
            emit(RunFailed(run_id=run.id, error=run.error or "failed", run=run))
    try:
        await recorder.flush()
        await anyio.to_thread.run_sync(lifecycle.save, run)
    except Exception:
        log.exception("could not save the final state of run %s", run.id)


async def _close(store: TraceReader | None, provider: ChatProvider) -> None:
    if store is not None:
        try:
            await anyio.to_thread.run_sync(store.close)
        except Exception:
            log.exception("closing the trace store failed")
    try:
        await provider.aclose()
    except Exception:
        log.debug("closing the provider failed", exc_info=True)


def _open_repo(settings: EngineSettings) -> Repository | None:
    """The harness repository of the run, or None; a bad path fails the run clearly."""
    if settings.repo_path is None:
        return None
    try:
        return open_repository(settings.repo_path)
    except HarnessPathError as exc:
        raise EngineError(str(exc)) from None


async def _triage_context(store: TraceReader, run_id: str, state: RunState) -> str | None:
    """The triage summary for the root's first message, or None if triage failed: the
    root then starts from the overview alone (a run never fails because of triage). Its
    items become adoptable by id."""
    try:
        report = await anyio.to_thread.run_sync(run_triage, store, abandon_on_cancel=True)
        state.adoptable.update({item.id: item for item in report.items})
        return prompts.triage_context(triage_summary(report))
    except Exception:
        log.warning("run %s: triage failed; the root starts without it", run_id, exc_info=True)
        return None


def _root_task(prompt: str, paths: Sequence[str], traces: int | None) -> str:
    scope = f"{traces} traces" if traces is not None else "the traces"
    return (
        f"Analyze {scope} loaded from: {', '.join(paths)}.\n\n"
        f"The user's request: {prompt}\n\n"
        "Find the harness's systemic failure modes and end with submit_findings."
    )


def _error_message(exc: BaseException, settings: EngineSettings) -> str:
    if isinstance(exc, EngineError | StoreError):
        text = str(exc)
    else:
        text = (
            f"Internal error ({type(exc).__name__}: {exc}). This is a bug in halo-mcp; the "
            "findings recorded so far are kept. Please report it with the run id."
        )
    secrets = []
    if settings.api_key:
        secrets.append(settings.api_key.get_secret_value())
    secrets += list(settings.extra_headers.values())
    for secret in secrets:
        if secret and len(secret) >= 6:
            text = text.replace(secret, "***")
    return clip(text, 2000)[0]
