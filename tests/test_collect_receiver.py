"""The OTLP/HTTP receiver (`halo-mcp collect`), run as a real process and fed by the real
OpenTelemetry OTLP/HTTP protobuf exporter in another process.

The Python SDK has no OTLP/HTTP JSON exporter, so JSON requests are sent by a real HTTP
client (httpx) with bodies written to the OTLP JSON encoding of the spec (hex ids, 64-bit
integers as strings, enums as numbers).
"""

from __future__ import annotations

import gzip
import shutil
import socket
import subprocess
import sys

import httpx2
import orjson
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceResponse,
)

from halo_mcp.store import open_store
from tests.collect_support import (
    ReceiverProcess,
    acked,
    dir_state,
    run_export,
    start_export,
    stored_ids,
)

SPANS_PER_TRACE = 3


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HALO_CACHE_DIR", str(tmp_path / "cache"))


def json_request(trace_hex: str, spans: int = 2, bad_span_ids: int = 0) -> dict:
    """An OTLP JSON ExportTraceServiceRequest: one root and `spans - 1` children, then
    `bad_span_ids` spans whose span id is not 16 hex characters."""
    root = "a" * 16
    items = []
    for i in range(spans):
        span = {
            "traceId": trace_hex,
            "spanId": root if i == 0 else f"{i:016x}",
            "name": "invoke_agent json-agent" if i == 0 else "execute_tool lookup",
            "kind": 1,
            "startTimeUnixNano": str(1_700_000_000_000_000_000 + i * 1000),
            "endTimeUnixNano": str(1_700_000_000_000_000_000 + i * 1000 + 500),
            "attributes": [
                {"key": "gen_ai.operation.name", "value": {"stringValue": "execute_tool"}},
                {"key": "gen_ai.tool.name", "value": {"stringValue": "lookup"}},
                {"key": "attempt", "value": {"intValue": str(i)}},
            ],
            "status": {"code": 2, "message": "lookup failed"} if i == 1 else {},
        }
        if i:
            span["parentSpanId"] = root
        items.append(span)
    for i in range(bad_span_ids):
        items.append({"traceId": trace_hex, "spanId": f"nothex{i}", "name": "broken"})
    return {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "json-svc"}}]
                },
                "scopeSpans": [{"scope": {"name": "hand-written"}, "spans": items}],
            }
        ]
    }


@pytest.mark.parametrize("compression", ["gzip", "none"])
def test_real_exporter_protobuf_spans_land_on_disk_and_read_back(tmp_path, compression):
    collection = tmp_path / "collection"
    with ReceiverProcess(collection) as receiver:
        ids, _ = run_export(receiver.url, traces=12, batch=10, compression=compression)
    assert len(ids) == 12 * SPANS_PER_TRACE
    assert stored_ids(collection) == ids
    with open_store([collection]) as store:
        overview = store.overview()
        assert overview.traces == 12
        assert {t.name: (t.calls, t.errors) for t in overview.tools} == {"search": (12, 4)}
        assert [a.name for a in overview.agents] == ["planner"]
        assert overview.bad_lines == 0


@pytest.mark.parametrize("gzipped", [True, False])
def test_json_requests_with_partial_success(tmp_path, gzipped):
    collection = tmp_path / "collection"
    with ReceiverProcess(collection) as receiver:
        body = orjson.dumps(json_request("ab" * 16, spans=3, bad_span_ids=2))
        headers = {"Content-Type": "application/json"}
        if gzipped:
            body, headers["Content-Encoding"] = gzip.compress(body), "gzip"
        answer = httpx2.post(receiver.url, content=body, headers=headers, timeout=30)
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("application/json")
        partial = answer.json()["partialSuccess"]
        assert partial["rejectedSpans"] == "2"
        assert "spanId" in partial["errorMessage"]
        clean = httpx2.post(
            receiver.url,
            content=orjson.dumps(json_request("cd" * 16, spans=2)),
            headers={"Content-Type": "application/json"},
            timeout=30,
        )
        assert clean.status_code == 200 and clean.json() == {}
    assert stored_ids(collection) == {
        ("ab" * 16, "a" * 16),
        ("ab" * 16, f"{1:016x}"),
        ("ab" * 16, f"{2:016x}"),
        ("cd" * 16, "a" * 16),
        ("cd" * 16, f"{1:016x}"),
    }
    with open_store([collection]) as store:
        errors = store.query_spans({"errors_only": True}, fields=["trace_id", "error_message"])
        assert {(s.trace_id, s.error_message) for s in errors.spans} == {
            ("ab" * 16, "lookup failed"),
            ("cd" * 16, "lookup failed"),
        }


def test_protobuf_answer_is_an_export_response(tmp_path):
    """A protobuf request gets a protobuf ExportTraceServiceResponse (empty: all accepted)."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id, span.span_id, span.name = b"\x01" * 16, b"\x02" * 8, "root"
    bad = request.resource_spans[0].scope_spans[0].spans.add()
    bad.trace_id, bad.span_id, bad.name = b"\x01" * 16, b"", "no span id"
    with ReceiverProcess(tmp_path / "c") as receiver:
        answer = httpx2.post(
            receiver.url,
            content=request.SerializeToString(),
            headers={"Content-Type": "application/x-protobuf"},
            timeout=30,
        )
    assert answer.status_code == 200
    parsed = ExportTraceServiceResponse.FromString(answer.content)
    assert parsed.partial_success.rejected_spans == 1
    assert "spanId" in parsed.partial_success.error_message
    assert stored_ids(tmp_path / "c") == {("01" * 16, "02" * 8)}


def test_collection_is_read_while_it_grows_and_rotates(tmp_path):
    """Small files (rotation at 2 KB): every export adds files; each open sees all spans,
    and the directory keeps one index that is extended, not rebuilt under a new name."""
    collection = tmp_path / "collection"
    seen: set[tuple[str, str]] = set()
    index_paths = set()
    with ReceiverProcess(collection, "--rotate-mb", "0.002") as receiver:
        for round_ in range(3):
            ids, _ = run_export(receiver.url, traces=4, batch=3, tag=f"r{round_}")
            seen |= ids
            with open_store([collection]) as store:
                assert store.count().spans == len(seen)
                assert store.count().traces == 4 * (round_ + 1)
                index_paths.add(store.index_path)
            files = sorted(p.name for p in collection.glob("spans-*.jsonl"))
            assert len(files) > round_ + 1  # rotated into new files
    assert stored_ids(collection) == seen
    assert len(index_paths) == 1


def test_kill_9_mid_stream_loses_no_acknowledged_span(tmp_path):
    collection = tmp_path / "collection"
    receiver = ReceiverProcess(collection)
    exporter = start_export(receiver.url, traces=400, batch=6, timeout=2, stop_on_failure=True)
    assert exporter.stdout is not None
    output: list[str] = []
    for line in exporter.stdout:  # wait until a good part of the stream was acknowledged
        output.append(line)
        if sum(1 for x in output if x.startswith("ACK")) >= 120:
            break
    receiver.kill()
    rest, _ = exporter.communicate(timeout=120)
    sent = acked("".join(output) + rest)
    assert 120 <= len(sent) < 400 * SPANS_PER_TRACE  # the kill cut the stream short
    assert sent <= stored_ids(collection)
    # A new receiver on the same directory cuts any unfinished line and appends after it.
    with ReceiverProcess(collection) as again:
        more, _ = run_export(again.url, traces=3, batch=9, tag="after")
    with open_store([collection]) as store:
        assert store.report.bad_lines == 0
    assert (sent | more) <= stored_ids(collection)


def test_overloaded_receiver_answers_429_and_the_exporter_retry_delivers(tmp_path):
    """One request in flight at most: a slow upload holds the slot, the exporter gets
    429 + Retry-After, and once the slot is free its retry is accepted."""
    collection = tmp_path / "collection"
    with ReceiverProcess(collection, "--max-in-flight", "1") as receiver:
        slow = socket.create_connection(("127.0.0.1", receiver.port))
        body = orjson.dumps(json_request("ef" * 16, spans=2))
        slow.sendall(
            f"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1:{receiver.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body[:10]
        )
        receiver.wait_for_log("receiving a request (1 in flight)")
        exporter = start_export(receiver.url, traces=5, batch=15, timeout=30)
        receiver.wait_for_log("answered 429")
        slow.sendall(body[10:])
        answer = slow.recv(65536)
        slow.close()
        assert answer.startswith(b"HTTP/1.1 200")
        out, err = exporter.communicate(timeout=120)
    assert exporter.returncode == 0, err
    delivered = acked(out)
    assert len(delivered) == 15
    assert "429" in err or "retrying" in err  # the exporter saw the refusal and retried
    assert delivered | {("ef" * 16, "a" * 16), ("ef" * 16, f"{1:016x}")} == stored_ids(collection)


def test_bad_payloads_get_400_and_change_nothing(tmp_path):
    collection = tmp_path / "collection"
    with ReceiverProcess(collection, "--max-request-mb", "0.01") as receiver:
        ids, _ = run_export(receiver.url, traces=2, batch=6)
        before = dir_state(collection)
        pb = {"Content-Type": "application/x-protobuf"}
        js = {"Content-Type": "application/json"}
        cases = [
            (b"\xff\xff\xff\xff", pb, 400, "protobuf"),
            (b"{not json", js, 400, "not valid JSON"),
            (b"[1, 2]", js, 400, "JSON object"),
            (b'{"resourceSpans": {"a": 1}}', js, 400, "must be a JSON array"),
            (b'{"resourceSpans": [{"scopeSpans": [{"spans": [7]}]}]}', js, 400, "spans[0]"),
            (b"not gzip at all", {**js, "Content-Encoding": "gzip"}, 400, "gzip"),
            (b"{}", {**js, "Content-Encoding": "br"}, 400, "Content-Encoding"),
            (gzip.compress(b" " * 100_000), {**js, "Content-Encoding": "gzip"}, 413, "larger"),
            (b"x" * 20_000, js, 413, "body over"),
        ]
        for body, headers, status, words in cases:
            answer = httpx2.post(receiver.url, content=body, headers=headers, timeout=30)
            assert answer.status_code == status, (body[:30], answer.text)
            if headers["Content-Type"] == "application/json":
                assert words in answer.json()["message"]
            else:
                assert words.encode() in answer.content
        wrong_type = httpx2.post(
            receiver.url, content=b"{}", headers={"Content-Type": "text/plain"}, timeout=30
        )
        assert wrong_type.status_code == 415
        assert "application/x-protobuf" in wrong_type.text
        assert dir_state(collection) == before
    assert stored_ids(collection) == ids


def test_token_and_host_origin_checks_match_the_mcp_server(tmp_path):
    token = "collect-token-0123456789"
    collection = tmp_path / "collection"
    with ReceiverProcess(collection, env={"HALO_MCP_TOKEN": token}) as receiver:
        body = orjson.dumps(json_request("12" * 16))
        js = {"Content-Type": "application/json"}
        missing = httpx2.post(receiver.url, content=body, headers=js, timeout=30)
        assert missing.status_code == 401 and token not in missing.text
        wrong = {**js, "Authorization": "Bearer nope"}
        assert httpx2.post(receiver.url, content=body, headers=wrong, timeout=30).status_code == 401
        good = {**js, "Authorization": f"Bearer {token}"}
        rebinding = {**good, "Host": "evil.example:4318"}
        assert (
            httpx2.post(receiver.url, content=body, headers=rebinding, timeout=30).status_code
            == 421
        )
        cross = {**good, "Origin": "http://evil.example"}
        assert httpx2.post(receiver.url, content=body, headers=cross, timeout=30).status_code == 403
        assert not list(collection.glob("spans-*"))
        ids, _ = run_export(receiver.url, traces=2, headers={"Authorization": f"Bearer {token}"})
        assert httpx2.post(receiver.url, content=body, headers=good, timeout=30).status_code == 200
    assert all(token not in line for line in receiver.log)
    assert stored_ids(collection) == ids | {("12" * 16, "a" * 16), ("12" * 16, f"{1:016x}")}


def test_a_second_receiver_on_the_same_directory_is_refused(tmp_path):
    collection = tmp_path / "collection"
    with ReceiverProcess(collection):
        done = subprocess.run(
            [sys.executable, "-m", "halo_mcp", "collect", "--port", "0", "--dir", str(collection)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2
    assert "another halo-mcp receiver is writing to" in done.stderr


def test_a_failed_write_is_a_503_with_retry_after_and_nothing_acknowledged(tmp_path):
    """The collection directory vanishes under the receiver: the write of the next file
    fails, the client gets 503 + Retry-After (retryable), and once the directory is back
    the same request is stored."""
    collection = tmp_path / "collection"
    js = {"Content-Type": "application/json"}
    with ReceiverProcess(collection, "--rotate-mb", "0.002") as receiver:
        first = orjson.dumps(json_request("31" * 16, spans=6))
        assert httpx2.post(receiver.url, content=first, headers=js, timeout=30).status_code == 200
        shutil.rmtree(collection)
        second = orjson.dumps(json_request("32" * 16, spans=6))
        refused = httpx2.post(receiver.url, content=second, headers=js, timeout=30)
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert "retry" in refused.json()["message"]
        collection.mkdir()
        again = httpx2.post(receiver.url, content=second, headers=js, timeout=30)
        assert again.status_code == 200
    assert {t for t, _ in stored_ids(collection)} == {"32" * 16}
