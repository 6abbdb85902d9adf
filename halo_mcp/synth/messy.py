"""Malformed lines for testing ingestion: each is a line a reader must skip and report."""

from __future__ import annotations

import random

import orjson

BAD_LINE_KINDS = ("truncated_json", "random_bytes", "null_fields", "not_an_object")
BOM = b"\xef\xbb\xbf"

_NULL_RECORDS = {
    "halo": {
        "trace_id": None,
        "span_id": None,
        "parent_span_id": None,
        "name": None,
        "kind": None,
        "start_time": None,
        "end_time": None,
        "status": None,
        "attributes": None,
    },
    "otlp": {"resourceSpans": [{"resource": None, "scopeSpans": [{"scope": None, "spans": None}]}]},
    "agents-sdk": {
        "object": "trace.span",
        "id": None,
        "trace_id": None,
        "parent_id": None,
        "started_at": None,
        "ended_at": None,
        "span_data": None,
        "error": None,
    },
}


def bad_line(kind: str, rng: random.Random, format: str, sample: bytes) -> bytes:
    """One malformed line (without newline). `sample` is a real line to truncate."""
    if kind == "truncated_json":
        return sample[: max(1, min(len(sample) // 2, 4000))]
    if kind == "random_bytes":
        return bytes(b for b in rng.randbytes(rng.randint(20, 200)) if b not in (10, 13))
    if kind == "null_fields":
        return orjson.dumps(_NULL_RECORDS[format])
    return orjson.dumps(["not", "a", "span", rng.randint(0, 99)])
