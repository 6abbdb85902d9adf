"""`halo-mcp overview` and `halo-mcp query` from a terminal: tables, JSON, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from halo_mcp.cli import main
from tests.store_spans import shop_traces, write


@pytest.fixture
def traces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HALO_CACHE_DIR", str(tmp_path / "cache"))
    return write(tmp_path / "shop.jsonl", shop_traces(), extra_lines=["{broken"])


def test_overview_prints_counts_tools_signatures_and_bad_lines(traces, capsys) -> None:
    assert main(["overview", str(traces)]) == 0
    out = capsys.readouterr().out
    assert "Traces: 3  Spans: 11  Error spans: 3" in out
    assert f"{traces}:12: " in out
    assert "search" in out and "100.0%" in out
    assert "Timeout after <N>s calling <URL>" in out


def test_overview_json_is_the_overview_model(traces, capsys) -> None:
    assert main(["overview", str(traces), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["traces"] == 3 and data["bad_lines"] == 1
    assert data["error_signatures"][0]["spans"] == 3


def test_query_filters_and_pages(traces, capsys) -> None:
    args = ["query", str(traces), "--tool", "search", "--errors", "--limit", "2"]
    assert main([*args, "--fields", "span_id,duration_ms"]) == 0
    out = capsys.readouterr().out
    assert "t2-s1" in out and "t2-s2" in out and "t2-s3" not in out
    assert "2 of 3 spans" in out
    cursor = out.split("--cursor ")[1].split()[0]
    assert main([*args, "--fields", "span_id", "--cursor", cursor, "--json"]) == 0
    page = json.loads(capsys.readouterr().out)
    assert [s["span_id"] for s in page["spans"]] == ["t2-s3"]


def test_query_attribute_text_and_time_flags(traces, capsys) -> None:
    argv = ["query", str(traces), "--attr", "retry.count=2", "--text", "paris",
            "--start-after", "2025-03-01T10:00:30Z", "--json", "--fields", "span_id,input",
            "--max-chars", "5"]  # fmt: skip
    assert main(argv) == 0
    page = json.loads(capsys.readouterr().out)
    assert [s["span_id"] for s in page["spans"]] == ["t3-w"]
    assert page["spans"][0]["input"].startswith('{"cit…[truncated:')
    assert page["clipped_values"] == 1


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--start-after", "yesterday"], "--start-after: 'yesterday' is not a time"),
        (["--since", "yesterday"], "--since: 'yesterday' is not a time"),
        (["--since", "2h", "--until", "3h"], "must be before until"),
        (["--attr", "novalue"], "KEY=VALUE"),
        (["--fields", "colour"], "valid fields"),
        (["--sort", "size"], "valid sorts"),
        (["--kind", "robot"], "kind"),
        (["--text", "(unclosed"], "regex"),
        (["--cursor", "garbage"], "cursor"),
    ],
)
def test_bad_input_exits_2_with_a_message(traces, capsys, extra, message) -> None:
    assert main(["query", str(traces), *extra]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.out == ""


def test_a_missing_file_exits_2_naming_it(tmp_path, capsys) -> None:
    assert main(["overview", str(tmp_path / "gone.jsonl"), "--cache-dir", str(tmp_path)]) == 2
    assert str(tmp_path / "gone.jsonl") in capsys.readouterr().err


def test_a_long_index_build_says_so_on_stderr_and_json_stays_clean(traces, capsys, monkeypatch):
    from halo_mcp.store import index as index_module

    monkeypatch.setattr(index_module, "PARALLEL_MIN_BYTES", 1)  # "big" from 1 byte on
    monkeypatch.setattr(index_module, "WORKERS", 2)
    assert main(["overview", str(traces), "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["spans"] == 11
    assert "indexing 1 file" in captured.err and "on 2 cores" in captured.err
    assert "indexed in" in captured.err
    assert main(["overview", str(traces), "--json"]) == 0  # reused: nothing to say
    assert capsys.readouterr().err == ""
