"""The environment, read in one place, and where halo-mcp keeps its files.

`Environment.read()` is the only code that reads environment variables; the settings
models (`EngineSettings.from_env`, `ServerSettings.from_env`, the telemetry options) and the
commands take their values from it. It is read when asked (not cached), so a process that
changes its environment (tests do) sees the change.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, SecretStr, ValidationError

log = logging.getLogger(__name__)

_TRUE = {"1", "true", "yes", "on"}


class Environment(BaseModel):
    """Every environment variable halo-mcp reads (empty values count as unset)."""

    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    halo_model: str | None = None
    halo_cache_dir: str | None = None
    halo_data_dir: str | None = None
    halo_retry_base_delay_s: float | None = None
    halo_retry_after_cap_s: float | None = None
    halo_telemetry: bool = False
    halo_telemetry_path: str | None = None
    otel_instrumentation_genai_capture_message_content: bool = False
    otel_exporter_otlp_traces_endpoint: str | None = None
    otel_exporter_otlp_endpoint: str | None = None
    xdg_cache_home: str | None = None
    xdg_data_home: str | None = None
    xdg_config_home: str | None = None
    appdata: str | None = None
    codex_home: str | None = None
    halo_clickhouse_url: str | None = None
    halo_clickhouse_password: SecretStr | None = None

    @classmethod
    def read(cls, environ: Mapping[str, str] | None = None) -> Environment:
        """The variables of `environ` (default: this process's environment)."""
        source = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for name, field in cls.model_fields.items():
            raw = source.get(name.upper(), "").strip()
            if not raw:
                continue
            values[name] = raw.lower() in _TRUE if field.annotation is bool else raw
        try:
            return cls.model_validate(values)
        except ValidationError as exc:  # one bad value must not stop every command
            bad = {str(error["loc"][0]) for error in exc.errors()}
            log.warning("ignoring invalid environment variables: %s", ", ".join(sorted(bad)))
            return cls.model_validate({k: v for k, v in values.items() if k not in bad})

    @staticmethod
    def variable(name: str) -> str:
        """A variable whose name is configured (e.g. `serve --token-env NAME`); '' if unset."""
        return os.environ.get(name, "").strip()

    @staticmethod
    def for_child_process() -> dict[str, str]:
        """The whole environment, for a child process that must see what this one sees
        (the self-test's server needs the same credentials and directories)."""
        return dict(os.environ)


def cache_dir(env: Environment | None = None) -> Path:
    """Trace indexes (rebuildable). `HALO_CACHE_DIR`, else `$XDG_CACHE_HOME/halo-mcp`."""
    env = env or Environment.read()
    if env.halo_cache_dir:
        return Path(env.halo_cache_dir).expanduser()
    base = env.xdg_cache_home or str(Path.home() / ".cache")
    return Path(base) / "halo-mcp"


def data_dir(env: Environment | None = None) -> Path:
    """Runs and findings (kept). `HALO_DATA_DIR`, else `$XDG_DATA_HOME/halo-mcp`."""
    env = env or Environment.read()
    if env.halo_data_dir:
        return Path(env.halo_data_dir).expanduser()
    base = env.xdg_data_home or str(Path.home() / ".local" / "share")
    return Path(base) / "halo-mcp"


def clickhouse_password(env: Environment | None = None) -> str | None:
    """The password of ClickHouse trace locations: `HALO_CLICKHOUSE_PASSWORD` (never taken
    from a URL, where it would be stored and shown)."""
    secret = (env or Environment.read()).halo_clickhouse_password
    return secret.get_secret_value() if secret is not None else None


def clickhouse_url(env: Environment | None = None) -> str | None:
    """The server's default trace location, `HALO_CLICKHOUSE_URL` (a
    `clickhouse://USER@HOST:PORT/DB?table=T` URL or `chdb:FOLDER`): read when a tool gets no
    trace path, and over HTTP the only `clickhouse://` location a client may name."""
    return (env or Environment.read()).halo_clickhouse_url
