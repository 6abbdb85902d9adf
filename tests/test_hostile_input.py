"""Hostile or careless input: patterns that would backtrack forever, bad bytes, damaged
gzip streams, FIFOs and unreadable files, credentials in URLs, a data directory that is a
file. Each is refused or skipped with a message naming it; nothing else is lost."""

from __future__ import annotations

import gzip
import json
import logging
import os
import threading
from pathlib import Path

import pytest
from mcp import Client

from halo_mcp.cli import main
from halo_mcp.engine import agent_tools
from halo_mcp.engine.runstore import RunStore
from halo_mcp.engine.settings import EngineSettings
from halo_mcp.redact import RedactUrlsFilter, redact_url, redact_urls_in
from halo_mcp.server import create_server
from halo_mcp.store import open_store
from halo_mcp.store.errors import InvalidFilterError, TraceFileNotFoundError
from halo_mcp.store.models import SpanFilter
from halo_mcp.text_patterns import PatternError, compile_pattern
from halo_mcp.triage import run_triage
from tests.mcp_support import settings
from tests.store_spans import shop_traces, span, write

LONG_AS = "a" * 50_000


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HALO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HALO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    return tmp_path


def _lines(spans: list[dict]) -> list[bytes]:
    return [json.dumps(s).encode() for s in spans]


def _good_spans(count: int, trace: str = "t") -> list[dict]:
    return [span(f"{trace}{i // 5}", f"s{i}", None, f"step {i}") for i in range(count)]


# -- 1. patterns run in linear time -------------------------------------------------------


def test_a_catastrophic_pattern_finishes_and_unsupported_constructs_are_named(env) -> None:
    long_span = span("ta", "sa", None, "long", note=LONG_AS + "?")
    path = write(env / "a.jsonl", [*shop_traces(), long_span])
    with open_store([path]) as store:
        # (a+)+! over 50,000 a's then '?' never ends with backtracking; RE2 answers at once
        # with what the equivalent a+! gives.
        nested = store.count(SpanFilter(text="(a+)+!")).spans
        assert nested == store.count(SpanFilter(text="a+!")).spans == 0
        assert store.count(SpanFilter(text="(a+)+[?]")).spans == 1
        with pytest.raises(InvalidFilterError, match="backreference"):
            store.search(r"(a)\1")
    for pattern, construct in [
        (r"(x)\1", "backreference"),
        ("(?=x)y", "lookahead"),
        ("(?<!x)y", "lookbehind"),
        ("a++", "possessive"),
        ("x{5000}", "at most 1000"),
    ]:
        with pytest.raises(PatternError, match=construct):
            compile_pattern(pattern)
    with pytest.raises(ValueError, match="lookahead"):
        SpanFilter(text="foo(?=bar)")
    assert compile_pattern(r"caf\u00e9").search("CAFÉ")  # Python's \u escape is accepted


def test_the_engine_search_tool_refuses_a_backreference_with_advice(env) -> None:
    path = write(env / "a.jsonl", shop_traces())
    with open_store([path]) as store:
        ctx = agent_tools.ToolContext(store=store)
        with pytest.raises(ValueError, match=r"backreference.*repeat the text"):
            agent_tools.search(ctx, agent_tools.SearchArgs(pattern=r"(\w+) \1"))
        found = agent_tools.search(ctx, agent_tools.SearchArgs(pattern="pari[s]"))
        assert json.loads(found.splitlines()[0])["spans_matched"] == 2


def test_the_harness_grep_runs_agent_patterns_in_linear_time(tmp_path) -> None:
    from halo_mcp.harness import code, open_repository
    from tests.harness_repo import make_harness_repo

    repo = open_repository(make_harness_repo(tmp_path / "repo").root)
    (repo.root / "agent" / "long.txt").write_text("a" * 1000 + "?\n")  # lines are cut at 2,000
    matches, _ = code.grep(repo, "(a+)+!")
    assert matches == []
    assert [m["path"] for m in code.grep(repo, "(a+)+[?]")[0]] == ["agent/long.txt"]
    with pytest.raises(code.CodeError, match="backreference"):
        code.grep(repo, r"(\w+) \1")


def test_triage_matchers_compile_as_linear_patterns(env) -> None:
    from tests.mcp_support import make_traces

    with open_store([make_traces(env / "traces")]) as store:
        report = run_triage(store, max_items=20)
        texts = [i.matcher.text for i in report.items if i.matcher and i.matcher.text]
        assert texts, "the synthetic traces plant error clusters with a text matcher"
        for text in texts:
            assert store.count(SpanFilter.model_validate({"text": text})).spans >= 1


# -- 3. bad bytes -------------------------------------------------------------------------


def test_a_lone_surrogate_costs_its_line_only_in_the_cli_and_over_mcp(env, capsys) -> None:
    lines = _lines(_good_spans(10))
    lines[4] = lines[4].replace(b'"name": "step 4"', b'"name": "step \\ud800 four"')
    path = env / "surrogate.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    assert main(["overview", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"{path}:5: " in out and "lone surrogate" in out
    assert "Spans: 9" in out


async def test_over_mcp_the_overview_lists_bad_lines_and_skipped_files(env) -> None:
    folder = env / "traces"
    folder.mkdir()
    lines = _lines(_good_spans(10))
    lines[2] = lines[2].replace(b'"name": "step 2"', b'"name": "\\udc00"')
    (folder / "a.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    (folder / "gone.jsonl").symlink_to(env / "nowhere.jsonl")
    async with Client(create_server(settings())) as client:
        result = await client.call_tool("trace_overview", {"trace_paths": [str(folder)]})
        assert not result.is_error, result.content[0].text
        data = result.structured_content
        query = await client.call_tool(
            "query_spans", {"trace_paths": [str(folder)], "filter": {"text": "\ud800"}}
        )
        by_name = await client.call_tool(
            "query_spans", {"trace_paths": [str(folder)], "filter": {"name": "x\udc00"}}
        )
    assert data["spans"] == 9
    assert [(b["line"], "lone surrogate" in b["reason"]) for b in data["bad_line_examples"]] == [
        (3, True)
    ]
    assert [s["path"] for s in data["skipped_files"]] == [str(folder / "gone.jsonl")]
    assert query.is_error and "lone surrogate" in query.content[0].text
    assert by_name.is_error and "filter.name holds a lone surrogate" in by_name.content[0].text


def test_names_and_arguments_that_are_not_utf8_are_named_not_a_traceback(env, capsys) -> None:
    folder = env / "traces"
    folder.mkdir()
    write(folder / "good.jsonl", shop_traces())
    odd = os.fsdecode(bytes(folder) + b"/caf\xe9.jsonl")  # a Latin-1 file name
    write(Path(odd), shop_traces())
    assert main(["overview", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "Spans: 11" in out
    assert f"Skipped: {folder}/caf\\xe9.jsonl: its name is not valid UTF-8" in out
    assert main(["query", str(folder), "--tool", os.fsdecode(b"\xff")]) == 2
    assert "argument '\\\\xff' is not valid UTF-8" in capsys.readouterr().err


def test_a_truncated_gzip_keeps_every_complete_line_and_says_where_it_stopped(env) -> None:
    lines = _lines(_good_spans(400))
    blob = gzip.compress(b"\n".join(lines) + b"\n")
    path = env / "cut.jsonl.gz"
    path.write_bytes(blob[: len(blob) * 2 // 3])
    with open_store([path]) as store:
        report = store.report
        kept = store.count(SpanFilter()).spans
    assert 100 < kept < 400
    assert report.spans == kept
    [damage] = report.bad_line_examples
    assert damage.file == str(path) and damage.line == kept + 1
    assert "ends early (truncated" in damage.reason and "lines before this one" in damage.reason


def test_a_corrupt_gzip_is_a_clear_error_not_a_zlib_traceback(env, capsys) -> None:
    lines = _lines(_good_spans(50))
    blob = bytearray(gzip.compress(b"\n".join(lines) + b"\n"))
    blob[30:60] = bytes(b ^ 0x5A for b in blob[30:60])
    path = env / "bad.jsonl.gz"
    path.write_bytes(bytes(blob))
    assert main(["overview", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "zlib.error" not in err
    assert f"no valid span in {path}" in err and "gzip stream is corrupt" in err
    plain = env / "plain.jsonl.gz"
    plain.write_bytes(b"\n".join(lines))  # not gzip at all
    assert main(["overview", str(plain)]) == 2
    assert "not a gzip file" in capsys.readouterr().err


# -- 4. non-regular files -----------------------------------------------------------------


def _open_in_thread(paths: list[Path]) -> tuple[object, BaseException | None]:
    """open_store in a thread; a FIFO opened for reading would block it forever, so the
    test waits a generous minute instead of hanging the suite."""
    out: dict[str, object] = {}

    def target() -> None:
        try:
            with open_store(paths) as store:
                out["report"] = store.report
        except BaseException as exc:  # handed to the test
            out["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "open_store blocked: a FIFO was opened for reading"
    return out.get("report"), out.get("error")  # type: ignore[return-value]


def test_a_fifo_is_refused_given_directly_and_skipped_in_a_directory(env) -> None:
    folder = env / "traces"
    folder.mkdir()
    write(folder / "good.jsonl", shop_traces())
    fifo = folder / "live.jsonl"
    os.mkfifo(fifo)
    _, error = _open_in_thread([fifo])
    assert isinstance(error, TraceFileNotFoundError)
    assert "FIFO (named pipe), not a regular file" in str(error)
    report, error = _open_in_thread([folder])
    assert error is None
    assert report.spans == 11  # type: ignore[attr-defined]
    assert [(s.path, "FIFO" in s.reason) for s in report.skipped_files] == [(str(fifo), True)]  # type: ignore[attr-defined]


async def test_over_mcp_a_fifo_is_a_tool_error(env) -> None:
    fifo = env / "pipe.jsonl"
    os.mkfifo(fifo)
    async with Client(create_server(settings())) as client:
        result = await client.call_tool("query_spans", {"trace_paths": [str(fifo)]})
    assert result.is_error and "not a regular file" in result.content[0].text


# -- 5. empty and unreadable files in a directory -----------------------------------------


def test_an_empty_and_an_unreadable_file_are_reported_and_the_rest_loads(env, capsys) -> None:
    folder = env / "traces"
    folder.mkdir()
    write(folder / "good.jsonl", shop_traces())
    (folder / "empty.jsonl").write_bytes(b"")
    (folder / "broken-link.jsonl").symlink_to(env / "missing.jsonl")
    with open_store([folder]) as store:
        assert store.report.spans == 11
        assert [s.path for s in store.report.skipped_files] == [str(folder / "broken-link.jsonl")]
        empty = [f for f in store.report.files if f.path.endswith("empty.jsonl")]
        assert empty and empty[0].spans == 0
    assert main(["overview", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "Spans: 11" in out
    assert f"Skipped: {folder / 'broken-link.jsonl'}: a link to nothing" in out
    assert "empty.jsonl (unknown, 0 spans)" in out


# -- 6. credentials in URLs ---------------------------------------------------------------


def test_url_credentials_are_redacted_in_one_place() -> None:
    url = "http://user:SECRETKEY@llm.internal:8080/v1?api-key=QKEY&region=eu&token=T0K"
    clean = redact_url(url)
    assert clean == "http://***@llm.internal:8080/v1?api-key=***&region=eu&token=***"
    assert redact_url("https://api.openai.com/v1") == "https://api.openai.com/v1"
    text = f"connect to {url} failed"
    assert "SECRETKEY" not in redact_urls_in(text) and "QKEY" not in redact_urls_in(text)
    record = logging.LogRecord("httpx", logging.INFO, "", 0, "HTTP Request: POST %s", (url,), None)
    RedactUrlsFilter().filter(record)
    assert "SECRETKEY" not in record.getMessage() and "llm.internal" in record.getMessage()


async def test_a_run_started_with_credentials_in_the_base_url_never_stores_them(
    engine_env, monkeypatch, env
) -> None:
    from tests.mcp_support import make_traces, script_analysis

    base = engine_env.server.base_url.replace("http://", "http://halo:URLSECRET99@")
    monkeypatch.setenv("OPENAI_BASE_URL", base)
    traces = make_traces(env / "traces")
    script_analysis(engine_env.server)
    async with Client(create_server(settings())) as client:
        started = await client.call_tool(
            "analyze_traces", {"trace_paths": [str(traces)], "wait_seconds": 30}
        )
        assert not started.is_error, started.content[0].text
        assert started.structured_content["status"] == "finished"
    assert engine_env.server.requests, "the run reached the provider through that URL"
    stored = b"".join(p.read_bytes() for p in engine_env.data_dir.rglob("*") if p.is_file())
    assert b"URLSECRET99" not in stored
    run = RunStore(engine_env.data_dir).list()[0]
    assert run.config["base_url"].startswith("http://***@127.0.0.1:")
    assert EngineSettings(base_url=base).public_dict()["base_url"] == run.config["base_url"]


def test_a_run_recorded_with_a_raw_base_url_is_shown_redacted(env, capsys) -> None:
    """Records written before redaction existed are redacted when read."""
    runs = RunStore(env / "data")
    run = runs.create("why?", ["a.jsonl"], {"base_url": "http://u:OLDSECRET@h/v1"}, owner=None)
    assert main(["show", run.id, "--json"]) == 0
    out = capsys.readouterr().out
    assert "OLDSECRET" not in out and "http://***@h/v1" in out


# -- 7. a data or cache directory that is a file ------------------------------------------


@pytest.mark.parametrize(
    ("variable", "argv"),
    [
        ("HALO_DATA_DIR", ["runs"]),
        ("HALO_DATA_DIR", ["show", "run_x"]),
        ("HALO_CACHE_DIR", ["overview", "{traces}"]),
        ("HALO_CACHE_DIR", ["triage", "{traces}"]),
        ("HALO_CACHE_DIR", ["query", "{traces}"]),
    ],
)
def test_a_directory_that_is_a_file_exits_2_naming_it(env, monkeypatch, capsys, variable, argv):
    traces = write(env / "t.jsonl", shop_traces())
    blocker = env / "blocker"
    blocker.write_text("not a directory")
    monkeypatch.setenv(variable, str(blocker))
    assert main([a.format(traces=traces) for a in argv]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"{blocker} is a file, not a directory" in err and variable in err


async def test_over_mcp_a_data_directory_that_is_a_file_is_a_tool_error(env, monkeypatch):
    blocker = env / "blocker"
    blocker.write_text("x")
    monkeypatch.setenv("HALO_DATA_DIR", str(blocker / "sub"))
    async with Client(create_server(settings())) as client:
        result = await client.call_tool("list_runs", {})
    assert result.is_error and "is a file, not a directory" in result.content[0].text
    assert "HALO_DATA_DIR" in result.content[0].text


def test_a_finding_saved_with_a_python_only_pattern_still_loads_and_explains(env) -> None:
    """Runs saved before patterns were RE2 may hold a lookahead: the run still reads back,
    and counting with that matcher says what RE2 lacks instead of failing the load."""
    from halo_mcp.engine.models import RunStatus
    from halo_mcp.findings.models import Finding, Severity

    runs = RunStore(env / "data")
    run = runs.create("why?", ["a.jsonl"], {}, owner=None)
    old_matcher = SpanFilter.model_construct(text="timeout(?! retried)")
    run.status = RunStatus.finished
    finding = Finding(
        id="f_old",
        run_id=run.id,
        title="old",
        category="c",
        severity=Severity.high,
        description="d",
        root_cause="r",
        suggested_change="s",
        validation="v",
    )
    finding.matcher = old_matcher  # as an older version saved it, unchecked
    run.findings = [finding]
    runs.save(run)
    loaded = RunStore(env / "data").get_finding("f_old")
    assert loaded.matcher is not None and loaded.matcher.text == "timeout(?! retried)"
    path = write(env / "a.jsonl", shop_traces())
    with open_store([path]) as store, pytest.raises(InvalidFilterError, match="lookahead"):
        store.count(loaded.matcher)
