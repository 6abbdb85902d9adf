"""An analysis given the harness repository: the scripted model finds when the failure
started (SQL), the commit that changed the tool description (git log pickaxe, blame),
reads the code, and submits a finding whose code refs and suspect commit are verified;
bogus refs are dropped with reasons. The same finding is shown by get_finding, the report
and `halo-mcp show`; over MCP a repo_path outside the roots is refused."""

from __future__ import annotations

import pytest
from mcp import Client

from halo_mcp.cli import main
from halo_mcp.engine import RunStatus, run_analysis
from halo_mcp.server import create_server
from tests.engine_helpers import is_root, tool_messages
from tests.fakes.openai_server import system_prompt, tool_call, tool_names
from tests.harness_repo import (
    COMMIT_TIMES,
    DESCRIPTION_V2,
    first_failure_time,
    git,
    make_harness_repo,
    regression_traces,
)
from tests.mcp_support import settings as server_settings

MATCHER = {"tool_name": "search_orders", "errors_only": True}


def _finding(harness) -> dict:
    line = harness.description_line
    return {
        "title": "search_orders is called without customer_id",
        "category": "tool-misuse",
        "severity": "high",
        "description": "Since 10:00:25 every search_orders call lacks customer_id and fails.",
        "root_cause": "The tool description no longer says customer_id is required.",
        "suggested_change": "Restore 'customer_id is required' in the description.",
        "validation": "search_orders errors should drop to zero.",
        "evidence": [{"trace_id": "tr05", "span_id": "tr05-s", "excerpt": "customer_id"}],
        "matcher": MATCHER,
        "code_refs": [
            {"path": "agent/tools.py", "start_line": line, "end_line": line,
             "excerpt": f"{line:>6}| {DESCRIPTION_V2}"},
            {"path": "agent/retry.py", "start_line": 3, "end_line": 4, "excerpt": "retries"},
            {"path": "agent/tools.py", "start_line": 40, "end_line": 41},
            {"path": "../../etc/passwd", "start_line": 1},
        ],
        "suspect_commits": [{"sha": harness.shas[1][:12]}, {"sha": "0123456789abcdef0123"}],
    }  # fmt: skip


def _script(server, harness) -> None:
    line = harness.description_line
    server.script(
        [
            tool_call(
                "query_sql",
                {"sql": "SELECT MIN(start_time) AS first_error FROM spans WHERE is_error = 1"},
            ),
            tool_call(
                "git_log",
                {"pickaxe": "customer_id is required", "since": "2025-03-01", "limit": 5},
            ),
            tool_call(
                "git_blame", {"path": "agent/tools.py", "start_line": line, "end_line": line}
            ),
            tool_call("repo_grep", {"pattern": "search_orders", "glob": "*.py"}),
            tool_call("repo_read_file", {"path": "agent/tools.py", "max_lines": 20}),
            tool_call("repo_read_file", {"path": "../../etc/passwd"}),
            tool_call("query_sql", {"sql": "DELETE FROM main.spans"}),
            tool_call("submit_findings", {"findings": [_finding(harness)], "summary": "One."}),
        ]
    )


@pytest.fixture
def harness(tmp_path):
    return make_harness_repo(tmp_path / "harness")


@pytest.fixture
def traces(tmp_path):
    return regression_traces(tmp_path / "traces.jsonl")


async def test_the_model_ties_the_regression_to_the_commit_and_the_line(
    engine_env, harness, traces, tmp_path, monkeypatch, capsys
):
    # A GIT_DIR of another repository in the environment must not redirect git.
    decoy = tmp_path / "decoy"
    decoy.mkdir()
    git(decoy, "init", "-q")
    monkeypatch.setenv("GIT_DIR", str(decoy / ".git"))
    _script(engine_env.server, harness)
    settings = engine_env.settings(
        max_depth=0, repo_path=harness.root, context="An order-support agent (Python)."
    )
    run = await run_analysis([traces], "Why does search_orders fail?", settings)
    assert run.status == RunStatus.finished, run.error
    assert engine_env.server.unscripted_calls == []

    first = engine_env.server.chat_requests[0].json
    assert {"repo_read_file", "git_log", "git_blame", "query_sql"} <= set(tool_names(first))
    prompt = system_prompt(first)
    assert "Hunt regressions" in prompt or "hunt regressions" in prompt
    assert "An order-support agent (Python)." in prompt

    last_root = [r for r in engine_env.server.chat_requests if is_root(r.json)][-1]
    outputs = tool_messages(last_root)
    sql_out, log_out, blame_out, grep_out, read_out, escape_out, delete_out = outputs[:7]
    assert "2025-03-01T10:00:26.500Z" in sql_out
    assert harness.shas[1] in log_out and harness.shas[2] not in log_out
    assert harness.shas[1][:12] in blame_out and "Shorter tool descriptions" in blame_out
    assert "agent/tools.py:4:" in grep_out
    assert f"{harness.description_line:>6}| {DESCRIPTION_V2}" in read_out
    assert escape_out.startswith("ERROR: repo_read_file:") and "'..'" in escape_out
    assert delete_out.startswith("ERROR: query_sql: Refused") and "spans(trace_id" in delete_out

    [finding] = run.findings
    assert finding.verified is True
    [ref] = finding.code_refs
    assert (ref.path, ref.start_line, ref.end_line, ref.verified) == (
        "agent/tools.py",
        harness.description_line,
        harness.description_line,
        True,
    )
    assert ref.excerpt == DESCRIPTION_V2
    [commit] = finding.suspect_commits
    assert commit.sha == harness.shas[1] and commit.subject == "Shorter tool descriptions"
    assert commit.verified is True
    dropped = [r for r in finding.status_reasons if r.code == "code_ref_dropped"]
    assert len(dropped) == 3
    assert [r.ids for r in finding.status_reasons if r.code == "commit_dropped"] == [
        ["0123456789abcdef0123"]
    ]
    assert any("agent/retry.py" in n for n in finding.verification_notes)
    # The failure started after the commit: first_seen from the store says so.
    assert finding.first_seen == first_failure_time()
    assert finding.first_seen.isoformat() > COMMIT_TIMES[1].replace("Z", "+00:00")
    assert finding.last_seen is not None and finding.last_seen > finding.first_seen

    report = run.report_markdown
    assert f"agent/tools.py:{harness.description_line}-{harness.description_line}" in report
    assert harness.shas[1][:12] in report and "first seen 2025-03-01T10:00:26" in report

    capsys.readouterr()
    assert main(["show", finding.id, "--data-dir", str(engine_env.data_dir)]) == 0
    shown = capsys.readouterr().out
    assert "## Code (1)" in shown and DESCRIPTION_V2.strip() in shown
    assert "## Suspect commits" in shown and "Shorter tool descriptions" in shown


async def test_get_finding_over_mcp_shows_code_refs_and_repo_path_must_be_in_the_roots(
    engine_env, harness, traces, tmp_path
):
    _script(engine_env.server, harness)
    roots = [tmp_path]
    async with Client(create_server(server_settings(roots=roots))) as client:
        outside = await client.call_tool(
            "analyze_traces",
            {"trace_paths": [str(traces)], "repo_path": "/usr", "wait_seconds": 0},
        )
        assert outside.is_error and "outside the allowed roots" in outside.content[0].text
        started = await client.call_tool(
            "analyze_traces",
            {
                "trace_paths": [str(traces)],
                "repo_path": str(harness.root),
                "context": "An order-support agent.",
                "max_depth": 0,
                "wait_seconds": 30,
            },
        )
        assert not started.is_error, started.content[0].text
        status = started.structured_content
        for _ in range(50):
            if status["done"]:
                break
            polled = await client.call_tool(
                "get_run", {"run_id": status["run_id"], "wait_seconds": 5}
            )
            status = polled.structured_content
        assert status["status"] == "finished"
        [brief] = status["findings"]
        full = await client.call_tool("get_finding", {"finding_id": brief["id"]})
        data = full.structured_content
    assert [(r["path"], r["start_line"]) for r in data["code_refs"]] == [
        ("agent/tools.py", harness.description_line)
    ]
    assert data["suspect_commits"][0]["sha"] == harness.shas[1]
    assert data["first_seen"].startswith("2025-03-01T10:00:26")


def test_the_cli_passes_repo_and_context_to_every_agent(engine_env, harness, traces, tmp_path):
    import subprocess
    import sys

    (tmp_path / "context.md").write_text("Harness: order support, Python.\n")
    _script(engine_env.server, harness)
    done = subprocess.run(
        [sys.executable, "-m", "halo_mcp", "run", str(traces), "-p", "Why?", "--max-depth",
         "0", "--repo", str(harness.root), "--context", f"@{tmp_path / 'context.md'}", "-q"],
        env=engine_env.env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"agent/tools.py:{harness.description_line}-{harness.description_line}" in done.stdout
    first = engine_env.server.chat_requests[0].json
    assert "Harness: order support, Python." in system_prompt(first)
    assert "git_blame" in tool_names(first)


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--repo", "no/such/folder", "not found"),
        ("--context", "@no/such/file.md", "cannot read --context file"),
    ],
)
def test_the_cli_refuses_a_missing_repo_or_context_file(
    engine_env, traces, flag, value, message, capsys
):
    code = main(["run", str(traces), "-p", "Why?", flag, value])
    assert code == 2
    assert message in capsys.readouterr().err
