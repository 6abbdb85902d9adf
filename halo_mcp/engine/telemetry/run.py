"""One async context manager that gives a run its telemetry, for the engine's runner.

    async with telemetry.run_scope(settings, run_id, prompt=p, trace_paths=paths) as tel:
        ...                       # agents run here (and in tasks spawned from here)
        telemetry.record_run(tel, record)   # optional: final status, usage, findings

Yields None when telemetry is off or could not start (the body runs the same either way).
On exit the run span ends (failed / cancelled when the body raised) and the exporter is
flushed in a thread with a bounded wait, shielded from cancellation.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import anyio
from opentelemetry.context import Context

from halo_mcp.engine.models import RunRecord
from halo_mcp.engine.settings import EngineSettings
from halo_mcp.engine.telemetry.core import Telemetry
from halo_mcp.engine.telemetry.spans import is_cancellation


@contextlib.asynccontextmanager
async def run_scope(
    settings: EngineSettings,
    run_id: str,
    *,
    prompt: str = "",
    trace_paths: Sequence[str | Path] = (),
    parent: Context | None = None,
) -> AsyncIterator[Telemetry | None]:
    tel = Telemetry.start(settings, run_id, prompt=prompt, trace_paths=trace_paths, parent=parent)
    if tel is None:
        yield None
        return
    error: BaseException | None = None
    try:
        with tel.activate():
            yield tel
    except BaseException as exc:
        error = exc
        raise
    finally:
        if error is not None:
            if is_cancellation(error):
                tel.end_run(status="cancelled")
            else:
                tel.end_run(status="failed", error=error)
        else:
            tel.end_run()
        with anyio.CancelScope(shield=True):
            await tel.aclose()


def record_run(tel: Telemetry | None, record: RunRecord) -> None:
    """End the run span from a RunRecord: status, usage, findings count, report, error."""
    if tel is None:
        return
    status = record.status.value
    tel.end_run(
        status=status,
        error=record.error if status == "failed" and record.error else None,
        usage=record.usage,
        findings=len(record.findings),
        report=record.report_markdown,
    )
