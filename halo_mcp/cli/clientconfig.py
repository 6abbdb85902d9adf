"""The halo server entry for each coding agent, and pure merges into existing config text.

Each client has its own format (see docs/MCP.md): Claude Code and Cursor use
`{"mcpServers": {name: entry}}`, VS Code `{"servers": {name: entry}}`, Codex a TOML table
`[mcp_servers.name]`. The API key is always a reference to the environment, never a value.
Functions here take and return text, so `install` can show a diff or a dry run and tests
need no files.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import urlparse

from pydantic import BaseModel, Field, model_validator

from halo_mcp.cli import tomledit

Client = Literal["claude-code", "cursor", "codex", "vscode"]
CLIENTS: tuple[Client, ...] = ("claude-code", "cursor", "codex", "vscode")

#: Variables the stdio server reads from its environment (see README "Configuration").
#: Claude Code (`${VAR:-}`) and Codex (`env_vars`) forward them only when set.
FORWARDED_ENV = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "HALO_MODEL")
#: Cursor and VS Code have no "only if set" form, and an unset optional variable must not
#: become a bogus base URL or model: they forward the key alone (add others by hand).
ALWAYS_SET_ENV = ("OPENAI_API_KEY",)
#: The variable holding the bearer token for `halo-mcp serve --http`.
DEFAULT_TOKEN_ENV = "HALO_MCP_TOKEN"
#: Codex waits 10 s for startup and 60 s per tool call by default; analyses poll, but an
#: analyze_traces call may wait up to ~50 s and a cold index build takes a while.
CODEX_STARTUP_TIMEOUT_SEC = 20
CODEX_TOOL_TIMEOUT_SEC = 120

_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_JSON_MANAGED = ("type", "command", "args", "env", "url", "headers")
_TOML_MANAGED = (
    "command",
    "args",
    "env",
    "env_vars",
    "url",
    "bearer_token_env_var",
    "http_headers",
    "env_http_headers",
    "startup_timeout_sec",
    "tool_timeout_sec",
)


class ConfigError(ValueError):
    """An existing config file cannot be merged safely; the message says what to do."""


class ServerSpec(BaseModel):
    """How the client should reach halo-mcp: a command line (stdio) or a URL (HTTP)."""

    name: str = Field("halo", description="The server's name in the client.")
    command: list[str] = Field(
        default_factory=lambda: ["halo-mcp", "serve"], description="argv for stdio."
    )
    url: str | None = Field(None, description="Streamable HTTP endpoint; stdio when None.")
    token_env: str | None = Field(
        None, description="Env var holding the bearer token sent to the HTTP server."
    )

    @model_validator(mode="after")
    def _check(self) -> ServerSpec:
        if not _NAME.fullmatch(self.name):
            raise ValueError(
                f"server name {self.name!r}: use 1-64 letters, digits, '-' or '_' (e.g. halo)"
            )
        if self.url is not None:
            parsed = urlparse(self.url)
            if parsed.scheme not in ("http", "https") or not parsed.netloc:
                raise ValueError(
                    f"--http {self.url!r}: give the server's full URL, e.g."
                    " http://127.0.0.1:8765/mcp"
                )
        elif not self.command:
            raise ValueError("a stdio server needs a command")
        return self


def is_loopback_url(url: str) -> bool:
    host = (urlparse(url).hostname or "").lower()
    return host in ("localhost", "::1") or host.startswith("127.")


# ------------------------------------------------------------------------ entries


def entry(client: Client, spec: ServerSpec) -> dict[str, Any]:
    """The server entry `client` expects, referencing secrets through the environment."""
    builders = {
        "claude-code": _claude_code,
        "cursor": _cursor,
        "vscode": _vscode,
        "codex": _codex,
    }
    return builders[client](spec)


def _claude_code(spec: ServerSpec) -> dict[str, Any]:
    # Claude Code expands ${VAR} and ${VAR:-default}; an unset ${VAR} without a default
    # is an error, so the optional variables default to empty (ignored by halo-mcp).
    if spec.url:
        out: dict[str, Any] = {"type": "http", "url": spec.url}
        if spec.token_env:
            out["headers"] = {"Authorization": f"Bearer ${{{spec.token_env}}}"}
        return out
    return {
        "type": "stdio",
        "command": spec.command[0],
        "args": spec.command[1:],
        "env": {name: f"${{{name}:-}}" for name in FORWARDED_ENV},
    }


def _cursor(spec: ServerSpec) -> dict[str, Any]:
    return _env_interpolating(spec, transport_type=False)


def _vscode(spec: ServerSpec) -> dict[str, Any]:
    return _env_interpolating(spec, transport_type=True)


def _env_interpolating(spec: ServerSpec, *, transport_type: bool) -> dict[str, Any]:
    """Cursor and VS Code share one entry shape (`${env:NAME}` interpolation); VS Code also
    names the transport in a `type` key."""
    if spec.url:
        out: dict[str, Any] = {"type": "http"} if transport_type else {}
        out["url"] = spec.url
        if spec.token_env:
            out["headers"] = {"Authorization": f"Bearer ${{env:{spec.token_env}}}"}
        return out
    out = {"type": "stdio"} if transport_type else {}
    out |= {
        "command": spec.command[0],
        "args": spec.command[1:],
        "env": {name: f"${{env:{name}}}" for name in ALWAYS_SET_ENV},
    }
    return out


def _codex(spec: ServerSpec) -> dict[str, Any]:
    # Codex starts stdio servers with a minimal environment; `env_vars` forwards named
    # variables from its own environment (values never land in the file).
    if spec.url:
        out: dict[str, Any] = {"url": spec.url}
        if spec.token_env:
            out["bearer_token_env_var"] = spec.token_env
    else:
        out = {
            "command": spec.command[0],
            "args": spec.command[1:],
            "env_vars": list(FORWARDED_ENV),
        }
    out["startup_timeout_sec"] = CODEX_STARTUP_TIMEOUT_SEC
    out["tool_timeout_sec"] = CODEX_TOOL_TIMEOUT_SEC
    return out


def container_key(client: Client) -> str:
    """The top-level key holding the servers in the client's JSON file."""
    return "servers" if client == "vscode" else "mcpServers"


def document(client: Client, spec: ServerSpec) -> str:
    """A whole new config file holding only this server (what clients/ ships)."""
    return merge("", client, spec).text


# -------------------------------------------------------------------------- merge


class MergeResult(BaseModel):
    """The new file text and what changed in the server entry."""

    text: str
    action: Literal["added", "updated", "unchanged"]
    before: str = Field("", description="The old entry, rendered (empty when added).")
    after: str = Field(description="The new entry, rendered.")
    location: str = Field(description="Where the entry lives, e.g. mcpServers.halo.")

    def diff(self, label: str) -> str:
        """A unified diff of the entry alone (never the rest of the user's file)."""
        if self.action == "unchanged":
            return ""
        lines = difflib.unified_diff(
            self.before.splitlines(),
            self.after.splitlines(),
            f"{label} ({self.location}, before)",
            f"{label} ({self.location}, after)",
            lineterm="",
        )
        return "\n".join(lines)


def merge(text: str, client: Client, spec: ServerSpec) -> MergeResult:
    """`text` (an existing config file, possibly empty) with the halo entry set.

    Keeps every other server and unrelated key, keeps keys the user added to the halo
    entry that we do not manage, never duplicates it. Merging twice gives the same text.
    """
    if client == "codex":
        return _merge_toml(text, spec)
    return _merge_json(text, container_key(client), spec.name, entry(client, spec))


def _merge_json(text: str, container: str, name: str, new: dict[str, Any]) -> MergeResult:
    location = f"{container}.{name}"
    if text.strip():
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ConfigError(
                f"not plain JSON ({exc}). If it has comments or trailing commas, add this"
                f" under {container!r} by hand:\n"
                f"{json.dumps({name: new}, indent=2)}"
            ) from exc
    else:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("the top level is not a JSON object; fix the file first")
    servers = data.get(container)
    if servers is None:
        servers = data[container] = {}
    if not isinstance(servers, dict):
        raise ConfigError(f"{container!r} is not a JSON object; fix the file first")
    old = servers.get(name)
    merged = dict(new)
    if isinstance(old, dict):
        merged.update({k: v for k, v in old.items() if k not in _JSON_MANAGED})
    after = json.dumps(merged, indent=2, ensure_ascii=False)
    if old == merged:
        return MergeResult(
            text=text, action="unchanged", before=after, after=after, location=location
        )
    servers[name] = merged
    return MergeResult(
        text=json.dumps(data, indent=2, ensure_ascii=False) + "\n",
        action="added" if old is None else "updated",
        before="" if old is None else json.dumps(old, indent=2, ensure_ascii=False),
        after=after,
        location=location,
    )


def _merge_toml(text: str, spec: ServerSpec) -> MergeResult:
    path = ("mcp_servers", spec.name)
    values = entry("codex", spec)
    try:
        new_text = tomledit.upsert_table(text, path, values, managed=_TOML_MANAGED)
        old_block = _toml_block(text, path)
        new_block = _toml_block(new_text, path)
    except tomledit.TomlEditError as exc:
        raise ConfigError(f"{exc}. The entry to add:\n{tomledit.emit_table(path, values)}") from exc
    location = ".".join(path)
    if new_text == text:
        return MergeResult(
            text=text, action="unchanged", before=new_block, after=new_block, location=location
        )
    return MergeResult(
        text=new_text,
        action="updated" if old_block else "added",
        before=old_block,
        after=new_block,
        location=location,
    )


def _toml_block(text: str, path: tuple[str, ...]) -> str:
    """The text of the table at `path` and its sub-tables (for the change summary)."""
    lines = tomledit.scan(text)
    return "".join(
        line.text for start, end in tomledit.table_blocks(lines, path) for line in lines[start:end]
    ).rstrip("\n")


def entry_excerpt(client: Client, text: str, name: str) -> str:
    """Only the servers part of a JSON config (for dry runs on files holding much else)."""
    data = json.loads(text)
    key = container_key(client)
    servers: Mapping[str, Any] = data.get(key, {}) if isinstance(data, dict) else {}
    return json.dumps({key: {name: servers.get(name)}}, indent=2, ensure_ascii=False) + "\n"
