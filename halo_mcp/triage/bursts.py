"""Whether a cluster's errors come in bursts: compared with how all spans spread in time."""

from __future__ import annotations

from halo_mcp.store.api import AggregateReader

#: Equal time windows the trace set's time range is cut into.
TIME_BINS = 50
#: Fewer errors than this are never called bursty (too few to tell).
BURST_MIN_ERRORS = 20


def bin_width(t0: int, t1: int) -> int:
    """The width (ns) of each of the TIME_BINS windows from t0 to t1 (t1 in the last)."""
    return max(1, (t1 - t0) // TIME_BINS + 1)


def all_start_bins(reader: AggregateReader, t0: int, t1: int) -> list[int]:
    """Spans started in each time window (all spans: the baseline)."""
    if t0 > t1:
        return [0] * TIME_BINS
    return reader.starts_per_window(t0, bin_width(t0, t1), TIME_BINS)


def bins_for_80(counts: list[int]) -> int:
    """How many of the busiest windows hold 80% of the counts."""
    total = sum(counts)
    if not total:
        return len(counts)
    acc = 0
    for n, value in enumerate(sorted(counts, reverse=True), 1):
        acc += value
        if acc >= 0.8 * total:
            return n
    return len(counts)


def burst_note(starts: list[int], t0: int, t1: int, baseline: int | None) -> str | None:
    """'Bursty' when 80% of the errors fall in a third of the time bins that 80% of all
    spans need (and at most a fifth of all bins)."""
    if baseline is None or len(starts) < BURST_MIN_ERRORS or t1 <= t0:
        return None
    width = bin_width(t0, t1)
    counts = [0] * TIME_BINS
    for s in starts:
        b = (s - t0) // width
        if 0 <= b < TIME_BINS:
            counts[b] += 1
    needed = bins_for_80(counts)
    if needed <= max(1, baseline // 3) and needed <= TIME_BINS // 5:
        return (
            f"The errors come in bursts: 80% of them fall in {needed} of {TIME_BINS} equal "
            f"time windows (all spans need {baseline})."
        )
    return None
