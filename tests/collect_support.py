"""Helpers for the receiver tests: `halo-mcp collect` as a real subprocess, and the real
OTel exporter program (tests/otlp_export_client.py) as another."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from tests.mcp_support import free_port

EXPORT_CLIENT = Path(__file__).with_name("otlp_export_client.py")


class ReceiverProcess:
    """`halo-mcp collect` on a free port of 127.0.0.1; stderr lines are kept in `log`."""

    def __init__(self, directory: Path, *extra: str, env: dict[str, str] | None = None) -> None:
        self.directory = directory
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1/traces"
        self.lines: queue.Queue[str] = queue.Queue()
        self.log: list[str] = []
        command = [sys.executable, "-m", "halo_mcp", "collect", "--port", str(self.port)]
        self.proc = subprocess.Popen(
            [*command, "--dir", str(directory), "-v", *extra],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            text=True,
        )
        threading.Thread(target=self._drain, daemon=True).start()
        self._wait_ready()

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log.append(line)
            self.lines.put(line)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("receiver exited early:\n" + "".join(self.log))
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("receiver did not start in 60 s:\n" + "".join(self.log))

    def wait_for_log(self, text: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                continue
            if text in line:
                return line
        raise AssertionError(f"no log line with {text!r} in {timeout} s:\n" + "".join(self.log))

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> ReceiverProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_export(endpoint: str, **options: Any) -> subprocess.Popen[str]:
    """The exporter program, started; read ACK lines from its stdout."""
    return subprocess.Popen(
        [sys.executable, str(EXPORT_CLIENT), json.dumps({"endpoint": endpoint, **options})],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_export(endpoint: str, **options: Any) -> tuple[set[tuple[str, str]], str]:
    """Run the exporter program to the end: (acknowledged (trace, span) ids, stderr)."""
    proc = start_export(endpoint, **options)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, f"exporter failed ({proc.returncode}):\n{out[-2000:]}\n{err}"
    return acked(out), err


def acked(out: str) -> set[tuple[str, str]]:
    return {
        (parts[1], parts[2])
        for parts in (line.split() for line in out.splitlines())
        if parts and parts[0] == "ACK"
    }


def stored_ids(directory: Path) -> set[tuple[str, str]]:
    """(trace, span) ids of every span in the collection, read through the store."""
    from halo_mcp.store import open_store

    with open_store([directory]) as store:
        page = store.query_spans(None, limit=10_000, fields=["trace_id", "span_id"])
        assert page.total <= 10_000
        return {(s.trace_id or "", s.span_id or "") for s in page.spans}


def dir_state(directory: Path) -> dict[str, bytes]:
    """Every file's bytes: to show a request changed nothing on disk."""
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}
