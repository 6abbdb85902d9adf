"""`halo-mcp run`, `runs` and `show` end to end: a real subprocess, the real engine and
openai client, and the fake OpenAI server on 127.0.0.1 playing the model."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from halo_mcp.cli import main
from tests.engine_helpers import error_span, finding_args, is_root, make_traces
from tests.fakes.openai_server import delay, status, tool_call

TIMEOUT = 120
FINDING_TITLE = "read_file called with paths that do not exist"


def halo(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "halo_mcp", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The same command in this process (fast, for everything but the full run)."""
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def traces(tmp_path: Path) -> Path:
    return make_traces(tmp_path)


def script_one_finding(engine_env, traces: Path) -> None:
    """The root agent looks at the overview, then submits one verified finding."""
    trace_id, span_id = error_span(traces, engine_env.cache_dir)
    finding = finding_args(
        FINDING_TITLE,
        {"tool_name": "read_file", "errors_only": True},
        [{"trace_id": trace_id, "span_id": span_id, "excerpt": "FileNotFoundError"}],
    )
    engine_env.server.route(
        is_root,
        [
            tool_call("get_overview", {}),
            tool_call("submit_findings", {"findings": [finding], "summary": "One issue."}),
        ],
    )


def test_a_run_prints_progress_on_stderr_the_report_on_stdout_and_how_to_read_a_finding(
    engine_env, traces: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script_one_finding(engine_env, traces)
    done = halo("run", str(traces), "-p", "Diagnose errors", env=engine_env.env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    # stdout: the markdown report with the finding.
    assert FINDING_TITLE in done.stdout
    assert done.stdout.lstrip().startswith("#")
    # stderr is not a terminal here: plain timestamped lines, no carriage returns.
    progress = [line for line in done.stderr.splitlines() if re.match(r"\[\d\d:\d\d:\d\d\] ", line)]
    assert any("started" in line for line in progress)
    assert any("tokens" in line and "turn" in line for line in progress)
    assert "\r" not in done.stderr
    run_id = re.search(r"halo-mcp show (run_\S+)", done.stderr).group(1)
    finding_id = re.search(r"halo-mcp show (f_\S+)", done.stderr).group(1)
    assert f"run {run_id} finished" in done.stderr
    # Secrets never reach the output.
    assert engine_env.api_key not in done.stdout + done.stderr

    # The run is saved: `runs` lists it, `show` prints the report and the finding.
    code, out, _ = cli(capsys, "runs")
    assert code == 0
    assert run_id in out and "finished" in out
    listed = json.loads(cli(capsys, "runs", "--json")[1])
    assert listed[0]["id"] == run_id
    assert listed[0]["findings"][0]["id"] == finding_id

    code, out, _ = cli(capsys, "show", run_id)
    assert code == 0
    assert FINDING_TITLE in out

    code, out, _ = cli(capsys, "show", finding_id)
    assert code == 0
    assert out.startswith(f"# {FINDING_TITLE}")
    for section in ("## Root cause", "## Suggested change", "## How to validate", "## Evidence"):
        assert section in out
    as_json = json.loads(cli(capsys, "show", finding_id, "--json")[1])
    assert as_json["id"] == finding_id
    assert as_json["matcher"]["tool_name"] == "read_file"

    code, _, err = cli(capsys, "show", "run_doesnotexist")
    assert code == 2
    assert "halo-mcp runs" in err and run_id in err


def test_json_goes_to_stdout_and_output_writes_the_report_to_a_file(
    engine_env, traces: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script_one_finding(engine_env, traces)
    done = halo(
        "run", str(traces), "-p", "Diagnose errors", "--json", "--quiet",
        env=engine_env.env, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout)
    assert run["status"] == "finished"
    assert run["id"].startswith("run_")
    assert run["findings"][0]["title"] == FINDING_TITLE
    assert run["findings"][0]["prevalence"]["traces_matched"] > 0
    assert "api_key" not in run["config"]
    assert done.stderr == ""  # --quiet: nothing but errors

    script_one_finding(engine_env, traces)
    report = tmp_path / "report.md"
    code, out, err = cli(capsys, "run", str(traces), "-p", "Diagnose errors", "-o", str(report))
    assert code == 0, err
    assert out == ""
    assert FINDING_TITLE in report.read_text()
    assert f"report written to {report}" in err


def test_a_failed_run_exits_1_and_says_why(
    engine_env, traces: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    engine_env.server.route(is_root, [status(400, "Unsupported parameter: 'tools'")])
    done = halo("run", str(traces), "-p", "Diagnose errors", env=engine_env.env, cwd=tmp_path)
    assert done.returncode == 1
    assert "failed" in done.stderr
    assert "Unsupported parameter" in done.stderr
    listed = json.loads(cli(capsys, "runs", "--json")[1])
    assert listed[0]["status"] == "failed"


def test_bad_usage_exits_2_before_anything_is_recorded(
    engine_env, traces: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(capsys, "run", "nope.jsonl", "-p", "x")
    assert code == 2
    assert "nope.jsonl" in err and str(tmp_path) in err

    code, _, err = cli(capsys, "run", str(traces), "-p", "x", "-H", "NoColon")
    assert code == 2
    assert "NAME: VALUE" in err

    code, _, err = cli(capsys, "run", str(traces), "-p", "x", "--max-depth", "9")
    assert code == 2
    assert "--max-depth" in err

    with pytest.raises(SystemExit) as exited:  # argparse: a required option is missing
        main(["run", str(traces)])
    assert exited.value.code == 2
    assert "-p/--prompt" in capsys.readouterr().err

    assert json.loads(cli(capsys, "runs", "--json")[1]) == []
    assert engine_env.server.chat_requests == []

    # A file that holds no span is bad input too; the attempt is kept as a failed run.
    junk = tmp_path / "junk.jsonl"
    junk.write_text('{"not": "a span"}\n')
    code, out, err = cli(capsys, "run", str(junk), "-p", "x")
    assert code == 2
    assert "no valid span" in err and "junk.jsonl" in err
    assert out == ""
    assert engine_env.server.chat_requests == []


def test_without_an_api_key_it_says_what_to_set_exits_2_and_writes_nothing(
    engine_env, traces: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.delenv("OPENAI_BASE_URL")
    spaced = tmp_path / "more traces" / "it's here.jsonl"
    spaced.parent.mkdir()
    spaced.write_bytes(traces.read_bytes())
    report = tmp_path / "report.md"
    code, out, err = cli(capsys, "run", str(traces), str(spaced), "-p", "x", "-o", str(report))
    assert code == 2
    for hint in ("OPENAI_API_KEY", "--api-key", "--base-url", "halo-mcp triage"):
        assert hint in err
    assert out == ""
    assert not report.exists()
    assert json.loads(cli(capsys, "runs", "--json")[1]) == []

    # The offer is the exact command for the same traces, quoted for a shell: it runs.
    command = f"halo-mcp triage {shlex.quote(str(traces))} {shlex.quote(str(spaced))}"
    assert command in err.splitlines()[-1]
    code, out, _ = cli(capsys, *shlex.split(command)[1:])
    assert code == 0 and "read_file" in out


def test_headers_and_flags_reach_the_provider_and_secrets_stay_hidden(
    engine_env, traces: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script_one_finding(engine_env, traces)
    code, out, err = cli(
        capsys, "run", str(traces), "-p", "x", "-m", "my-model", "-H", "X-Team: blue",
        "--temperature", "0.2", "--no-parallel-tool-calls", "--max-turns", "5", "--json",
        "--telemetry",
    )  # fmt: skip
    assert code == 0, err
    request = engine_env.server.chat_requests[0]
    assert request.json["model"] == "my-model"
    assert request.headers["x-team"] == "blue"
    assert request.json["temperature"] == 0.2
    assert request.json["parallel_tool_calls"] is False
    config = json.loads(out)["config"]
    assert config["extra_headers"] == {"X-Team": "***"}
    assert config["max_turns"] == 5
    assert config["parallel_tool_calls"] is False
    assert engine_env.api_key not in out + err
    assert config["telemetry"] is True
    assert "telemetry of this run: " in err  # where the run's own spans went


def test_ctrl_c_cancels_the_run_records_it_cancelled_and_exits_130(
    engine_env, traces: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    engine_env.server.route(is_root, [delay(60)])
    proc = subprocess.Popen(
        [sys.executable, "-m", "halo_mcp", "run", str(traces), "-p", "x", "--json"],
        env=engine_env.env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + TIMEOUT
        while not engine_env.server.chat_requests:  # the model call is in flight
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the run never called the model"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert json.loads(out)["status"] == "cancelled"
    listed = json.loads(cli(capsys, "runs", "--json")[1])
    assert listed[0]["status"] == "cancelled"


def test_the_help_lists_every_option_of_the_original_cli() -> None:
    text = subprocess.run(
        [sys.executable, "-m", "halo_mcp", "run", "--help"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env={**os.environ, "COLUMNS": "200"},
    ).stdout
    options = (
        "--model", "-m", "--synthesis-model", "--compaction-model", "--max-depth",
        "--max-turns", "--max-parallel", "--base-url", "--api-key", "--header", "-H",
        "--temperature", "--max-output-tokens", "--parallel-tool-calls",
        "--no-parallel-tool-calls", "--refusal-retries", "--reasoning-effort", "--telemetry",
        "--json", "--output", "--quiet", "--verbose", "--data-dir", "--prompt", "-p",
    )  # fmt: skip
    for option in options:
        assert re.search(rf"(^|[\s,\[]){re.escape(option)}\b", text), option
    assert "130" in text and "exit codes" in text


def test_ctrl_c_that_also_stopped_an_index_builder_still_counts_as_an_interrupt() -> None:
    # In a terminal Ctrl-C reaches the whole process group, helper processes included:
    # their KeyboardInterrupt comes back wrapped in the engine's task group.
    from halo_mcp.excgroups import is_interrupt

    try:
        group_type = BaseExceptionGroup
    except NameError:  # Python 3.10: anyio's backport
        from exceptiongroup import BaseExceptionGroup as group_type

    wrapped = group_type("task group", [KeyboardInterrupt()])
    nested = group_type("outer", [wrapped, asyncio.CancelledError()])
    assert is_interrupt(KeyboardInterrupt())
    assert is_interrupt(nested)
    assert not is_interrupt(group_type("boom", [KeyboardInterrupt(), ValueError("real")]))
    assert not is_interrupt(ValueError("real"))


def test_on_a_terminal_progress_is_one_line_rewritten_in_place(
    engine_env, traces: Path, tmp_path: Path
) -> None:
    import pty  # POSIX: the suite runs on Linux and macOS
    import select

    script_one_finding(engine_env, traces)
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "halo_mcp", "run", str(traces), "-p", "x"],
        env=engine_env.env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=follower,
        text=True,
    )
    os.close(follower)
    chunks: list[bytes] = []
    try:
        while True:
            ready, _, _ = select.select([leader], [], [], TIMEOUT)
            assert ready, "no output from the run"
            try:
                data = os.read(leader, 65536)
            except OSError:  # the terminal closed: the process is done
                break
            if not data:
                break
            chunks.append(data)
        out, _ = proc.communicate(timeout=TIMEOUT)
    finally:
        os.close(leader)
        if proc.poll() is None:
            proc.kill()
    terminal = b"".join(chunks).decode()
    assert proc.returncode == 0
    assert FINDING_TITLE in out
    assert "\r\x1b[2K" in terminal  # the status line is redrawn in place
    assert not re.search(r"^\[\d\d:\d\d:\d\d\] ", terminal, re.MULTILINE)  # no log lines
    assert re.search(r"finished 100% \| 0 agents \| \d+ turns", terminal)
