"""Where a run's spans go: a HALO JSONL file halo-mcp itself reads, or OTLP/HTTP; and
nothing that goes wrong there (unwritable file, dead collector) fails the run."""

from __future__ import annotations

import builtins
import logging
import sys

import orjson
import pytest

from halo_mcp.engine.provider import ChatProvider
from halo_mcp.engine.telemetry import (
    Telemetry,
    agent_span,
    describe_output,
    output_path,
    tool_span,
)
from halo_mcp.store import SpanFilter, open_store
from halo_mcp.store.formats import ROW_FIELDS, detect_format, parse_line, span_payload
from tests.fakes.openai_server import reply, status, tool_call, usage
from tests.telemetry_support import OtlpCollector, fake_agent, free_port

CAPTURE = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
OTLP_ENVS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    """Each test chooses its exporter: no OTLP endpoint, default path, no capture."""
    for name in (*OTLP_ENVS, "HALO_TELEMETRY_PATH", CAPTURE):
        monkeypatch.delenv(name, raising=False)


async def mini_run(
    engine_env, run_id: str = "run_export", prompt: str = "find failures", **settings_overrides
):
    """A run-shaped sequence with real exporters: run -> agent -> chat, tool -> chat.
    Returns (telemetry, completions) - the run itself must always succeed."""
    engine_env.server.script(
        [
            tool_call("overview", {}, usage=usage(900, 40, cached_tokens=512)),
            reply("done", usage=usage(1500, 60, reasoning_tokens=12)),
        ]
    )
    settings = engine_env.settings(telemetry=True, **settings_overrides)
    tel = Telemetry.start(settings, run_id, prompt=prompt, trace_paths=["a.jsonl"])
    assert tel is not None
    provider = ChatProvider(settings)
    completions = []
    with tel.activate(), agent_span(fake_agent(task=prompt)):
        completions.append(await provider.complete([{"role": "user", "content": prompt}]))
        with tool_span("overview", "call_1", "{}") as tool:
            tool.result("40 traces, 7 with errors")
        completions.append(await provider.complete([{"role": "user", "content": "go on"}]))
    await provider.aclose()
    tel.end_run(status="finished", usage=provider.usage, findings=0)
    await tel.aclose()
    return tel, completions


def rows(path):
    lines = path.read_bytes().splitlines()
    return [dict(zip(ROW_FIELDS, row, strict=True)) for line in lines for row in parse_line(line)]


async def test_by_default_spans_go_to_a_jsonl_file_under_the_data_dir(engine_env, monkeypatch):
    tel, _ = await mini_run(engine_env, run_id="run_abc")
    expected = engine_env.data_dir / "telemetry" / "run_abc.jsonl"
    assert tel.path == expected == output_path("run_abc")
    assert tel.output == str(expected)
    assert expected.exists()


async def test_the_jsonl_is_halo_flat_jsonl_that_halo_mcp_reads_back(engine_env, monkeypatch):
    monkeypatch.setenv("HALO_TELEMETRY_PATH", str(engine_env.data_dir / "out" / "t.jsonl"))
    tel, _ = await mini_run(engine_env)
    path = engine_env.data_dir / "out" / "t.jsonl"
    assert tel.path == path

    lines = path.read_bytes().splitlines()
    assert {detect_format(line) for line in lines} == {"halo-jsonl"}
    first = orjson.loads(lines[0])
    for key in (
        "trace_id",
        "span_id",
        "parent_span_id",
        "name",
        "kind",
        "start_time",
        "end_time",
        "status",
        "resource",
        "scope",
        "attributes",
    ):
        assert key in first
    assert first["kind"].startswith("SPAN_KIND_")
    assert first["status"]["code"].startswith("STATUS_CODE_")
    assert first["start_time"].endswith("Z") and len(first["start_time"]) == 30

    parsed = rows(path)
    by_kind = {}
    for row in parsed:
        by_kind.setdefault(row["kind"], []).append(row)
    llm = by_kind["llm"]
    assert len(llm) == 2
    assert {r["model"] for r in llm} == {"fake-model"}
    assert sorted((r["input_tokens"], r["output_tokens"]) for r in llm) == [(900, 40), (1500, 60)]
    assert all(r["agent"] == "halo-root" for r in llm)
    assert [r["agent"] for r in by_kind["agent"]] == ["halo-root"]
    assert [r["tool_name"] for r in by_kind["tool"]] == ["overview"]
    assert [r["name"] for r in by_kind["chain"]] == ["halo.run"]
    assert all(r["service"] == "halo-mcp" for r in parsed)
    assert len({r["trace_id"] for r in parsed}) == 1

    run = by_kind["chain"][0]
    payload = span_payload(next(line for line in lines if b'"halo.run"' in line), run["span_id"])
    assert payload.attributes["halo.usage.input_tokens"] == 2400
    assert payload.attributes["halo.usage.cached_input_tokens"] == 512
    assert payload.attributes["halo.usage.reasoning_tokens"] == 12


async def test_otlp_export_reaches_a_collector(engine_env, monkeypatch):
    with OtlpCollector() as collector:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint)
        tel, _ = await mini_run(engine_env)
        assert tel.path is None
        assert tel.output == f"OTLP {collector.endpoint}"
        spans = collector.spans()
    assert collector.paths and set(collector.paths) == {"/v1/traces"}
    names = sorted(s.name for s in spans)
    assert names == sorted(
        [
            "halo.run",
            "invoke_agent halo-root",
            "chat fake-model",
            "chat fake-model",
            "execute_tool overview",
        ]
    )
    chat = next(s for s in spans if s.name.startswith("chat"))
    attrs = {kv.key: kv.value for kv in chat.attributes}
    assert attrs["gen_ai.operation.name"].string_value == "chat"
    assert attrs["gen_ai.usage.input_tokens"].int_value in (900, 1500)


async def test_an_otlp_traces_endpoint_alone_is_enough(engine_env, monkeypatch):
    with OtlpCollector() as collector:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", collector.endpoint + "/v1/traces")
        await mini_run(engine_env)
        assert len(collector.spans()) == 5


async def test_without_the_otlp_package_it_warns_and_writes_the_file(
    engine_env, monkeypatch, caplog
):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
    real_import = builtins.__import__

    def no_otlp(name, *args, **kwargs):
        if name.startswith("opentelemetry.exporter.otlp"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(
        sys.modules, "opentelemetry.exporter.otlp.proto.http.trace_exporter", raising=False
    )
    monkeypatch.setattr(builtins, "__import__", no_otlp)
    with caplog.at_level(logging.WARNING):
        tel, completions = await mini_run(engine_env, run_id="run_noexp")
    assert completions[-1].content == "done"
    assert tel.path == engine_env.data_dir / "telemetry" / "run_noexp.jsonl"
    assert len(rows(tel.path)) == 5
    assert "halo-mcp[otlp]" in caplog.text


async def test_an_unwritable_telemetry_path_does_not_fail_the_run(engine_env, monkeypatch, caplog):
    blocker = engine_env.data_dir / "blocker"
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("a file, not a folder")
    monkeypatch.setenv("HALO_TELEMETRY_PATH", str(blocker / "spans.jsonl"))
    with caplog.at_level(logging.WARNING):
        tel, completions = await mini_run(engine_env)
    assert [c.content for c in completions] == [None, "done"]
    assert tel.target.exporter.failed
    assert "HALO_TELEMETRY_PATH" in caplog.text


async def test_a_dead_collector_does_not_fail_the_run(engine_env, monkeypatch):
    monkeypatch.setenv(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"http://127.0.0.1:{free_port()}/v1/traces"
    )
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "0.5")
    tel, completions = await mini_run(engine_env)
    assert tel.target.kind == "otlp"
    assert completions[-1].content == "done"


async def test_no_secret_reaches_any_exported_byte(engine_env, monkeypatch):
    """Content capture on, the key pasted into the prompt, a secret header, an error
    echoing the key: neither the file nor the OTLP request carries them."""
    key, header = engine_env.api_key, "hdr-secret-value-42"
    monkeypatch.setenv(CAPTURE, "true")
    prompt = f"use the key {key} please"
    tel, _ = await mini_run(engine_env, prompt=prompt, extra_headers={"x-api-token": header})
    file_bytes = tel.path.read_bytes()
    assert b"use the key *** please" in file_bytes  # content was captured, key removed

    engine_env.server.script([status(401, f"invalid api key {key}")])
    settings = engine_env.settings(telemetry=True)
    with OtlpCollector() as collector:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint)
        tel2 = Telemetry.start(settings, "run_secret", prompt=prompt)
        provider = ChatProvider(settings)
        failed = None
        with tel2.activate(), agent_span(fake_agent()):
            try:
                await provider.complete([{"role": "user", "content": prompt}])
            except Exception as exc:
                failed = exc
        await provider.aclose()
        tel2.end_run(status="failed", error=failed)
        await tel2.aclose()
        otlp_bytes = b"".join(collector.bodies)
    assert failed is not None and b"refused the credentials" in otlp_bytes
    for blob in (file_bytes, otlp_bytes):
        assert key.encode() not in blob
        assert header.encode() not in blob
        assert b"authorization" not in blob.lower()


def test_the_cli_can_tell_where_a_runs_spans_go(engine_env, monkeypatch):
    expected = engine_env.data_dir / "telemetry" / "run_later.jsonl"
    assert describe_output("run_later") == str(expected)
    folder = engine_env.data_dir / "spans"
    monkeypatch.setenv("HALO_TELEMETRY_PATH", f"{folder}/")
    assert describe_output("run_later") == str(folder / "run_later.jsonl")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://user:pw@collector.local:4318")
    assert describe_output("run_later") == "OTLP http://collector.local:4318"


async def test_halo_mcp_can_analyze_its_own_run_through_its_store(engine_env, monkeypatch):
    tel, _ = await mini_run(engine_env, run_id="run_self")
    with open_store([tel.path], cache_dir=engine_env.cache_dir) as store:
        assert store.report.bad_lines == 0
        page = store.query_spans(SpanFilter(kind="llm"), sort="tokens")
        assert page.total == 2
        assert {s.model for s in page.spans} == {"fake-model"}
        assert {(s.input_tokens, s.output_tokens) for s in page.spans} == {(900, 40), (1500, 60)}
        assert {s.agent for s in page.spans} == {"halo-root"}
        tools = store.query_spans(SpanFilter(kind="tool", tool_name="overview"))
        assert tools.total == 1
        tree = store.trace_tree(page.spans[0].trace_id)
        assert tree.summary.root_name == "halo.run"
        assert [n.depth for n in tree.nodes] == [0, 1, 2, 2, 2]
        overview = store.overview()
        assert overview.tokens.input == 2400 and overview.tokens.output == 100
