"""Transient provider faults are retried; the rest end with a clear, key-free error."""

from __future__ import annotations

import logging

import anyio
import pytest

from halo_mcp.engine.errors import ProviderError
from halo_mcp.engine.provider import ChatProvider, ContextLengthError, InvalidRequestError
from tests.fakes.openai_server import (
    context_length_error,
    cut_stream,
    delay,
    refusal,
    reply,
    status,
    stream_error,
    tool_call,
    usage,
)

USER = [{"role": "user", "content": "find the failures"}]


@pytest.fixture
def delays() -> list[float]:
    """The backoff delays the providers made by `make_provider` chose (they still sleep)."""
    return []


@pytest.fixture
async def make_provider(engine_env, delays):
    made: list[ChatProvider] = []

    async def record(seconds: float) -> None:
        delays.append(seconds)
        await anyio.sleep(min(seconds, 0.05))

    def make(**overrides: object) -> ChatProvider:
        made.append(ChatProvider(engine_env.settings(**overrides), sleep=record))
        return made[-1]

    yield make
    for provider in made:
        await provider.aclose()


async def test_a_rate_limit_is_retried_after_the_servers_retry_after(
    fake_openai, make_provider, delays
):
    fake_openai.script([status(429, retry_after=0.2), reply("after the rate limit")])
    provider = make_provider()
    completion = await provider.complete(USER)
    assert completion.content == "after the rate limit"
    assert delays == [0.2]
    assert len(fake_openai.chat_requests) == 2
    assert completion.usage.retries == 1 and completion.usage.calls == 1
    assert provider.usage.retries == 1


async def test_retry_after_ms_is_preferred_and_long_waits_are_capped(
    fake_openai, make_provider, delays
):
    fake_openai.script(
        [status(429, retry_after=9, retry_after_ms=150), status(429, retry_after=3600), reply("ok")]
    )
    completion = await make_provider(retry_after_cap_s=0.5).complete(USER)
    assert completion.content == "ok"
    assert delays == [0.15, 0.5]


@pytest.mark.parametrize("code", [500, 502, 503])
async def test_server_errors_are_retried_with_backoff(fake_openai, make_provider, delays, code):
    fake_openai.script([status(code), status(code), reply("recovered")])
    completion = await make_provider().complete(USER)
    assert completion.content == "recovered"
    assert completion.usage.retries == 2
    assert len(delays) == 2 and all(d > 0 for d in delays)


async def test_a_slow_reply_times_out_and_the_retry_succeeds(fake_openai, make_provider):
    fake_openai.script([delay(30, then=reply("too late")), reply("in time")])
    completion = await make_provider(request_timeout_s=1.0).complete(USER)
    assert completion.content == "in time"
    assert completion.usage.retries == 1
    assert len(fake_openai.chat_requests) == 2


async def test_a_stream_cut_mid_reply_is_retried_without_duplicating_text(
    fake_openai, make_provider
):
    text = "Tool errors are swallowed by the retry wrapper in most traces."
    fake_openai.script(
        [
            cut_stream(after_chunks=4, then=reply(text)),
            cut_stream(after_chunks=3, then=tool_call("overview", {"top": 5})),
            reply(text, usage=usage(100, 20)),
        ]
    )
    seen: list[str] = []
    completion = await make_provider().complete(USER, on_text=seen.append)
    assert completion.content == text
    assert completion.tool_calls == []
    assert "".join(seen) == text  # the replayed prefix is not shown twice
    assert completion.usage.retries == 2
    assert completion.usage.input_tokens == 100


async def test_when_retries_run_out_the_error_is_clear_and_holds_no_key(
    engine_env, fake_openai, make_provider, caplog
):
    caplog.set_level(logging.DEBUG)
    fake_openai.script([status(503, f"overloaded for key {engine_env.api_key}")] * 3)
    provider = make_provider(max_retries=2)
    with pytest.raises(ProviderError) as error:
        await provider.complete(USER)
    message = str(error.value)
    assert "failed 3 times" in message and "HTTP 503" in message
    assert "127.0.0.1" in message
    assert engine_env.api_key not in message
    assert engine_env.api_key not in caplog.text
    assert "retry 2/2" in caplog.text
    assert len(fake_openai.chat_requests) == 3 and not fake_openai.unscripted_calls
    assert provider.usage.calls == 1 and provider.usage.retries == 2


async def test_a_context_length_error_is_raised_at_once_for_compaction(fake_openai, make_provider):
    fake_openai.script([context_length_error()])
    with pytest.raises(ContextLengthError, match="maximum context length"):
        await make_provider().complete(USER)
    assert len(fake_openai.chat_requests) == 1


@pytest.mark.parametrize("code", [400, 404, 422])
async def test_an_invalid_request_is_not_retried(fake_openai, make_provider, code):
    fake_openai.script([status(code, "Unsupported value: 'temperature'")])
    with pytest.raises(InvalidRequestError, match="temperature") as error:
        await make_provider().complete(USER)
    assert not isinstance(error.value, ContextLengthError)
    assert f"HTTP {code}" in str(error.value)
    assert len(fake_openai.chat_requests) == 1


async def test_rejected_credentials_point_at_the_key_settings(
    engine_env, fake_openai, make_provider
):
    fake_openai.script([status(401, f"Incorrect API key provided: {engine_env.api_key}")])
    with pytest.raises(ProviderError) as error:
        await make_provider().complete(USER)
    assert "OPENAI_API_KEY" in str(error.value) and "--api-key" in str(error.value)
    assert engine_env.api_key not in str(error.value)
    assert len(fake_openai.chat_requests) == 1


async def test_a_refusal_is_retried_then_returned_with_the_refusal(fake_openai, make_provider):
    fake_openai.script([refusal("I can't help with that."), refusal("I still can't.")])
    completion = await make_provider(refusal_retries=1).complete(USER)
    assert completion.refusal == "I still can't."
    assert completion.content is None
    assert completion.usage.retries == 1
    assert completion.assistant_message()["content"] == "I still can't."
    assert len(fake_openai.chat_requests) == 2


async def test_a_refusal_followed_by_an_answer_returns_the_answer(fake_openai, make_provider):
    fake_openai.script([reply("", finish_reason="content_filter"), reply("an answer")])
    completion = await make_provider(refusal_retries=2).complete(USER)
    assert completion.content == "an answer" and completion.refusal is None
    assert completion.usage.retries == 1


async def test_with_no_refusal_retries_the_first_refusal_is_returned(fake_openai, make_provider):
    fake_openai.script([refusal("No.")])
    completion = await make_provider(refusal_retries=0).complete(USER)
    assert completion.refusal == "No."
    assert len(fake_openai.chat_requests) == 1


async def test_a_connection_refused_is_retried_then_reported(engine_env, make_provider):
    fake_openai_url = engine_env.server.base_url
    engine_env.server.stop()
    provider = make_provider(max_retries=1, base_url=fake_openai_url)
    with pytest.raises(ProviderError, match="connection error"):
        await provider.complete(USER)
    assert provider.usage.retries == 1


async def test_cancelling_a_call_stops_the_pending_request(fake_openai, make_provider):
    fake_openai.script([delay(30, then=reply("never seen"))])
    provider = make_provider()
    with anyio.move_on_after(0.3) as scope:
        await provider.complete(USER)
    assert scope.cancelled_caught
    assert provider.usage.calls == 1 and provider.usage.retries == 0
    assert len(fake_openai.chat_requests) == 1


async def test_an_error_event_inside_the_stream_is_retried(fake_openai, make_provider):
    fake_openai.script([stream_error(after_chunks=2), reply("second try")])
    completion = await make_provider().complete(USER)
    assert completion.content == "second try"
    assert completion.usage.retries == 1


async def test_a_context_length_error_inside_the_stream_is_not_retried(fake_openai, make_provider):
    fake_openai.script(
        [stream_error("maximum context length exceeded", code="context_length_exceeded")]
    )
    with pytest.raises(ContextLengthError):
        await make_provider().complete(USER)
    assert len(fake_openai.chat_requests) == 1
