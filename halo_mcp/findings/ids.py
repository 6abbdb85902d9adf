"""Finding ids (shared by the engine, sub-agent drafts and verification)."""

from __future__ import annotations

import secrets


def new_finding_id() -> str:
    """A finding id such as 'f_9Zx...': unguessable, usable on its own with get_finding."""
    return "f_" + secrets.token_urlsafe(16)
