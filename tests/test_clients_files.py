"""Every ready configuration in clients/ parses, starts a command that exists, and keeps
secrets out: what a user copies must work as is."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from urllib.parse import urlparse

import pytest

from halo_mcp.cli import build_parser
from halo_mcp.cli.clientconfig import ServerSpec, entry
from halo_mcp.cli.tomledit import scan, tomllib

ROOT = Path(__file__).resolve().parent.parent
CLIENTS = ROOT / "clients"
CONFIGS = {
    "claude-code": ".mcp.json",
    "cursor": "mcp.json",
    "vscode": "mcp.json",
    "codex": "config.toml",
}
STDIO = ServerSpec(command=["halo-mcp", "serve"])
HTTP_URL = "http://127.0.0.1:8765/mcp"
HTTP = ServerSpec(url=HTTP_URL, token_env="HALO_MCP_TOKEN")


def _halo_entry(client: str, path: Path) -> dict:
    text = path.read_text()
    if client == "codex":
        if tomllib is not None:
            return tomllib.loads(text)["mcp_servers"]["halo"]
        # Python 3.10: at least the scanner must see exactly one halo table.
        headers = [line.key for line in scan(text) if line.kind == "header"]
        assert headers == [("mcp_servers", "halo")]
        return entry("codex", HTTP if "http" in path.parts else STDIO)
    container = "servers" if client == "vscode" else "mcpServers"
    return json.loads(text)[container]["halo"]


def _all_config_files() -> list[Path]:
    return sorted(p for p in CLIENTS.rglob("*") if p.suffix in (".json", ".toml"))


def test_each_client_has_a_stdio_and_an_http_config() -> None:
    expected = {CLIENTS / c / f for c, f in CONFIGS.items()}
    expected |= {CLIENTS / c / "http" / f for c, f in CONFIGS.items()}
    assert set(_all_config_files()) == expected


@pytest.mark.parametrize("client", list(CONFIGS))
def test_the_stdio_config_starts_halo_mcp_serve_with_the_key_from_the_environment(
    client: str,
) -> None:
    halo = _halo_entry(client, CLIENTS / client / CONFIGS[client])
    assert halo == entry(client, STDIO)  # exactly what `halo-mcp install` would write
    assert [halo["command"], *halo["args"]] == ["halo-mcp", "serve"]
    forwarded = halo.get("env_vars") or list(halo["env"])
    assert "OPENAI_API_KEY" in forwarded


@pytest.mark.parametrize("client", list(CONFIGS))
def test_the_http_config_points_at_the_default_serve_address(client: str) -> None:
    halo = _halo_entry(client, CLIENTS / client / "http" / CONFIGS[client])
    assert halo == entry(client, HTTP)
    assert halo["url"] == HTTP_URL
    assert "command" not in halo


def test_the_commands_named_by_the_configs_exist() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^halo-mcp = "halo_mcp\.cli:main"$', pyproject, re.MULTILINE)
    parser = build_parser()
    stdio = parser.parse_args(["serve"])
    assert callable(stdio.handler)
    port = urlparse(HTTP_URL).port
    http = parser.parse_args(["serve", "--http", "--port", str(port)])
    assert http.http is True
    # The HTTP configs use serve's default port, so `halo-mcp serve --http` just works.
    assert parser.parse_args(["serve", "--http"]).port == port


def test_codex_raises_the_tool_timeout_past_its_60_second_default() -> None:
    for path in (CLIENTS / "codex" / "config.toml", CLIENTS / "codex" / "http" / "config.toml"):
        halo = _halo_entry("codex", path)
        assert halo["tool_timeout_sec"] >= 120
        assert halo["startup_timeout_sec"] >= 20


def test_no_client_file_holds_a_secret() -> None:
    for path in CLIENTS.rglob("*"):
        if path.is_file():
            text = path.read_text()
            assert not re.search(r"sk-[A-Za-z0-9]{8,}", text), path
            assert "Bearer ey" not in text, path


def test_claude_mcp_add_lines_start_halo_mcp_serve_and_keep_the_key_unexpanded() -> None:
    readme = (CLIENTS / "claude-code" / "README.md").read_text()
    lines = [line for line in readme.splitlines() if line.startswith("claude mcp add")]
    assert len(lines) >= 2
    stdio = [shlex.split(line) for line in lines if " -- " in line]
    assert stdio, "a stdio `claude mcp add ... -- halo-mcp serve` line"
    for argv in stdio:
        assert argv[argv.index("--") + 1 :] == ["halo-mcp", "serve"]
        env = argv[argv.index("--env") + 1]
        assert argv.index("--env") < argv.index("halo")  # options before the name
        assert env == "OPENAI_API_KEY=${OPENAI_API_KEY}"  # single-quoted: not expanded
    http = [line for line in lines if "--transport http" in line]
    assert http and HTTP_URL in http[0]
    for line in (line for line in lines if line.startswith("claude mcp add-json")):
        server = json.loads(shlex.split(line)[-1])
        assert [server["command"], *server["args"]] == ["halo-mcp", "serve"]
        assert server["env"]["OPENAI_API_KEY"] == "${OPENAI_API_KEY}"


def _halo_tools() -> set[str]:
    """Tool names served by `halo-mcp serve`."""
    import anyio

    from halo_mcp.server import create_server

    return {t.name for t in anyio.run(create_server().list_tools)}


def test_the_skill_has_frontmatter_and_names_only_tools_that_exist() -> None:
    text = (CLIENTS / "skills" / "halo" / "SKILL.md").read_text()
    front = text.split("---")[1]
    fields = dict(line.split(": ", 1) for line in front.strip().splitlines())
    assert fields["name"] == "halo"
    assert len(fields["description"]) > 50
    tools = _halo_tools()
    pattern = (
        r"\b(analyze_traces|triage_traces|check_findings|get_\w+|query_\w+|cancel_\w+|list_\w+)\("
    )
    mentioned = set(re.findall(pattern, text))
    assert {"analyze_traces", "get_run", "get_finding", "query_spans", "get_trace"} <= mentioned
    assert mentioned <= tools
    allowed = {t.strip().removeprefix("mcp__halo__") for t in fields["allowed-tools"].split(",")}
    assert allowed <= tools
