"""Unguessable ids for runs and findings (a prefix says what the id names)."""

from __future__ import annotations

import secrets


def new_run_id() -> str:
    """A run id such as 'run_3kq...': 22 url-safe random chars (~131 bits)."""
    return "run_" + secrets.token_urlsafe(16)


def new_finding_id() -> str:
    """A finding id such as 'f_9Zx...': unguessable, usable on its own with get_finding."""
    return "f_" + secrets.token_urlsafe(16)
