"""One read connection plus the aggregates several detectors (and check) share."""

from __future__ import annotations

import sqlite3

from halo_mcp.store import aggregates
from halo_mcp.triage.error_clusters import Cluster, ClusterKey, error_clusters


class AggregateContext:
    """One read connection plus aggregates computed once and shared by the detectors."""

    def __init__(self, conn: sqlite3.Connection, total: int | None = None) -> None:
        self.conn = conn
        self.total = aggregates.trace_total(conn) if total is None else total
        self._clusters: dict[ClusterKey, Cluster] | None = None

    @property
    def clusters(self) -> dict[ClusterKey, Cluster]:
        if self._clusters is None:
            self._clusters = error_clusters(self.conn)
        return self._clusters
