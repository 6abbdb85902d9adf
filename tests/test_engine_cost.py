"""Cost: trace views show a repeated LLM input (system prompt, tool list, the conversation
each call resends) once per trace and refer back to it; old store reads fold; tool schemas
count in the compaction estimate; sub-agents get a smaller turn budget."""

from __future__ import annotations

import itertools
import json
import re

import pytest

from halo_mcp.engine.agent import tool_schemas
from halo_mcp.engine.agent_tools import ToolBudgets, ToolContext, ViewTraceArgs, view_trace
from halo_mcp.engine.prompts import root_system_prompt
from halo_mcp.engine.schemas import COMPACT_PROPERTIES
from halo_mcp.store import SpanFilter, open_store
from halo_mcp.synth import generate


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("views")
    path = tmp / "traces.jsonl"
    generate(str(path), traces=4, seed=3)  # realistic profile: LLM spans resend the history
    with open_store([path], cache_dir=tmp / "cache") as opened:
        yield opened


def _view(store, trace_id: str, dedupe: bool) -> str:
    ctx = ToolContext(store, ToolBudgets(dedupe_repeats=dedupe))
    return view_trace(ctx, ViewTraceArgs(trace_id=trace_id))


def test_a_repeated_llm_input_is_shown_once_and_referred_back_to(store):
    trace_id = store.query_traces(limit=1).traces[0].trace_id
    lean, full = _view(store, trace_id, True), _view(store, trace_id, False)

    assert len(lean) < 0.8 * len(full)
    # the system prompt is printed in full once, then referred to
    system = re.search(r'"role":"system","content":"(.{200})', full).group(1)
    assert lean.count(system) <= 2 < full.count(system)  # input JSON + its message attribute
    refs = re.findall(r"\[first (\d+) chars as the input of span ([0-9a-f]+)\]…", lean)
    assert refs
    # what follows a reference is the new part of that input, read from the store
    llm = store.query_spans(
        SpanFilter(trace_ids=[trace_id], kind=["llm"]),
        fields=("span_id", "input"),
        max_chars=100_000,
        limit=50,
    ).spans
    inputs = {s.span_id: s.input for s in llm}
    same, earlier = int(refs[0][0]), refs[0][1]
    later = next(
        text
        for sid, text in inputs.items()
        if sid != earlier and text[:same] == inputs[earlier][:same]
    )
    assert later[same : same + 80] in lean
    # the flattened copies of the messages the input already holds are not repeated
    assert "[part of this span's input]" in lean
    assert "llm.input_messages.0.message.content" in full


def test_every_span_is_still_listed_in_the_lean_view(store):
    trace_id = store.query_traces(limit=1).traces[0].trace_id
    lean, full = _view(store, trace_id, True), _view(store, trace_id, False)
    heads = [line.strip() for line in full.splitlines() if line.strip().startswith("- ")]
    assert heads and all(head in lean for head in heads)


def test_tool_schemas_stay_compact_and_the_prompt_documents_trace_rules():
    schemas = tool_schemas(True, True)
    text = str(schemas)
    # the trace rule and matcher schemas are stand-ins, documented once in the prompt
    assert text.count("'then_absent'") == 0
    assert str(COMPACT_PROPERTIES["trace_rule"]["description"]) in text
    prompt = root_system_prompt(True)
    for kind in ("repeated_call", "step_limit", "no_final_answer", "followed_by", "trace_tokens"):
        assert kind in prompt


def test_tool_schemas_count_in_the_compaction_estimate():
    from halo_mcp.engine.agent import Agent
    from halo_mcp.engine.compaction import estimate_tokens
    from halo_mcp.engine.settings import EngineSettings
    from halo_mcp.engine.state import RunState

    state = RunState(run_id="r", settings=EngineSettings(), provider=None)
    root = Agent(state, "task")
    tools = estimate_tokens([{"content": json.dumps(list(tool_schemas(True, True)))}])
    assert tools > 2000  # a real share of every request
    assert root.context_tokens() == estimate_tokens(root.messages) + tools


async def test_old_large_reads_fold_and_recent_ones_stay_whole(engine_env, tmp_path):
    from halo_mcp.engine import run_analysis
    from tests.engine_helpers import error_span, finding_args, is_root, make_traces
    from tests.fakes.openai_server import tool_call

    traces = make_traces(tmp_path)
    trace_id, span_id = error_span(traces, engine_env.cache_dir)
    with open_store([traces], cache_dir=engine_env.cache_dir) as opened:
        ids = [t.trace_id for t in opened.query_traces(sort="-duration", limit=6).traces]
    good = finding_args(
        "read_file fails",
        {"tool_name": "read_file", "errors_only": True},
        [{"trace_id": trace_id, "span_id": span_id}],
    )
    server = engine_env.server
    server.route(
        is_root,
        [tool_call("view_trace", {"trace_id": t}) for t in ids]
        + [tool_call("submit_findings", {"findings": [good], "summary": "s"})],
    )
    await run_analysis([traces], "x", engine_env.settings(fold_reads_after_turns=3))

    last = [r for r in server.chat_requests if is_root(r.json)][-1]
    results = [m["content"] for m in last.messages if m.get("role") == "tool"]
    assert len(results) == 6
    folded = [r for r in results if "older view_trace result folded" in r]
    assert folded and all(r.startswith("trace ") for r in folded)  # the head is kept
    assert not any("folded" in r for r in results[-3:])  # the last 3 turns stay whole
    # results fold once and several at a time, so the prefix stays stable between folds
    roots = [r for r in server.chat_requests if is_root(r.json)]
    changes = []
    for before, after in itertools.pairwise(roots):
        kept = len(before.messages) - 1  # the last one is the turn's budget note
        changes.append(sum(before.messages[i] != after.messages[i] for i in range(kept)))
    assert sorted(set(changes)) == [0, len(folded)] and len(folded) >= 3


async def test_sub_agents_get_a_smaller_configurable_turn_budget(engine_env, tmp_path):
    from halo_mcp.engine import run_analysis
    from tests.engine_helpers import error_span, finding_args, is_root, is_sub, make_traces
    from tests.fakes.openai_server import reply, tool_call

    traces = make_traces(tmp_path)
    trace_id, span_id = error_span(traces, engine_env.cache_dir)
    good = finding_args(
        "read_file fails",
        {"tool_name": "read_file", "errors_only": True},
        [{"trace_id": trace_id, "span_id": span_id}],
    )
    server = engine_env.server
    for settings in (engine_env.settings(max_turns=8), engine_env.settings(sub_max_turns=2)):
        server.route(lambda r: is_sub(r), [reply("sub report")])
        server.route(
            is_root,
            [
                tool_call("delegate", {"task": "look"}),
                tool_call("submit_findings", {"findings": [good], "summary": "s"}),
            ],
        )
        await run_analysis([traces], "x", settings)
    subs = [r for r in server.chat_requests if is_sub(r.json)]
    notes = [r.messages[-1]["content"] for r in subs]
    assert notes[0].startswith("[budget] turn 1 of 4.")  # half the root's 8
    assert notes[1].startswith("[budget] turn 1 of 2.")  # configured
