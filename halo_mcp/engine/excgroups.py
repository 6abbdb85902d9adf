"""Finding the real error inside anyio's exception groups."""

from __future__ import annotations

import sys

import anyio

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup


def first_error(exc: BaseException) -> BaseException | None:
    """The first real error inside (possibly nested) exception groups; None when the
    exception is only cancellation."""
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = first_error(inner)
            if found is not None:
                return found
        return None
    if isinstance(exc, anyio.get_cancelled_exc_class()):
        return None
    return exc
