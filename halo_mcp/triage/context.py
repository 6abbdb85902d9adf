"""One aggregate reader plus the aggregates several detectors (and check) share."""

from __future__ import annotations

from halo_mcp.store.api import AggregateReader
from halo_mcp.triage.error_clusters import Cluster, ClusterKey, error_clusters


class AggregateContext:
    """One aggregate reader plus aggregates computed once and shared by the detectors."""

    def __init__(self, reader: AggregateReader, total: int | None = None) -> None:
        self.reader = reader
        self.total = reader.trace_total() if total is None else total
        self._clusters: dict[ClusterKey, Cluster] | None = None

    @property
    def clusters(self) -> dict[ClusterKey, Cluster]:
        if self._clusters is None:
            self._clusters = error_clusters(self.reader)
        return self._clusters
