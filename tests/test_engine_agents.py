"""Agents and delegation: limits, synthesis, queued runs, missing credentials."""

from __future__ import annotations

import pytest

from halo_mcp.engine import NoApiKeyError, RunStatus, RunStore, run_analysis, stream_run
from halo_mcp.engine.events import AgentFinished, AgentStarted, ProgressUpdate, RunFinished
from halo_mcp.engine.prompts import SYNTHESIS_PROMPT
from halo_mcp.engine.settings import EngineSettings
from tests.engine_helpers import (
    error_span,
    finding_args,
    is_root,
    is_sub,
    make_traces,
    tool_messages,
)
from tests.fakes.openai_server import reply, system_prompt, tool_call, tool_calls


@pytest.fixture
def traces(tmp_path):
    return make_traces(tmp_path)


def _submit(trace_id: str, span_id: str):
    return tool_call(
        "submit_findings",
        {
            "findings": [
                finding_args(
                    "read_file errors",
                    {"tool_name": "read_file", "errors_only": True},
                    [{"trace_id": trace_id, "span_id": span_id}],
                )
            ],
            "summary": "done",
        },
    )


async def test_one_parallel_slot_does_not_deadlock_parents_waiting_on_children(engine_env, traces):
    server = engine_env.server
    ids = error_span(traces, engine_env.cache_dir)
    server.route(lambda r: is_sub(r, "ONE"), [tool_call("get_overview", {}), reply("one done")])
    server.route(lambda r: is_sub(r, "TWO"), [reply("two done")])
    server.route(
        is_root,
        [
            tool_calls([("delegate", {"task": "ONE"}), ("delegate", {"task": "TWO"})]),
            _submit(*ids),
        ],
    )
    run = await run_analysis([traces], "x", engine_env.settings(max_parallel=1))
    assert run.status == RunStatus.finished
    last_root = [r for r in server.chat_requests if is_root(r.json)][-1]
    assert {"one done", "two done"} <= {m.split("\n", 1)[1] for m in tool_messages(last_root)}


async def test_max_parallel_bounds_the_sub_agents_running_at_once(engine_env, traces):
    server = engine_env.server
    ids = error_span(traces, engine_env.cache_dir)
    tasks = [f"TASK{n}" for n in range(1, 6)]
    for task in tasks:
        server.route(
            lambda r, task=task: is_sub(r, task),
            [tool_call("get_overview", {}), reply(f"{task} done")],
        )
    server.route(
        is_root,
        [tool_calls([("delegate", {"task": t}) for t in tasks]), _submit(*ids)],
    )
    running: set[str] = set()
    most = 0
    finished: list[str] = []
    messages: list[str] = []
    settings = engine_env.settings(max_parallel=2)
    async for event in stream_run([traces], "x", settings):
        if isinstance(event, ProgressUpdate):
            messages.append(event.progress.message)
        if isinstance(event, AgentStarted) and event.depth > 0:
            running.add(event.agent_id)
            most = max(most, len(running))
        elif isinstance(event, AgentFinished) and event.agent_id != "root":
            running.discard(event.agent_id)
            finished.append(event.summary)
        last = event

    assert isinstance(last, RunFinished)
    assert most == 2  # both slots used, never a third sub-agent
    assert sorted(finished) == [f"{t} done" for t in tasks]
    assert any("waiting for a slot" in m for m in messages)  # the others queued, visibly
    last_root = [r for r in server.chat_requests if is_root(r.json)][-1]
    assert len(tool_messages(last_root)) == 5


async def test_one_slot_and_nested_delegation_at_max_depth_does_not_deadlock(engine_env, traces):
    server = engine_env.server
    ids = error_span(traces, engine_env.cache_dir)
    server.route(lambda r: is_sub(r, "INNER-A"), [reply("a done")])
    server.route(lambda r: is_sub(r, "INNER-B"), [reply("b done")])
    server.route(
        lambda r: is_sub(r, "OUTER"),
        [
            tool_calls([("delegate", {"task": "INNER-A"}), ("delegate", {"task": "INNER-B"})]),
            reply("outer done with a and b"),
        ],
    )
    server.route(is_root, [tool_call("delegate", {"task": "OUTER"}), _submit(*ids)])
    events = [
        e async for e in stream_run([traces], "x", engine_env.settings(max_parallel=1, max_depth=2))
    ]

    assert isinstance(events[-1], RunFinished)
    depths = {e.agent_id: e.depth for e in events if isinstance(e, AgentStarted)}
    assert depths == {"root": 0, "root.1": 1, "root.1.1": 2, "root.1.2": 2}
    last_outer = [r for r in server.chat_requests if is_sub(r.json, "OUTER")][-1]
    assert {"a done", "b done"} <= {m.split("\n", 1)[1] for m in tool_messages(last_outer)}


async def test_sub_agents_at_the_depth_limit_cannot_delegate(engine_env, traces):
    server = engine_env.server
    ids = error_span(traces, engine_env.cache_dir)
    server.route(
        lambda r: is_sub(r),
        [tool_call("delegate", {"task": "deeper"}), reply("could not delegate; did it myself")],
    )
    server.route(is_root, [tool_call("delegate", {"task": "look"}), _submit(*ids)])
    run = await run_analysis([traces], "x", engine_env.settings(max_depth=1))

    assert run.status == RunStatus.finished
    sub_requests = [r for r in server.chat_requests if is_sub(r.json)]
    assert "delegate" not in [t["function"]["name"] for t in sub_requests[0].json["tools"]]
    assert "unknown tool 'delegate'" in tool_messages(sub_requests[1])[0]


async def test_a_sub_agent_out_of_turns_returns_what_it_has(engine_env, traces):
    server = engine_env.server
    ids = error_span(traces, engine_env.cache_dir)
    server.route(
        lambda r: is_sub(r),
        [
            tool_call("get_overview", {}),
            tool_call("count_spans", {"filter": {"errors_only": True}}),
            reply("partial: errors in read_file"),
        ],
    )
    server.route(is_root, [tool_call("delegate", {"task": "look"}), _submit(*ids)])
    settings = engine_env.settings(max_turns=2, sub_max_turns=2)
    events = [e async for e in stream_run([traces], "x", settings)]

    assert isinstance(events[-1], RunFinished)
    sub_requests = [r for r in server.chat_requests if is_sub(r.json)]
    assert sub_requests[-1].json["tool_choice"] == "none"
    finished = [e for e in events if isinstance(e, AgentFinished) and e.agent_id == "root.1"]
    assert finished[0].summary == "partial: errors in read_file"


async def test_synthesize_lets_a_cheaper_model_read_the_traces(engine_env, traces):
    server = engine_env.server
    trace_id, span_id = error_span(traces, engine_env.cache_dir)
    server.route(
        lambda r: system_prompt(r) == SYNTHESIS_PROMPT,
        [reply("All three traces fail on missing files.")],
    )
    server.route(
        is_root,
        [
            tool_call(
                "synthesize",
                {"trace_ids": [trace_id, "not-a-trace"], "question": "What fails?"},
            ),
            _submit(trace_id, span_id),
        ],
    )
    settings = engine_env.settings(synthesis_model="cheap-model")
    run = await run_analysis([traces], "x", settings)

    assert run.status == RunStatus.finished
    synth = next(r for r in server.chat_requests if system_prompt(r.json) == SYNTHESIS_PROMPT)
    assert synth.json["model"] == "cheap-model"
    assert span_id in synth.messages[1]["content"]  # it saw the actual spans
    last_root = [r for r in server.chat_requests if is_root(r.json)][-1]
    answer = tool_messages(last_root)[0]
    assert answer.startswith("synthesis over 1 traces (unknown ids skipped: not-a-trace)")
    assert "fail on missing files" in answer


async def test_stream_run_executes_a_run_created_as_queued(engine_env, traces):
    ids = error_span(traces, engine_env.cache_dir)
    settings = engine_env.settings()
    store = RunStore(engine_env.data_dir)
    queued = store.create("queued prompt", [str(traces)], settings.public_dict(), owner="me")
    engine_env.server.route(is_root, [_submit(*ids)])
    events = [e async for e in stream_run([traces], "ignored", settings, run_id=queued.id)]

    assert {e.run_id for e in events} == {queued.id}
    run = store.get(queued.id)
    assert run.status == RunStatus.finished and run.owner == "me"
    assert run.prompt == "queued prompt"
    first_root = next(r for r in engine_env.server.chat_requests if is_root(r.json))
    assert "queued prompt" in first_root.messages[1]["content"]


async def test_no_credentials_fail_before_starting(tmp_path, monkeypatch, traces):
    monkeypatch.setenv("HALO_DATA_DIR", str(tmp_path / "data"))
    settings = EngineSettings(model="m")
    with pytest.raises(NoApiKeyError, match="OPENAI_API_KEY"):
        async for _ in stream_run([traces], "x", settings):
            pass
    store = RunStore(tmp_path / "data")
    assert store.list() == []

    queued = store.create("p", [str(traces)], settings.public_dict())
    with pytest.raises(NoApiKeyError):
        async for _ in stream_run([traces], "x", settings, run_id=queued.id):
            pass
    assert store.get(queued.id).status == RunStatus.failed


async def test_a_run_survives_rate_limits_cut_streams_and_a_refusal(engine_env, traces):
    from tests.fakes.openai_server import cut_stream, refusal, status

    server = engine_env.server
    ids = error_span(traces, engine_env.cache_dir)
    server.route(
        is_root,
        [
            status(429, retry_after=0.01),
            cut_stream(after_chunks=2, then=tool_call("get_overview", {})),
            tool_call("get_overview", {}),
            refusal("I won't analyze this."),
            _submit(*ids),
        ],
    )
    run = await run_analysis([traces], "x", engine_env.settings(refusal_retries=0))

    assert run.status == RunStatus.finished
    assert run.usage.retries >= 2
    roots = [r for r in server.chat_requests if is_root(r.json)]
    # After the refusal the root was reminded how to end the run, and it did.
    assert any("submit_findings" in str(m.get("content")) for m in roots[-1].messages[-3:])
    assert len(run.findings) == 1


async def test_request_errors_inside_synthesis_or_a_sub_agent_do_not_end_the_run(
    engine_env, traces
):
    from tests.fakes.openai_server import context_length_error

    server = engine_env.server
    trace_id, span_id = error_span(traces, engine_env.cache_dir)
    server.route(lambda r: system_prompt(r) == SYNTHESIS_PROMPT, [context_length_error()])
    server.route(
        lambda r: is_sub(r),
        [tool_call("get_overview", {}), context_length_error(), context_length_error()],
    )
    server.route(lambda r: system_prompt(r).startswith("You compress"), [reply("S")] * 3)
    server.route(
        is_root,
        [
            tool_calls(
                [
                    ("synthesize", {"trace_ids": [trace_id], "question": "q"}),
                    ("delegate", {"task": "look"}),
                ]
            ),
            _submit(trace_id, span_id),
        ],
    )
    run = await run_analysis([traces], "x", engine_env.settings())

    assert run.status == RunStatus.finished
    last_root = [r for r in server.chat_requests if is_root(r.json)][-1]
    synth, sub = tool_messages(last_root)
    assert synth.startswith("ERROR:") and "pass fewer trace ids" in synth
    assert sub.startswith("ERROR:") and "sub-agent root.1 failed after 2 turns" in sub
