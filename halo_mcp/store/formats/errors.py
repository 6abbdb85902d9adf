"""Errors raised while reading trace lines."""

from __future__ import annotations


class BadLineError(ValueError):
    """A line that yields no valid span. `.reason` is a short human reason for reports."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SpanNotOnLineError(LookupError):
    """`span_payload` was asked for a span id that the line does not hold.

    Usually the file changed since it was indexed: rebuild the index.
    """
