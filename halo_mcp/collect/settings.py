"""What the OTLP receiver needs; the CLI (`collect`, `serve --collect`) fills it from flags."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field, SecretStr, model_validator

if TYPE_CHECKING:
    from halo_mcp.server import ServerSettings

DEFAULT_PORT = 4318


class CollectSettings(BaseModel):
    """Where the receiver listens, who may send, where spans go and how much it takes."""

    host: str = "127.0.0.1"
    port: int = Field(DEFAULT_PORT, ge=0, le=65535)
    directory: Path = Field(description="The collection directory (created when missing).")
    tokens: list[SecretStr] = Field(
        default_factory=list, description="Accepted bearer tokens; none: no token asked."
    )
    allowed_hosts: list[str] = Field(default_factory=list)
    allowed_origins: list[str] = Field(default_factory=list)
    max_request_bytes: int = Field(
        16 << 20, ge=1024, description="Largest body accepted, compressed or not (else 413)."
    )
    max_in_flight: int = Field(
        8, ge=1, le=1024, description="Requests handled at once; more are answered 429."
    )
    retry_after_s: int = Field(1, ge=1, le=600, description="Retry-After of 429/503 answers.")
    rotate_bytes: int = Field(256 << 20, ge=1 << 10, description="Start a new file past this.")

    @model_validator(mode="after")
    def _same_guard_as_mcp(self) -> CollectSettings:
        self.http_guard()  # raises the MCP server's error for a remote bind without a token
        return self

    def http_guard(self) -> ServerSettings:
        """The MCP HTTP server's settings for the same address, tokens, hosts and origins:
        the receiver applies that server's token and Host/Origin checks (server.py)."""
        from halo_mcp.server import http_guard

        return http_guard(self)
