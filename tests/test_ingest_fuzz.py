"""Random bytes and mutated lines between good ones, through the whole ingestion (files,
gzip, index, queries): no exception escapes and every good line is kept. Seeded, so a
failure reproduces; each seed is a different mix."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import pytest

from halo_mcp.store import open_store
from halo_mcp.store.models import SpanFilter
from tests.store_spans import span

GOOD_LINES = 120
BAD_LINES = 200

_SNIPPETS = [
    b"\\ud800",
    b"\\udfff",
    b"\xed\xa0\x80",  # a surrogate encoded as UTF-8 bytes (invalid UTF-8)
    b"\xff\xfe",
    b"\x00",
    b"\r",
    b"\xef\xbb\xbf",
    b'"',
    b"\\",
    b"{",
    b"]",
    b"NaN",
    b"1e999999",
    b"99999999999999999999999999",
    b"[" * 300,
]


def _template(index: int, prefix: str, rng: random.Random) -> dict:
    return span(
        f"{prefix}-trace-{index // 6}",
        f"{prefix}-{index}",
        None if index % 6 == 0 else f"{prefix}-{index - index % 6}",
        f"step {index}",
        kind=rng.choice(["LLM", "TOOL", "AGENT", "CHAIN"]),
        note=f"payload {index} " + "x" * (index % 50),
    )


def _mutate(line: bytes, rng: random.Random) -> bytes:
    data = bytearray(line)
    for _ in range(rng.randint(1, 3)):
        choice = rng.random()
        at = rng.randrange(len(data) + 1)
        if choice < 0.3:
            del data[at:]  # cut short
        elif choice < 0.6:
            data[at:at] = rng.choice(_SNIPPETS)
        elif choice < 0.8 and data:
            data[min(at, len(data) - 1)] = rng.randrange(256)
        else:
            del data[at : at + rng.randint(1, 20)]
    return bytes(data).replace(b"\n", b" ")


def _random_bytes(rng: random.Random) -> bytes:
    raw = bytes(rng.randrange(256) for _ in range(rng.randint(0, 300)))
    return raw.replace(b"\n", b"")


def _mixed_file(rng: random.Random) -> tuple[bytes, set[str]]:
    good = [_template(i, "good", rng) for i in range(GOOD_LINES)]
    lines = [(json.dumps(s).encode(), True) for s in good]
    for i in range(BAD_LINES):
        if rng.random() < 0.5:
            bad = _mutate(json.dumps(_template(i, "mut", rng)).encode(), rng)
        else:
            bad = _random_bytes(rng)
        lines.append((bad, False))
    rng.shuffle(lines)
    body = b"\n".join(line for line, _ in lines) + b"\n"
    return body, {s["span_id"] for s in good}


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("compressed", [False, True])
def test_random_bytes_and_mutations_never_cost_a_good_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int, compressed: bool
) -> None:
    monkeypatch.setenv("HALO_CACHE_DIR", str(tmp_path / "cache"))
    rng = random.Random(seed)
    body, good_ids = _mixed_file(rng)
    path = tmp_path / ("mixed.jsonl.gz" if compressed else "mixed.jsonl")
    path.write_bytes(gzip.compress(body) if compressed else body)

    with open_store([path]) as store:
        _, known_spans = store.known_ids(span_ids=sorted(good_ids))
        assert known_spans == good_ids
        page = store.query_spans(SpanFilter(span_ids=sorted(good_ids)), limit=200)
        assert {s.span_id for s in page.spans} == good_ids
        assert {s.name for s in page.spans} == {f"step {i}" for i in range(GOOD_LINES)}
        # Reading everything back and searching it raises nothing either.
        assert store.count(SpanFilter(text="payload")).spans >= GOOD_LINES
        store.query_spans(limit=200, fields=["span_id", "input", "output", "attributes"])
        store.search("x+", limit=50)
        overview = store.overview()
    assert overview.bad_lines > 0
    for bad in overview.bad_line_examples:
        assert bad.file == str(path) and bad.line >= 1 and bad.reason
        bad.reason.encode("utf-8")  # every reason is valid text: it reaches clients
