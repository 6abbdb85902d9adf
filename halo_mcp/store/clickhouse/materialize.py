"""The companion table: the exporter's spans normalized once, inside ClickHouse.

Reading `otel_traces` in place normalizes every row a statement scans (the convention
rules are big SQL, costly to plan) and regroups every trace of the window to inherit
agent/service. `halo-mcp index LOCATION` (and `halo-mcp load`, after writing) instead
stores each span's normalized columns, agent and service inherited, in `<table>_halo`,
with INSERT ... SELECT inside ClickHouse: nothing travels to halo-mcp. Reads then use
that table (sources.MaterializedSpans) when it covers their window.

Incremental: the state table `<table>_halo_state` records up to which span start
(`watermark`) the table was built and how many spans it then held. Extending adds the
spans started after the watermark, inheriting within their whole traces (older spans
included), so nothing already stored changes. Spans that arrive later with a start at or
before the watermark (a parent exported after its children, a backfill) make the counts
differ on some day: the table is stale and the next `halo-mcp index` rebuilds it; meanwhile
reads use the table in place. Days the exporter's TTL dropped are no difference. A change
of halo-mcp's rules (the rendered SQL) also asks for a rebuild.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, Field

from halo_mcp.store.clickhouse import expressions as ex
from halo_mcp.store.clickhouse.client import ClickHouseClient
from halo_mcp.store.clickhouse.location import ClickHouseLocation

#: Spans normalized per INSERT ... SELECT (traces are grouped whole: memory scales with it).
BUILD_CHUNK_SPANS = 1_000_000

#: The stored columns and their types, one a line; each is the column of the same name of
#: `ex.inherited_spans`, but for the three named as in the exporter table (FROM_SELECT).
_STORED_TEXT = """
Timestamp DateTime64(9)
TraceId String
SpanId String
parent_span_id Nullable(String)
name LowCardinality(String)
kind LowCardinality(String)
status LowCardinality(String)
error_message Nullable(String)
start_ns Int64
end_ns Int64
own_agent LowCardinality(Nullable(String))
agent LowCardinality(Nullable(String))
own_service LowCardinality(Nullable(String))
service LowCardinality(Nullable(String))
model LowCardinality(Nullable(String))
tool_name LowCardinality(Nullable(String))
input_tokens Nullable(Int64)
output_tokens Nullable(Int64)
session_id Nullable(String)
input_hash Nullable(UInt64)
answered UInt8
answer_in_calls UInt8
gives_answer UInt8
"""
STORED: dict[str, str] = dict(line.split(" ", 1) for line in _STORED_TEXT.strip().splitlines())
FROM_SELECT = {
    "Timestamp": "fromUnixTimestamp64Nano(start_ns)",
    "TraceId": "trace_id",
    "SpanId": "span_id",
}


def companion(location: ClickHouseLocation) -> str:
    """The companion table's qualified name."""
    return f"{location.qualified_table}_halo"


def _state_table(location: ClickHouseLocation) -> str:
    return f"{location.qualified_table}_halo_state"


def _ddl(location: ClickHouseLocation) -> list[str]:
    columns = ",\n    ".join(f"{name} {kind}" for name, kind in STORED.items())
    return [
        f"CREATE TABLE IF NOT EXISTS {companion(location)} (\n    {columns},\n"
        "    trace_id String ALIAS TraceId,\n    span_id String ALIAS SpanId,\n"
        "    INDEX idx_span_id SpanId TYPE bloom_filter(0.001) GRANULARITY 1\n"
        ") ENGINE = MergeTree() PARTITION BY toDate(Timestamp) ORDER BY (TraceId, SpanId)",
        f"CREATE TABLE IF NOT EXISTS {_state_table(location)} (built DateTime64(3), "
        "rules String, watermark Int64, spans UInt64) ENGINE = MergeTree() ORDER BY built",
    ]


def _select(raw_table: str, where: str) -> str:
    """The normalized, inherited rows of `raw_table` under `where`, as STORED."""
    more = tuple(ex.EXTRAS.items())
    listed = ", ".join(FROM_SELECT.get(name, name) for name in STORED)
    return f"SELECT {listed} FROM ({ex.inherited_spans(raw_table, where, more=more)})"


#: A fingerprint of the rules the table was built with: another halo-mcp whose rules
#: render differently rebuilds it rather than mix two versions.
RULES = hashlib.sha256((_STORED_TEXT + _select("T", "W")).encode()).hexdigest()[:16]


class IndexState(BaseModel):
    """The companion table as the last build left it."""

    rules: str
    watermark: int = Field(description="The newest span start included (ns since epoch).")
    spans: int


class IndexStatus(BaseModel):
    """Whether reads can use the companion table, and why not."""

    table: str
    ready: bool
    behind: bool = Field(False, description="Up to date, but new spans came since its build.")
    watermark: int = 0
    reason: str = ""


class IndexResult(BaseModel):
    """What `halo-mcp index` did."""

    location: str
    table: str
    rebuilt: bool
    spans_added: int
    spans: int
    built_until: datetime | None
    seconds: float


def read_state(client: ClickHouseClient, location: ClickHouseLocation) -> IndexState | None:
    """The last build's state; None when no companion table was built yet."""
    found = client.rows(
        "SELECT count() FROM system.tables WHERE database = {db:String} AND name = {tb:String}",
        {"db": location.database, "tb": f"{location.table}_halo_state"},
    )
    if not int(found[0][0]):
        return None
    rows = client.rows(
        f"SELECT rules, watermark, spans FROM {_state_table(location)} ORDER BY built DESC LIMIT 1"
    )
    if not rows:
        return None
    rules, watermark, spans = rows[0]
    return IndexState(rules=str(rules), watermark=int(watermark), spans=int(spans))


def _per_day(client: ClickHouseClient, table: str, watermark: int) -> dict[Any, int]:
    """Spans started by `watermark` in `table`, per day (the exporter's partitions)."""
    rows = client.rows(
        f"SELECT toDate(Timestamp) AS day, count() FROM {table} "
        "WHERE Timestamp <= fromUnixTimestamp64Nano(toInt64({w:Int64})) GROUP BY day",
        {"w": watermark},
    )
    return {day: int(count) for day, count in rows}


def _stale(client: ClickHouseClient, location: ClickHouseLocation, state: IndexState) -> str:
    """Why the built part no longer matches the exporter table ('' when it does). Days the
    exporter table no longer holds (dropped by its TTL) are not a difference."""
    if state.rules != RULES:
        return "it was built by a halo-mcp with other normalization rules"
    raw = _per_day(client, location.qualified_table, state.watermark)
    built = _per_day(client, companion(location), state.watermark)
    differ = [day for day, count in raw.items() if count != built.get(day, 0)]
    if differ:
        spans = sum(abs(raw[day] - built.get(day, 0)) for day in differ)
        return (
            f"{spans} spans started by its watermark differ from {location.qualified_table} "
            f"on {len(differ)} day(s): they arrived late, or were deleted"
        )
    return ""


def _newest(client: ClickHouseClient, location: ClickHouseLocation) -> int:
    rows = client.rows(
        f"SELECT toUnixTimestamp64Nano(max(Timestamp)), count() FROM {location.qualified_table}"
    )
    return int(rows[0][0]) if int(rows[0][1]) else 0


def index_status(
    client: ClickHouseClient, location: ClickHouseLocation, until_ns: int
) -> IndexStatus:
    """Whether the companion table holds every span started by `until_ns`."""
    table = companion(location)
    state = read_state(client, location)
    how = f"run `halo-mcp index {location.display}`"
    if state is None:
        reason = (
            f"no companion table {table}: reads normalize the exporter table in place "
            f"(slower); {how} to build it"
        )
        return IndexStatus(table=table, ready=False, reason=reason)
    stale = _stale(client, location, state)
    if stale:
        return IndexStatus(
            table=table,
            ready=False,
            watermark=state.watermark,
            reason=f"{table} is out of date ({stale}): reads use the table in place; {how} "
            "to rebuild it",
        )
    if until_ns > state.watermark:
        return IndexStatus(
            table=table,
            ready=False,
            behind=True,
            watermark=state.watermark,
            reason=f"{table} ends at {_when(state.watermark)}, before the window: reads use the "
            f"table in place; {how} to extend it",
        )
    return IndexStatus(table=table, ready=True, watermark=state.watermark)


def _when(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).isoformat(timespec="seconds")


def build_index(
    client: ClickHouseClient,
    location: ClickHouseLocation,
    *,
    rebuild: bool = False,
    notify: Callable[[str], None] | None = None,
) -> IndexResult:
    """Build the companion table, or extend it by the spans started after its watermark;
    rebuild it from scratch when asked, when stale, or when built by other rules."""
    began = time.monotonic()
    for statement in _ddl(location):
        client.command(statement)
    table = companion(location)
    state = read_state(client, location)
    if state is not None and not rebuild and _stale(client, location, state):
        rebuild = True
    after: int | None = None
    if state is None or rebuild:
        # Dropped, not truncated: other rules may store other columns.
        client.command(f"DROP TABLE IF EXISTS {table}")
        client.command(_ddl(location)[0])
    else:
        after = state.watermark
        stored = int(client.rows(f"SELECT count() FROM {table}")[0][0])
        if stored != state.spans:  # leftovers of an interrupted build
            client.command(f"DELETE FROM {table} WHERE start_ns > {{w:Int64}}", {"w": after})
    newest = _newest(client, location)
    bound = {"w": after or 0, "m": newest}
    upto = "Timestamp <= fromUnixTimestamp64Nano(toInt64({m:Int64}))"
    fresh = "Timestamp > fromUnixTimestamp64Nano(toInt64({w:Int64}))"
    where = upto
    if after is not None:
        touched = f"SELECT TraceId FROM {location.qualified_table} WHERE {fresh} AND {upto}"
        where += f" AND TraceId IN ({touched})"
    added = int(
        client.rows(
            f"SELECT count() FROM {location.qualified_table} WHERE {upto}"
            + (f" AND {fresh}" if after is not None else ""),
            bound,
        )[0][0]
    )
    chunks = max(1, math.ceil(added / BUILD_CHUNK_SPANS))
    columns = ", ".join(STORED)
    for chunk in range(chunks):
        part = where if chunks == 1 else f"{where} AND cityHash64(TraceId) % {chunks} = {chunk}"
        keep = "1" if after is None else "start_ns > {w:Int64}"
        client.command(
            f"INSERT INTO {table} ({columns}) SELECT * FROM "
            f"({_select(location.qualified_table, part)}) WHERE {keep}",
            bound,
        )
        if notify is not None and chunks > 1:
            notify(f"{table}: part {chunk + 1} of {chunks} normalized")
    total = int(client.rows(f"SELECT count() FROM {table}")[0][0])
    if newest:
        client.command(
            f"INSERT INTO {_state_table(location)} (built, rules, watermark, spans) "
            "VALUES (now64(3), {r:String}, {m:Int64}, {n:UInt64})",
            {"r": RULES, "m": newest, "n": total},
        )
    return IndexResult(
        location=location.display,
        table=table,
        rebuilt=after is None,
        spans_added=added,
        spans=total,
        built_until=datetime.fromtimestamp(newest / 1e9, tz=timezone.utc) if newest else None,
        seconds=round(time.monotonic() - began, 2),
    )
