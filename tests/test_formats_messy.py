"""Real files are messy: a bad line is rejected with a reason, every good line still counts."""

from __future__ import annotations

from pathlib import Path

import pytest

from halo_mcp.store.formats import (
    ROW_FIELDS,
    BadLineError,
    detect_format,
    parse_line,
    parse_line_report,
    span_payload,
    span_text,
)

DATA = Path(__file__).parent / "data" / "formats"
LINES = (DATA / "messy.jsonl").read_bytes().split(b"\n")


def row_of(line: bytes) -> dict:
    (row,) = parse_line(line)
    return dict(zip(ROW_FIELDS, row, strict=True))


def test_the_messy_file_gives_its_good_spans_and_a_reason_for_each_bad_line():
    good, bad = [], []
    for number, line in enumerate(LINES, start=1):
        try:
            good.extend(row[1] for row in parse_line(line))
        except BadLineError as exc:
            bad.append((number, exc.reason))
    assert good == [
        "aaaaaaaaaaaaaaa1",
        "aaaaaaaaaaaaaaa2",
        "aaaaaaaaaaaaaaa3",
        "aaaaaaaaaaaaaaa5",
        "aaaaaaaaaaaaaaa6",
        "aaaaaaaaaaaaaaa7",
        "bbbbbbbbbbbbbbb1",
    ]
    assert bad == [
        (5, "span has no trace_id"),
        (9, "not JSON (line does not start with '{' or '[')"),
        (10, "not a span: no trace/span ids (keys: hello)"),
        (12, "start time not understood: 'yesterday'"),
        (14, "not valid JSON (truncated?)"),
    ]


def test_a_bom_at_the_start_of_the_line_is_ignored():
    assert LINES[0].startswith(b"\xef\xbb\xbf")
    assert detect_format(LINES[0]) == "halo-jsonl"
    assert row_of(LINES[0])["start_ns"] == 1_746_421_505_000_000_005


def test_blank_lines_and_trace_records_are_neither_spans_nor_errors():
    assert parse_line_report(LINES[1]) == ([], 0, None)
    assert parse_line_report(LINES[12]) == ([], 0, None)
    assert parse_line(b"   \r") == []


def test_nulls_and_numbers_as_strings_are_tolerated():
    row = row_of(LINES[2])  # also ends with \r (CRLF file)
    assert row["name"] == "(unnamed)"
    assert row["status"] == "unset"
    assert row["start_ns"] == 1_746_421_505_500_000_000
    assert row["end_ns"] == 1_746_421_505_900_000_000  # epoch seconds as a float
    assert row["service"] is None


def test_lists_where_objects_were_expected_do_not_crash():
    row = row_of(LINES[3])
    assert row["model"] is None  # a list is not a model name
    assert (row["input_tokens"], row["output_tokens"]) == (12, 7)
    assert row["kind"] == "llm"  # from the name, the kind attribute was junk
    assert row["status"] == "unset"


def test_nan_infinity_and_huge_integers_do_not_cost_the_line():
    nan = row_of(LINES[5])
    assert (nan["input_tokens"], nan["output_tokens"]) == (None, None)
    huge = row_of(LINES[6])
    assert (huge["input_tokens"], huge["output_tokens"]) == (None, 5)


def test_deeply_nested_junk_is_cut_not_fatal():
    assert row_of(LINES[7])["span_id"] == "aaaaaaaaaaaaaaa7"
    payload = span_payload(LINES[7], "aaaaaaaaaaaaaaa7")
    assert "nested too deep" in span_text(payload)


def test_an_envelope_with_a_bad_span_keeps_the_good_one_and_counts_the_bad():
    rows, bad, reason = parse_line_report(LINES[10])
    assert [row[1] for row in rows] == ["bbbbbbbbbbbbbbb1"]
    assert (bad, reason) == (1, "span has no span_id")
    assert rows[0][9] == "messy-otlp"


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"null", "not a span: JSON null instead of an object"),
        (b'"just a string"', "not a span: JSON string instead of an object"),
        (b"[[[[1]]]]", "arrays nested too deeply"),
        (b"[" * 5000 + b"]" * 5000, "JSON nested too deeply"),
        (b"\xff\xfe{}", "not JSON (line does not start with '{' or '[')"),
        (b'{"trace_id":"a","span_id":"b"}', "span has no start time"),
        (b'{"trace_id":"a","span_id":"b","start_time":"9999-12-31T23:59:59Z"}', "start time"),
        (b'{"trace_id":[],"span_id":"b","start_time":1}', "span has no trace_id"),
    ],
)
def test_bad_lines_say_why(line: bytes, reason: str):
    with pytest.raises(BadLineError) as caught:
        parse_line(line)
    assert caught.value.reason.startswith(reason)
    assert detect_format(line) in {"invalid", "unknown", "halo-jsonl"}


def test_lines_may_be_given_as_text_too():
    text = LINES[0].decode("utf-8-sig")
    assert parse_line(text)[0][1] == "aaaaaaaaaaaaaaa1"
