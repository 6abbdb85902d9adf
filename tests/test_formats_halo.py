"""HALO's flat JSONL: the format the original engine reads must load unchanged."""

from __future__ import annotations

from pathlib import Path

from halo_mcp.store.formats import ROW_FIELDS, detect_format, parse_line
from halo_mcp.store.models import Span

DATA = Path(__file__).parent / "data" / "formats"


def rows_by_span(name: str) -> dict[str, dict]:
    rows = {}
    for line in (DATA / name).read_bytes().splitlines():
        for row in parse_line(line):
            rows[row[1]] = dict(zip(ROW_FIELDS, row, strict=True))
    return rows


def test_every_halo_line_is_detected_as_halo_jsonl():
    lines = (DATA / "halo_flat.jsonl").read_bytes().splitlines()
    assert {detect_format(line) for line in lines} == {"halo-jsonl"}


def test_an_agent_root_span_keeps_its_agent_service_session_and_times():
    root = rows_by_span("halo_flat.jsonl")["00f067aa0ba902b7"]
    assert root["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert root["parent_span_id"] is None
    assert root["kind"] == "agent"
    assert root["status"] == "ok"
    assert root["error_message"] is None
    assert root["agent"] == "support-agent"
    assert root["service"] == "support-bot"
    assert root["session_id"] == "sess-42"
    assert root["start_ns"] == 1_735_732_800_000_000_000
    assert root["end_ns"] == 1_735_732_805_250_000_000


def test_an_llm_span_with_a_utc_offset_keeps_nanoseconds_model_and_tokens():
    llm = rows_by_span("halo_flat.jsonl")["1a2b3c4d5e6f7081"]
    assert llm["kind"] == "llm"
    assert llm["model"] == "gpt-4o-mini"
    assert (llm["input_tokens"], llm["output_tokens"]) == (812, 57)
    # 14:00:00.123456789+02:00 is 12:00:00.123456789Z.
    assert llm["start_ns"] == 1_735_732_800_123_456_789
    assert llm["end_ns"] == 1_735_732_801_500_000_000
    assert llm["status"] == "unset"
    assert llm["agent"] is None  # the index inherits it from the agent ancestor


def test_a_failed_tool_keeps_the_status_message_over_the_exception_event():
    tool = rows_by_span("halo_flat.jsonl")["2b3c4d5e6f708192"]
    assert tool["kind"] == "tool"
    assert tool["tool_name"] == "lookup_order"
    assert tool["status"] == "error"
    assert tool["error_message"] == "order service timed out after 30s"


def test_a_span_without_end_time_ends_when_it_starts_and_its_kind_falls_back_to_other():
    span = rows_by_span("halo_flat.jsonl")["3c4d5e6f70819203"]
    assert span["end_ns"] == span["start_ns"]
    assert span["kind"] == "other"


def test_rows_build_valid_store_spans():
    for row in rows_by_span("halo_flat.jsonl").values():
        span = Span(**row)
        assert span.duration_ms >= 0


def test_inference_attributes_alone_give_agent_model_and_tokens():
    line = (
        b'{"trace_id":"ab","span_id":"cd","name":"step","start_time":"2025-01-01T00:00:00Z",'
        b'"attributes":{"inference.agent_name":"solver","inference.llm.model_name":"m-1",'
        b'"inference.llm.input_tokens":"10","inference.llm.output_tokens":4,'
        b'"inference.observation_kind":"LLM","inference.session_id":"s-9"}}'
    )
    row = dict(zip(ROW_FIELDS, parse_line(line)[0], strict=True))
    assert row["agent"] == "solver"
    assert row["model"] == "m-1"
    assert (row["input_tokens"], row["output_tokens"]) == (10, 4)
    assert row["kind"] == "llm"
    assert row["session_id"] == "s-9"


def test_uppercase_hex_ids_are_lowercased_and_zero_parents_mean_root():
    line = (
        b'{"trace_id":"4BF92F3577B34DA6A3CE929D0E0E4736","span_id":"00F067AA0BA902B7",'
        b'"parent_span_id":"0000000000000000","name":"x","start_time":"2025-01-01T00:00:00Z"}'
    )
    row = dict(zip(ROW_FIELDS, parse_line(line)[0], strict=True))
    assert row["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert row["span_id"] == "00f067aa0ba902b7"
    assert row["parent_span_id"] is None


def test_nested_attribute_objects_are_read_as_dotted_keys():
    line = (
        b'{"trace_id":"ab","span_id":"cd","name":"x","start_time":"2025-01-01T00:00:00Z",'
        b'"attributes":{"llm":{"model_name":"nested-model","token_count":{"prompt":3}}}}'
    )
    row = dict(zip(ROW_FIELDS, parse_line(line)[0], strict=True))
    assert row["model"] == "nested-model"
    assert row["input_tokens"] == 3


def test_a_status_message_on_an_ok_span_is_not_an_error_message():
    line = (
        b'{"trace_id":"ab","span_id":"cd","name":"x","start_time":"2025-01-01T00:00:00Z",'
        b'"status":{"code":"STATUS_CODE_OK","message":"all good"}}'
    )
    row = dict(zip(ROW_FIELDS, parse_line(line)[0], strict=True))
    assert (row["status"], row["error_message"]) == ("ok", None)


def test_a_status_description_is_read_like_a_message():
    line = (
        b'{"trace_id":"ab","span_id":"cd","name":"x","start_time":"2025-01-01T00:00:00Z",'
        b'"status":{"code":"STATUS_CODE_ERROR","description":"quota exceeded"}}'
    )
    row = dict(zip(ROW_FIELDS, parse_line(line)[0], strict=True))
    assert (row["status"], row["error_message"]) == ("error", "quota exceeded")
