"""The viewer over real HTTP on 127.0.0.1: its JSON API on real trace files, the Host/Origin
checks it shares with the MCP HTTP server, the token beyond loopback, and following a
trace file that grows while it runs."""

from __future__ import annotations

import json
import time

import httpx2 as httpx
import pytest
from pydantic import SecretStr, ValidationError

from halo_mcp.synth import generate
from halo_mcp.web.app import UiSettings, create_app
from tests.web_support import WebEnv, make_web_env, serve_viewer, viewer_settings


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> WebEnv:
    return make_web_env(tmp_path_factory.mktemp("webapp"), traces=60)


def test_trace_list_filters_and_a_trace_with_its_span_details(web: WebEnv):
    with serve_viewer(viewer_settings(web)) as base, httpx.Client(base_url=base) as http:
        status = http.get("/api/status").json()
        assert status["traces"] == 60 and status["generation"] == 1
        page = http.get("/api/traces", params={"limit": 10}).json()
        assert page["total"] == 60 and len(page["traces"]) == 10 and page["next_cursor"]
        errors = http.get(
            "/api/traces", params={"filter": json.dumps({"errors_only": True}), "limit": 100}
        ).json()
        assert 0 < errors["total"] < 60
        assert all(t["error_count"] > 0 for t in errors["traces"])
        trace_id = errors["traces"][0]["trace_id"]
        tree = http.get(f"/api/traces/{trace_id}").json()
        assert (
            tree["nodes"][0]["depth"] == 0 and len(tree["nodes"]) == tree["summary"]["span_count"]
        )
        error_span = next(n["span"] for n in tree["nodes"] if n["span"]["status"] == "error")
        span = http.get(f"/api/traces/{trace_id}/spans/{error_span['span_id']}").json()
        assert span["attributes"] and span["error_message"] == error_span["error_message"]
        bad = http.get("/api/traces", params={"filter": json.dumps({"colour": "red"})})
        assert bad.status_code == 400 and "errors_only" in bad.json()["error"]
        bad_sort = http.get("/api/traces", params={"sort": "colour"})
        assert bad_sort.status_code == 400 and "start_time" in bad_sort.json()["error"]
        missing = http.get("/api/traces/t_nope")
        assert missing.status_code == 404 and "query_traces" in missing.json()["error"]
        page = http.get("/")
        assert page.status_code == 200 and "Halo" in page.text
        assert "default-src 'self'" in page.headers["content-security-policy"]


def test_runs_findings_triage_and_the_html_report(web: WebEnv):
    with serve_viewer(viewer_settings(web)) as base, httpx.Client(base_url=base) as http:
        runs = http.get("/api/runs").json()
        assert [r["id"] for r in runs] == [web.run.id]
        run = http.get(f"/api/runs/{web.run.id}").json()
        assert len(run["findings"]) == len(web.run.findings)
        assert [f["rank"] for f in run["findings"]] == list(range(1, len(run["findings"]) + 1))
        assert all(f["interval"]["low"] <= f["interval"]["rate"] for f in run["findings"])
        assert http.get("/api/runs/run_nope").status_code == 404
        report = http.get(f"/runs/{web.run.id}/report.html")
        assert report.status_code == 200 and web.run.id in report.text
        triage = http.get("/api/triage", timeout=60).json()
        assert triage["traces"] == 60 and triage["items"]


def test_host_and_origin_are_checked_as_on_the_mcp_http_server(web: WebEnv):
    with serve_viewer(viewer_settings(web)) as base, httpx.Client(base_url=base) as http:
        assert http.get("/api/status", headers={"Host": "evil.example"}).status_code == 421
        assert http.get("/api/status", headers={"Origin": "http://evil.example"}).status_code == 403
        assert http.get("/api/status", headers={"Origin": base}).status_code == 200


def test_beyond_loopback_a_token_is_required():
    with pytest.raises(ValidationError, match="needs a bearer token"):
        create_app(UiSettings(paths=["unused.jsonl"], host="0.0.0.0"))


def test_a_token_opens_the_viewer_once_then_a_cookie_carries_it(web: WebEnv):
    secret = "s3cret-token-for-test"
    settings = viewer_settings(web, tokens=[SecretStr(secret)])
    with serve_viewer(settings) as base, httpx.Client(base_url=base) as http:
        refused = http.get("/api/status")
        assert refused.status_code == 401 and "?token=" in refused.text
        assert secret not in refused.text
        assert http.get("/", params={"token": "wrong"}).status_code == 401
        opened = http.get("/", params={"token": secret, "x": "1"}, follow_redirects=False)
        assert opened.status_code == 303 and opened.headers["location"] == "/?x=1"
        assert "httponly" in opened.headers["set-cookie"].lower()
        assert http.get("/api/status").status_code == 200  # the cookie
        bearer = httpx.get(f"{base}/api/status", headers={"Authorization": f"Bearer {secret}"})
        assert bearer.status_code == 200


def test_the_viewer_follows_a_trace_file_that_grows(tmp_path):
    web = make_web_env(tmp_path, traces=30)
    more = tmp_path / "more.jsonl"
    generate(str(more), traces=20, seed=99, profile="tiny")
    with serve_viewer(viewer_settings(web)) as base, httpx.Client(base_url=base) as http:
        assert http.get("/api/status").json()["traces"] == 30
        with web.traces.open("ab") as out:
            out.write(more.read_bytes())
        deadline = time.monotonic() + 30
        status = http.get("/api/status").json()
        while status["generation"] == 1 and time.monotonic() < deadline:
            time.sleep(0.1)
            status = http.get("/api/status").json()
        assert status["generation"] == 2 and status["traces"] == 50
        assert http.get("/api/traces").json()["total"] == 50


def test_the_viewer_follows_a_directory_that_gets_a_new_file(tmp_path):
    web = make_web_env(tmp_path, traces=25)
    folder = tmp_path / "collected"
    folder.mkdir()
    web.traces.rename(folder / "first.jsonl")
    settings = viewer_settings(web, paths=[folder])
    with serve_viewer(settings) as base, httpx.Client(base_url=base) as http:
        assert http.get("/api/status").json()["traces"] == 25
        generate(str(tmp_path / "second.jsonl"), traces=15, seed=42, profile="tiny")
        (tmp_path / "second.jsonl").rename(folder / "second.jsonl")
        deadline = time.monotonic() + 30
        status = http.get("/api/status").json()
        while status["generation"] == 1 and time.monotonic() < deadline:
            time.sleep(0.1)
            status = http.get("/api/status").json()
        assert status["traces"] == 40


def test_ui_command_refuses_what_it_cannot_serve_safely(web: WebEnv, capsys, monkeypatch):
    from halo_mcp.cli import main

    monkeypatch.delenv("HALO_MCP_TOKEN", raising=False)
    assert main(["ui"]) == 2
    assert "name the trace files" in capsys.readouterr().err
    assert main(["ui", str(web.traces), "--host", "0.0.0.0"]) == 2
    assert "needs a bearer token" in capsys.readouterr().err
    assert main(["ui", str(web.root / "missing.jsonl")]) == 2
    assert "not found" in capsys.readouterr().err
