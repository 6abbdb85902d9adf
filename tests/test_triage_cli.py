"""`halo-mcp triage` and `halo-mcp check` as a user runs them: no API key, a readable table,
JSON that can be saved and checked later, and errors that say what to pass instead."""

from __future__ import annotations

import json

import pytest

from halo_mcp.cli import main
from halo_mcp.engine.models import RunStatus
from halo_mcp.engine.runstore import RunStore
from halo_mcp.findings.models import Finding, Prevalence, Severity
from halo_mcp.synth import generate


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("HALO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HALO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    generate(tmp_path / "old.jsonl", traces=250, seed=4, profile="tiny")
    generate(
        tmp_path / "new.jsonl", traces=250, seed=4, profile="tiny", failure_rates={"retry_loop": 0}
    )
    return tmp_path


def test_triage_prints_ranked_items_without_any_api_key(env, capsys):
    assert main(["triage", str(env / "old.jsonl")]) == 0
    out = capsys.readouterr().out
    assert "no LLM" in out and "250 traces" in out
    assert "loop" in out and "turn-limit" in out and "Tools by failure rate" in out
    assert "halo-mcp check" in out and "[triage-rule]" not in out


def test_a_triage_item_shown_as_text_explains_its_rule_without_the_json(env):
    from halo_mcp.cli.runview import render_finding
    from halo_mcp.store import open_store
    from halo_mcp.triage import run_triage

    with open_store([env / "old.jsonl"], cache_dir=env / "cache") as store:
        loop = next(i for i in run_triage(store).items if i.category == "loop")
    text = render_finding(loop)
    # the rule JSON stays out; the matcher (with its trace rule) is shown as a filter
    prose = text.replace(loop.matcher.model_dump_json(exclude_none=True, exclude_defaults=True), "")
    assert "[triage-rule]" not in text and '"repeated_call"' not in prose
    assert "Counted by the triage rule: traces where" in text
    assert "The matcher only selects the scope" in text  # the description, in full


def test_a_saved_triage_is_checked_against_new_traces(env, capsys):
    assert main(["triage", str(env / "old.jsonl"), "--json"]) == 0
    saved = env / "triage.json"
    saved.write_text(capsys.readouterr().out)
    items = json.loads(saved.read_text())["items"]
    assert items and all(i["source"] == "triage" for i in items)

    assert main(["check", str(saved), str(env / "new.jsonl"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    by_category = {r["category"]: r["verdict"] for r in report["results"]}
    assert by_category["loop"] == "resolved"
    assert by_category["tool-error"] == "unchanged"
    assert report["verdicts"]["resolved"] >= 1
    assert {r["status"] for r in report["results"]} == {"verified"}  # triage ids are real

    assert main(["check", str(saved), str(env / "new.jsonl")]) == 0
    text = capsys.readouterr().out
    assert "RESOLVED" in text and "UNCHANGED" in text and "Fisher" in text
    assert "status" in text.splitlines()[2] and "verified" in text


def test_check_can_triage_the_old_traces_as_its_baseline(env, capsys):
    code = main(
        ["check", "triage", str(env / "new.jsonl"), "--baseline", str(env / "old.jsonl"), "--json"]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert "baseline traces" in report["baseline"]
    assert any(r["verdict"] == "resolved" for r in report["results"])


def test_check_reads_a_run_from_the_run_store(env, capsys):
    runs = RunStore(env / "data")
    run = runs.create("why?", [str(env / "old.jsonl")], {})
    run.findings = [
        Finding(
            id="f_loop",
            run_id=run.id,
            title="http_get is retried on timeouts forever",
            category="loop",
            severity=Severity.high,
            description="d",
            root_cause="r",
            suggested_change="s",
            validation="v",
            matcher={"tool_name": "http_get", "errors_only": True},
            prevalence=Prevalence(traces_matched=15, traces_in_scope=250, spans_matched=90),
        )
    ]
    run.status = RunStatus.finished
    runs.save(run)
    assert main(["check", run.id, str(env / "new.jsonl"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["run_id"] == run.id
    assert report["results"][0]["verdict"] == "resolved"


def test_check_explains_an_unknown_run_or_a_bad_file(env, capsys):
    assert main(["check", "run_nope", str(env / "new.jsonl")]) == 2
    assert "run_nope" in capsys.readouterr().err
    bad = env / "bad.json"
    bad.write_text("{not json")
    assert main(["check", str(bad), str(env / "new.jsonl")]) == 2
    assert "halo-mcp triage PATH --json" in capsys.readouterr().err
    assert main(["check", "triage", str(env / "new.jsonl")]) == 2
    assert "--baseline" in capsys.readouterr().err


def test_triage_of_a_missing_file_says_so(env, capsys):
    assert main(["triage", str(env / "nope.jsonl")]) == 2
    assert "nope.jsonl" in capsys.readouterr().err
