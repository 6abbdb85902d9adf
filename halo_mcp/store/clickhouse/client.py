"""One small client over the two ways to reach ClickHouse: the official HTTP client
(clickhouse-connect) for a server, and chDB for an embedded folder.

Queries use ClickHouse's own parameter syntax (``{name:Type}`` with a `params` dict), which
both bind server-side: values never get spliced into SQL text.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol

import orjson

from halo_mcp.store.clickhouse.location import ClickHouseLocation
from halo_mcp.store.errors import QueryTimeoutError, StoreError
from halo_mcp.store.time_limit import NARROW_HINT

Bound = Mapping[str, Any] | None  # a statement's bound parameters
Limit = float | None  # seconds
Row = tuple[Any, ...]
Settings = Mapping[str, int | str] | None  # more ClickHouse settings for one statement

#: Rows written per INSERT statement by `insert`.
INSERT_BATCH = 5_000


class ClickHouseError(StoreError):
    """ClickHouse refused a statement or could not be reached; the message says why."""


class ClickHouseClient(Protocol):
    """What the store needs from ClickHouse."""

    def rows(
        self, sql: str, params: Bound = None, *, time_limit: Limit = None, settings: Settings = None
    ) -> list[Row]:
        """Run a SELECT and return its rows (bounded by the statement's own LIMIT). With
        `time_limit` (seconds), ClickHouse stops the statement after that long
        (max_execution_time) and QueryTimeoutError is raised; `settings` are more of
        ClickHouse's settings for this statement (readonly, result limits)."""
        ...

    def stream(self, sql: str, params: Bound = None, *, time_limit: Limit = None) -> Iterator[Row]:
        """As `rows`, for a long result: rows arrive block by block, so only one block is
        held at a time. Iterate to the end (or close the iterator) before the next
        statement."""
        ...

    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        """Run a statement that returns nothing (DDL)."""
        ...

    def insert_json_rows(self, table: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert rows given as JSON-able dicts keyed by column name."""
        ...

    def close(self) -> None: ...


def _missing_extra(exc: ImportError) -> ClickHouseError:
    return ClickHouseError(
        f"the ClickHouse backend needs the clickhouse extra ({exc.name} is missing): "
        "pip install 'halo-mcp[clickhouse]'"
    )


class HttpClickHouseClient:
    """A ClickHouse server over HTTP(S), through clickhouse-connect."""

    def __init__(self, location: ClickHouseLocation, *, timeout_s: float = 600.0) -> None:
        """`timeout_s` bounds waiting for an answer; the server stops statements at the
        store's time limit (max_execution_time) well before, when one is set."""
        try:
            import clickhouse_connect
        except ImportError as exc:
            raise _missing_extra(exc) from None
        password = location.password.get_secret_value() if location.password else ""
        try:
            self._client = clickhouse_connect.get_client(
                host=location.host,
                port=location.port,
                username=location.username,
                password=password,
                secure=location.secure,
                connect_timeout=min(timeout_s, 10.0),
                send_receive_timeout=timeout_s,
                autogenerate_session_id=False,
            )
        except Exception as exc:  # the driver raises its own types; say where, not the secret
            raise ClickHouseError(
                f"cannot connect to ClickHouse at {location.display} ({type(exc).__name__}: "
                f"{_scrub(str(exc), password)}); check the host, port and user, and that "
                "HALO_CLICKHOUSE_PASSWORD is set when the server needs one"
            ) from None
        self._password = password

    def rows(
        self, sql: str, params: Bound = None, *, time_limit: Limit = None, settings: Settings = None
    ) -> list[Row]:
        chosen = {**(settings or {}), **_limit_setting(time_limit)}
        try:
            result = self._client.query(sql, parameters=dict(params or {}), settings=chosen or None)
            return [tuple(row) for row in result.result_rows]
        except Exception as exc:
            raise _error(_scrub(str(exc), self._password), time_limit) from None

    def stream(self, sql: str, params: Bound = None, *, time_limit: Limit = None) -> Iterator[Row]:
        try:
            with self._client.query_rows_stream(
                sql, parameters=dict(params or {}), settings=_limit_setting(time_limit) or None
            ) as found:
                for row in found:
                    yield tuple(row)
        except Exception as exc:
            raise _error(_scrub(str(exc), self._password), time_limit) from None

    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        try:
            self._client.command(sql, parameters=dict(params or {}))
        except Exception as exc:
            raise ClickHouseError(_scrub(str(exc), self._password)) from None

    def insert_json_rows(self, table: str, rows: Sequence[Mapping[str, Any]]) -> None:
        for start in range(0, len(rows), INSERT_BATCH):
            body = b"\n".join(orjson.dumps(row) for row in rows[start : start + INSERT_BATCH])
            try:
                self._client.raw_insert(table, insert_block=body, fmt="JSONEachRow")
            except Exception as exc:
                raise ClickHouseError(_scrub(str(exc), self._password)) from None

    def close(self) -> None:
        self._client.close()


class EmbeddedClickHouseClient:
    """Embedded ClickHouse (chDB) over a local folder. One session per folder and process:
    chDB allows one, so statements from several threads take turns."""

    _lock = threading.Lock()

    def __init__(self, location: ClickHouseLocation) -> None:
        try:
            from chdb import session
        except ImportError as exc:
            raise _missing_extra(exc) from None
        assert location.path is not None
        try:
            self._session = session.Session(str(location.path))
        except Exception as exc:
            raise ClickHouseError(
                f"cannot open the chDB folder {location.path} ({exc}); check it exists and is "
                "writable, or create it with `halo-mcp load PATH --to chdb:FOLDER`"
            ) from None

    def _query(
        self,
        sql: str,
        fmt: str,
        params: Mapping[str, Any] | None,
        time_limit: float | None = None,
    ) -> bytes:
        bound = {key: _param_text(value) for key, value in (params or {}).items()}
        with self._lock:
            try:
                result = self._session.query(sql, fmt, params=bound)
            except Exception as exc:
                raise _error(str(exc).strip(), time_limit) from None
        return bytes(result.bytes())

    def rows(
        self, sql: str, params: Bound = None, *, time_limit: Limit = None, settings: Settings = None
    ) -> list[Row]:
        data = self._query(
            sql + _settings(time_limit, settings), "JSONCompactEachRow", params, time_limit
        )
        return [tuple(orjson.loads(line)) for line in data.splitlines() if line.strip()]

    def stream(self, sql: str, params: Bound = None, *, time_limit: Limit = None) -> Iterator[Row]:
        bound = {key: _param_text(value) for key, value in (params or {}).items()}
        with self._lock:  # held until the last block is read (or the iterator closed)
            try:
                found = self._session.send_query(
                    sql + _settings(time_limit), "JSONCompactEachRow", params=bound
                )
                for block in found:
                    for line in bytes(block.bytes()).splitlines():
                        if line.strip():
                            yield tuple(orjson.loads(line))
            except Exception as exc:
                raise _error(str(exc).strip(), time_limit) from None

    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        self._query(sql, "TabSeparated", params)

    def insert_json_rows(self, table: str, rows: Sequence[Mapping[str, Any]]) -> None:
        for start in range(0, len(rows), INSERT_BATCH):
            body = "\n".join(
                orjson.dumps(row).decode() for row in rows[start : start + INSERT_BATCH]
            )
            self._query(f"INSERT INTO {table} FORMAT JSONEachRow\n{body}\n", "TabSeparated", None)

    def close(self) -> None:
        with self._lock:
            self._session.close()


def _settings(time_limit: float | None, more: Settings = None) -> str:
    """The SETTINGS clause of an embedded SELECT: plain JSON numbers, the time limit, and
    `more` (names and values of this module's callers, never user input)."""
    chosen: dict[str, int | str] = {"output_format_json_quote_64bit_integers": 0}
    chosen.update(more or {})
    chosen.update(_limit_setting(time_limit))
    return " SETTINGS " + ", ".join(
        f"{name}={value if isinstance(value, int) else repr(value)}"
        for name, value in chosen.items()
    )


def _limit_setting(time_limit: float | None) -> dict[str, int | str]:
    return {"max_execution_time": _seconds(time_limit)} if time_limit else {}


def _param_text(value: Any) -> str:
    """chDB takes parameters as text, in ClickHouse's literal syntax for the declared type."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, tuple):
        return "(" + ",".join(_array_item(item) for item in value) + ")"
    if isinstance(value, list):
        return "[" + ",".join(_array_item(item) for item in value) + "]"
    return str(value)


def _array_item(value: Any) -> str:
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return _param_text(value)


def _seconds(limit: float) -> int:
    """max_execution_time in whole seconds (at least 1)."""
    return max(1, round(limit))


def _error(message: str, time_limit: float | None) -> ClickHouseError | QueryTimeoutError:
    """A statement's failure: a time-out (ClickHouse code 159) as the store's own."""
    if time_limit and ("TIMEOUT_EXCEEDED" in message or "Code: 159." in message):
        return QueryTimeoutError(
            f"the query ran past the time limit of {time_limit:g}s inside ClickHouse and was "
            f"stopped; {NARROW_HINT}"
        )
    return ClickHouseError(message)


def _scrub(message: str, secret: str) -> str:
    """A driver message without the password (some drivers echo connection strings)."""
    return message.replace(secret, "***") if secret else message


def connect(location: ClickHouseLocation) -> ClickHouseClient:
    """A client for `location`."""
    if location.mode == "chdb":
        return EmbeddedClickHouseClient(location)
    return HttpClickHouseClient(location)
