"""Shared by the web tests: a real trace file, a finished run whose findings come from the
deterministic triage (real matchers, prevalence and evidence), and the viewer served on
127.0.0.1 by uvicorn in a thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from halo_mcp.engine.models import RunRecord, RunStatus
from halo_mcp.engine.runstore import RunStore
from halo_mcp.store import open_store
from halo_mcp.synth import generate
from halo_mcp.triage import run_triage
from halo_mcp.web.app import UiSettings, create_app
from tests.mcp_support import free_port


@dataclass
class WebEnv:
    root: Path
    traces: Path
    cache_dir: Path
    data_dir: Path
    run: RunRecord


def make_web_env(root: Path, traces: int = 120, seed: int = 3) -> WebEnv:
    """Traces with the synth generator's planted failures, triaged, saved as a finished run."""
    path = root / "traces.jsonl"
    generate(str(path), traces=traces, seed=seed, profile="tiny")
    cache_dir, data_dir = root / "cache", root / "data"
    with open_store([path], cache_dir=cache_dir) as store:
        report = run_triage(store)
    runs = RunStore(data_dir)
    run = runs.create("Diagnose errors", [str(path)], {}, status=RunStatus.running)
    findings = [f.model_copy(update={"run_id": run.id}) for f in report.items]
    run = run.model_copy(update={"status": RunStatus.finished, "findings": findings})
    runs.save(run)
    return WebEnv(root=root, traces=path, cache_dir=cache_dir, data_dir=data_dir, run=run)


@contextmanager
def serve_viewer(settings: UiSettings) -> Iterator[str]:
    """The viewer on 127.0.0.1 in a thread; yields its base URL."""
    import uvicorn

    app = create_app(settings)
    config = uvicorn.Config(app, host="127.0.0.1", port=settings.port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the viewer did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{settings.port}"
    finally:
        server.should_exit = True
        thread.join(10)


def viewer_settings(env: WebEnv, **overrides: object) -> UiSettings:
    values: dict[str, object] = {
        "paths": [env.traces],
        "port": free_port(),
        "cache_dir": env.cache_dir,
        "data_dir": env.data_dir,
        "poll_seconds": 0.2,
    }
    values.update(overrides)
    return UiSettings.model_validate(values)
