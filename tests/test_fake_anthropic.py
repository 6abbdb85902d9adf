"""The fake server's Anthropic Messages API path (POST /v1/messages), over real HTTP."""

from __future__ import annotations

import httpx

from tests.fakes.anthropic_messages import anthropic_context_overflow, anthropic_rate_limit
from tests.fakes.openai_server import FakeOpenAIServer, reply, tool_call

REQUEST = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 100,
    "messages": [{"role": "user", "content": "read it"}],
}


def _post(fake: FakeOpenAIServer, body: dict) -> httpx.Response:
    return httpx.post(f"{fake.base_url}/messages", json=body, timeout=5)


def test_replies_come_as_messages_with_text_and_tool_use_blocks_and_usage() -> None:
    with FakeOpenAIServer() as fake:
        fake.script([tool_call("read_file", {"path": "/a.txt"}, id="call_1"), reply("done")])
        first = _post(fake, REQUEST).json()
        second = _post(fake, REQUEST).json()
    assert first["type"] == "message" and first["stop_reason"] == "tool_use"
    (block,) = first["content"]
    assert block["type"] == "tool_use" and block["name"] == "read_file"
    assert block["input"] == {"path": "/a.txt"} and block["id"].startswith("toolu_")
    assert first["usage"]["input_tokens"] > 0 and first["usage"]["output_tokens"] > 0
    assert first["model"] == "claude-sonnet-4-5"
    assert second["stop_reason"] == "end_turn"
    assert second["content"] == [{"type": "text", "text": "done"}]


def test_faults_come_as_anthropic_errors() -> None:
    with FakeOpenAIServer() as fake:
        fake.script([anthropic_rate_limit(), anthropic_context_overflow(201000)])
        limited = _post(fake, REQUEST)
        overflow = _post(fake, REQUEST)
        exhausted = _post(fake, REQUEST)
        streamed = _post(fake, {**REQUEST, "stream": True})
    assert limited.status_code == 429
    assert limited.json()["error"]["type"] == "rate_limit_error"
    assert overflow.status_code == 400
    assert overflow.json() == {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": "prompt is too long: 201000 tokens > 200000 maximum",
        },
    }
    assert exhausted.status_code == 500 and exhausted.json()["type"] == "error"
    assert streamed.status_code == 400 and "streaming" in streamed.json()["error"]["message"]
