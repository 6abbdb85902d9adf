"""The LLM provider client: streamed Chat Completions with tool calls, retries and usage.

Any OpenAI-compatible endpoint through `openai.AsyncOpenAI` (its own retries off: this
module owns the retry policy so every fault is counted and logged without secrets).

Retried with jittered exponential backoff, up to `settings.max_retries`: 429 (honouring
Retry-After / retry-after-ms, capped), 5xx, timeouts, connection errors and streams cut
mid-response. Not retried: context-length errors (ContextLengthError: the caller compacts
and tries once more) and other invalid requests (InvalidRequestError / ProviderError).
Refusals are retried up to `settings.refusal_retries`, then returned with `refusal` set.

Each call is a `chat` span when the run has telemetry (halo_mcp.engine.telemetry): models,
tokens (cached, reasoning), retries with their reasons, finish reason, errors.

Backoff knobs are settings (`retry_base_delay_s`, `retry_after_cap_s`; from the environment:
HALO_RETRY_BASE_DELAY_S / HALO_RETRY_AFTER_CAP_S).
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx2
import openai

from halo_mcp.engine.errors import NoApiKeyError, ProviderError
from halo_mcp.engine.models import Usage
from halo_mcp.engine.settings import EngineSettings
from halo_mcp.engine.telemetry.spans import llm_span
from halo_mcp.redact import redact_urls_in
from halo_mcp.text import clip

log = logging.getLogger(__name__)

RETRY_MAX_DELAY_S = 30.0
PLACEHOLDER_API_KEY = "sk-no-key-required"  # local servers that ignore the key
ERROR_DETAIL_CHARS = 500

NO_KEY_MESSAGE = (
    "No LLM credentials: set OPENAI_API_KEY (or pass --api-key), or pass --base-url to "
    "use an OpenAI-compatible server that needs no key (e.g. a local model server)."
)

_CONTEXT_MARKERS = (
    "context_length_exceeded",
    "maximum context length",
    "context length",
    "context window",
    "prompt is too long",
    "too many tokens",
    "reduce the length",
)


class ContextLengthError(ProviderError):
    """The prompt is too long for the model: compact the context and try once more."""


class InvalidRequestError(ProviderError):
    """The provider rejected the request (400/404/422); retrying the same request won't help."""


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: str  # raw JSON text as the model sent it (may be invalid JSON!)


@dataclass
class Completion:
    content: str | None
    tool_calls: list[ToolCall]
    finish_reason: str | None
    refusal: str | None  # set when the model refused (after refusal retries ran out)
    usage: Usage  # this call only, including retries
    model: str

    def assistant_message(self) -> dict:
        """The Chat Completions assistant message to append to the history."""
        content = self.content
        if not content and self.refusal and not self.tool_calls:
            content = self.refusal  # keep the refusal visible without a non-standard field
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if self.tool_calls:
            message["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments or "{}"},
                }
                for call in self.tool_calls
            ]
        elif content is None:
            message["content"] = ""
        return message


#: The explicit prompt-cache marker of Anthropic models (also taken by gateways that put
#: them behind the Chat Completions API).
CACHE_CONTROL = {"type": "ephemeral"}


def with_cache_breakpoints(messages: list[dict]) -> list[dict]:
    """The messages with explicit cache breakpoints: on the system prompt (stable for the
    whole run) and on the last message (so the next turn reads everything before it from
    the cache). Content becomes a list of text parts there; the rest is unchanged."""
    out = list(messages)
    marks = {0, len(out) - 1} if out else set()
    for i in sorted(marks):
        message = out[i]
        content = message.get("content")
        if message.get("role") == "assistant" or not isinstance(content, str) or not content:
            continue
        part = {"type": "text", "text": content, "cache_control": dict(CACHE_CONTROL)}
        out[i] = {**message, "content": [part]}
    return out


class _Retryable(Exception):
    """A failed attempt worth retrying; `delay_s` is the server's Retry-After, if any."""

    def __init__(self, reason: str, delay_s: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay_s = delay_s


@dataclass
class _Attempt:
    """What one streamed attempt produced."""

    text: str = ""
    refusal: str = ""
    calls: dict[int, ToolCall] = field(default_factory=dict)
    finish_reason: str | None = None
    usage: Usage = field(default_factory=Usage)
    model: str = ""


class _TextRelay:
    """Forwards streamed text to `on_text` without repeating what an earlier (cut) attempt
    already showed when the retry streams the same text again."""

    def __init__(self, on_text: Callable[[str], None] | None) -> None:
        self.on_text = on_text
        self.shown = ""
        self.text = ""

    def new_attempt(self) -> None:
        self.text = ""

    def feed(self, delta: str) -> None:
        self.text += delta
        if self.on_text is None:
            return
        if self.text.startswith(self.shown):
            new, self.shown = self.text[len(self.shown) :], self.text
            if new:
                self.on_text(new)
        elif not self.shown.startswith(self.text):  # diverged from what was shown
            self.shown = self.text
            self.on_text(delta)


class ChatProvider:
    """One client per run, shared by all its agents. `usage` is cumulative over calls."""

    def __init__(
        self,
        settings: EngineSettings,
        *,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        """`sleep` waits out a backoff delay (tests pass one that records the delays)."""
        key = settings.api_key.get_secret_value() if settings.api_key else ""
        if not key and not settings.base_url:
            raise NoApiKeyError(NO_KEY_MESSAGE)
        self.settings = settings
        self._sleep = sleep
        self.usage = Usage()
        self._secrets = [s for s in [key, *settings.extra_headers.values()] if len(s) >= 6]
        self._endpoint = _endpoint_label(settings.base_url)
        self._client = openai.AsyncOpenAI(
            api_key=key or PLACEHOLDER_API_KEY,
            base_url=settings.base_url,
            default_headers=dict(settings.extra_headers),
            max_retries=0,
            timeout=settings.request_timeout_s,
        )

    async def aclose(self) -> None:
        await self._client.close()

    @staticmethod
    def import_client() -> None:
        """Import what the first client and its first request import (the HTTP transport,
        HTTP/2, the chat resources: about 100 modules). A server calls this before it
        listens: in the middle of other clients' calls it would hold the GIL for tens of
        milliseconds. Makes no connection."""
        client = openai.AsyncOpenAI(api_key=PLACEHOLDER_API_KEY, base_url="http://127.0.0.1:9")
        client.chat.completions  # noqa: B018  (the attribute imports the resource modules)

    async def complete(
        self,
        messages: list[dict],
        *,
        tools: list[dict] | None = None,
        tool_choice: str | None = None,
        model: str | None = None,
        max_output_tokens: int | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> Completion:
        """One assistant turn, retried through transient faults and refusals."""
        request = self._request(messages, tools, tool_choice, model, max_output_tokens)
        usage = Usage(calls=1)
        relay = _TextRelay(on_text)
        faults = refusals = 0
        with llm_span(request, self._endpoint) as span:  # telemetry (no-op when off)
            try:
                while True:
                    relay.new_attempt()
                    try:
                        attempt = await self._attempt(request, relay)
                    except _Retryable as fault:
                        faults += 1
                        if faults > self.settings.max_retries:
                            raise ProviderError(self._exhausted(request["model"], fault)) from None
                        usage.retries += 1
                        delay = _backoff(self.settings, faults, fault.delay_s)
                        span.retry(self._scrub(fault.reason), faults, delay)
                        log.warning(
                            "LLM call to %s failed (%s); retry %d/%d in %.2fs",
                            self._endpoint,
                            self._scrub(fault.reason),
                            faults,
                            self.settings.max_retries,
                            delay,
                        )
                        await self._sleep(delay)
                        continue
                    usage.add(attempt.usage)
                    refusal = _refusal_of(attempt)
                    if refusal and refusals < self.settings.refusal_retries:
                        refusals += 1
                        usage.retries += 1
                        span.retry("the model refused", faults + refusals, 0.0)
                        log.warning("The model refused (%s); asking again", clip(refusal, 200)[0])
                        continue
                    completion = Completion(
                        content=attempt.text or None,
                        tool_calls=[attempt.calls[i] for i in sorted(attempt.calls)],
                        finish_reason=attempt.finish_reason,
                        refusal=refusal,
                        usage=usage,
                        model=attempt.model or request["model"],
                    )
                    span.finish(completion)
                    return completion
            finally:
                self.usage.add(usage)

    # -- one attempt

    def _request(
        self,
        messages: list[dict],
        tools: list[dict] | None,
        tool_choice: str | None,
        model: str | None,
        max_output_tokens: int | None,
    ) -> dict[str, Any]:
        s = self.settings
        if s.cache_control:
            messages = with_cache_breakpoints(messages)
        request: dict[str, Any] = {
            "model": model or s.model,
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if tools:
            request["tools"] = tools
            if tool_choice:
                request["tool_choice"] = tool_choice
            if not s.parallel_tool_calls:  # true is the API default; some models reject it
                request["parallel_tool_calls"] = False
        if s.temperature is not None:
            request["temperature"] = s.temperature
        if s.reasoning_effort:
            request["reasoning_effort"] = s.reasoning_effort
        limit = max_output_tokens or s.max_output_tokens
        if limit:
            # OpenAI's reasoning models only take max_completion_tokens; many
            # compatible servers only know max_tokens.
            key = "max_completion_tokens" if _is_openai(s.base_url) else "max_tokens"
            request[key] = limit
        return request

    async def _attempt(self, request: dict[str, Any], relay: _TextRelay) -> _Attempt:
        result = _Attempt()
        try:
            stream = await self._client.chat.completions.create(**request)
            try:
                async for chunk in stream:
                    _absorb(result, chunk, relay)
            finally:
                await stream.close()
        except (openai.APITimeoutError, httpx2.TimeoutException):
            raise _Retryable(f"timed out after {self.settings.request_timeout_s:g}s") from None
        except (openai.APIConnectionError, httpx2.TransportError) as exc:
            raise _Retryable(f"connection error: {_cause(exc)}") from None
        except openai.APIStatusError as exc:
            raise self._status_error(exc) from None
        except openai.APIError as exc:  # an error event inside the stream
            message = self._scrub(str(exc.message or exc))
            if _is_context_length(message, getattr(exc, "code", None)):
                raise ContextLengthError(self._context_message(message)) from None
            raise _Retryable(f"error in the response stream: {message}") from None
        if result.finish_reason is None:
            raise _Retryable("the response stream ended before the reply was complete")
        return result

    # -- errors

    def _status_error(self, exc: openai.APIStatusError) -> Exception:
        code = exc.status_code
        detail = self._scrub(clip(_error_detail(exc), ERROR_DETAIL_CHARS)[0])
        if code == 429:
            return _Retryable(f"HTTP 429 rate limited: {detail}", _retry_after(exc.response))
        if code >= 500 or code in (408, 409):
            return _Retryable(f"HTTP {code}: {detail}", _retry_after(exc.response))
        if code == 413 or _is_context_length(detail, _error_code(exc)):
            return ContextLengthError(self._context_message(detail))
        if code in (401, 403):
            return ProviderError(
                f"The LLM provider at {self._endpoint} refused the credentials (HTTP {code}: "
                f"{detail}). Check OPENAI_API_KEY / --api-key and --base-url."
            )
        if code == 404:
            return InvalidRequestError(
                f"The LLM provider at {self._endpoint} answered HTTP 404 ({detail}). "
                "Check the model name (--model) and --base-url (it usually ends in /v1)."
            )
        return InvalidRequestError(
            f"The LLM provider at {self._endpoint} rejected the request (HTTP {code}: "
            f"{detail}). Check the model name and settings (temperature, reasoning effort, "
            "max output tokens) for this model."
        )

    def _context_message(self, detail: str) -> str:
        return (
            f"The prompt is too long for the model ({detail}). Compact the context or use a "
            "model with a larger context window."
        )

    def _exhausted(self, model: str, fault: _Retryable) -> str:
        attempts = self.settings.max_retries + 1
        return (
            f"The LLM provider at {self._endpoint} (model {model}) failed {attempts} times "
            f"in a row; last error: {self._scrub(fault.reason)}. Check that the endpoint is "
            "up and the model name is right, then try again (or raise max_retries)."
        )

    def _scrub(self, text: str) -> str:
        """Remove every configured secret from a message before it is shown or logged."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


# ------------------------------------------------------------------------ helpers


def _absorb(result: _Attempt, chunk: Any, relay: _TextRelay) -> None:
    """Fold one streamed chunk into the attempt: text, refusal, tool-call deltas, usage."""
    if getattr(chunk, "model", None):
        result.model = chunk.model
    if getattr(chunk, "usage", None):
        result.usage = _usage_of(chunk.usage)
    for choice in chunk.choices or []:
        delta = choice.delta
        if delta is not None:
            if delta.content:
                result.text += delta.content
                relay.feed(delta.content)
            if getattr(delta, "refusal", None):
                result.refusal += delta.refusal
            for part in delta.tool_calls or []:
                _absorb_tool_call(result.calls, part)
        if choice.finish_reason:
            result.finish_reason = choice.finish_reason


def _absorb_tool_call(calls: dict[int, ToolCall], part: Any) -> None:
    index = part.index if part.index is not None else len(calls)
    call = calls.get(index)
    if call is None:
        call = calls[index] = ToolCall(id="", name="", arguments="")
    if part.id and not call.id:
        call.id = part.id
    fn = part.function
    if fn is not None:
        if fn.name and fn.name != call.name:
            call.name = fn.name if not call.name else call.name + fn.name
        if fn.arguments:
            call.arguments += fn.arguments
    if not call.id:
        call.id = f"call_{uuid.uuid4().hex[:16]}"  # some servers send no ids


def _usage_of(raw: Any) -> Usage:
    prompt_details = getattr(raw, "prompt_tokens_details", None)
    completion_details = getattr(raw, "completion_tokens_details", None)
    return Usage(
        input_tokens=raw.prompt_tokens or 0,
        cached_input_tokens=getattr(prompt_details, "cached_tokens", None) or 0,
        output_tokens=raw.completion_tokens or 0,
        reasoning_tokens=getattr(completion_details, "reasoning_tokens", None) or 0,
    )


def _refusal_of(attempt: _Attempt) -> str | None:
    if attempt.refusal:
        return attempt.refusal
    if attempt.finish_reason == "content_filter":
        return "The provider's content filter stopped the reply (finish_reason=content_filter)."
    return None


def _backoff(settings: EngineSettings, failures: int, retry_after: float | None) -> float:
    """Server-requested delay (capped) if given, else jittered exponential backoff."""
    if retry_after is not None:
        return max(0.0, min(retry_after, settings.retry_after_cap_s))
    ceiling = min(RETRY_MAX_DELAY_S, settings.retry_base_delay_s * 2 ** (failures - 1))
    return ceiling * random.uniform(0.5, 1.0)


def _retry_after(response: httpx2.Response | None) -> float | None:
    """Seconds from retry-after-ms, or Retry-After as seconds or an HTTP date."""
    if response is None:
        return None
    headers = response.headers
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return float(raw_ms) / 1000
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _error_detail(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str):
            return error
    try:
        text = exc.response.text
    except Exception:  # body not readable (stream already closed)
        text = ""
    return text or exc.message or f"HTTP {exc.status_code}"


def _error_code(exc: openai.APIStatusError) -> str | None:
    code = getattr(exc, "code", None)
    if code:
        return str(code)
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        value = body["error"].get("code")
        return str(value) if value else None
    return None


def _is_context_length(message: str, code: str | None) -> bool:
    if code == "context_length_exceeded":
        return True
    lowered = message.lower()
    return any(marker in lowered for marker in _CONTEXT_MARKERS)


def _cause(exc: BaseException) -> str:
    """The underlying network error, e.g. 'peer closed connection ...'."""
    root = exc.__cause__ or exc.__context__ or exc
    text = str(root) or type(root).__name__
    return clip(redact_urls_in(text), 200)[0]


def _endpoint_label(base_url: str | None) -> str:
    """Scheme://host[:port] only: no user info, path or query that might hold secrets."""
    if not base_url:
        return "api.openai.com"
    parts = urlsplit(base_url)
    host = parts.hostname or base_url
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}" if parts.scheme else host


def _is_openai(base_url: str | None) -> bool:
    if not base_url:
        return True
    host = urlsplit(base_url).hostname or ""
    return host.endswith("openai.com") or host.endswith("openai.azure.com")
