"""Credentials out of URLs: the one place that decides what of a URL may be recorded,
logged or shown.

A base URL like `http://user:KEY@host/v1?api-key=KEY` works (the client sends the
credentials) but must never be stored or printed as given: the user info and every query
parameter whose name looks like a credential are replaced by `***`.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
_CREDENTIAL_NAME = re.compile(
    r"key|token|secret|passw|pwd|auth|sig|credential|session|access|code", re.IGNORECASE
)
# A URL inside free text: scheme://, then everything up to whitespace or a quote/bracket.
_URL_IN_TEXT = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>()\[\]{}]+")


def redact_url(url: str) -> str:
    """`url` with its user info and credential-like query values replaced by ***."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK  # not parseable: show nothing of it rather than risk a secret
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rpartition('@')[2]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_CREDENTIAL_NAME.search(name) for name, _ in pairs):
            query = urlencode(
                [(n, MASK if _CREDENTIAL_NAME.search(n) else v) for n, v in pairs], safe="*"
            )
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_urls_in(text: str) -> str:
    """`text` with every URL in it passed through redact_url (for messages and logs)."""
    if "://" not in text:
        return text
    return _URL_IN_TEXT.sub(lambda m: redact_url(m[0]), text)


class RedactUrlsFilter(logging.Filter):
    """A logging filter that redacts URLs in every record it sees (messages and their
    arguments), so a library logging a request URL cannot leak its credentials."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact_urls_in(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True
