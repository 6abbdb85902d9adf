"""Helpers shared by the MCP tests (tests/test_mcp_*.py): trace files, scripted analyses,
progress recording, and a Streamable HTTP server on 127.0.0.1 in a thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from halo_mcp.server import ServerSettings, create_server, http_app
from halo_mcp.synth import generate
from tests.fakes.openai_server import delay, tool_call

#: A finding the scripted root agent submits; its matcher selects the planted error spans.
FINDING_DRAFT = {
    "title": "Rate-limit errors are not retried with backoff",
    "category": "retries",
    "severity": "high",
    "description": "LLM calls fail with 429 and the agent gives up.",
    "root_cause": "The harness has no backoff on 429.",
    "suggested_change": "Retry 429s with exponential backoff honouring Retry-After.",
    "validation": "Count llm spans with errors; it should drop.",
    "evidence": [],
    "matcher": {"errors_only": True},
}


def make_traces(directory: Path, traces: int = 12, seed: int = 7) -> Path:
    """A small synthetic HALO JSONL file with planted failures."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "traces.jsonl"
    generate(path, traces=traces, seed=seed, profile="tiny")
    return path


def script_analysis(fake_openai: Any, *, slow_s: float = 0.0, findings: list | None = None) -> None:
    """Script one root agent: an overview, then (after `slow_s`) submit_findings."""
    submit = tool_call(
        "submit_findings",
        {
            "findings": findings if findings is not None else [FINDING_DRAFT],
            "summary": "One issue.",
        },
    )
    steps: list[Any] = [tool_call("get_overview", {})]
    steps.append(delay(slow_s, then=submit) if slow_s else submit)
    fake_openai.script(steps)


def settings(**overrides: Any) -> ServerSettings:
    overrides.setdefault("progress_interval_s", 0.1)
    return ServerSettings(**overrides)


@dataclass
class ProgressLog:
    """Collects progress notifications of one call (a Client progress_callback)."""

    events: list[tuple[float, float | None, str | None]] = field(default_factory=list)

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        self.events.append((progress, total, message))

    @property
    def messages(self) -> list[str]:
        return [m or "" for _, _, m in self.events]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def http_server(server_settings: ServerSettings) -> Iterator[str]:
    """Serve halo-mcp over Streamable HTTP on 127.0.0.1 in a thread; yields the /mcp URL."""
    import uvicorn

    port = server_settings.port
    app = http_app(create_server(server_settings), server_settings)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the HTTP server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        server.should_exit = True
        thread.join(10)
