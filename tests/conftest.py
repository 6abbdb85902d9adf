"""Shared fixtures: the fake OpenAI server and an environment that points at it.

- `fake_openai`: a started FakeOpenAIServer (tests/fakes/openai_server.py); script it
  with `fake_openai.script([...])` and inspect `fake_openai.requests`.
- `engine_env`: env vars for an engine run against `fake_openai` (OPENAI_BASE_URL,
  a fake OPENAI_API_KEY, HALO_DATA_DIR / HALO_CACHE_DIR in tmp_path) and tiny retry
  backoff. `engine_env.settings(**overrides)` builds EngineSettings from that env;
  `engine_env.env` is a full environment for subprocess tests (CLI, MCP server).

Import step helpers with `from tests.fakes.openai_server import reply, tool_call, ...`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))  # so `tests.fakes...` imports work however pytest runs

from halo_mcp.engine.settings import EngineSettings  # noqa: E402
from tests.fakes.openai_server import FakeOpenAIServer  # noqa: E402

FAKE_API_KEY = "sk-test-halo-fake-0123456789abcdef"


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAIServer]:
    """A fake OpenAI-compatible server on 127.0.0.1, stopped after the test."""
    with FakeOpenAIServer() as server:
        yield server


@dataclass
class EngineEnv:
    server: FakeOpenAIServer
    api_key: str
    data_dir: Path
    cache_dir: Path
    env: dict[str, str]

    def settings(self, **overrides: object) -> EngineSettings:
        """EngineSettings from this environment (model 'fake-model' unless overridden)."""
        overrides.setdefault("model", "fake-model")
        return EngineSettings.from_env(**overrides)


@pytest.fixture
def engine_env(
    fake_openai: FakeOpenAIServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> EngineEnv:
    """Environment for engine/CLI/MCP tests against the fake server; never the home dir."""
    data_dir, cache_dir = tmp_path / "data", tmp_path / "cache"
    values = {
        "OPENAI_BASE_URL": fake_openai.base_url,
        "OPENAI_API_KEY": FAKE_API_KEY,
        "HALO_DATA_DIR": str(data_dir),
        "HALO_CACHE_DIR": str(cache_dir),
        "HALO_RETRY_BASE_DELAY_S": "0.001",
        "HALO_RETRY_AFTER_CAP_S": "1",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("HALO_MODEL", raising=False)
    return EngineEnv(fake_openai, FAKE_API_KEY, data_dir, cache_dir, dict(os.environ))
