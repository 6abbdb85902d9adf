"""Engine settings: one typed config for the CLI, the MCP server and the Python API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, SecretStr

from halo_mcp.settings import Environment
from halo_mcp.store.timewindow import TimeWindow

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
    sub_max_turns: int | None = Field(
        None,
        ge=1,
        le=500,
        description="Turns per sub-agent; default half of max_turns (at least 1), never more.",
    )
    max_run_tokens: int | None = Field(
        None,
        ge=1,
        description="Token budget of the whole run (input + output, all agents); when "
        "reached the run ends gracefully, keeping its findings.",
    )
    fold_reads_after_turns: int | None = Field(
        4,
        ge=1,
        description="Large store-read results (trace views, span pages) older than this "
        "many turns keep only their head in an agent's context; None keeps them whole.",
    )
    cache_control: bool = Field(
        False,
        description="Add explicit prompt-cache breakpoints (cache_control) to requests, for "
        "providers that take them (Anthropic models behind OpenAI-compatible gateways).",
    )
    max_parallel: int = Field(10, ge=1, le=64)
    max_retries: int = Field(5, ge=0, le=20)
    request_timeout_s: float = 120.0
    retry_base_delay_s: float = Field(
        0.5, ge=0, description="First backoff delay; doubles per retry (jittered, max 30 s)."
    )
    retry_after_cap_s: float = Field(
        60.0, ge=0, description="Longest wait a provider's Retry-After may ask for."
    )
    context_budget_tokens: int = Field(
        120_000, description="Compact an agent's context when it passes this estimate."
    )
    data_dir: Path | None = Field(None, description="Run store; default settings.data_dir().")
    cache_dir: Path | None = Field(None, description="Trace indexes; default settings.cache_dir().")
    telemetry: bool = False
    window: TimeWindow | None = Field(
        None, description="Analyze only the traces starting in this window (since/until)."
    )
    repo_path: Path | None = Field(
        None, description="The harness's source repository: code and git tools for the agents."
    )
    context: str | None = Field(
        None, max_length=20_000, description="The user's description of the harness."
    )

    @classmethod
    def from_env(cls, env: Environment | None = None, **overrides: object) -> EngineSettings:
        """Settings from `OPENAI_API_KEY`, `OPENAI_BASE_URL`, `HALO_MODEL` and the
        `HALO_RETRY_*` knobs, then overrides (None values in `overrides` are ignored, so CLI
        flags left unset fall through)."""
        env = env or Environment.read()
        values: dict[str, object] = {
            "api_key": env.openai_api_key,
            "base_url": env.openai_base_url,
            "model": env.halo_model,
            "retry_base_delay_s": env.halo_retry_base_delay_s,
            "retry_after_cap_s": env.halo_retry_after_cap_s,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate({k: v for k, v in values.items() if v is not None})

    @property
    def sub_turns(self) -> int:
        """The turn budget of a sub-agent: smaller than the root's unless configured."""
        if self.sub_max_turns is not None:
            return min(self.sub_max_turns, self.max_turns)
        return max(1, self.max_turns // 2)

    def public_dict(self) -> dict[str, Any]:
        """The settings safe to persist and show: no key, header values masked."""
        data = self.model_dump(mode="json", exclude={"api_key"})
        data["extra_headers"] = {k: "***" for k in self.extra_headers}
        return data
