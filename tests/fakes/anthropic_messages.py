"""The Anthropic Messages API shape for the fake server (POST /v1/messages).

The same scripted steps as the Chat Completions path (tests/fakes/openai_server.py), written
as Anthropic answers them: a message with `text` and `tool_use` content blocks, `stop_reason`
and `usage` (input/output tokens); errors as `{"type": "error", "error": {"type", "message"}}`
(429 `rate_limit_error`, 400 `invalid_request_error` "prompt is too long" for a context
overflow). Streaming is not modelled: a streamed request gets a 400 saying so.
"""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.fakes.openai_server import Reply, Status

#: Anthropic's error type for each HTTP status it uses.
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def anthropic_error(code: int, message: str, error_type: str | None = None) -> Status:
    """An HTTP error with Anthropic's error body."""
    from tests.fakes.openai_server import Status

    kind = error_type or ERROR_TYPES.get(code, "api_error")
    body = {"type": "error", "error": {"type": kind, "message": message}}
    return Status(code=code, body=body, headers={"request-id": f"req_{uuid.uuid4().hex[:24]}"})


def anthropic_rate_limit(message: str | None = None) -> Status:
    """HTTP 429 rate_limit_error, as Anthropic sends it."""
    text = message or (
        "This request would exceed the rate limit for your organization of 50 requests "
        "per minute. Please reduce the prompt length or the maximum tokens requested, or "
        "try again later."
    )
    return anthropic_error(429, text)


def anthropic_context_overflow(requested: int = 210000, limit: int = 200000) -> Status:
    """HTTP 400 invalid_request_error for a prompt over the context window."""
    return anthropic_error(400, f"prompt is too long: {requested} tokens > {limit} maximum")


def is_error_body(body: Any) -> bool:
    return isinstance(body, dict) and body.get("type") == "error"


def as_anthropic_error(step: Status) -> dict:
    """An error body in Anthropic's shape (OpenAI-shaped ones are converted)."""
    if is_error_body(step.body):
        return step.body  # type: ignore[return-value]
    inner = step.body.get("error") if isinstance(step.body, dict) else None
    message = (inner or {}).get("message") if isinstance(inner, dict) else None
    kind = ERROR_TYPES.get(step.code, "api_error")
    return {"type": "error", "error": {"type": kind, "message": message or str(step.body)}}


def message(rep: Reply, body: dict) -> dict:
    """A Messages API response for a scripted reply."""
    content: list[dict[str, Any]] = []
    if rep.content:
        content.append({"type": "text", "text": rep.content})
    for call in rep.tool_calls:
        content.append(
            {
                "type": "tool_use",
                "id": call.id if call.id.startswith("toolu_") else f"toolu_{call.id}",
                "name": call.name,
                "input": json.loads(call.arguments or "{}"),
            }
        )
    prompt = max(1, len(json.dumps(body.get("messages", []))) // 4)
    out = (rep.content or "") + "".join(c.name + c.arguments for c in rep.tool_calls)
    return {
        "id": f"msg_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": rep.model or body.get("model") or "fake-model",
        "content": content,
        "stop_reason": rep.finish_reason or ("tool_use" if rep.tool_calls else "end_turn"),
        "stop_sequence": None,
        "usage": {
            "input_tokens": prompt,
            "output_tokens": max(1, len(out) // 4),
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
    }
