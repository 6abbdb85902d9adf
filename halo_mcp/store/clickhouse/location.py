"""Where a ClickHouse trace table is: a server URL or an embedded chDB folder.

Accepted wherever a trace path is:
- ``clickhouse://USER@HOST:PORT/DATABASE?table=otel_traces`` (HTTP; ``clickhouses://`` or
  ``?secure=1`` for TLS; port default 8123, or 8443 with TLS; database default ``otel``,
  table default ``otel_traces``);
- ``chdb:PATH`` (embedded ClickHouse in a local folder; ``?database=&table=`` as above).

The password never travels in the URL (it would end up in shell history, run records and
logs): it comes from ``HALO_CLICKHOUSE_PASSWORD``, read by :mod:`halo_mcp.settings`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from halo_mcp.store.errors import StoreError

SCHEMES = ("clickhouse://", "clickhouses://", "chdb:")
DEFAULT_DATABASE = "otel"
DEFAULT_TABLE = "otel_traces"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ClickHouseLocationError(StoreError):
    """A ClickHouse location that cannot be used as written."""


class ClickHouseLocation(BaseModel):
    """A parsed location. `display` is safe to log: it never holds a secret."""

    model_config = ConfigDict(frozen=True)

    mode: Literal["server", "chdb"]
    database: str = DEFAULT_DATABASE
    table: str = DEFAULT_TABLE
    host: str | None = None
    port: int | None = None
    secure: bool = False
    username: str = "default"
    password: SecretStr | None = Field(default=None, repr=False)
    path: Path | None = Field(default=None, description="The chDB folder (mode chdb).")

    @property
    def qualified_table(self) -> str:
        return f"{self.database}.{self.table}"

    @property
    def display(self) -> str:
        """The location as a user wrote it, without any secret."""
        query = f"?table={self.table}"
        if self.mode == "chdb":
            return f"chdb:{self.path}{query}&database={self.database}"
        scheme = "clickhouses" if self.secure else "clickhouse"
        return f"{scheme}://{self.username}@{self.host}:{self.port}/{self.database}{query}"


def is_clickhouse_location(value: object) -> bool:
    """Whether a trace argument names a ClickHouse table rather than a file."""
    return isinstance(value, str) and value.startswith(SCHEMES)


def _identifier(value: str, what: str, source: str) -> str:
    if not _IDENTIFIER.match(value):
        raise ClickHouseLocationError(
            f"{what} {value!r} in {source!r} is not a plain identifier (letters, digits, _); "
            f"name an existing {what}, e.g. "
            f"{DEFAULT_DATABASE if what == 'database' else DEFAULT_TABLE}"
        )
    return value


def _options(query: str, source: str) -> dict[str, str]:
    known = {"table", "database", "secure"}
    options: dict[str, str] = {}
    for key, values in parse_qs(query, keep_blank_values=True).items():
        if key not in known:
            raise ClickHouseLocationError(
                f"unknown option {key!r} in {source!r}; use table=, database= or secure=1"
            )
        options[key] = values[-1]
    return options


def parse_location(value: str, password: str | None = None) -> ClickHouseLocation:
    """Parse `value` (see the module docstring). `password` is the one from the
    environment; a password written in the URL is refused, so it cannot leak from there."""
    if value.startswith("chdb:"):
        raw_path, _, query = value[len("chdb:") :].partition("?")
        if not raw_path:
            raise ClickHouseLocationError(
                "chdb: needs a folder, e.g. chdb:./traces.chdb (created by `halo-mcp load`)"
            )
        options = _options(query, value)
        return ClickHouseLocation(
            mode="chdb",
            path=Path(raw_path).expanduser().resolve(),
            database=_identifier(options.get("database", DEFAULT_DATABASE), "database", value),
            table=_identifier(options.get("table", DEFAULT_TABLE), "table", value),
        )
    if not value.startswith(("clickhouse://", "clickhouses://")):
        raise ClickHouseLocationError(
            f"{value!r} is not a ClickHouse location; use clickhouse://USER@HOST:8123/DB"
            "?table=otel_traces or chdb:PATH"
        )
    parts = urlsplit(value)
    if parts.password is not None:
        raise ClickHouseLocationError(
            "a password in the ClickHouse URL is refused (it would be stored and shown); "
            "remove it from the URL and set HALO_CLICKHOUSE_PASSWORD instead"
        )
    if not parts.hostname:
        raise ClickHouseLocationError(
            f"no host in {value!r}; write clickhouse://USER@HOST:8123/DB?table=otel_traces"
        )
    options = _options(parts.query, value)
    secure = parts.scheme == "clickhouses" or options.get("secure", "") in ("1", "true")
    database = parts.path.strip("/") or options.get("database", DEFAULT_DATABASE)
    return ClickHouseLocation(
        mode="server",
        host=parts.hostname,
        port=parts.port or (8443 if secure else 8123),
        secure=secure,
        username=unquote(parts.username) if parts.username else "default",
        password=SecretStr(password) if password else None,
        database=_identifier(database, "database", value),
        table=_identifier(options.get("table", DEFAULT_TABLE), "table", value),
    )
