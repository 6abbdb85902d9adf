"""Receiving traces: an OTLP/HTTP endpoint that appends spans durably to a directory.

`settings.py` (CollectSettings), `otlp.py` (payload decoding and answers), `journal.py`
(durable, rotated OTLP JSON lines), `app.py` (the ASGI receiver and running it). The
collection directory is an ordinary trace path for every reader.
"""
