"""Attribute conventions: GenAI semconv, OpenInference, and Agents SDK spans sent as OTel."""

from __future__ import annotations

import json
from pathlib import Path

from halo_mcp.store.formats import ROW_FIELDS, parse_line

DATA = Path(__file__).parent / "data" / "formats"


def rows_by_span(name: str) -> dict[str, dict]:
    rows = {}
    for line in (DATA / name).read_bytes().splitlines():
        for row in parse_line(line):
            rows[row[1]] = dict(zip(ROW_FIELDS, row, strict=True))
    return rows


def one(attributes: dict, name: str = "span") -> dict:
    line = json.dumps(
        {
            "trace_id": "ab",
            "span_id": "cd",
            "name": name,
            "start_time": "2025-01-01T00:00:00Z",
            "attributes": attributes,
        }
    ).encode()
    return dict(zip(ROW_FIELDS, parse_line(line)[0], strict=True))


def test_genai_operations_map_to_kinds():
    rows = rows_by_span("genai_semconv.jsonl")
    kinds = {row["name"]: row["kind"] for row in rows.values()}
    assert kinds == {
        "invoke_agent travel-planner": "agent",
        "chat gpt-4.1": "llm",
        "execute_tool search_flights": "tool",
        "text_completion legacy": "llm",
        "embeddings text-embedding-3-large": "llm",
    }


def test_genai_agent_conversation_model_and_tokens():
    rows = rows_by_span("genai_semconv.jsonl")
    agent = rows["b7ad6b7169203331"]
    assert (agent["agent"], agent["session_id"]) == ("travel-planner", "conv-9")
    chat = rows["c7ad6b7169203332"]
    assert chat["model"] == "gpt-4.1"  # the requested model, not the dated response model
    assert (chat["input_tokens"], chat["output_tokens"]) == (420, 35)


def test_older_genai_prompt_and_completion_token_names_are_read():
    legacy = rows_by_span("genai_semconv.jsonl")["e7ad6b7169203334"]
    assert (legacy["input_tokens"], legacy["output_tokens"]) == (77, 12)


def test_error_type_alone_marks_the_span_as_failed():
    tool = rows_by_span("genai_semconv.jsonl")["d7ad6b7169203333"]
    assert (tool["status"], tool["error_message"]) == ("error", "NoResultsError")
    assert tool["tool_name"] == "search_flights"


def test_openinference_kinds_including_retriever_embedding_and_guardrail():
    kinds = {row["name"]: row["kind"] for row in rows_by_span("openinference.jsonl").values()}
    assert kinds == {
        "research-graph": "chain",
        "planner": "agent",
        "ChatAnthropic": "llm",
        "web_search": "tool",
        "content-filter": "guardrail",
        "embed-query": "llm",
    }


def test_openinference_model_tokens_as_strings_agent_and_session():
    rows = rows_by_span("openinference.jsonl")
    llm = rows["c1d2e3f4a5b60718"]
    assert llm["model"] == "claude-3-5-sonnet"
    assert (llm["input_tokens"], llm["output_tokens"]) == (1500, 220)
    assert rows["b1c2d3e4f5a60718"]["agent"] == "planner"
    assert rows["a1b2c3d4e5f60718"]["session_id"] == "thread-7"
    assert rows["f1a2b3c4d5e60718"]["model"] == "text-embedding-3-small"


def test_agents_sdk_spans_exported_as_otel_get_kinds_from_type_and_name():
    rows = rows_by_span("openai_agents_otel.jsonl")
    kinds = {row["name"]: row["kind"] for row in rows.values()}
    assert kinds == {
        "Agent workflow": "chain",
        "Agent: Research Agent": "agent",
        "Response": "llm",
        "Function: fetch_page": "tool",
        "Handoff": "chain",
        "Guardrail: pii_check": "guardrail",
    }
    function = rows["4444444444444444"]
    assert (function["status"], function["tool_name"]) == ("error", "fetch_page")
    assert rows["3333333333333333"]["model"] == "gpt-4.1"
    assert rows["2222222222222222"]["agent"] == "Research Agent"


def test_unknown_kind_words_fall_back_to_attributes_then_name():
    assert one({"openinference.span.kind": "SOMETHING_NEW", "tool.name": "t"})["kind"] == "tool"
    assert one({"llm.model_name": "m", "llm.token_count.prompt": 1})["kind"] == "llm"
    assert one({}, name="my_guardrail_check")["kind"] == "guardrail"
    assert one({}, name="ChatOpenAI")["kind"] == "llm"
    assert one({}, name="run tool x")["kind"] == "tool"
    assert one({}, name="Agent workflow")["kind"] == "chain"
    assert one({}, name="fetch")["kind"] == "other"


def test_thread_and_conversation_ids_become_the_session():
    assert one({"gen_ai.conversation.id": "c1"})["session_id"] == "c1"
    assert one({"thread.id": "t1"})["session_id"] == "t1"
    assert one({"session.id": 42})["session_id"] == "42"


def test_token_counts_given_as_floats_strings_or_junk():
    row = one({"gen_ai.usage.input_tokens": "12.0", "gen_ai.usage.output_tokens": [1]})
    assert (row["input_tokens"], row["output_tokens"]) == (12, None)
    row = one({"gen_ai.usage.input_tokens": -5, "gen_ai.usage.output_tokens": 2**70})
    assert (row["input_tokens"], row["output_tokens"]) == (None, None)


def test_an_openinference_agent_span_is_named_after_its_graph_node_else_its_name() -> None:
    """CrewAI's agent span is "File assistant._execute_core" with graph.node.id "File
    assistant"; LangGraph's carries no node: the span name is the agent's."""
    from halo_mcp.store.formats.compiled import compiled_semantics
    from halo_mcp.store.formats.conventions import semantics

    crewai = {"graph.node.id": "File assistant", "openinference.span.kind": "AGENT"}
    langgraph = {"openinference.span.kind": "AGENT"}
    for attrs, name, agent in (
        (crewai, "File assistant._execute_core", "File assistant"),
        (langgraph, "file_agent", "file_agent"),
    ):
        assert semantics(attrs, name)[:2] == ("agent", agent)
        compiled = compiled_semantics(tuple(attrs))
        assert compiled is not None and compiled(attrs, name)[0][:2] == ("agent", agent)
