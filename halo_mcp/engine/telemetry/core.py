"""A run's OpenTelemetry: a private TracerProvider, the run span, and the active scope.

One `Telemetry` per run (never the global provider, so a host app's own tracing is left
alone). The active scope (which Telemetry, which parent span, which agent) lives in a
ContextVar: tasks spawned by an agent inherit it, so a provider call lands under the agent
that made it and a sub-agent under the delegate tool call that started it, without passing
anything through the engine's call signatures.

Exporting runs in the BatchSpanProcessor's thread; closing is bounded in time, and any
telemetry failure is logged to stderr and ignored: it never fails or blocks a run.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import traceback
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from halo_mcp import __version__
from halo_mcp.engine.models import Usage
from halo_mcp.engine.settings import EngineSettings
from halo_mcp.engine.telemetry import attrs as A
from halo_mcp.engine.telemetry.config import capture_content
from halo_mcp.engine.telemetry.exporters import ExportTarget, choose_exporter, destination
from halo_mcp.engine.telemetry.propagation import take_parent
from halo_mcp.text import clip

log = logging.getLogger(__name__)

SCOPE_NAME = "halo_mcp.engine"
CONTENT_CHARS = 16_000  # each captured prompt/completion/argument/result value
MESSAGE_CHARS = 300  # status and exception messages
STACK_CHARS = 4_000
CLOSE_TIMEOUT_S = 5.0  # then the flush goes on in the background
EXPORT_TIMEOUT_MS = 10_000


@dataclass(frozen=True)
class Scope:
    """What the code running now is part of: a run, under a parent span, in an agent."""

    telemetry: Telemetry
    context: Context
    agent_name: str | None = None
    agent_id: str | None = None


_active: ContextVar[Scope | None] = ContextVar("halo_telemetry_scope", default=None)
_outputs: dict[str, str] = {}  # run id -> where its spans went (this process)
_MAX_OUTPUTS = 1000


def active_scope() -> Scope | None:
    return _active.get()


def current() -> Telemetry | None:
    """The Telemetry of the run this code belongs to (None when telemetry is off)."""
    scope = _active.get()
    return scope.telemetry if scope is not None else None


@contextlib.contextmanager
def enter_scope(scope: Scope) -> Iterator[Scope]:
    token = _active.set(scope)
    try:
        yield scope
    finally:
        with contextlib.suppress(ValueError):  # reset from another context: harmless
            _active.reset(token)


def describe_output(run_id: str) -> str:
    """Where a run's spans went, for the CLI to print at the end: the JSONL path, or
    "OTLP <endpoint>". Exact for runs of this process; otherwise what the environment
    would choose now."""
    if run_id in _outputs:
        return _outputs[run_id]
    return destination(run_id)


class Telemetry:
    """Spans of one run. Create with :meth:`start`; end with :meth:`end_run` + :meth:`aclose`."""

    def __init__(
        self,
        run_id: str,
        target: ExportTarget,
        *,
        capture: bool = False,
        secrets: Sequence[str] = (),
    ) -> None:
        self.run_id = run_id
        self.target = target
        self.capture = capture
        self._secrets = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)
        resource = Resource.create(
            {
                "service.name": "halo-mcp",
                "service.version": __version__,
                A.RUN_ID: run_id,
            }
        )
        self._provider = TracerProvider(resource=resource, shutdown_on_exit=False)
        self._provider.add_span_processor(
            BatchSpanProcessor(target.exporter, export_timeout_millis=EXPORT_TIMEOUT_MS)
        )
        self.tracer = self._provider.get_tracer(SCOPE_NAME, __version__)
        self.run_span: Span | None = None
        self.run_context: Context = Context()
        self._closed = False

    # ---------------------------------------------------------------- lifecycle

    @classmethod
    def start(
        cls,
        settings: EngineSettings,
        run_id: str,
        *,
        prompt: str = "",
        trace_paths: Sequence[str | Path] = (),
        parent: Context | None = None,
        target: ExportTarget | None = None,
    ) -> Telemetry | None:
        """Telemetry for a run when `settings.telemetry` is on (else None), with its run
        span started. Parent: `parent`, else one registered for the run id / set with
        `parent_context`, else the ambient OTel context. Never raises."""
        if not getattr(settings, "telemetry", False):
            return None
        try:
            secrets = _secrets_of(settings)
            tel = cls(
                run_id,
                target or choose_exporter(run_id),
                capture=capture_content(),
                secrets=secrets,
            )
            parent = parent or take_parent(run_id) or otel_context.get_current()
            try:
                tel._start_run(settings, prompt, trace_paths, parent)
            except Exception:
                tel.close(timeout_s=1.0)
                raise
            if len(_outputs) >= _MAX_OUTPUTS:
                _outputs.pop(next(iter(_outputs)))
            _outputs[run_id] = tel.output
            return tel
        except Exception as exc:
            log.warning("telemetry disabled for this run: %s: %s", type(exc).__name__, exc)
            return None

    def _start_run(
        self,
        settings: EngineSettings,
        prompt: str,
        trace_paths: Sequence[str | Path],
        parent: Context,
    ) -> None:
        attributes: dict[str, Any] = {
            A.OI_KIND: "CHAIN",
            A.OPERATION: "invoke_workflow",
            A.RUN_ID: self.run_id,
            A.PROMPT_LENGTH: len(prompt or ""),
            A.TRACE_PATHS_COUNT: len(trace_paths),
            A.REQUEST_MODEL: str(getattr(settings, "model", "") or ""),
            A.MAX_DEPTH: int(getattr(settings, "max_depth", 0) or 0),
            A.MAX_TURNS: int(getattr(settings, "max_turns", 0) or 0),
            A.SESSION_ID: self.run_id,
        }
        if self.capture:
            attributes[A.INPUT_VALUE] = self.content(prompt)
        self.run_span = self.tracer.start_span(
            "halo.run", context=parent, kind=SpanKind.INTERNAL, attributes=attributes
        )
        self.run_context = trace.set_span_in_context(self.run_span, Context())

    @property
    def output(self) -> str:
        """Where the spans went: the JSONL path, or the OTLP endpoint (for the CLI to print)."""
        if self.target.path is not None:
            return str(self.target.path)
        if self.target.kind == "otlp":
            return f"OTLP {self.target.endpoint}"
        return self.target.kind

    @property
    def path(self) -> Path | None:
        """The JSONL file written (None when exporting with OTLP)."""
        return self.target.path

    @contextlib.contextmanager
    def activate(self) -> Iterator[Telemetry]:
        """Code run inside (and tasks it spawns) records spans under this run's span."""
        with enter_scope(Scope(self, self.run_context)):
            yield self

    def end_run(
        self,
        *,
        status: str | None = None,
        error: BaseException | str | None = None,
        usage: Usage | None = None,
        findings: int | None = None,
        report: str | None = None,
    ) -> None:
        """End the run span once (later calls do nothing). `status`: the run's final status
        (finished, failed, cancelled...); `error` marks the span as failed."""
        span = self.run_span
        if span is None or not span.is_recording():
            return
        try:
            if status:
                span.set_attribute(A.RUN_STATUS, status)
            if findings is not None:
                span.set_attribute(A.FINDINGS_COUNT, findings)
            if usage is not None:
                span.set_attributes(usage_attributes(usage))
            if report and self.capture:
                span.set_attribute(A.OUTPUT_VALUE, self.content(report))
            if error is not None:
                self.record_error(span, error, "run_failed")
            elif status in ("finished", "ok"):
                span.set_status(Status(StatusCode.OK))
        except Exception as exc:  # pragma: no cover - defensive
            log.warning("telemetry: could not annotate the run span: %s", exc)
        finally:
            span.end()

    async def aclose(self, timeout_s: float = CLOSE_TIMEOUT_S) -> None:
        """Flush and stop exporting without blocking the event loop (bounded wait)."""
        thread = self._close_thread()
        if thread is None:
            return
        waited = 0.0
        while thread.is_alive() and waited < timeout_s:
            await anyio.sleep(0.01)
            waited += 0.01
        if thread.is_alive():
            log.warning("telemetry: exporter still busy after %.0fs; not waiting", timeout_s)

    def close(self, timeout_s: float = CLOSE_TIMEOUT_S) -> None:
        """Synchronous :meth:`aclose` (bounded wait)."""
        thread = self._close_thread()
        if thread is not None:
            thread.join(timeout_s)

    def _close_thread(self) -> threading.Thread | None:
        if self._closed:
            return None
        self._closed = True
        if self.run_span is not None and self.run_span.is_recording():
            self.run_span.end()

        def shutdown() -> None:
            try:
                self._provider.shutdown()
            except Exception as exc:
                log.warning("telemetry: exporter shutdown failed: %s", exc)

        thread = threading.Thread(target=shutdown, name="halo-telemetry-close", daemon=True)
        thread.start()
        return thread

    # ---------------------------------------------------------------- helpers

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "***")
        return text

    def content(self, value: Any, limit: int = CONTENT_CHARS) -> str:
        """A captured value: text, secrets removed, cut at `limit` with a marker."""
        text = value if isinstance(value, str) else A.to_json(value)
        return clip(self.redact(text), limit)[0]

    def record_error(
        self, span: Span, error: BaseException | str, error_type: str = "error"
    ) -> None:
        """Error status, `error.type` and an exception event (secrets removed, bounded)."""
        if isinstance(error, BaseException):
            etype = type(error).__name__
            message = self.redact(str(error)) or etype
            stack = "".join(traceback.format_exception(type(error), error, error.__traceback__))
            span.add_event(
                "exception",
                {
                    "exception.type": etype,
                    "exception.message": clip(message, CONTENT_CHARS)[0],
                    "exception.stacktrace": clip(self.redact(stack), STACK_CHARS)[0],
                },
            )
        else:
            etype, message = error_type, self.redact(error)
        span.set_attribute(A.ERROR_TYPE, etype)
        span.set_status(Status(StatusCode.ERROR, clip(message, MESSAGE_CHARS)[0]))


def usage_attributes(usage: Usage) -> dict[str, int]:
    """Run totals under halo.usage.* (not gen_ai.usage.*, so token totals aren't doubled)."""
    return {f"halo.usage.{name}": int(value) for name, value in usage.model_dump().items()}


def _secrets_of(settings: EngineSettings) -> list[str]:
    secrets: list[str] = []
    if settings.api_key is not None:
        secrets.append(settings.api_key.get_secret_value())
    secrets.extend(settings.extra_headers.values())
    return secrets
