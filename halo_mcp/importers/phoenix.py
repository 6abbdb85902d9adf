"""Import spans from a running Phoenix server into an OTLP JSON trace file.

Reads Phoenix's public REST API, `GET /v1/projects/{project}/spans` in insertion order
(`sort=id&order=asc`), one page per request, and appends each page to the output as one
OTLP JSON line (`{"resourceSpans": [...]}`), the format every halo-mcp reader takes.

Resumable: after each page, a state file beside the output (`FILE.phoenix-state`, not
read as traces) records the server, project, window, the page cursor and the output's
size. A re-run continues from that cursor, first cutting anything written after the last
recorded page; once the walk reaches the newest span, the state keeps that span's id, so
a later run fetches only spans added since.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, Field

from halo_mcp.store.timewindow import TimeWindow

STATE_SUFFIX = ".phoenix-state"
_STATUS = {"OK": 1, "ERROR": 2}


class PhoenixImportError(RuntimeError):
    """The import cannot go on; the message says what to do."""


class PhoenixImport(BaseModel):
    """What to import and where to."""

    url: str = Field(description="Phoenix base URL, e.g. http://127.0.0.1:6006")
    project: str = "default"
    output: Path
    window: TimeWindow | None = None
    page_size: int = Field(500, ge=1, le=1000)
    max_pages: int | None = Field(None, ge=1, description="Stop after this many pages.")
    api_key: str | None = Field(None, repr=False)
    timeout_s: float = Field(60, gt=0)


class ImportState(BaseModel):
    """What the state file records between runs."""

    url: str
    project: str
    since: datetime | None = None
    until: datetime | None = None
    cursor: str | None = Field(None, description="Where the next page starts.")
    last_span_id: str | None = Field(
        None, description="Phoenix id of the last span written (the cursor includes it)."
    )
    output_bytes: int = 0
    spans: int = 0


class ImportResult(BaseModel):
    output: Path
    spans_added: int
    spans_total: int
    pages: int
    finished: bool = Field(description="False when stopped by max_pages with more to fetch.")


def state_path(output: Path) -> Path:
    return output.with_name(output.name + STATE_SUFFIX)


def import_phoenix(job: PhoenixImport, progress: Callable[[str], None]) -> ImportResult:
    """Run (or continue) the import; `progress` hears one line per page."""
    state = _load_state(job)
    output = job.output
    output.parent.mkdir(parents=True, exist_ok=True)
    with open(output, "ab") as handle:
        handle.truncate(state.output_bytes)  # drop a page written after the last state save
    pages = added = 0
    finished = False
    while True:
        if job.max_pages is not None and pages >= job.max_pages:
            break
        page = _fetch(job, state)
        spans = [s for s in page.get("data", []) if s.get("id") != state.last_span_id]
        if spans:
            line = orjson.dumps(_resource_spans(spans, job.project)) + b"\n"
            with open(output, "ab") as handle:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
            state.output_bytes += len(line)
            state.spans += len(spans)
            added += len(spans)
        raw = page.get("data", [])
        if raw:
            state.last_span_id = raw[-1].get("id") or state.last_span_id
        pages += 1
        next_cursor = page.get("next_cursor")
        # At the end, continue later from the last span seen (the cursor includes it).
        state.cursor = next_cursor or state.last_span_id
        _save_state(output, state)
        progress(f"phoenix: page {pages}, {added} new spans ({state.spans} in {output})")
        if not next_cursor:
            finished = True
            break
    return ImportResult(
        output=output, spans_added=added, spans_total=state.spans, pages=pages, finished=finished
    )


def _load_state(job: PhoenixImport) -> ImportState:
    path = state_path(job.output)
    fresh = ImportState(
        url=job.url.rstrip("/"),
        project=job.project,
        since=job.window.since if job.window else None,
        until=job.window.until if job.window else None,
    )
    if not path.exists():
        if job.output.exists() and job.output.stat().st_size:
            raise PhoenixImportError(
                f"{job.output} exists but has no {STATE_SUFFIX} file: it was not written by "
                "this import. Pass another -o FILE, or delete it to import again."
            )
        return fresh
    try:
        state = ImportState.model_validate_json(path.read_bytes())
    except ValueError as exc:
        raise PhoenixImportError(
            f"cannot read {path} ({exc}); delete it and {job.output} to import again"
        ) from None
    if (state.url, state.project) != (fresh.url, fresh.project):
        raise PhoenixImportError(
            f"{job.output} holds an import of project {state.project!r} from {state.url}; "
            "pass another -o FILE for this one"
        )
    return state  # the window of the first run holds (the cursor walks within it)


def _save_state(output: Path, state: ImportState) -> None:
    path = state_path(output)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(state.model_dump_json(indent=1).encode())
    os.replace(tmp, path)


def _fetch(job: PhoenixImport, state: ImportState) -> dict[str, Any]:
    params: list[tuple[str, str]] = [
        ("limit", str(job.page_size)),
        ("sort", "id"),
        ("order", "asc"),
    ]
    if state.cursor:
        params.append(("cursor", state.cursor))
    if state.since is not None:
        params.append(("start_time", state.since.isoformat()))
    if state.until is not None:
        params.append(("end_time", state.until.isoformat()))
    project = urllib.parse.quote(job.project, safe="")
    url = f"{state.url}/v1/projects/{project}/spans?{urllib.parse.urlencode(params)}"
    headers = {"Accept": "application/json"}
    if job.api_key:
        headers["Authorization"] = f"Bearer {job.api_key}"
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=job.timeout_s) as answer:
            body: dict[str, Any] = json.loads(answer.read())
            return body
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:300].decode(errors="replace")
        if exc.code == 404:
            raise PhoenixImportError(
                f"Phoenix at {state.url} has no project {job.project!r} ({detail}); list the "
                f"projects at {state.url}/v1/projects and pass --project NAME"
            ) from None
        if exc.code in (401, 403):
            raise PhoenixImportError(
                f"Phoenix at {state.url} refused the request ({exc.code}); set PHOENIX_API_KEY "
                "(or --api-key-env NAME) to a key of that server"
            ) from None
        raise PhoenixImportError(
            f"Phoenix at {state.url} answered {exc.code} ({detail}); the import can be "
            "re-run: it continues where it stopped"
        ) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise PhoenixImportError(
            f"cannot read spans from {state.url} ({reason}); check --url and that Phoenix "
            "is running. Re-running continues where it stopped"
        ) from None


# -- Phoenix span -> OTLP JSON ------------------------------------------------------------


def _resource_spans(spans: list[dict[str, Any]], project: str) -> dict[str, Any]:
    resource = {"attributes": [_kv("phoenix.project.name", project)]}
    scope = {"name": "halo-mcp phoenix import"}
    return {
        "resourceSpans": [
            {
                "resource": resource,
                "scopeSpans": [{"scope": scope, "spans": [_span(s) for s in spans]}],
            }
        ]
    }


def _span(span: dict[str, Any]) -> dict[str, Any]:
    context = span.get("context") or {}
    attributes = dict(span.get("attributes") or {})
    kind = span.get("span_kind")
    if kind and kind != "UNKNOWN":
        attributes.setdefault("openinference.span.kind", kind)
    item: dict[str, Any] = {
        "traceId": context.get("trace_id", ""),
        "spanId": context.get("span_id", ""),
        "name": span.get("name", ""),
        "startTimeUnixNano": str(_ns(span.get("start_time"))),
        "endTimeUnixNano": str(_ns(span.get("end_time"))),
        "attributes": [_kv(k, v) for k, v in attributes.items()],
        "status": {"code": _STATUS.get(str(span.get("status_code")), 0)},
    }
    if span.get("parent_id"):
        item["parentSpanId"] = span["parent_id"]
    if span.get("status_message"):
        item["status"]["message"] = span["status_message"]
    events = span.get("events") or []
    if events:
        item["events"] = [
            {
                "name": event.get("name", ""),
                "timeUnixNano": str(_ns(event.get("timestamp"))),
                "attributes": [_kv(k, v) for k, v in (event.get("attributes") or {}).items()],
            }
            for event in events
        ]
    return item


def _ns(value: Any) -> int:
    if not value:
        return 0
    moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000


def _kv(key: str, value: Any) -> dict[str, Any]:
    return {"key": key, "value": _any_value(value)}


def _any_value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, list):
        return {"arrayValue": {"values": [_any_value(v) for v in value]}}
    if isinstance(value, dict):
        return {"kvlistValue": {"values": [_kv(str(k), v) for k, v in value.items()]}}
    return {"stringValue": json.dumps(value, default=str)}
