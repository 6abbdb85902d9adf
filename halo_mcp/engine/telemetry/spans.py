"""Span helpers for the engine: one line each at the agent, tool and provider seams.

    with telemetry.agent_span(agent):                 # Agent.run (reads id, depth, task...)
    with telemetry.tool_span(name, call_id, args) as tool:   # one tool call
        ...; tool.result(text, is_error)
    with telemetry.llm_span(request, endpoint) as llm:       # ChatProvider.complete
        ...; llm.retry(reason, attempt, delay_s); llm.finish(completion)

Each is a cheap no-op when the current run has no telemetry. Agent and tool spans become
the parent of whatever runs inside them (tasks inherit the ContextVar), so sub-agents
nest under the delegate call that started them and provider calls under their agent.
Content (prompts, completions, arguments, results) is recorded only with content capture.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from halo_mcp.engine.telemetry import attrs as A
from halo_mcp.engine.telemetry.core import (
    MESSAGE_CHARS,
    Scope,
    Telemetry,
    active_scope,
    enter_scope,
)
from halo_mcp.text import clip

if TYPE_CHECKING:  # the provider imports this module
    from halo_mcp.engine.provider import Completion

PROVIDER = "openai"  # any OpenAI-compatible endpoint speaks the OpenAI API
NAME_CHARS = 100


def is_cancellation(exc: BaseException) -> bool:
    return isinstance(exc, asyncio.CancelledError | GeneratorExit | KeyboardInterrupt) or (
        type(exc).__name__ == "Cancelled"
    )


def _close_with(tel: Telemetry, span: Span, exc: BaseException | None) -> None:
    if exc is not None:
        if is_cancellation(exc):
            span.set_attribute("halo.cancelled", True)
        else:
            tel.record_error(span, exc)
    span.end()


def _present(attrs: dict[str, Any]) -> dict[str, Any]:
    """The attributes that have a value (OpenTelemetry rejects None; empty says nothing)."""
    return {key: value for key, value in attrs.items() if value}


def _json_input(tel: Telemetry, key: str, payload: Any) -> dict[str, Any]:
    """A JSON input captured under its own key and as the span's input value (the two
    conventions' names for it)."""
    value = tel.content(payload)
    return {key: value, A.INPUT_VALUE: value, A.INPUT_MIME: "application/json"}


def _agent_attrs(scope: Scope) -> dict[str, Any]:
    return _present({A.AGENT_NAME: scope.agent_name, A.AGENT_ID: scope.agent_id})


# ------------------------------------------------------------------------ agents


@contextlib.contextmanager
def agent_span(
    agent: Any = None,
    *,
    agent_id: str | None = None,
    depth: int | None = None,
    parent_agent_id: str | None = None,
    task: str | None = None,
) -> Iterator[Span | None]:
    """An `invoke_agent` span around one agent's whole life. `agent` may be the Agent
    itself (agent_id, depth, parent_id, task; turns and report are read at the end)."""
    scope = active_scope()
    if scope is None:
        yield None
        return
    tel = scope.telemetry
    agent_id = agent_id or str(getattr(agent, "agent_id", "") or "root")
    depth = depth if depth is not None else int(getattr(agent, "depth", 0) or 0)
    parent_id = parent_agent_id or getattr(agent, "parent_id", None)
    task = task if task is not None else str(getattr(agent, "task", "") or "")
    name = A.ROOT_AGENT if depth == 0 else A.SUB_AGENT
    attributes: dict[str, Any] = {
        A.OPERATION: "invoke_agent",
        A.PROVIDER_NAME: PROVIDER,
        A.AGENT_NAME: name,
        A.AGENT_ID: agent_id,
        A.OI_KIND: "AGENT",
        A.OI_AGENT_NAME: name,
        A.AGENT_DEPTH: depth,
        A.AGENT_TASK_LENGTH: len(task),
        A.SESSION_ID: tel.run_id,
    }
    if parent_id:
        attributes[A.AGENT_PARENT_ID] = str(parent_id)
    if tel.capture:
        attributes[A.INPUT_VALUE] = tel.content(task)
    span = tel.tracer.start_span(
        f"invoke_agent {name}", context=scope.context, kind=SpanKind.INTERNAL, attributes=attributes
    )
    inner = Scope(tel, trace.set_span_in_context(span, scope.context), name, agent_id)
    error: BaseException | None = None
    try:
        with enter_scope(inner):
            yield span
    except BaseException as exc:
        error = exc
        raise
    finally:
        if agent is not None:
            turns = getattr(agent, "turns", None)
            if isinstance(turns, int):
                span.set_attribute(A.AGENT_TURNS, turns)
            report = getattr(agent, "report", None)
            if tel.capture and isinstance(report, str) and report:
                span.set_attribute(A.OUTPUT_VALUE, tel.content(report))
        _close_with(tel, span, error)


# ------------------------------------------------------------------------- tools


class ToolSpan:
    """Handle for one tool call's span: call `result()` once the tool returned."""

    def __init__(self, tel: Telemetry | None = None, span: Span | None = None) -> None:
        self.tel = tel
        self.span = span

    def result(self, text: str, is_error: bool = False) -> None:
        tel, span = self.tel, self.span
        if tel is None or span is None:
            return
        span.set_attribute(A.TOOL_RESULT_BYTES, len(text.encode("utf-8", "replace")))
        span.set_attribute(A.TOOL_IS_ERROR, is_error)
        if tel.capture:
            value = tel.content(text)
            span.set_attribute(A.TOOL_RESULT, value)
            span.set_attribute(A.OUTPUT_VALUE, value)
        if is_error:
            # The engine's own message to the model (what went wrong, how to fix the call).
            first = text.strip().removeprefix("ERROR: ").split("\n", 1)[0] or "tool error"
            span.set_attribute(A.ERROR_TYPE, "tool_error")
            span.set_status(Status(StatusCode.ERROR, clip(tel.redact(first), MESSAGE_CHARS)[0]))


_NO_TOOL = ToolSpan()


@contextlib.contextmanager
def tool_span(
    name: str, call_id: str | None = None, arguments: str | None = None
) -> Iterator[ToolSpan]:
    """An `execute_tool` span around one tool call; the parent of what the tool starts."""
    scope = active_scope()
    if scope is None:
        yield _NO_TOOL
        return
    tel = scope.telemetry
    tool = clip(name or "(unnamed)", NAME_CHARS)[0]
    attributes: dict[str, Any] = {
        A.OPERATION: "execute_tool",
        A.TOOL_NAME: tool,
        A.TOOL_TYPE: "function",
        A.OI_KIND: "TOOL",
        A.OI_TOOL_NAME: tool,
        A.TOOL_ARGUMENTS_BYTES: len((arguments or "").encode("utf-8", "replace")),
        A.SESSION_ID: tel.run_id,
        **_agent_attrs(scope),
    }
    if call_id:
        attributes[A.TOOL_CALL_ID] = call_id
    if tel.capture and arguments is not None:
        attributes.update(_json_input(tel, A.TOOL_ARGUMENTS, arguments))
    span = tel.tracer.start_span(
        f"execute_tool {tool}", context=scope.context, kind=SpanKind.INTERNAL, attributes=attributes
    )
    inner = Scope(
        tel, trace.set_span_in_context(span, scope.context), scope.agent_name, scope.agent_id
    )
    error: BaseException | None = None
    try:
        with enter_scope(inner):
            yield ToolSpan(tel, span)
    except BaseException as exc:
        error = exc
        raise
    finally:
        _close_with(tel, span, error)


# ------------------------------------------------------------------- provider calls


class LlmSpan:
    """Handle for one provider call's span (`chat`), retries included."""

    def __init__(self, tel: Telemetry | None = None, span: Span | None = None) -> None:
        self.tel = tel
        self.span = span
        self.retries = 0

    def retry(self, reason: str, attempt: int, delay_s: float) -> None:
        """One failed attempt that will be retried (the reason is already scrubbed)."""
        self.retries += 1
        if self.span is None or self.tel is None:
            return
        self.span.set_attribute(A.LLM_RETRIES, self.retries)
        self.span.add_event(
            A.LLM_RETRY_EVENT,
            {
                "halo.retry.attempt": attempt,
                "halo.retry.reason": clip(self.tel.redact(reason), MESSAGE_CHARS)[0],
                "halo.retry.delay_s": round(float(delay_s), 3),
            },
        )

    def finish(self, completion: Completion) -> None:
        """Record the reply: models, finish reason, tokens, tool calls (content if captured)."""
        tel, span = self.tel, self.span
        if tel is None or span is None:
            return
        usage = completion.usage
        model = completion.model or ""
        finish = completion.finish_reason
        tool_names = [clip(c.name or "", NAME_CHARS)[0] for c in completion.tool_calls]
        values: dict[str, Any] = {
            A.RESPONSE_MODEL: model,
            A.LLM_MODEL: model,
            A.INPUT_TOKENS: usage.input_tokens,
            A.OUTPUT_TOKENS: usage.output_tokens,
            A.CACHED_INPUT_TOKENS: usage.cached_input_tokens,
            A.REASONING_TOKENS: usage.reasoning_tokens,
            A.LLM_PROMPT_TOKENS: usage.input_tokens,
            A.LLM_COMPLETION_TOKENS: usage.output_tokens,
            A.LLM_TOTAL_TOKENS: usage.input_tokens + usage.output_tokens,
            A.LLM_CACHE_READ_TOKENS: usage.cached_input_tokens,
            A.LLM_REASONING_TOKENS: usage.reasoning_tokens,
            A.LLM_RETRIES: usage.retries,
            A.LLM_TOOL_CALLS: len(tool_names),
            A.LLM_REFUSAL: bool(completion.refusal),
        }
        if finish:
            values[A.FINISH_REASONS] = [finish]
        if tool_names:
            values["halo.llm.tool_call_names"] = tool_names
        if tel.capture:
            message = completion.assistant_message()
            values[A.OUTPUT_MESSAGES] = tel.content([message])
            if completion.tool_calls:
                values[A.OUTPUT_VALUE] = tel.content(message)
                values[A.OUTPUT_MIME] = "application/json"
            else:
                values[A.OUTPUT_VALUE] = tel.content(message.get("content") or "")
        span.set_attributes(values)


@contextlib.contextmanager
def llm_span(request: dict[str, Any], endpoint: str | None = None) -> Iterator[LlmSpan]:
    """A `chat` span around one provider call (all its attempts)."""
    scope = active_scope()
    if scope is None:
        yield LlmSpan()
        return
    tel = scope.telemetry
    model = str(request.get("model") or "")
    messages = request.get("messages") or []
    attributes: dict[str, Any] = {
        A.OPERATION: "chat",
        A.PROVIDER_NAME: PROVIDER,
        A.SYSTEM: PROVIDER,
        A.REQUEST_MODEL: model,
        A.LLM_MODEL: model,
        A.OI_KIND: "LLM",
        A.LLM_PROVIDER: PROVIDER,
        A.LLM_SYSTEM: PROVIDER,
        A.LLM_MESSAGES: len(messages),
        A.LLM_TOOLS_OFFERED: len(request.get("tools") or []),
        A.SESSION_ID: tel.run_id,
        **_agent_attrs(scope),
        **_server_attrs(endpoint),
    }
    if request.get("temperature") is not None:
        attributes[A.REQUEST_TEMPERATURE] = float(request["temperature"])
    limit = request.get("max_completion_tokens") or request.get("max_tokens")
    if limit:
        attributes[A.REQUEST_MAX_TOKENS] = int(limit)
    if request.get("tool_choice"):
        attributes[A.LLM_TOOL_CHOICE] = str(request["tool_choice"])
    if request.get("reasoning_effort"):
        attributes[A.LLM_REASONING_EFFORT] = str(request["reasoning_effort"])
    if tel.capture:
        attributes.update(_json_input(tel, A.INPUT_MESSAGES, messages))
    span = tel.tracer.start_span(
        f"chat {model}", context=scope.context, kind=SpanKind.CLIENT, attributes=attributes
    )
    handle = LlmSpan(tel, span)
    error: BaseException | None = None
    try:
        yield handle
    except BaseException as exc:
        error = exc
        if handle.retries:
            span.set_attribute(A.LLM_RETRIES, handle.retries)
        raise
    finally:
        _close_with(tel, span, error)


def _server_attrs(endpoint: str | None) -> dict[str, Any]:
    """server.address/port from an endpoint label (host only: never credentials)."""
    if not endpoint:
        return {}
    parts = urlsplit(endpoint if "//" in endpoint else f"//{endpoint}")
    return _present({A.SERVER_ADDRESS: parts.hostname, A.SERVER_PORT: parts.port})
