"""Engine settings: one typed config for the CLI, the MCP server and the Python API."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, Field, SecretStr

DEFAULT_MODEL = "gpt-5.4-mini"


class EngineSettings(BaseModel):
    """Everything a run needs. `api_key` is a SecretStr and is never persisted or logged."""

    model: str = DEFAULT_MODEL
    synthesis_model: str | None = Field(None, description="Defaults to `model`.")
    compaction_model: str | None = Field(None, description="Defaults to `model`.")
    base_url: str | None = None
    api_key: SecretStr | None = None
    extra_headers: dict[str, str] = Field(default_factory=dict)
    temperature: float | None = None
    max_output_tokens: int | None = None
    parallel_tool_calls: bool = True
    reasoning_effort: str | None = None
    refusal_retries: int = 1
    max_depth: int = Field(2, ge=0, le=5)
    max_turns: int = Field(20, ge=1, le=500)
    max_parallel: int = Field(10, ge=1, le=64)
    max_retries: int = Field(5, ge=0, le=20)
    request_timeout_s: float = 120.0
    context_budget_tokens: int = Field(
        120_000, description="Compact an agent's context when it passes this estimate."
    )
    data_dir: Path | None = Field(None, description="Run store; default settings.data_dir().")
    cache_dir: Path | None = Field(None, description="Trace indexes; default settings.cache_dir().")
    telemetry: bool = False
    repo_path: Path | None = Field(
        None, description="The harness's source repository: code and git tools for the agents."
    )
    context: str | None = Field(
        None, max_length=20_000, description="The user's description of the harness."
    )

    @classmethod
    def from_env(cls, **overrides: object) -> EngineSettings:
        """Settings from `OPENAI_API_KEY`, `OPENAI_BASE_URL`, `HALO_MODEL`, then overrides
        (None values in `overrides` are ignored, so CLI flags left unset fall through)."""
        values: dict[str, object] = {}
        if key := os.environ.get("OPENAI_API_KEY"):
            values["api_key"] = key
        if url := os.environ.get("OPENAI_BASE_URL"):
            values["base_url"] = url
        if model := os.environ.get("HALO_MODEL"):
            values["model"] = model
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(values)

    def public_dict(self) -> dict:
        """The settings safe to persist and show: no key, header values masked."""
        data = self.model_dump(mode="json", exclude={"api_key"})
        data["extra_headers"] = {k: "***" for k in self.extra_headers}
        return data
