"""A store under concurrent requests and slow queries: every thread's first request may
be a text filter, and a request that runs past the per-query time limit fails alone with
a message saying how to narrow it, leaving the store correct for the next request."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from halo_mcp.store import QueryTimeoutError, SpanFilter, StoreError, TraceStore, open_store
from halo_mcp.synth import generate
from tests.store_spans import shop_traces, write

THREADS = 20


@pytest.fixture(scope="module")
def synth_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("store_limits")
    path = root / "traces.jsonl"
    generate(path, traces=300, seed=4, profile="tiny")
    return path


def _answers(store: TraceStore) -> dict[str, object]:
    """What the text-filter requests of the test return, as comparable values."""
    return {
        "spans": [
            v.span_id for v in store.query_spans(SpanFilter(text="cats"), fields=["span_id"]).spans
        ],
        "count": store.count(SpanFilter(text="timeout|cats")).model_dump(),
        "traces": [t.trace_id for t in store.query_traces(SpanFilter(text="cats")).traces],
        "search": [m.span_id for m in store.search("timeout after").matches],
    }


def test_twenty_threads_whose_first_request_is_a_text_filter(tmp_path: Path) -> None:
    path = write(tmp_path / "shop.jsonl", shop_traces())
    with open_store([path], cache_dir=tmp_path / "cache") as reference:
        expected = _answers(reference)
    assert expected["spans"] and expected["search"]
    errors: list[BaseException] = []
    results: list[dict[str, object]] = []
    with open_store([path], cache_dir=tmp_path / "cache") as store:  # fresh: no thread has read
        start = threading.Barrier(THREADS)

        def work() -> None:
            try:
                start.wait()
                for _ in range(3):
                    results.append(_answers(store))
            except BaseException as exc:  # collected and re-raised in the main thread
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
    assert len(results) == 3 * THREADS
    assert all(r == expected for r in results)


def test_a_query_past_its_time_limit_fails_alone_and_says_how_to_narrow_it(
    synth_path: Path, tmp_path: Path
) -> None:
    broad = SpanFilter(name="*o*", min_duration_ms=0)  # a GLOB over every span
    with open_store([synth_path], cache_dir=tmp_path / "cache") as reference:
        expected = reference.query_traces(broad, limit=500).model_dump()
        text_expected = reference.count(SpanFilter(text="rate limit")).model_dump()
    assert expected["total"] > 0 and text_expected["spans"] > 0
    with open_store([synth_path], cache_dir=tmp_path / "cache", query_time_limit=1e-9) as store:
        with pytest.raises(QueryTimeoutError) as caught:
            store.query_traces(broad, limit=500)
        message = str(caught.value)
        assert "time limit" in message and "trace_ids" in message and "time range" in message
        assert isinstance(caught.value, StoreError)
        with pytest.raises(QueryTimeoutError):  # the raw file scan stops too
            store.count(SpanFilter(text="rate limit"))
        # The store still answers, and a half-built hit table was not kept.
        store.query_time_limit = None
        assert store.query_traces(broad, limit=500).model_dump() == expected
        assert store.count(SpanFilter(text="rate limit")).model_dump() == text_expected


def test_aggregate_readers_take_an_optional_time_limit(synth_path: Path, tmp_path: Path) -> None:
    with open_store([synth_path], cache_dir=tmp_path / "cache") as store:
        with store.aggregates() as reader:
            loops = list(reader.repeated_calls(2))
        assert loops
        with pytest.raises(QueryTimeoutError), store.aggregates(time_limit=1e-9) as reader:
            list(reader.repeated_calls(2))
