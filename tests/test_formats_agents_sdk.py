"""OpenAI Agents SDK spans as the SDK's own tracing exports them."""

from __future__ import annotations

from pathlib import Path

from halo_mcp.store.formats import ROW_FIELDS, detect_format, parse_line, parse_line_report

DATA = Path(__file__).parent / "data" / "formats"
LINES = (DATA / "openai_agents_sdk.jsonl").read_bytes().splitlines()


def rows_by_span() -> dict[str, dict]:
    rows = {}
    for line in LINES:
        for row in parse_line(line):
            rows[row[1]] = dict(zip(ROW_FIELDS, row, strict=True))
    return rows


def test_trace_records_are_skipped_silently():
    assert detect_format(LINES[0]) == "openai-agents"
    assert parse_line_report(LINES[0]) == ([], 0, None)


def test_every_span_type_gets_a_kind_and_a_readable_name():
    kinds = {row["name"]: row["kind"] for row in rows_by_span().values()}
    assert kinds == {
        "Triage Agent": "agent",
        "generation": "llm",
        "lookup_account": "tool",
        "handoff: Triage Agent -> Billing Agent": "chain",
        "no_profanity": "guardrail",
        "response": "llm",
        "mcp_tools: filesystem": "tool",
        "cache-warmup": "other",
        "Batch Agent": "agent",
    }


def test_agent_generation_and_function_fields():
    rows = rows_by_span()
    agent = rows["span_a1b2c3d4e5f6a7b8c9d0e1f2"]
    assert agent["trace_id"] == "trace_7c3f0e2b9a8d4f6e8b1a2c3d4e5f6a7b"
    assert agent["parent_span_id"] is None
    assert agent["agent"] == "Triage Agent"
    assert agent["start_ns"] == 1_743_588_000_000_000_000
    assert agent["end_ns"] == 1_743_588_009_500_000_000
    generation = rows["span_b1b2c3d4e5f6a7b8c9d0e1f2"]
    assert generation["parent_span_id"] == "span_a1b2c3d4e5f6a7b8c9d0e1f2"
    assert generation["model"] == "gpt-4o"
    assert (generation["input_tokens"], generation["output_tokens"]) == (345, 12)
    assert generation["agent"] is None


def test_a_failed_function_call_carries_the_sdk_error_and_its_detail():
    function = rows_by_span()["span_c1b2c3d4e5f6a7b8c9d0e1f2"]
    assert function["status"] == "error"
    assert function["tool_name"] == "lookup_account"
    assert function["error_message"] == "Error running tool: account service returned 503"


def test_a_span_that_never_ended_is_unset_and_zero_long():
    custom = rows_by_span()["span_11b2c3d4e5f6a7b8c9d0e1f2"]
    assert custom["status"] == "unset"
    assert custom["end_ns"] == custom["start_ns"]


def test_a_batch_line_yields_its_spans_and_skips_its_trace_record():
    rows = [dict(zip(ROW_FIELDS, row, strict=True)) for row in parse_line(LINES[9])]
    assert [row["span_id"] for row in rows] == ["span_batch01", "span_batch02"]
    assert (rows[1]["input_tokens"], rows[1]["output_tokens"]) == (10, 4)
    assert rows[1]["model"] == "gpt-4o-mini"


def test_a_span_without_id_is_a_bad_line():
    rows, bad, reason = parse_line_report(
        b'{"object":"trace.span","trace_id":"trace_1","started_at":"2025-01-01T00:00:00Z",'
        b'"span_data":{"type":"agent","name":"a"}}'
    )
    assert (rows, bad) == ([], 1)
    assert "span id" in reason
