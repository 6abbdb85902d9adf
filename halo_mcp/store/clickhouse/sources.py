"""Where a read's normalized spans come from: SQL text for a subquery, from one of two
tables.

- In place (`table` None): the exporter table read as it is. Each statement normalizes
  the rows it scans (expressions.py) and inherits agent/service per trace (pointer
  jumping): correct on any table, with read-only access, but every statement pays for it.
- Materialized (`table` names it): the companion table `halo-mcp index` builds
  (materialize.py), with the normalized columns stored once and agent/service already
  inherited. Conditions on the raw columns (attributes, text) still read the exporter
  table, for the spans the statement selects.

Both give the same columns under the same names, so the queries of store.py, filters.py
and aggregates.py are written once. A `where` given to either names `Timestamp` and
`TraceId`, which both tables have.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from halo_mcp.store.clickhouse import expressions as ex

Owner = Literal["agent", "service"]
#: The normalized columns a read may ask for (all but `matched`).
COLUMNS = tuple(name for name in ex.NORMALIZED_NAMES if name != "matched")


@dataclass(frozen=True)
class SpanSource:
    """Subqueries of normalized spans over `raw_table`, or its companion `table`."""

    raw_table: str
    table: str | None = None

    @property
    def materialized(self) -> bool:
        return self.table is not None

    def spans(
        self,
        where: str,
        matches: str = "1",
        columns: Sequence[str] | None = None,
        extras: Sequence[str] = (),
    ) -> str:
        """Normalized spans (agent and service as the spans' own: `own_agent`,
        `own_service`), `columns` (default: all) plus `extras` (names of ex.EXTRAS), and
        `matched`: `matches`, a condition over the exporter's raw columns."""
        if self.table is None:
            more = tuple((name, ex.EXTRAS[name]) for name in extras)
            return ex.normalized_select(self.raw_table, where, matches, more, columns)
        return self._stored([*(COLUMNS if columns is None else columns), *extras], where, matches)

    def inherited(
        self, where: str, matches: str = "1", columns: Sequence[str] | None = None
    ) -> str:
        """As `spans`, plus `agent` and `service` inherited from ancestors. In place,
        `where` must keep whole traces (narrow by TraceId)."""
        if self.table is None:
            return ex.inherited_spans(self.raw_table, where, matches, columns)
        chosen = COLUMNS if columns is None else ("trace_id", "span_id", *columns)
        return self._stored([*chosen, "agent", "service"], where, matches)

    def owner_traces(self, owner: Owner, bound: str, window: str) -> str:
        """Trace ids (a subquery) holding a span whose own agent/service is `bound`."""
        if self.table is None:
            own = ex.AGENT_OWN if owner == "agent" else ex.SERVICE_OWN
            return f"SELECT TraceId FROM {self.raw_table} WHERE {window} AND {own} = {bound}"
        return f"SELECT TraceId FROM {self.table} WHERE {window} AND own_{owner} = {bound}"

    def _stored(self, names: Sequence[str], where: str, matches: str) -> str:
        """Columns of the companion table; `matched` asks the exporter table for the
        spans that `where` selects there."""
        matched = "1"
        if matches != "1":
            matched = (
                f"(TraceId, SpanId) IN (SELECT TraceId, SpanId FROM {self.raw_table} "
                f"WHERE {where} AND {matches})"
            )
        listed = ", ".join(dict.fromkeys(names))
        return f"SELECT {listed}, {matched} AS matched FROM {self.table} WHERE {where}"
