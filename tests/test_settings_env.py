"""The environment is read in one place (settings.Environment) and turned into typed
settings at validation: nothing switches a setting on afterwards."""

from __future__ import annotations

import logging

import pytest

from halo_mcp.engine.settings import EngineSettings
from halo_mcp.server import ServerSettings, server_engine_settings
from halo_mcp.settings import Environment, cache_dir


def test_flags_numbers_and_empty_values_are_read_as_typed_values() -> None:
    env = Environment.read(
        {
            "HALO_TELEMETRY": "yes",
            "OPENAI_BASE_URL": "  ",
            "HALO_RETRY_BASE_DELAY_S": "0.25",
            "HALO_CACHE_DIR": "/tmp/halo-cache",
        }
    )
    assert env.halo_telemetry is True and env.openai_base_url is None
    assert env.halo_retry_base_delay_s == 0.25
    assert str(cache_dir(env)) == "/tmp/halo-cache"


def test_a_bad_value_is_ignored_with_a_warning_not_an_error(caplog) -> None:
    with caplog.at_level(logging.WARNING):
        env = Environment.read({"HALO_RETRY_AFTER_CAP_S": "soon", "HALO_MODEL": "m1"})
    assert env.halo_retry_after_cap_s is None and env.halo_model == "m1"
    assert "halo_retry_after_cap_s" in caplog.text


def test_engine_settings_take_the_environment_then_the_flags(monkeypatch) -> None:
    monkeypatch.setenv("HALO_MODEL", "env-model")
    monkeypatch.setenv("HALO_RETRY_AFTER_CAP_S", "2")
    settings = EngineSettings.from_env(model=None, max_turns=3)
    assert settings.model == "env-model" and settings.max_turns == 3
    assert settings.retry_after_cap_s == 2.0
    assert EngineSettings.from_env(model="flag-model").model == "flag-model"


@pytest.mark.parametrize("value, expected", [("1", True), ("", False)])
def test_halo_telemetry_turns_on_the_servers_analyses_at_validation(
    monkeypatch, value: str, expected: bool
) -> None:
    monkeypatch.setenv("HALO_TELEMETRY", value)
    assert server_engine_settings().telemetry is expected
    assert ServerSettings().engine.telemetry is expected
    assert server_engine_settings(telemetry=False).telemetry is False


def test_server_settings_read_the_tokens_from_the_named_variable(monkeypatch) -> None:
    monkeypatch.setenv("MY_TOKENS", "a-token-1, b-token-2")
    settings = ServerSettings.from_env(token_env="MY_TOKENS", engine={"model": "m2"})
    assert [t.get_secret_value() for t in settings.tokens] == ["a-token-1", "b-token-2"]
    assert settings.engine.model == "m2"
