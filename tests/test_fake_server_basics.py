"""The fake OpenAI server speaks the real protocol: the official client understands it."""

from __future__ import annotations

import json
import subprocess
import sys

import openai
import pytest

from tests.fakes.openai_server import (
    SCRIPT_EXHAUSTED,
    FakeOpenAIServer,
    cut_stream,
    last_message,
    reply,
    status,
    system_prompt,
    tool_call,
    tool_calls,
    tool_names,
    usage,
)


def _client(server: FakeOpenAIServer) -> openai.OpenAI:
    return openai.OpenAI(api_key="sk-test-x", base_url=server.base_url, max_retries=0)


def _ask(client: openai.OpenAI, text: str = "hi", **kwargs: object):
    return client.chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": text}], **kwargs
    )


def test_a_scripted_streamed_reply_arrives_in_several_chunks_with_usage_last(fake_openai):
    fake_openai.script([reply("hello there, streaming world", usage=usage(10, 5))])
    stream = _ask(_client(fake_openai), stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "hello there, streaming world"
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) > 2
    assert chunks[-1].choices == [] and chunks[-1].usage.prompt_tokens == 10
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"


def test_parallel_tool_calls_stream_their_arguments_across_chunks(fake_openai):
    fake_openai.script([tool_calls([("search", {"q": "error"}), ("view", '{"id": ')])])
    chunks = list(_ask(_client(fake_openai), stream=True))
    parts = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    args = {0: "", 1: ""}
    for part in parts:
        args[part.index] += part.function.arguments or ""
    assert json.loads(args[0]) == {"q": "error"}
    assert args[1] == '{"id": '  # malformed arguments are sent as given
    assert len([p for p in parts if p.index == 0]) > 2
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_a_non_streamed_request_gets_a_whole_completion(fake_openai):
    fake_openai.script([tool_call("overview", {}, id="call_1", text="looking")])
    completion = _ask(_client(fake_openai))
    message = completion.choices[0].message
    assert message.content == "looking"
    assert message.tool_calls[0].id == "call_1"
    assert message.tool_calls[0].function.arguments == "{}"
    assert completion.usage.total_tokens > 0


def test_an_unscripted_call_fails_loudly_and_is_recorded(fake_openai):
    with pytest.raises(openai.InternalServerError, match=SCRIPT_EXHAUSTED):
        _ask(_client(fake_openai))
    assert len(fake_openai.unscripted_calls) == 1
    assert fake_openai.unscripted_calls[0].messages[-1]["content"] == "hi"


def test_error_steps_carry_status_headers_and_openai_error_bodies(fake_openai):
    fake_openai.script([status(429, retry_after=0.2), status(401, "bad key")])
    client = _client(fake_openai)
    with pytest.raises(openai.RateLimitError) as rate_limited:
        _ask(client)
    assert rate_limited.value.response.headers["retry-after"] == "0.2"
    with pytest.raises(openai.AuthenticationError, match="bad key"):
        _ask(client)


def test_a_cut_stream_is_an_error_for_the_client_not_a_short_reply(fake_openai):
    fake_openai.script([cut_stream(after_chunks=2)])
    with pytest.raises(openai.APIConnectionError):
        list(_ask(_client(fake_openai), stream=True))


def test_routes_and_responders_answer_parallel_agents_by_their_prompts(fake_openai):
    fake_openai.script([reply("from the main script")])
    fake_openai.route(lambda req: "child" in system_prompt(req), [reply("child answer")])
    client = _client(fake_openai)
    child = client.chat.completions.create(
        model="m",
        messages=[
            {"role": "system", "content": "you are a child"},
            {"role": "user", "content": "x"},
        ],
    )
    assert child.choices[0].message.content == "child answer"
    assert _ask(client).choices[0].message.content == "from the main script"
    fake_openai.responder = lambda req: reply(f"echo {last_message(req)['content']}")
    assert _ask(client, "ping").choices[0].message.content == "echo ping"
    assert fake_openai.pending() == 0


def test_requests_are_recorded_with_headers_and_tools(fake_openai):
    fake_openai.script([reply("ok")])
    client = openai.OpenAI(
        api_key="sk-test-x", base_url=fake_openai.base_url, default_headers={"X-Team": "halo"}
    )
    tools = [{"type": "function", "function": {"name": "overview", "parameters": {}}}]
    _ask(client, tools=tools)
    (recorded,) = fake_openai.chat_requests
    assert recorded.headers["x-team"] == "halo"
    assert recorded.headers["authorization"] == "Bearer sk-test-x"
    assert tool_names(recorded) == ["overview"]


def test_the_model_list_is_served(fake_openai):
    ids = [m.id for m in _client(fake_openai).models.list().data]
    assert "fake-model" in ids


def test_a_subprocess_can_reach_the_server(fake_openai):
    fake_openai.script([reply("from another process")])
    code = (
        "import openai,sys\n"
        "c = openai.OpenAI(api_key='sk-test-x', base_url=sys.argv[1])\n"
        "r = c.chat.completions.create(model='m', messages=[{'role':'user','content':'x'}])\n"
        "print(r.choices[0].message.content)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, fake_openai.base_url],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.strip() == "from another process"


def test_a_responder_that_raises_gets_a_500_and_is_recorded(fake_openai):
    fake_openai.responder = lambda req: 1 / 0
    with pytest.raises(openai.InternalServerError, match="responder raised"):
        _ask(_client(fake_openai))
    assert isinstance(fake_openai.responder_errors[0], ZeroDivisionError)
