"""Nothing crashes on bad input: thousands of random and mutated lines (fixed seed).

Every line either yields well-typed rows or raises BadLineError with a reason; payloads
of the rows it yields can always be read back and searched.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from halo_mcp.store.formats import (
    ROW_FIELDS,
    BadLineError,
    detect_format,
    parse_line,
    parse_line_report,
    span_payload,
    span_payloads,
    span_text,
)
from halo_mcp.store.models import Span

DATA = Path(__file__).parent / "data" / "formats"
INT64_MAX = (1 << 63) - 1
KINDS = {"agent", "llm", "tool", "chain", "guardrail", "other"}
STATUSES = {"ok", "error", "unset"}
JUNK: list[Any] = [
    None,
    [],
    {},
    "",
    "x",
    0,
    -1,
    2**70,
    -(2**70),
    float("nan"),
    float("inf"),
    1e308,
    True,
    "2025-99-99T99:99:99Z",
    "9999-12-31T23:59:59.999999999Z",
    {"stringValue": None},
    {"intValue": "nope"},
    {"kvlistValue": {"values": [{"key": None}]}},
    {"arrayValue": {"values": "x"}},
    [[[[[[[[[[[["deep"]]]]]]]]]]]],
    "\u0000\ud7ff\ufffd",
    "0" * 32,
]


def sample_lines() -> list[bytes]:
    lines = []
    for path in sorted(DATA.glob("*.jsonl")):
        lines.extend(line for line in path.read_bytes().splitlines() if line.strip())
    return lines


def nodes(value: Any, path: tuple = ()) -> list[tuple]:
    found = [path]
    if isinstance(value, dict):
        for key, inner in value.items():
            found.extend(nodes(inner, (*path, key)))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found.extend(nodes(inner, (*path, index)))
    return found


def replace(value: Any, path: tuple, new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: replace(value[head], rest, new)}
    copy = list(value)
    copy[head] = replace(copy[head], rest, new)
    return copy


def mutate_structure(rng: random.Random, line: bytes) -> bytes:
    try:
        value = json.loads(line.decode("utf-8-sig"))
    except ValueError:  # the messy samples include lines that are not JSON
        return mutate_bytes(rng, line)
    for _ in range(rng.randint(1, 4)):
        path = rng.choice(nodes(value))
        if path and isinstance(path[-1], str) and rng.random() < 0.2:
            # Drop a key instead of replacing its value.
            parent = path[:-1]
            container = value
            for step in parent:
                container = container[step]
            value = replace(value, parent, {k: v for k, v in container.items() if k != path[-1]})
        else:
            value = replace(value, path, rng.choice(JUNK))
    return json.dumps(value).encode()


def mutate_bytes(rng: random.Random, line: bytes) -> bytes:
    data = bytearray(line)
    choice = rng.random()
    if choice < 0.3 and data:
        del data[rng.randrange(len(data)) :]  # truncated
    elif choice < 0.6:
        for _ in range(rng.randint(1, 8)):
            if data:
                data[rng.randrange(len(data))] = rng.randrange(256)
    elif choice < 0.8:
        position = rng.randrange(len(data) + 1)
        data[position:position] = rng.choice(
            [b"\xef\xbb\xbf", b"null", b"NaN", b"99999999999999999999999", b'"', b"{", b"]"]
        )
    else:
        data = bytearray(rng.randbytes(rng.randint(0, 200)))
    return bytes(data)


def mutated_lines(count: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    samples = sample_lines()
    out = []
    for _ in range(count):
        line = rng.choice(samples)
        out.append(mutate_structure(rng, line) if rng.random() < 0.6 else mutate_bytes(rng, line))
    return out


def check_row(row: tuple) -> None:
    assert len(row) == len(ROW_FIELDS)
    fields = dict(zip(ROW_FIELDS, row, strict=True))
    for key in ("trace_id", "span_id", "name"):
        assert isinstance(fields[key], str) and fields[key]
    for key in ("parent_span_id", "error_message", "service", "agent", "model", "tool_name"):
        assert fields[key] is None or isinstance(fields[key], str)
    assert fields["session_id"] is None or isinstance(fields["session_id"], str)
    assert fields["kind"] in KINDS
    assert fields["status"] in STATUSES
    for key in ("start_ns", "end_ns"):
        assert type(fields[key]) is int and 0 <= fields[key] <= INT64_MAX
    for key in ("input_tokens", "output_tokens"):
        value = fields[key]
        assert value is None or (type(value) is int and 0 <= value <= INT64_MAX)
    Span(**fields)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_mutated_lines_yield_typed_rows_or_a_bad_line_error(seed: int):
    outcomes = {"rows": 0, "bad": 0}
    for line in mutated_lines(1200, seed):
        assert isinstance(detect_format(line), str)
        rows, bad, reason = parse_line_report(line)
        assert bad == 0 or isinstance(reason, str)
        try:
            parsed = parse_line(line)
        except BadLineError as exc:
            assert exc.reason and not rows
            outcomes["bad"] += 1
            continue
        assert parsed == rows
        for row in rows:
            check_row(row)
            assert isinstance(span_text(span_payload(line, row[1])), str)
        assert {span_id for span_id, _ in span_payloads(line)} >= {row[1] for row in rows}
        outcomes["rows"] += bool(rows)
    # The mix exercises both outcomes, so the test cannot pass by rejecting everything.
    assert outcomes["rows"] > 100 and outcomes["bad"] > 100
