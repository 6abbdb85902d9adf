"""`halo-mcp install CLIENT`: what a user sees and what ends up in their files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from halo_mcp.cli import main
from halo_mcp.cli.install import stdio_command


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake home and a project folder as cwd, so nothing touches the real home."""
    home = tmp_path / "home"
    project = tmp_path / "project"
    home.mkdir()
    project.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("USERPROFILE", str(home))
    monkeypatch.delenv("CODEX_HOME", raising=False)
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv("HALO_MCP_TOKEN", raising=False)
    monkeypatch.chdir(project)
    return home


def test_claude_code_project_install_writes_mcp_json_and_says_what_changed(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["install", "claude-code"]) == 0
    data = json.loads(Path(".mcp.json").read_text())
    halo = data["mcpServers"]["halo"]
    assert halo["args"] == stdio_command()[1:]
    err = capsys.readouterr().err
    assert "added mcpServers.halo in ./.mcp.json" in err
    assert '+  "type": "stdio",' in err
    assert "claude mcp list" in err


def test_install_twice_leaves_the_file_byte_for_byte_alone(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["install", "cursor"]) == 0
    first = Path(".cursor/mcp.json").read_bytes()
    assert main(["install", "cursor"]) == 0
    assert Path(".cursor/mcp.json").read_bytes() == first
    assert "already up to date; nothing changed" in capsys.readouterr().err


def test_claude_user_scope_merges_only_mcp_servers_and_keeps_file_permissions(
    home: Path,
) -> None:
    claude = home / ".claude.json"
    original = {"theme": "dark", "mcpServers": {"github": {"command": "gh-mcp"}}}
    claude.write_text(json.dumps(original))
    claude.chmod(0o600)
    assert main(["install", "claude-code", "--scope", "user"]) == 0
    data = json.loads(claude.read_text())
    assert data["theme"] == "dark"
    assert set(data["mcpServers"]) == {"github", "halo"}
    if os.name == "posix":
        assert claude.stat().st_mode & 0o777 == 0o600


def test_dry_run_prints_the_result_and_writes_nothing(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["install", "codex", "--dry-run"]) == 0
    out, err = capsys.readouterr()
    assert not (home / ".codex").exists()
    assert out.startswith("[mcp_servers.halo]\n")
    assert "dry run: would add mcp_servers.halo" in err
    assert "nothing written" in err


def test_dry_run_on_the_shared_claude_file_shows_only_the_servers_part(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (home / ".claude.json").write_text(json.dumps({"oauthAccount": {"email": "a@b.c"}}))
    assert main(["install", "claude-code", "--scope", "user", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "oauthAccount" not in out
    assert list(json.loads(out)["mcpServers"]) == ["halo"]
    assert json.loads((home / ".claude.json").read_text()) == {"oauthAccount": {"email": "a@b.c"}}


def test_codex_user_scope_follows_codex_home(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    codex_home = tmp_path / "codex-home"
    monkeypatch.setenv("CODEX_HOME", str(codex_home))
    assert main(["install", "codex"]) == 0
    assert "[mcp_servers.halo]" in (codex_home / "config.toml").read_text()


def test_http_install_to_a_remote_url_sends_a_bearer_token_from_the_environment(
    home: Path,
) -> None:
    url = "https://halo.internal.example/mcp"
    assert main(["install", "vscode", "--http", url]) == 0
    halo = json.loads(Path(".vscode/mcp.json").read_text())["servers"]["halo"]
    assert halo == {
        "type": "http",
        "url": url,
        "headers": {"Authorization": "Bearer ${env:HALO_MCP_TOKEN}"},
    }


def test_http_install_on_loopback_needs_no_token(home: Path) -> None:
    assert main(["install", "cursor", "--http", "http://127.0.0.1:8765/mcp"]) == 0
    halo = json.loads(Path(".cursor/mcp.json").read_text())["mcpServers"]["halo"]
    assert halo == {"url": "http://127.0.0.1:8765/mcp"}


def test_http_install_on_loopback_sends_the_token_when_one_is_set_up(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HALO_MCP_TOKEN", "secret-token-value")
    assert main(["install", "codex", "--http", "http://127.0.0.1:8765/mcp"]) == 0
    text = (home / ".codex" / "config.toml").read_text()
    assert 'bearer_token_env_var = "HALO_MCP_TOKEN"' in text
    assert "secret-token-value" not in text


def test_a_custom_name_and_command_are_used_as_given(home: Path) -> None:
    args = ["install", "claude-code", "--name", "halo-prod", "--command", "halo-mcp"]
    assert main(args) == 0
    servers = json.loads(Path(".mcp.json").read_text())["mcpServers"]
    assert servers["halo-prod"]["command"] == "halo-mcp"
    assert servers["halo-prod"]["args"] == ["serve"]


def test_bad_input_exits_2_and_leaves_the_file_untouched(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Path(".cursor").mkdir()
    broken = '{"mcpServers": {"x": '
    Path(".cursor/mcp.json").write_text(broken)
    assert main(["install", "cursor"]) == 2
    assert Path(".cursor/mcp.json").read_text() == broken
    assert "cannot merge" in capsys.readouterr().err
    assert main(["install", "cursor", "--http", "not-a-url"]) == 2
    assert "give the server's full URL" in capsys.readouterr().err


def test_vscode_user_scope_without_vscode_explains_the_command_palette(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["install", "vscode", "--scope", "user"]) == 1
    out, err = capsys.readouterr()
    assert "MCP: Open User Configuration" in err
    assert "halo" in json.loads(out)["servers"]


def test_vscode_user_scope_writes_the_user_mcp_json_when_vscode_is_there(home: Path) -> None:
    if sys.platform == "darwin":
        user_dir = home / "Library" / "Application Support" / "Code" / "User"
    else:
        user_dir = home / ".config" / "Code" / "User"
    user_dir.mkdir(parents=True)
    assert main(["install", "vscode", "--scope", "user"]) == 0
    assert "halo" in json.loads((user_dir / "mcp.json").read_text())["servers"]


def test_the_stdio_command_written_is_an_absolute_path_that_starts_the_server() -> None:
    command = stdio_command()
    assert Path(command[0]).is_absolute()
    assert command[-1] == "serve"
    # The same executable answers --help (it exists and is the halo-mcp CLI).
    done = subprocess.run([*command[:-1], "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert "halo-mcp" in done.stdout
