"""Unguessable ids for runs and findings (a prefix says what the id names)."""

from __future__ import annotations

import secrets

from halo_mcp.findings.ids import new_finding_id

__all__ = ["new_finding_id", "new_run_id"]


def new_run_id() -> str:
    """A run id such as 'run_3kq...': 22 url-safe random chars (~131 bits)."""
    return "run_" + secrets.token_urlsafe(16)
