"""The provider assembles streamed replies, passes settings through and counts usage."""

from __future__ import annotations

import json

import anyio
import pytest

from halo_mcp.engine.errors import NoApiKeyError
from halo_mcp.engine.provider import ChatProvider
from halo_mcp.engine.settings import EngineSettings
from tests.fakes.openai_server import last_message, reply, tool_call, tool_calls, usage

USER = [{"role": "user", "content": "find the failures"}]
TOOLS = [
    {
        "type": "function",
        "function": {"name": "overview", "parameters": {"type": "object", "properties": {}}},
    }
]


@pytest.fixture
async def provider(engine_env):
    provider = ChatProvider(engine_env.settings())
    yield provider
    await provider.aclose()


async def test_streamed_text_is_assembled_and_relayed_as_deltas(fake_openai, provider):
    fake_openai.script([reply("The harness retries tool errors forever.")])
    seen: list[str] = []
    completion = await provider.complete(USER, on_text=seen.append)
    assert completion.content == "The harness retries tool errors forever."
    assert "".join(seen) == completion.content and len(seen) > 1
    assert completion.tool_calls == [] and completion.refusal is None
    assert completion.finish_reason == "stop"
    assert completion.model == "fake-model"
    assert completion.assistant_message() == {"role": "assistant", "content": completion.content}


async def test_parallel_tool_calls_come_back_whole_and_in_order(fake_openai, provider):
    fake_openai.script(
        [
            tool_calls(
                [
                    ("overview", {}, "call_a"),
                    ("search", {"pattern": "timeout", "trace_id": "t1"}, "call_b"),
                    ("view", '{"trace_id": "t2"', "call_c"),  # malformed: kept raw
                ],
                text="Let me look.",
            )
        ]
    )
    completion = await provider.complete(USER, tools=TOOLS)
    assert [c.id for c in completion.tool_calls] == ["call_a", "call_b", "call_c"]
    assert [c.name for c in completion.tool_calls] == ["overview", "search", "view"]
    assert json.loads(completion.tool_calls[1].arguments) == {
        "pattern": "timeout",
        "trace_id": "t1",
    }
    assert completion.tool_calls[2].arguments == '{"trace_id": "t2"'
    assert completion.finish_reason == "tool_calls"
    message = completion.assistant_message()
    assert message["content"] == "Let me look."
    assert message["tool_calls"][0] == {
        "id": "call_a",
        "type": "function",
        "function": {"name": "overview", "arguments": "{}"},
    }


async def test_usage_is_counted_per_call_and_cumulatively(fake_openai, provider):
    fake_openai.script(
        [
            tool_call(
                "overview", {}, usage=usage(1000, 50, cached_tokens=400, reasoning_tokens=20)
            ),
            reply("done", usage=usage(1500, 30, cached_tokens=1000, reasoning_tokens=10)),
        ]
    )
    first = await provider.complete(USER, tools=TOOLS)
    second = await provider.complete(USER)
    assert first.usage.model_dump() == {
        "input_tokens": 1000,
        "cached_input_tokens": 400,
        "output_tokens": 50,
        "reasoning_tokens": 20,
        "calls": 1,
        "retries": 0,
    }
    assert second.usage.input_tokens == 1500
    assert provider.usage.model_dump() == {
        "input_tokens": 2500,
        "cached_input_tokens": 1400,
        "output_tokens": 80,
        "reasoning_tokens": 30,
        "calls": 2,
        "retries": 0,
    }


async def test_the_request_carries_the_settings_that_were_set(engine_env, fake_openai):
    settings = engine_env.settings(
        extra_headers={"X-Halo-Team": "evals"},
        temperature=0.2,
        reasoning_effort="low",
        parallel_tool_calls=False,
        max_output_tokens=800,
    )
    provider = ChatProvider(settings)
    fake_openai.script([reply("ok"), reply("ok")])
    await provider.complete(USER, tools=TOOLS, tool_choice="none", model="other-model")
    await provider.complete(USER, max_output_tokens=50)
    await provider.aclose()
    first, second = (r.json for r in fake_openai.chat_requests)
    assert first["model"] == "other-model" and second["model"] == "fake-model"
    assert first["stream"] is True and first["stream_options"] == {"include_usage": True}
    assert first["tools"] == TOOLS and first["tool_choice"] == "none"
    assert first["parallel_tool_calls"] is False
    assert first["temperature"] == 0.2 and first["reasoning_effort"] == "low"
    assert first["max_tokens"] == 800 and second["max_tokens"] == 50
    assert "tools" not in second and "tool_choice" not in second
    assert "parallel_tool_calls" not in second
    for recorded in fake_openai.chat_requests:
        assert recorded.headers["x-halo-team"] == "evals"
        assert recorded.headers["authorization"] == f"Bearer {engine_env.api_key}"


async def test_unset_options_are_left_out_of_the_request(fake_openai, provider):
    fake_openai.script([reply("ok")])
    await provider.complete(USER, tools=TOOLS)
    sent = fake_openai.chat_requests[0].json
    for absent in ("temperature", "reasoning_effort", "max_tokens", "max_completion_tokens"):
        assert absent not in sent
    assert "parallel_tool_calls" not in sent  # on by default in the API
    assert "tool_choice" not in sent


def test_without_a_key_or_base_url_the_error_says_how_to_configure(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(NoApiKeyError) as error:
        ChatProvider(EngineSettings.from_env())
    for hint in ("OPENAI_API_KEY", "--api-key", "--base-url"):
        assert hint in str(error.value)


async def test_a_local_server_without_a_key_gets_a_placeholder_key(fake_openai, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    provider = ChatProvider(EngineSettings(base_url=fake_openai.base_url, model="local"))
    fake_openai.script([reply("hi from a local model")])
    completion = await provider.complete(USER)
    await provider.aclose()
    assert completion.content == "hi from a local model"
    assert fake_openai.chat_requests[0].headers["authorization"].startswith("Bearer ")


async def test_many_agents_calling_at_once_each_get_their_own_answer(fake_openai, provider):
    fake_openai.responder = lambda req: reply(f"answer to {last_message(req)['content']}")
    answers: dict[int, str | None] = {}

    async def ask(i: int) -> None:
        completion = await provider.complete([{"role": "user", "content": f"agent {i}"}])
        answers[i] = completion.content

    async with anyio.create_task_group() as tg:
        for i in range(24):
            tg.start_soon(ask, i)
    assert answers == {i: f"answer to agent {i}" for i in range(24)}
    assert provider.usage.calls == 24 and provider.usage.retries == 0
