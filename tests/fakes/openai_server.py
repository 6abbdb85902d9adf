"""A fake OpenAI-compatible Chat Completions server for tests (no internet, no real key).

A real HTTP/1.1 server on 127.0.0.1 (random port) in a background thread, so it serves
sync, async and subprocess clients alike. Tests decide every reply:

    server.script([tool_call("overview", {}), reply("done")])     # a queue, in order
    server.route(lambda req: "sub-agent" in system_prompt(req), [reply("child")])
    server.responder = lambda req: reply("dynamic")                # full control

A reply is chosen as: the responder (if set and it returns a step), else the first route
whose predicate matches and still has steps, else the main script. When nothing is left
the server answers 500 "fake server: script exhausted" and records the request in
`unscripted_calls`, so an unscripted call can never pass silently.

Faults are steps too: `status(429, retry_after=0.2)`, `status(500)`, `delay(5)`,
`cut_stream(after_chunks=3)`, `stream_error(...)`, `refusal(...)`,
`context_length_error()`; malformed or unknown tool calls are plain
`tool_call(name, raw_string)`.

Streaming follows the real API: `data: {json}\\n\\n` chunks with chunked transfer encoding,
text split into several deltas, each tool call's arguments split across chunks, a final
usage chunk when `stream_options.include_usage` is set, then `data: [DONE]`.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SCRIPT_EXHAUSTED = "fake server: script exhausted"

# ---------------------------------------------------------------------------- steps


@dataclass
class FakeToolCall:
    name: str
    arguments: str
    id: str


@dataclass
class Reply:
    """An assistant message: text, tool calls and/or a refusal."""

    content: str | None = None
    tool_calls: list[FakeToolCall] = field(default_factory=list)
    refusal: str | None = None
    finish_reason: str | None = None  # default: "tool_calls" if tool calls else "stop"
    usage: dict | None = None  # default: estimated from the request and reply sizes
    model: str | None = None  # default: the requested model
    chunk_size: int = 8  # characters per streamed text delta


@dataclass
class Status:
    """An HTTP error reply (429, 5xx, 4xx) with an OpenAI-style JSON error body."""

    code: int
    body: dict | str | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Delay:
    """Wait `seconds` (to trigger client timeouts), then answer with `then`."""

    seconds: float
    then: Step


@dataclass
class CutStream:
    """Start answering `then`, then drop the connection after `after_chunks` SSE chunks
    (for non-streaming requests: after half the body)."""

    after_chunks: int
    then: Reply


@dataclass
class StreamError:
    """Stream `after_chunks` chunks of `then`, then an in-stream error event
    (`data: {"error": {...}}`), as providers do when a generation fails midway."""

    after_chunks: int
    error: dict
    then: Reply


Step = Reply | Status | Delay | CutStream | StreamError


def reply(
    text: str | None = None,
    *,
    finish_reason: str | None = None,
    usage: dict | None = None,
    model: str | None = None,
) -> Reply:
    """A plain text answer."""
    return Reply(content=text, finish_reason=finish_reason, usage=usage, model=model)


def tool_call(
    name: str,
    args: dict | str | None = None,
    id: str | None = None,
    *,
    text: str | None = None,
    usage: dict | None = None,
) -> Reply:
    """One tool call. `args` as a dict is JSON-encoded; a str is sent raw (even invalid)."""
    return tool_calls([(name, args, id)], text=text, usage=usage)


def tool_calls(
    calls: Iterable[tuple | FakeToolCall | Reply],
    *,
    text: str | None = None,
    usage: dict | None = None,
) -> Reply:
    """Several parallel tool calls in one reply. Items: (name, args[, id]) tuples,
    FakeToolCall, or single-call replies made by `tool_call`."""
    made: list[FakeToolCall] = []
    for item in calls:
        if isinstance(item, Reply):
            made.extend(item.tool_calls)
        elif isinstance(item, FakeToolCall):
            made.append(item)
        else:
            name, args, *rest = item
            made.append(_make_call(name, args, rest[0] if rest else None))
    return Reply(content=text, tool_calls=made, usage=usage)


def _make_call(name: str, args: dict | str | None, id: str | None) -> FakeToolCall:
    raw = args if isinstance(args, str) else json.dumps(args or {})
    return FakeToolCall(name=name, arguments=raw, id=id or f"call_{uuid.uuid4().hex[:12]}")


def refusal(text: str = "I can't help with that.") -> Reply:
    """The model refuses (message.refusal / delta.refusal)."""
    return Reply(refusal=text)


def usage(
    prompt_tokens: int = 0,
    completion_tokens: int = 0,
    *,
    cached_tokens: int = 0,
    reasoning_tokens: int = 0,
) -> dict:
    """A Chat Completions usage object, to pass as `reply(..., usage=usage(...))`."""
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": reasoning_tokens, "audio_tokens": 0},
    }


def status(
    code: int,
    message: str | None = None,
    *,
    retry_after: float | None = None,
    retry_after_ms: int | None = None,
    error_type: str | None = None,
    error_code: str | None = None,
    body: dict | str | None = None,
) -> Status:
    """An HTTP error. `retry_after` sets the Retry-After header (seconds)."""
    headers: dict[str, str] = {}
    if retry_after is not None:
        headers["retry-after"] = f"{retry_after:g}"
    if retry_after_ms is not None:
        headers["retry-after-ms"] = str(retry_after_ms)
    if body is None:
        body = {
            "error": {
                "message": message or f"fake server: HTTP {code}",
                "type": error_type or _default_error_type(code),
                "param": None,
                "code": error_code,
            }
        }
    return Status(code=code, body=body, headers=headers)


def _default_error_type(code: int) -> str:
    if code == 429:
        return "rate_limit_exceeded"
    if code >= 500:
        return "server_error"
    if code == 401:
        return "authentication_error"
    return "invalid_request_error"


def context_length_error(max_tokens: int = 128000, requested: int = 200000) -> Status:
    """HTTP 400 with OpenAI's context_length_exceeded error body."""
    message = (
        f"This model's maximum context length is {max_tokens} tokens. However, your "
        f"messages resulted in {requested} tokens. Please reduce the length of the messages."
    )
    error = {
        "message": message,
        "type": "invalid_request_error",
        "param": "messages",
        "code": "context_length_exceeded",
    }
    return Status(code=400, body={"error": error})


def stream_error(
    message: str = "The server had an error while processing your request.",
    *,
    after_chunks: int = 2,
    code: str | None = "server_error",
    then: Reply | None = None,
) -> StreamError:
    """An error event in the middle of a streamed reply (non-streamed: HTTP 500)."""
    error = {"message": message, "type": "server_error", "param": None, "code": code}
    return StreamError(after_chunks, error, then or reply("Partial answer that never ends."))


def delay(seconds: float, then: Step | None = None) -> Delay:
    """Answer after `seconds` (default answer: reply("ok"))."""
    return Delay(seconds=seconds, then=then or reply("ok"))


def cut_stream(after_chunks: int = 2, then: Reply | None = None) -> CutStream:
    """Drop the connection mid-reply after `after_chunks` chunks of `then`."""
    default = reply("This answer will be cut off before it finishes streaming to you.")
    return CutStream(after_chunks=after_chunks, then=then or default)


# ------------------------------------------------------------ request inspection


@dataclass
class RecordedRequest:
    """What the server received: method, path, headers (lower-case keys), body."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    json: dict | None

    @property
    def messages(self) -> list[dict]:
        return (self.json or {}).get("messages", [])


def system_prompt(request: dict | RecordedRequest) -> str:
    """The first system/developer message of a chat request ('' if none)."""
    for message in _messages(request):
        if message.get("role") in ("system", "developer"):
            return _text(message.get("content"))
    return ""


def last_message(request: dict | RecordedRequest) -> dict:
    """The last message of a chat request ({} if none)."""
    messages = _messages(request)
    return messages[-1] if messages else {}


def cache_breakpoints(request: dict | RecordedRequest) -> list[tuple[int, str]]:
    """(message index, role) of every content part carrying an explicit `cache_control`
    breakpoint (Anthropic-style prompt caching through a compatible gateway)."""
    marks = []
    for i, message in enumerate(_messages(request)):
        content = message.get("content")
        if isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and part.get("cache_control"):
                    marks.append((i, message.get("role", "")))
    return marks


def tool_names(request: dict | RecordedRequest) -> list[str]:
    """Names of the tools offered in a chat request."""
    body = request.json if isinstance(request, RecordedRequest) else request
    return [t.get("function", {}).get("name", "") for t in (body or {}).get("tools") or []]


def _messages(request: dict | RecordedRequest) -> list[dict]:
    body = request.json if isinstance(request, RecordedRequest) else request
    return (body or {}).get("messages", [])


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


# ------------------------------------------------------------------------ server


Responder = Callable[[dict], "Step | None"]


class FakeOpenAIServer:
    """The fake server. Use as a context manager or call start()/stop()."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._lock = threading.Lock()
        self._script: deque[Step] = deque()
        self._routes: list[tuple[Callable[[dict], bool], deque[Step]]] = []
        self.responder: Responder | None = None
        self.requests: list[RecordedRequest] = []
        self.unscripted_calls: list[RecordedRequest] = []
        self.responder_errors: list[Exception] = []
        self.models: list[str] = ["gpt-5.4-mini", "fake-model"]
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._httpd = _Server((host, port), _Handler)
        self._httpd.fake = self
        self._thread: threading.Thread | None = None

    # -- lifecycle

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        """The value for OPENAI_BASE_URL, e.g. http://127.0.0.1:PORT/v1."""
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FakeOpenAIServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake sleeping `delay` steps and close open connections."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._httpd.shutdown()
        with self._lock:
            conns = list(self._connections)
        for conn in conns:
            _close_quietly(conn)
        self._httpd.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- scripting

    def script(self, steps: Iterable[Step]) -> None:
        """Append steps to the main queue (served in order to any chat request)."""
        with self._lock:
            self._script.extend(steps)

    def route(self, predicate: Callable[[dict], bool], steps: Iterable[Step]) -> None:
        """A separate queue for requests where `predicate(request_json)` is true; routes
        are checked in the order added, before the main script. Use it when sub-agents
        call in parallel (route by system_prompt / last_message / tool_names)."""
        with self._lock:
            self._routes.append((predicate, deque(steps)))

    def clear(self) -> None:
        """Drop every step not yet served (main script and routes)."""
        with self._lock:
            self._script.clear()
            self._routes.clear()

    def pending(self) -> int:
        """Steps not yet served (main script plus routes)."""
        with self._lock:
            return len(self._script) + sum(len(q) for _, q in self._routes)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        """Requests to /chat/completions only (what the engine sent to the model)."""
        with self._lock:
            return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def _next_step(self, request: dict) -> Step | None:
        responder = self.responder
        if responder is not None:
            try:
                step = responder(request)
            except Exception as exc:  # a bug in the test's responder: answer, don't hang
                with self._lock:
                    self.responder_errors.append(exc)
                return status(500, f"fake server: responder raised {exc!r}")
            if step is not None:
                return step
        with self._lock:
            for predicate, queue in self._routes:
                if queue and predicate(request):
                    return queue.popleft()
            return self._script.popleft() if self._script else None

    def _record(self, request: RecordedRequest, unscripted: bool = False) -> None:
        with self._lock:
            (self.unscripted_calls if unscripted else self.requests).append(request)

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # many sub-agents connect at once
    allow_reuse_address = True
    fake: FakeOpenAIServer


class _CutConnection(Exception):
    """Raised inside the handler to drop the connection on purpose."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    timeout = 30  # idle keep-alive connections end on their own

    # -- plumbing

    def setup(self) -> None:
        super().setup()
        self.server.fake._track(self.connection, True)

    def finish(self) -> None:
        self.server.fake._track(self.connection, False)
        with contextlib.suppress(OSError):
            super().finish()

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except _CutConnection:
            self.close_connection = True
            _close_quietly(self.connection)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True  # the client went away (e.g. it timed out)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean

    def _read_request(self) -> RecordedRequest:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        headers = {k.lower(): v for k, v in self.headers.items()}
        path = self.path.split("?", 1)[0]
        return RecordedRequest(self.command, path, headers, body, parsed)

    def _send_json(self, code: int, payload: dict | str, headers: dict | None = None) -> None:
        data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    # -- routes

    def do_GET(self) -> None:
        request = self._read_request()
        fake = self.server.fake
        fake._record(request)
        if request.path.rstrip("/").endswith("/models"):
            data = [
                {"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in fake.models
            ]
            self._send_json(200, {"object": "list", "data": data})
        else:
            self._send_json(404, status(404, f"fake server: no route {request.path}").body)

    def do_POST(self) -> None:
        request = self._read_request()
        fake = self.server.fake
        if request.path.rstrip("/").endswith("/v1/messages") and request.json is not None:
            self._anthropic(request)
            return
        if not request.path.rstrip("/").endswith("/chat/completions"):
            fake._record(request)
            self._send_json(404, status(404, f"fake server: no route {request.path}").body)
            return
        if request.json is None:
            fake._record(request)
            self._send_json(400, status(400, "fake server: body is not JSON").body)
            return
        fake._record(request)
        step = fake._next_step(request.json)
        if step is None:
            fake._record(request, unscripted=True)
            self._send_json(500, status(500, SCRIPT_EXHAUSTED).body)
            return
        self._serve(step, request.json)

    def _anthropic(self, request: RecordedRequest) -> None:
        """POST /v1/messages: the scripted steps in the Anthropic Messages API shape."""
        from tests.fakes import anthropic_messages as shapes

        fake = self.server.fake
        fake._record(request)
        body = request.json or {}
        if body.get("stream"):
            self._send_json(400, shapes.anthropic_error(400, "fake server: no streaming").body)
            return
        step = fake._next_step(body)
        if step is None:
            fake._record(request, unscripted=True)
            self._send_json(500, shapes.anthropic_error(500, SCRIPT_EXHAUSTED).body)
            return
        while isinstance(step, Delay | CutStream):
            if isinstance(step, Delay) and fake._stopping.wait(step.seconds):
                raise _CutConnection
            step = step.then
        if isinstance(step, Status):
            self._send_json(step.code, shapes.as_anthropic_error(step), step.headers)
        elif isinstance(step, StreamError):
            self._send_json(500, shapes.anthropic_error(500, step.error["message"]).body)
        else:
            self._send_json(200, shapes.message(step, body))

    def _serve(self, step: Step, body: dict, cut_after: int | None = None) -> None:
        if isinstance(step, Delay):
            if self.server.fake._stopping.wait(step.seconds):
                raise _CutConnection
            self._serve(step.then, body, cut_after)
        elif isinstance(step, CutStream):
            self._serve(step.then, body, step.after_chunks)
        elif isinstance(step, Status):
            self._send_json(step.code, step.body or "", step.headers)
        elif isinstance(step, StreamError):
            if body.get("stream"):
                self._stream(step.then, body, step.after_chunks, step.error)
            else:
                self._send_json(500, {"error": step.error})
        elif body.get("stream"):
            self._stream(step, body, cut_after)
        else:
            self._whole(step, body, cut_after)

    def _whole(self, rep: Reply, body: dict, cut_after: int | None) -> None:
        completion = _completion(rep, body)
        data = json.dumps(completion).encode()
        if cut_after is None:
            self._send_json(200, completion)
            return
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.wfile.flush()
        raise _CutConnection

    def _stream(
        self, rep: Reply, body: dict, cut_after: int | None, error: dict | None = None
    ) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        for sent, chunk in enumerate(_chunks(rep, body, include_usage)):
            if cut_after is not None and sent >= cut_after:
                if error is not None:
                    self._write_chunk(f"data: {json.dumps({'error': error})}\n\n".encode())
                    break
                raise _CutConnection  # no terminating zero-length chunk: incomplete body
            self._write_chunk(f"data: {json.dumps(chunk)}\n\n".encode())
        self._write_chunk(b"data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


def _close_quietly(conn: socket.socket) -> None:
    with contextlib.suppress(OSError):
        conn.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        conn.close()


# --------------------------------------------------------------- payload builders


def _finish_reason(rep: Reply) -> str:
    if rep.finish_reason:
        return rep.finish_reason
    return "tool_calls" if rep.tool_calls else "stop"


def _usage_for(rep: Reply, body: dict) -> dict:
    if rep.usage is not None:
        return rep.usage
    prompt = max(1, len(json.dumps(body.get("messages", []))) // 4)
    out = (rep.content or "") + (rep.refusal or "")
    out += "".join(c.name + c.arguments for c in rep.tool_calls)
    return usage(prompt, max(1, len(out) // 4))


def _completion(rep: Reply, body: dict) -> dict:
    message: dict[str, Any] = {"role": "assistant", "content": rep.content, "refusal": rep.refusal}
    if rep.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in rep.tool_calls
        ]
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:16]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": rep.model or body.get("model") or "fake-model",
        "choices": [
            {"index": 0, "message": message, "finish_reason": _finish_reason(rep), "logprobs": None}
        ],
        "usage": _usage_for(rep, body),
    }


def _pieces(text: str, size: int) -> list[str]:
    size = max(1, size)
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _chunks(rep: Reply, body: dict, include_usage: bool) -> Iterator[dict]:
    """The SSE chunk objects of a streamed reply, in the order the real API sends them."""
    cid = f"chatcmpl-{uuid.uuid4().hex[:16]}"
    model = rep.model or body.get("model") or "fake-model"
    created = int(time.time())

    def chunk(delta: dict, finish: str | None = None) -> dict:
        return {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }

    first: dict[str, Any] = {"role": "assistant", "content": ""}
    if rep.refusal is not None:
        first = {"role": "assistant", "content": None, "refusal": ""}
    yield chunk(first)
    if rep.content:
        for piece in _pieces(rep.content, rep.chunk_size):
            yield chunk({"content": piece})
    if rep.refusal:
        for piece in _pieces(rep.refusal, rep.chunk_size):
            yield chunk({"refusal": piece})
    for index, call in enumerate(rep.tool_calls):
        head = {"name": call.name, "arguments": ""}
        yield chunk(
            {"tool_calls": [{"index": index, "id": call.id, "type": "function", "function": head}]}
        )
        third = max(1, len(call.arguments) // 3)
        for piece in _pieces(call.arguments, third) if call.arguments else []:
            yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    yield chunk({}, _finish_reason(rep))
    if include_usage:
        last = chunk({})
        last["choices"] = []
        last["usage"] = _usage_for(rep, body)
        yield last
