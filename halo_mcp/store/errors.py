"""Store errors. Each message is written for the person or agent who has to act on it."""


class StoreError(Exception):
    """Base class: anything the store refuses, with a message saying what to do next."""


class TraceFileNotFoundError(StoreError):
    """A trace path does not exist or cannot be read."""


class NoSpansError(StoreError):
    """A file (or the whole input) held no valid span."""


class InvalidFilterError(StoreError):
    """A filter, sort, field list or cursor is not valid."""


class UnknownIdError(StoreError):
    """A trace or span id is not in the store."""


class QueryTimeoutError(StoreError):
    """A query ran past the store's per-query time limit and was stopped."""
