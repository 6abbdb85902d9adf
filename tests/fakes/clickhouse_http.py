"""A ClickHouse HTTP interface on 127.0.0.1 whose queries run in the real ClickHouse
engine (chDB), for tests of the real `clickhouse-connect` client.

No ClickHouse server can be installed here; chDB is the same engine in-process. This
process speaks the server's HTTP protocol as the client uses it: `/ping`, queries in the
URL or the body, `param_*` bound parameters, INSERT bodies in any input format, answers in
the format asked for (Native for the client's SELECTs), errors as HTTP 500 with the
engine's message, Basic auth against one user and password.

Run: python -m tests.fakes.clickhouse_http --path DIR [--user U] [--password-env VAR]
It prints its port on stdout, then serves until killed.
"""

from __future__ import annotations

import argparse
import base64
import email
import email.policy
import os
import re
import subprocess
import sys
import tempfile
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

_INSERT = re.compile(
    r"^\s*INSERT\s+INTO\s+(?P<target>.+?)\s+FORMAT\s+(?P<fmt>\w+)\s*$", re.S | re.I
)
_FORMAT = re.compile(r"\bFORMAT\s+(\w+)\s*;?\s*$", re.I)


class Engine:
    """One chDB session; statements take turns (chDB runs one at a time per process)."""

    def __init__(self, path: str) -> None:
        from chdb import session  # here: a process that only starts the endpoint stays small

        self.session = session.Session(path)
        self.lock = threading.Lock()

    def run(self, sql: str, fmt: str, params: dict[str, str]) -> bytes:
        with self.lock:
            return bytes(self.session.query(sql, fmt, params=params).bytes())


def make_handler(engine: Engine, user: str, password: str) -> type[BaseHTTPRequestHandler]:
    expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in separate writes: with Nagle's algorithm on, the
        # client's delayed ACK adds ~40 ms to every statement, which a server does not.
        disable_nagle_algorithm = True

        def log_message(self, *args: object) -> None:  # quiet: tests read stdout
            pass

        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for key, value in {
                "Content-Type": "application/octet-stream",
                "Content-Length": str(len(body)),
                "X-ClickHouse-Timezone": "UTC",
                "X-ClickHouse-Server-Display-Name": "chdb-loopback",
                **(headers or {}),
            }.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def _serve(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if url.path == "/ping":
                self._reply(200, b"Ok.\n")
                return
            if self.headers.get("Authorization") != expected:
                message = f"Code: 516. DB::Exception: {user}: Authentication failed.\n"
                self._reply(401, message.encode(), {"X-ClickHouse-Exception-Code": "516"})
                return
            query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
            content_type = self.headers.get("Content-Type", "")
            if content_type.startswith("multipart/form-data"):
                # Long queries come as form fields (the query and each param_*).
                for name, value in _form_fields(content_type, body).items():
                    query[name] = [value]
                body = b""
            params = {k[6:]: v[-1] for k, v in query.items() if k.startswith("param_")}
            sql = query.get("query", [""])[-1]
            fmt = query.get("default_format", ["TabSeparated"])[-1]
            try:
                insert = _INSERT.match(sql) if sql and body else None
                if insert is not None:
                    data = self._insert(insert["target"], insert["fmt"], body, params)
                else:
                    text = (sql + "\n" + body.decode()) if sql else body.decode()
                    found = _FORMAT.search(text)
                    if found:
                        fmt = found.group(1)
                        text = text[: found.start()]
                    # The client's per-query settings arrive as URL parameters.
                    chosen = [
                        f"{name}={_setting_value(query[name][-1])}"
                        for name in _SETTINGS
                        if name in query
                    ]
                    if chosen:
                        text = f"{text} SETTINGS {', '.join(chosen)}"
                    data = engine.run(text, fmt, params)
            except Exception as exc:  # the engine's message goes back as the server's would
                if os.environ.get("CLICKHOUSE_FAKE_DEBUG"):
                    print(repr(sql), repr(body[:2000]), params, file=sys.stderr)
                code = re.search(r"Code: (\d+)\.", str(exc))
                headers = {"X-ClickHouse-Exception-Code": code.group(1) if code else "1"}
                self._reply(500, f"{exc}\n".encode(), headers)
                return
            self._reply(200, data, {"X-ClickHouse-Format": fmt, "X-ClickHouse-Summary": "{}"})

        def _insert(self, target: str, fmt: str, body: bytes, params: dict[str, str]) -> bytes:
            columns = ""
            match = re.match(r"^(?P<table>[^\s(]+)\s*(?P<cols>\(.*\))?$", target.strip(), re.S)
            table = match["table"] if match else target
            if match and match["cols"]:
                columns = match["cols"]
            with tempfile.NamedTemporaryFile(suffix=".bin", delete=False) as handle:
                handle.write(body)
                name = handle.name
            try:
                return (
                    engine.run(
                        f"INSERT INTO {table} {columns} SELECT * FROM file('{name}', '{fmt}')",
                        "TabSeparated",
                        params,
                    )
                    if not columns
                    else engine.run(
                        f"INSERT INTO {table} {columns} SELECT * FROM file('{name}', '{fmt}', "
                        f"'{self._structure(table, columns)}')",
                        "TabSeparated",
                        params,
                    )
                )
            finally:
                os.unlink(name)

        def _structure(self, table: str, columns: str) -> str:
            names = [c.strip().strip("`") for c in columns.strip("()").split(",")]
            database, _, bare = table.rpartition(".")
            rows = engine.run(
                "SELECT name, type FROM system.columns WHERE database = {db:String} AND "
                "table = {tb:String}",
                "TabSeparated",
                {"db": database.strip("`") or "default", "tb": bare.strip("`")},
            ).decode()
            types = dict(line.split("\t", 1) for line in rows.splitlines() if line)
            return ", ".join(f"`{n}` {types[n]}" for n in names)

    return Handler


#: The per-query settings the store sends, forwarded to the engine.
_SETTINGS = ("max_execution_time", "readonly", "max_result_bytes", "result_overflow_mode")


def _setting_value(value: str) -> str:
    return value if value.isdigit() else "'" + value.replace("'", "") + "'"


def _form_fields(content_type: str, body: bytes) -> dict[str, str]:
    message = email.message_from_bytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body, policy=email.policy.HTTP
    )
    fields: dict[str, str] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload, bytes):
            fields[name] = payload.decode()
    return fields


def start(folder: Path, password: str) -> tuple[subprocess.Popen[bytes], int]:
    """This endpoint over the chDB folder `folder`, in its own process: (process, port).
    The caller kills the process."""
    env = {**os.environ, "CLICKHOUSE_TEST_PASSWORD": password}
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.clickhouse_http", "--path", str(folder)],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[2],
        env=env,
    )
    assert process.stdout is not None
    return process, int(process.stdout.readline())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--path", required=True)
    parser.add_argument("--user", default="default")
    parser.add_argument("--password-env", default="CLICKHOUSE_TEST_PASSWORD")
    args = parser.parse_args()
    engine = Engine(args.path)
    handler = make_handler(engine, args.user, os.environ.get(args.password_env, ""))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
