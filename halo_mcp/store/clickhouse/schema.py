"""The exporter's table layout, and the columns a given table really has.

The OpenTelemetry Collector's ClickHouse exporter has changed its schema over versions
(some add ServiceVersion, ScopeAttributes, ResourceSchemaUrl...; old ones lack the trace id
lookup table). Readers and the loader ask the table for its columns once, when they open it,
and use only what is there.
"""

from __future__ import annotations

from importlib import resources

from pydantic import BaseModel

from halo_mcp.store.clickhouse.client import ClickHouseClient, ClickHouseError
from halo_mcp.store.clickhouse.location import ClickHouseLocation

#: Columns every reader needs; a table without one of them is not an exporter trace table.
REQUIRED_COLUMNS = (
    "Timestamp",
    "TraceId",
    "SpanId",
    "ParentSpanId",
    "SpanName",
    "SpanKind",
    "ServiceName",
    "SpanAttributes",
    "Duration",
    "StatusCode",
    "StatusMessage",
)


class TableShape(BaseModel):
    """The columns (name -> ClickHouse type) of one trace table, read when it is opened."""

    table: str
    columns: dict[str, str]

    def has(self, column: str) -> bool:
        return column in self.columns


def exporter_ddl(database: str, table: str) -> list[str]:
    """The exporter's CREATE statements for `database.table` (table, lookup table, view)."""
    text = resources.files("halo_mcp.store.clickhouse").joinpath("otel_traces.sql").read_text()
    body = "\n".join(line for line in text.splitlines() if not line.startswith("--"))
    rendered = body.replace("{database}", database).replace("{table}", table)
    return [part.strip() for part in rendered.split("\n;\n") if part.strip()]


def create_tables(client: ClickHouseClient, location: ClickHouseLocation) -> None:
    """Create the database and the exporter's tables when missing (what the exporter's
    `create_schema` does)."""
    client.command(f"CREATE DATABASE IF NOT EXISTS {location.database}")
    for statement in exporter_ddl(location.database, location.table):
        client.command(statement)


def table_shape(client: ClickHouseClient, location: ClickHouseLocation) -> TableShape:
    """The table's columns; a clear error when it is missing or not an exporter table."""
    try:
        rows = client.rows(
            "SELECT name, type FROM system.columns WHERE database = {db:String} "
            "AND table = {tb:String} ORDER BY position",
            {"db": location.database, "tb": location.table},
        )
    except ClickHouseError as exc:
        raise ClickHouseError(f"cannot read the columns of {location.display}: {exc}") from None
    if not rows:
        raise ClickHouseError(
            f"no table {location.qualified_table} at {location.display}; point ?table= at the "
            "exporter's traces table (default otel_traces), or create one with "
            "`halo-mcp load TRACES --to LOCATION`"
        )
    columns = {str(name): str(kind) for name, kind in rows}
    missing = [name for name in REQUIRED_COLUMNS if name not in columns]
    if missing:
        raise ClickHouseError(
            f"{location.qualified_table} lacks {', '.join(missing)}: it is not a table written "
            "by the OpenTelemetry Collector's ClickHouse exporter"
        )
    return TableShape(table=location.qualified_table, columns=columns)
