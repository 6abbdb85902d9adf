"""`halo-mcp import phoenix` against a real Phoenix server (arize-phoenix from PyPI, the
`phoenix` extra) started here on 127.0.0.1 and fed by the real OTel OTLP/HTTP exporter.

Not skipped when Phoenix is missing: the test fails and names the install command.
Note: Phoenix always binds its gRPC port on every interface ([::]); the test gives it a
free port and sends nothing to it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from halo_mcp.cli import main
from halo_mcp.importers.phoenix import STATE_SUFFIX
from halo_mcp.store import open_store
from tests.collect_support import run_export, stored_ids
from tests.mcp_support import free_port

INSTALL = "pip install -e '.[phoenix]'  (arize-phoenix from PyPI)"


def phoenix_command() -> str:
    found = shutil.which("phoenix", path=str(Path(sys.executable).parent)) or shutil.which(
        "phoenix"
    )
    if found is None:
        pytest.fail(f"Phoenix is not installed: the `phoenix` command is missing. Run {INSTALL}")
    return found


@pytest.fixture(scope="module")
def phoenix(tmp_path_factory) -> Iterator[str]:
    command = phoenix_command()
    work = tmp_path_factory.mktemp("phoenix")
    port = free_port()
    env = {
        **os.environ,
        "PHOENIX_HOST": "127.0.0.1",
        "PHOENIX_PORT": str(port),
        "PHOENIX_GRPC_PORT": str(free_port()),
        "PHOENIX_WORKING_DIR": str(work),
        "PHOENIX_TELEMETRY_ENABLED": "false",
    }
    log = open(work / "phoenix.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([command, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail("phoenix serve exited:\n" + (work / "phoenix.log").read_text()[-3000:])
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("phoenix serve did not start in 180 s")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HALO_CACHE_DIR", str(tmp_path / "cache"))


def phoenix_span_count(url: str, project: str = "default") -> int:
    """Spans Phoenix serves for the project (its ingestion is asynchronous)."""
    total, cursor = 0, None
    while True:
        query = f"limit=1000&sort=id&order=asc{'&cursor=' + cursor if cursor else ''}"
        with urllib.request.urlopen(f"{url}/v1/projects/{project}/spans?{query}") as answer:
            page = json.loads(answer.read())
        total += len(page["data"])
        cursor = page.get("next_cursor")
        if not cursor:
            return total


def send(url: str, traces: int, tag: str) -> set[tuple[str, str]]:
    """Export through the real OTLP exporter to Phoenix; wait until Phoenix serves them."""
    before = phoenix_span_count(url)
    ids, _ = run_export(f"{url}/v1/traces", traces=traces, batch=12, tag=tag)
    deadline = time.monotonic() + 60
    while phoenix_span_count(url) < before + len(ids):
        assert time.monotonic() < deadline, "Phoenix did not store the exported spans in 60 s"
        time.sleep(0.3)
    return ids


def test_import_is_paged_resumable_and_incremental(phoenix, tmp_path, capsys):
    first = send(phoenix, traces=10, tag="first")
    output = tmp_path / "phoenix.jsonl"
    base = ["import", "phoenix", "--url", phoenix, "-o", str(output), "--page-size", "7"]
    assert main([*base, "--max-pages", "2"]) == 0
    err = capsys.readouterr().err
    assert "phoenix: page 1, 7 new spans" in err and "page 2, 14 new spans" in err
    assert "run again to continue" in err
    assert len(stored_ids(output)) == 14
    assert main(base) == 0  # continues from the cursor: no span twice
    err = capsys.readouterr().err
    assert f"imported {len(first) - 14} new spans ({len(first)} in" in err
    assert stored_ids(output) == first
    second = send(phoenix, traces=4, tag="second")
    assert main(base) == 0  # later: only the spans added since
    assert f"imported {len(second)} new spans" in capsys.readouterr().err
    assert stored_ids(output) == first | second
    with open_store([output]) as store:
        assert store.report.duplicate_spans == 0 and store.report.bad_lines == 0
        overview = store.overview()
        assert overview.traces == 14
        assert {t.name: (t.calls, t.errors) for t in overview.tools} == {"search": (14, 6)}
        assert [a.name for a in overview.agents] == ["planner"]
        errors = store.query_spans({"errors_only": True}, fields=["error_message"], limit=1)
        assert errors.spans[0].error_message.startswith("search timed out after")
    assert Path(str(output) + STATE_SUFFIX).exists()


def test_a_crash_after_writing_a_page_does_not_duplicate_it(phoenix, tmp_path, capsys):
    """Bytes written after the last state save (a crash between the two) are cut."""
    output = tmp_path / "p.jsonl"
    base = ["import", "phoenix", "--url", phoenix, "-o", str(output), "--page-size", "9"]
    assert main([*base, "--max-pages", "1"]) == 0
    with open(output, "ab") as handle:  # a page that was written but never recorded
        handle.write(b'{"resourceSpans": [{"scopeSpans": [{"spans": []}]}]}\n{"half')
    assert main(base) == 0
    capsys.readouterr()
    with open_store([output]) as store:
        assert store.report.bad_lines == 0 and store.report.duplicate_spans == 0
        assert store.count().spans == phoenix_span_count(phoenix)


def test_since_window_and_clear_errors(phoenix, tmp_path, capsys):
    send(phoenix, traces=2, tag="window")
    empty = tmp_path / "none.jsonl"
    future = ["import", "phoenix", "--url", phoenix, "-o", str(empty), "--since", "2099-01-01"]
    assert main(future) == 0
    assert "imported 0 new spans" in capsys.readouterr().err
    recent = tmp_path / "recent.jsonl"
    assert main(["import", "phoenix", "--url", phoenix, "-o", str(recent), "--since", "1h"]) == 0
    capsys.readouterr()
    assert len(stored_ids(recent)) == phoenix_span_count(phoenix)
    missing = [
        "import",
        "phoenix",
        "--url",
        phoenix,
        "--project",
        "nope",
        "-o",
        str(tmp_path / "x"),
    ]
    assert main(missing) == 1
    assert "has no project 'nope'" in capsys.readouterr().err
    down = [
        "import",
        "phoenix",
        "--url",
        f"http://127.0.0.1:{free_port()}",
        "-o",
        str(tmp_path / "y"),
    ]
    assert main(down) == 1
    assert "check --url and that Phoenix is running" in capsys.readouterr().err
    assert (
        main(["import", "phoenix", "--url", phoenix, "-o", str(recent), "--project", "other"]) == 1
    )
    assert "pass another -o FILE" in capsys.readouterr().err
