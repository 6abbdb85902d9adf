"""Text scans in a worker process (what `serve --http` does): the same spans as a scan in
the calling thread, the request's time limit honored by the worker, a killed worker
replaced without losing the request, and the HTTP server answering through its worker."""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from halo_mcp.store import QueryTimeoutError, SpanFilter, TraceStore, open_store
from halo_mcp.store.scan_workers import ScanJob, ScanWorkers, run_scan
from halo_mcp.synth import generate
from tests.mcp_support import free_port, http_server, settings

#: Patterns of every kind the raw scan rewrites: words, alternations, classes, escapes
#: that widen, a key: value, and one that only a span's decoded text confirms.
PATTERNS = [
    "timeout",
    "error|timed out",
    "rate limit",
    r"search_\w+",
    r"last \d+\s+months",
    "agent_name: research",
    "ZZZ-never-there",
    r"caf. cr.me",
]


@pytest.fixture(scope="module")
def traces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated file, plus an OTLP line holding several spans and one with text that is
    escaped in JSON (the worker must confirm on decoded text too)."""
    path = tmp_path_factory.mktemp("scan_workers") / "traces.jsonl"
    generate(path, traces=400, seed=11, profile="tiny")
    envelope = {"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{
        "scope": {"name": "t"},
        "spans": [
            {"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": sid, "parentSpanId": "",
             "name": "step", "kind": 1, "startTimeUnixNano": "1740823200000000000",
             "endTimeUnixNano": "1740823201000000000",
             "attributes": [{"key": "input.value", "value": {"stringValue": text}}]}
            for sid, text in [("00f067aa0ba902b7", "café crème"), ("00f067aa0ba902b8", "x")]
        ],
    }]}]}  # fmt: skip
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(envelope) + "\n")
    return path


@pytest.fixture(scope="module")
def workers() -> Iterator[ScanWorkers]:
    pool = ScanWorkers(1)
    pool.start()
    yield pool
    pool.close()


def _found(store: TraceStore, pattern: str) -> tuple[int, list[str]]:
    """How many spans match, and the first page of them."""
    page = store.query_spans(SpanFilter(text=pattern), fields=["span_id"], limit=200)
    return page.total, [s.span_id for s in page.spans]


def _worker_pids() -> set[int]:
    return {p.pid for p in multiprocessing.active_children() if p.pid is not None}


def test_a_worker_finds_what_a_scan_in_the_thread_finds(traces, workers, tmp_path, monkeypatch):
    monkeypatch.setattr("halo_mcp.store.filters.SCAN_THRESHOLD", 1)  # always the file scan
    with open_store([traces], cache_dir=tmp_path / "cache") as local:
        expected = {p: _found(local, p) for p in PATTERNS}
    assert all(expected[p][0] for p in PATTERNS if p != "ZZZ-never-there")
    assert expected[r"caf. cr.me"] == (1, ["00f067aa0ba902b7"])
    assert expected["ZZZ-never-there"] == (0, [])

    # From here on a scan in this process fails: every answer below came from the worker.
    def no_local_scan(*args: object, **kwargs: object) -> None:
        raise AssertionError("scanned in the calling thread")

    monkeypatch.setattr("halo_mcp.store.text_scan.scan_files", no_local_scan)
    with open_store([traces], cache_dir=tmp_path / "cache", scan_workers=workers) as remote:
        assert {p: _found(remote, p) for p in PATTERNS} == expected


def test_the_worker_stops_a_scan_at_the_requests_time_limit(traces, workers, tmp_path):
    with open_store([traces], cache_dir=tmp_path / "cache") as store:
        files = store._files.by_id
        job = ScanJob("limits", store.index_path, files, "span", b"span", seconds=0.0)
        with pytest.raises(QueryTimeoutError, match="time limit"):
            run_scan(job)  # as the worker runs it: no time left, so it stops at once
        assert run_scan(dataclasses.replace(job, seconds=30.0))  # and nothing left stuck

    with (
        open_store(
            [traces], cache_dir=tmp_path / "cache", scan_workers=workers, query_time_limit=1e-4
        ) as hurried,
        pytest.raises(QueryTimeoutError, match="narrow it"),
    ):
        _found(hurried, "span|trace")
    with open_store([traces], cache_dir=tmp_path / "cache", scan_workers=workers) as store:
        assert _found(store, "span|trace")[0]  # the worker is free for the next request


def test_a_killed_worker_is_replaced_and_the_request_still_answered(traces, tmp_path):
    others = _worker_pids()
    pool = ScanWorkers(1)
    pool.start()
    try:
        with open_store([traces], cache_dir=tmp_path / "cache", scan_workers=pool) as store:
            first = _found(store, "timeout")
            (victim,) = _worker_pids() - others
            os.kill(victim, signal.SIGKILL)
            deadline = time.monotonic() + 30
            while victim in _worker_pids() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert _found(store, "timed out|timeout")[0] and _found(store, "timeout") == first
            replacement = _worker_pids() - others
            assert replacement and victim not in replacement
    finally:
        pool.close()
    assert _worker_pids() == others  # closed means stopped


async def test_the_http_server_scans_in_its_worker(traces, tmp_path, monkeypatch):
    monkeypatch.setenv("HALO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr("halo_mcp.store.filters.SCAN_THRESHOLD", 1)
    with open_store([traces], cache_dir=tmp_path / "cache") as local:
        expected = _found(local, "error|timed out")

    def no_local_scan(*args: object, **kwargs: object) -> None:
        raise AssertionError("scanned in the server's thread")

    monkeypatch.setattr("halo_mcp.store.text_scan.scan_files", no_local_scan)
    before = _worker_pids()
    server_settings = settings(transport="http", port=free_port(), roots=[traces.parent])
    assert server_settings.effective_scan_processes() == 1
    with http_server(server_settings) as url:
        assert len(_worker_pids() - before) == 1  # started before the first call
        http = streamable_http_client(url, http_client=create_mcp_http_client())
        async with Client(http) as client:
            result = await client.call_tool(
                "query_spans",
                {"trace_paths": [traces.name], "filter": {"text": "error|timed out"},
                 "fields": ["span_id"], "limit": 200},
            )  # fmt: skip
    assert not result.is_error, result.content[0].text
    answer = result.structured_content
    assert (answer["total"], [s["span_id"] for s in answer["spans"]]) == expected
    assert _worker_pids() == before  # the server stopped its worker on the way out


def test_workers_that_cannot_start_leave_the_scans_in_the_threads(traces, tmp_path):
    """A host program read from stdin cannot be re-imported by a spawned worker: the
    workers do not start, and text filters still answer, scanned in the calling thread."""
    script = f"""
from halo_mcp.store import SpanFilter, open_store
from halo_mcp.store.scan_workers import ScanWorkers
workers = ScanWorkers(1)
workers.start()
with open_store([{str(traces)!r}], cache_dir={str(tmp_path / "cache")!r},
                scan_workers=workers) as store:
    page = store.query_spans(SpanFilter(text="timeout"), fields=["span_id"], limit=5)
print(workers.usable, page.total)
"""
    done = subprocess.run(
        [sys.executable, "-"], input=script, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    with open_store([traces], cache_dir=tmp_path / "cache") as store:
        expected = _found(store, "timeout")[0]
    assert done.stdout.split() == ["False", str(expected)]
    assert "text scans run in the server's threads instead" in done.stderr
