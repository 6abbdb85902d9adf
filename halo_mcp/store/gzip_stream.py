"""Reading a `.gz` trace file that may be damaged: every byte before the damage is kept.

`gzip.open(...).read(n)` raises on a corrupt or truncated stream and loses what it had
decompressed of that read; here the stream is decompressed piece by piece, so a cut or a
flipped bit costs only what follows it, and the caller learns where and why it stopped.
Concatenated gzip members (as `cat a.gz b.gz` makes) are read one after the other.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

READ_BYTES = 1 << 20
#: Compressed bytes given to zlib per call: a corrupt stream raises and loses what that
#: call had decompressed, so small calls keep almost every good byte before the damage.
FEED_BYTES = 16 << 10
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass
class StreamDamage:
    """Where a gzip stream stopped being readable: after `good_bytes` decompressed bytes."""

    good_bytes: int
    reason: str


def decompressed_chunks(
    path: Path, chunk_bytes: int, damage: list[StreamDamage] | None = None
) -> Iterator[bytes]:
    """The decompressed bytes of a gzip file, at most `chunk_bytes` at a time (a small
    file that inflates hugely never sits in memory whole). On a corrupt or truncated
    stream the iteration ends after the last good byte, and a StreamDamage is appended to
    `damage` when given. Never raises zlib errors; OSError from reading the file does."""
    produced = 0

    def stop(reason: str) -> None:
        if damage is not None:
            damage.append(StreamDamage(produced, reason))

    with open(path, "rb") as handle:
        decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        pending = b""
        held = False  # the last call filled its output: zlib may hold more of it
        fed = False  # the current decoder has had input (else: an empty file)
        while True:
            if not pending and not held:
                pending = handle.read(READ_BYTES)
                if not pending:
                    if fed:
                        stop("the gzip stream ends early (truncated file)")
                    return
                fed = True
            feed, later = pending[:FEED_BYTES], pending[FEED_BYTES:]
            try:
                out = decoder.decompress(feed, chunk_bytes)
            except zlib.error as exc:
                stop(_zlib_reason(exc, produced))
                return
            pending = decoder.unconsumed_tail + later if decoder.unconsumed_tail else later
            held = len(out) == chunk_bytes
            if out:
                produced += len(out)
                yield out
            if decoder.eof:
                rest = decoder.unused_data + pending
                while not rest.strip(b"\x00"):  # nothing, or zero padding: read on
                    rest = handle.read(READ_BYTES)
                    if not rest:
                        return
                rest = rest.lstrip(b"\x00")
                if rest[:2] != _GZIP_MAGIC:
                    stop("bytes after the end of the gzip stream are not gzip data")
                    return
                decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
                pending = rest
                held = False
                fed = True


def _zlib_reason(exc: zlib.error, produced: int) -> str:
    text = str(exc)
    if produced == 0 and "header" in text:
        return f"not a gzip file ({text}); rename it without .gz if it is plain JSONL"
    return f"the gzip stream is corrupt ({text})"
