"""`halo-mcp runs` and `halo-mcp show` read the run store: the same runs and findings the
MCP server serves, including runs that ended before the engine wrote a report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from halo_mcp.cli import main
from halo_mcp.engine.models import RunStatus
from halo_mcp.engine.runstore import RunStore
from halo_mcp.findings.models import Evidence, Finding, Prevalence, Severity
from halo_mcp.store.models import SpanFilter


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RunStore:
    monkeypatch.setenv("HALO_DATA_DIR", str(tmp_path / "data"))
    return RunStore(tmp_path / "data")


def interrupted_run_with_a_finding(store: RunStore) -> tuple[str, str]:
    run = store.create("Why do refunds fail?", ["/traces/prod.jsonl"], {"model": "m"})
    finding = Finding(
        id="f_refund123",
        run_id=run.id,
        title="refund tool called without an order id",
        category="tool-error",
        severity=Severity.critical,
        description="The agent calls refund() before looking the order up.",
        root_cause="The tool description does not say order_id is required.",
        suggested_change="Mark order_id required and say where it comes from.",
        validation="Count refund errors on new traces.",
        evidence=[Evidence(trace_id="t1", span_id="s1", excerpt="missing order_id " * 80)],
        matcher=SpanFilter(tool_name="refund", errors_only=True),
        prevalence=Prevalence(traces_matched=12, traces_in_scope=40, spans_matched=15),
        verified=True,
    )
    run.status = RunStatus.cancelled
    run.error = "Cancelled with Ctrl-C."
    run.findings = [finding]
    store.save(run)  # no report_markdown: the engine never got to write it
    return run.id, finding.id


def test_a_run_without_a_report_still_shows_its_findings(
    store: RunStore, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id, finding_id = interrupted_run_with_a_finding(store)
    assert main(["show", run_id]) == 0
    out = capsys.readouterr().out
    assert f"# HALO analysis {run_id} (cancelled)" in out
    assert "refund tool called without an order id" in out
    assert "12/40 traces (30.0%), 15 spans" in out
    assert f"halo-mcp show {finding_id}" in out


def test_a_finding_shows_everything_needed_to_fix_it_with_bounded_excerpts(
    store: RunStore, capsys: pytest.CaptureFixture[str]
) -> None:
    _, finding_id = interrupted_run_with_a_finding(store)
    assert main(["show", finding_id]) == 0
    out = capsys.readouterr().out
    assert "Mark order_id required" in out
    assert '`{"errors_only":true,"tool_name":"refund"}`' in out
    assert "trace `t1`, span `s1` (not verified)" in out
    assert "…[truncated: " in out  # a long excerpt is cut, and says so


def test_runs_lists_newest_first_and_limit_is_checked(
    store: RunStore, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["runs"]) == 0
    assert "No runs yet" in capsys.readouterr().err
    first, _ = interrupted_run_with_a_finding(store)
    second, _ = interrupted_run_with_a_finding(store)
    assert main(["runs", "--json", "--limit", "1"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in listed] == [second]
    assert listed[0]["findings"][0]["severity"] == "critical"
    assert "report_markdown" not in listed[0]
    assert main(["runs"]) == 0
    table = capsys.readouterr().out
    assert table.index(second) < table.index(first)
    assert main(["runs", "--limit", "0"]) == 2


def test_an_unknown_finding_id_says_where_ids_come_from(
    store: RunStore, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["show", "f_nope"]) == 2
    err = capsys.readouterr().err
    assert "no finding with id 'f_nope'" in err
    assert "halo-mcp runs" in err
