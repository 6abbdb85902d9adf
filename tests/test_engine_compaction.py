"""Long runs do not die of context overflow: older turns are summarized."""

from __future__ import annotations

import json

import pytest

from halo_mcp.engine import RunStatus, run_analysis
from halo_mcp.engine.compaction import SUMMARY_HEADER, compact, estimate_tokens
from halo_mcp.store import open_store
from tests.engine_helpers import error_span, finding_args, is_compaction, is_root, make_traces
from tests.fakes.openai_server import context_length_error, reply, tool_call


@pytest.fixture
def traces(tmp_path):
    return make_traces(tmp_path)


def _trace_ids(path, cache_dir, n):
    with open_store([path], cache_dir=cache_dir) as store:
        return [t.trace_id for t in store.query_traces(sort="-duration", limit=n).traces]


def _submit(trace_id, span_id):
    return tool_call(
        "submit_findings",
        {
            "findings": [
                finding_args(
                    "read_file errors",
                    {"tool_name": "read_file", "errors_only": True},
                    [{"trace_id": trace_id, "span_id": span_id}],
                )
            ]
        },
    )


async def test_a_long_run_compacts_its_context_and_the_next_request_is_smaller(engine_env, traces):
    server = engine_env.server
    trace_id, span_id = error_span(traces, engine_env.cache_dir)
    longest = _trace_ids(traces, engine_env.cache_dir, 1)[0]
    views = [tool_call("view_trace", {"trace_id": longest}) for _ in range(5)]
    summaries = [reply("SUMMARY: viewed five long traces; read_file fails.")] * 10
    server.route(is_compaction, summaries)
    server.route(is_root, [*views, _submit(trace_id, span_id)])
    settings = engine_env.settings(context_budget_tokens=3000, max_turns=10)
    run = await run_analysis([traces], "Find problems", settings)

    assert run.status == RunStatus.finished
    chat = server.chat_requests
    compactions = [i for i, r in enumerate(chat) if is_compaction(r.json)]
    assert compactions, "no compaction request was sent"
    first = compactions[0]
    before = [r for r in chat[:first] if is_root(r.json)][-1]
    after = next(r for r in chat[first + 1 :] if is_root(r.json))
    # History carried into the next turn (all but the new turn and the budget note)
    # is smaller than the history of the turn before compaction.
    carried, previous = after.messages[:-3], before.messages[:-1]
    assert len(json.dumps(carried)) < len(json.dumps(previous))
    assert len([m for m in carried if m["role"] == "tool"]) < len(
        [m for m in previous if m["role"] == "tool"]
    )
    assert any(SUMMARY_HEADER.strip() in str(m.get("content")) for m in after.messages)
    assert "SUMMARY: viewed five long traces" in json.dumps(after.messages)
    # The system prompt and the task survive compaction.
    assert after.messages[0] == before.messages[0]
    assert after.messages[1] == before.messages[1]
    assert run.findings[0].verified


async def test_a_context_length_error_compacts_and_retries_once(engine_env, traces):
    server = engine_env.server
    trace_id, span_id = error_span(traces, engine_env.cache_dir)
    views = [
        tool_call("view_trace", {"trace_id": t})
        for t in _trace_ids(traces, engine_env.cache_dir, 3)
    ]
    server.route(is_compaction, [reply("SUMMARY: three traces viewed.")])
    server.route(is_root, [*views, context_length_error(), _submit(trace_id, span_id)])
    run = await run_analysis([traces], "Find problems", engine_env.settings())

    assert run.status == RunStatus.finished
    assert any(is_compaction(r.json) for r in server.chat_requests)
    retried = [r for r in server.chat_requests if is_root(r.json)][-1]
    assert "SUMMARY: three traces viewed." in json.dumps(retried.messages)
    assert len(run.findings) == 1


async def test_a_second_context_length_error_fails_the_run_clearly(engine_env, traces):
    server = engine_env.server
    views = [
        tool_call("view_trace", {"trace_id": t})
        for t in _trace_ids(traces, engine_env.cache_dir, 3)
    ]
    server.route(is_compaction, [reply("SUMMARY")])
    server.route(is_root, [*views, context_length_error(), context_length_error()])
    run = await run_analysis([traces], "Find problems", engine_env.settings())

    assert run.status == RunStatus.failed
    assert "context" in run.error.lower()


class _DownProvider:
    async def complete(self, *args, **kwargs):
        from halo_mcp.engine.errors import ProviderError

        raise ProviderError("compaction model unavailable")


async def test_compaction_falls_back_to_a_digest_when_the_model_fails():
    messages = [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "task"},
    ]
    for i in range(4):
        messages.append(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": f"c{i}",
                        "type": "function",
                        "function": {"name": "view_trace", "arguments": f'{{"trace_id": "t{i}"}}'},
                    }
                ],
            }
        )
        messages.append({"role": "tool", "tool_call_id": f"c{i}", "content": "x" * 5000})
    compacted = await compact(messages, _DownProvider(), "m", target_tokens=1500)

    assert compacted[:2] == messages[:2]
    assert compacted[2]["content"].startswith(SUMMARY_HEADER)
    assert 'called view_trace({"trace_id": "t0"})' in compacted[2]["content"]
    assert compacted[3:] == messages[-2:]
    assert estimate_tokens(compacted) < estimate_tokens(messages)
