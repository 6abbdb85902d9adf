"""`halo-mcp check` and the check_findings tool run the same workflow: the same findings
checked on the same traces give the same verdicts and the same before/after figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from halo_mcp.check.workflow import CheckError, FromBaselineTriage, FromRun, run_check
from halo_mcp.cli import main
from halo_mcp.engine.models import RunStatus
from halo_mcp.engine.runstore import RunStore
from halo_mcp.findings.models import Finding, Prevalence, Severity
from halo_mcp.server import create_server
from halo_mcp.store import open_store
from halo_mcp.synth import generate
from tests.mcp_support import settings


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HALO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HALO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    generate(tmp_path / "old.jsonl", traces=150, seed=5, profile="tiny")
    generate(
        tmp_path / "new.jsonl", traces=150, seed=5, profile="tiny", failure_rates={"retry_loop": 0}
    )
    return tmp_path


def _finished_run(env: Path) -> str:
    runs = RunStore(env / "data")
    run = runs.create("why?", [str(env / "old.jsonl")], {})
    run.findings = [
        Finding(
            id="f_paths",
            run_id=run.id,
            title="read_file fails",
            category="tool-error",
            severity=Severity.high,
            description="d",
            root_cause="r",
            suggested_change="s",
            validation="v",
            matcher={"tool_name": "read_file", "errors_only": True},
            prevalence=Prevalence(traces_matched=1, traces_in_scope=150, spans_matched=1),
        )
    ]
    run.status = RunStatus.finished
    runs.save(run)
    return run.id


def _figures(report: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [
        (r["finding_id"], r["verdict"], r["before"], r["after"], r["method"])
        for r in report["results"]
    ]


async def _mcp_check(arguments: dict[str, Any]) -> dict[str, Any]:
    async with Client(create_server(settings())) as client:
        result = await client.call_tool("check_findings", arguments)
    assert not result.is_error, result.content[0].text
    return result.structured_content


@pytest.mark.parametrize("source", ["run", "triage"])
async def test_the_cli_and_the_mcp_tool_give_the_same_check(env: Path, capsys, source: str):
    old, new = str(env / "old.jsonl"), str(env / "new.jsonl")
    if source == "run":
        run_id = _finished_run(env)
        argv, arguments = [run_id], {"run_id": run_id}
    else:
        argv, arguments = ["triage"], {}
    assert main(["check", *argv, new, "--baseline", old, "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    mcp = await _mcp_check({"trace_paths": [new], "baseline_paths": [old], **arguments})
    assert _figures(cli) and _figures(cli) == _figures(mcp)
    assert cli["baseline"].startswith("recount on the baseline traces")
    assert mcp["baseline"].startswith("recount on the baseline traces")


def test_a_run_still_going_is_not_checked(env: Path) -> None:
    runs = RunStore(env / "data")
    run = runs.create("why?", [str(env / "old.jsonl")], {})
    runs.mark_running(run.id)

    def with_store(paths: Any, fn: Any) -> Any:
        with open_store(paths) as store:
            return fn(store)

    def run_findings(run_id: str) -> Any:
        from halo_mcp.check.workflow import RunFindings

        record = runs.get(run_id)
        return RunFindings(record.id, record.status.value, record.status.done, record.findings)

    with pytest.raises(CheckError, match="still running"):
        run_check(
            FromRun(run.id), [env / "new.jsonl"], with_store=with_store, run_findings=run_findings
        )
    with pytest.raises(CheckError, match="baseline traces"):
        run_check(
            FromBaselineTriage(),
            [env / "new.jsonl"],
            with_store=with_store,
            run_findings=run_findings,
        )
