"""The config writers: merging the halo entry into the files users already have."""

from __future__ import annotations

import json

import pytest

from halo_mcp.cli import tomledit
from halo_mcp.cli.clientconfig import ConfigError, ServerSpec, entry, merge

STDIO = ServerSpec(command=["/opt/halo/bin/halo-mcp", "serve"])
HTTP = ServerSpec(url="https://halo.example.com/mcp", token_env="HALO_MCP_TOKEN")

CLAUDE_WITH_OTHERS = {
    "numStartups": 42,
    "oauthAccount": {"emailAddress": "dev@example.com"},
    "projects": {"/home/dev/app": {"mcpServers": {"local-one": {"command": "x"}}}},
    "mcpServers": {"github": {"type": "stdio", "command": "gh-mcp", "args": []}},
}

CODEX_WITH_OTHERS = """\
# my codex settings
model = "o4-mini"
approval_policy = "on-request"

[mcp_servers.docs]
command = "npx"
args = [
  "-y",
  "[mcp_servers.halo]",  # a bracket inside a value is not a table header
]
env = { DOCS_TOKEN = "x" }

[profiles.fast]
model = "gpt-5.4-mini"
"""


def test_claude_user_file_keeps_everything_but_its_own_entry() -> None:
    old = json.dumps(CLAUDE_WITH_OTHERS, indent=2)
    result = merge(old, "claude-code", STDIO)
    data = json.loads(result.text)
    assert result.action == "added"
    assert data["numStartups"] == 42
    assert data["oauthAccount"] == CLAUDE_WITH_OTHERS["oauthAccount"]
    assert data["projects"] == CLAUDE_WITH_OTHERS["projects"]
    assert data["mcpServers"]["github"] == CLAUDE_WITH_OTHERS["mcpServers"]["github"]
    halo = data["mcpServers"]["halo"]
    assert halo["type"] == "stdio"
    assert [halo["command"], *halo["args"]] == ["/opt/halo/bin/halo-mcp", "serve"]
    assert halo["env"]["OPENAI_API_KEY"] == "${OPENAI_API_KEY:-}"


@pytest.mark.parametrize("client", ["claude-code", "cursor", "vscode", "codex"])
@pytest.mark.parametrize("spec", [STDIO, HTTP], ids=["stdio", "http"])
def test_merging_twice_gives_the_same_bytes(client: str, spec: ServerSpec) -> None:
    start = CODEX_WITH_OTHERS if client == "codex" else json.dumps(CLAUDE_WITH_OTHERS)
    first = merge(start, client, spec)
    second = merge(first.text, client, spec)
    assert first.action == "added"
    assert second.action == "unchanged"
    assert second.text == first.text
    assert second.diff("file") == ""


def test_switching_from_stdio_to_http_replaces_the_entry_without_duplicating_it() -> None:
    stdio = merge("", "cursor", STDIO).text
    result = merge(stdio, "cursor", HTTP)
    servers = json.loads(result.text)["mcpServers"]
    assert result.action == "updated"
    assert list(servers) == ["halo"]
    assert servers["halo"] == {
        "url": "https://halo.example.com/mcp",
        "headers": {"Authorization": "Bearer ${env:HALO_MCP_TOKEN}"},
    }
    assert '-  "command"' in result.diff("mcp.json")


def test_keys_the_user_added_to_the_halo_entry_survive_an_update() -> None:
    old = json.dumps({"servers": {"halo": {"command": "old", "disabled": True}}})
    servers = json.loads(merge(old, "vscode", STDIO).text)["servers"]
    assert servers["halo"]["disabled"] is True
    assert servers["halo"]["command"] == "/opt/halo/bin/halo-mcp"


def test_vscode_uses_a_top_level_servers_key_and_env_references() -> None:
    data = json.loads(merge("", "vscode", STDIO).text)
    assert list(data) == ["servers"]
    assert data["servers"]["halo"]["env"]["OPENAI_API_KEY"] == "${env:OPENAI_API_KEY}"


def test_a_json_file_with_comments_is_refused_with_the_entry_to_paste() -> None:
    jsonc = '{\n  // my servers\n  "servers": {}\n}\n'
    with pytest.raises(ConfigError) as info:
        merge(jsonc, "vscode", STDIO)
    assert "by hand" in str(info.value)
    assert '"command": "/opt/halo/bin/halo-mcp"' in str(info.value)


def test_codex_merge_keeps_comments_other_tables_and_their_bytes() -> None:
    result = merge(CODEX_WITH_OTHERS, "codex", STDIO)
    assert result.text.startswith(CODEX_WITH_OTHERS)  # every existing byte kept, in place
    added = result.text[len(CODEX_WITH_OTHERS) :]
    assert added.startswith("\n[mcp_servers.halo]\n")
    table = tomledit.read_table(result.text, ("mcp_servers", "halo"))
    if table is not None:  # tomllib exists (Python 3.11+): check the parsed value too
        assert table == entry("codex", STDIO)
        assert tomledit.read_table(result.text, ("mcp_servers", "docs"))["env"] == {
            "DOCS_TOKEN": "x"
        }
    assert "tool_timeout_sec = 120" in added
    assert 'env_vars = ["OPENAI_API_KEY", "OPENAI_BASE_URL", "HALO_MODEL"]' in added


def test_codex_update_rewrites_the_table_in_place_and_keeps_the_users_extra_keys() -> None:
    old = (
        'model = "o3"\n\n[mcp_servers.halo]\ncommand = "old-halo"\nenabled = false\n'
        'tool_timeout_sec = 30\n\n[mcp_servers.halo.env]\nOPENAI_API_KEY = "sk-old"\n\n'
        '# the next table\n[profiles.x]\nmodel = "y"\n'
    )
    result = merge(old, "codex", STDIO)
    text = result.text
    assert result.action == "updated"
    assert text.count("[mcp_servers.halo]") == 1
    assert "[mcp_servers.halo.env]" not in text  # its env is managed: replaced by env_vars
    assert "sk-old" not in text
    assert "enabled = false" in text
    assert "tool_timeout_sec = 120" in text and "tool_timeout_sec = 30" not in text
    assert (
        text.index("[mcp_servers.halo]")
        < text.index("# the next table")
        < text.index("[profiles.x]")
    )
    assert merge(text, "codex", STDIO).text == text


@pytest.mark.parametrize(
    "existing",
    [
        'mcp_servers = { halo = { command = "x" } }\n',
        '[mcp_servers]\nhalo.command = "x"\n',
        '[[mcp_servers]]\nname = "x"\n',
    ],
    ids=["inline-table", "dotted-keys", "array-of-tables"],
)
def test_codex_entry_in_a_form_we_do_not_rewrite_is_left_to_the_user(existing: str) -> None:
    with pytest.raises(ConfigError) as info:
        merge(existing, "codex", STDIO)
    assert "by hand" in str(info.value)
    assert "[mcp_servers.halo]" in str(info.value)


def test_toml_strings_are_escaped_so_any_path_round_trips() -> None:
    spec = ServerSpec(command=['C:\\Program Files\\halo "x"\\halo-mcp.exe', "serve"])
    text = merge("", "codex", spec).text
    assert '"C:\\\\Program Files\\\\halo \\"x\\"\\\\halo-mcp.exe"' in text
    table = tomledit.read_table(text, ("mcp_servers", "halo"))
    if table is not None:
        assert table["command"] == spec.command[0]


def test_codex_http_entry_names_the_token_variable_not_the_token() -> None:
    table = entry("codex", HTTP)
    assert table["url"] == "https://halo.example.com/mcp"
    assert table["bearer_token_env_var"] == "HALO_MCP_TOKEN"
    assert table["tool_timeout_sec"] >= 120


def test_a_bad_server_name_or_url_is_refused_with_an_example() -> None:
    with pytest.raises(ValueError, match="letters, digits"):
        ServerSpec(name="my halo")
    with pytest.raises(ValueError, match=r"http://127\.0\.0\.1:8765/mcp"):
        ServerSpec(url="localhost:8765")


def test_a_table_header_inside_a_multiline_string_is_not_mistaken_for_the_entry() -> None:
    old = 'notes = """\n[mcp_servers.halo]\ncommand = "inside a string"\n"""\n'
    text = merge(old, "codex", STDIO).text
    assert text.startswith(old)
    assert text.count("[mcp_servers.halo]") == 2  # the string's line and the real table
    assert merge(text, "codex", STDIO).text == text
