"""Traces where they already live: ClickHouse tables written by the OpenTelemetry
Collector's ClickHouse exporter (`otel_traces`), on a server or embedded (chDB).

- location.py: `clickhouse://user@host:8123/db?table=otel_traces` and `chdb:PATH`, parsed
  once into a typed location (the password comes from the environment, never the URL);
- client.py: one small client protocol over the official HTTP client (clickhouse-connect)
  and embedded chDB, so the rest never knows which it talks to;
- schema.py: the exporter's table layout, and the columns a table really has (the
  exporter's schema varies between versions);
- load.py: local trace files written into that layout (`halo-mcp load`).

Optional: needs the `clickhouse` extra (clickhouse-connect, chdb). Knows nothing of MCP or
LLMs, like the rest of the store.
"""
