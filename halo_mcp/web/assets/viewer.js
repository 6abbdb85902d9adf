/* The local viewer: trace list with filters, a trace's tree and timeline with span details,
 * runs and their findings, triage. Routes live in the address's hash (#/traces?f=...), so
 * back/forward and links work; data comes from the app's JSON API on the same origin.
 */
"use strict";
(function () {
  const { el, badge, fmtTime, fmtDuration, fmtPct, short, prevalenceBar, traceView, kv, niceMax } = window.Halo;
  const app = document.getElementById("app");
  const live = document.getElementById("live");
  const KINDS = ["agent", "llm", "tool", "chain", "guardrail", "other"];
  const SORTS = { "-start_time": "newest first", start_time: "oldest first", "-duration": "slowest first", "-errors": "most errors first" };
  let generation = null;
  let renderToken = 0;

  async function api(path) {
    const response = await fetch(path, { credentials: "same-origin" });
    const body = await response.json().catch(() => ({ error: response.statusText }));
    if (!response.ok) throw new Error(body.error || response.statusText);
    return body;
  }

  function route() {
    const hash = location.hash.replace(/^#\/?/, "") || "traces";
    const [path, query] = hash.split("?");
    const parts = path.split("/").map(decodeURIComponent);
    return { name: parts[0], arg: parts[1], params: new URLSearchParams(query || "") };
  }

  function go(path, params) {
    const q = params && params.toString();
    location.hash = "#/" + path + (q ? "?" + q : "");
  }

  function failed(err) {
    return el("div", { class: "panel error-text", text: String(err.message || err) });
  }

  /* The body of `path` for the view drawn under `token`; null when the view is stale or the
     request failed (the error then replaces the view, or follows it with `append`). */
  async function fetchForView(path, token, append) {
    let body;
    try {
      body = await api(path);
    } catch (err) {
      if (append) app.appendChild(failed(err));
      else app.replaceChildren(failed(err));
      return null;
    }
    return token === renderToken ? body : null;
  }

  /* ---------------------------------------------------------------- traces */

  function filterForm(filter, sort) {
    const input = (name, label, type, placeholder) =>
      el("label", {}, label, el("input", { name, type: type || "text", placeholder: placeholder || "", value: filter[name] ?? "" }));
    const kind = el("select", { name: "kind" }, el("option", { value: "", text: "any" }), KINDS.map((k) => el("option", { value: k, text: k, selected: (filter.kind || [])[0] === k })));
    const sorter = el("select", { name: "sort" }, Object.entries(SORTS).map(([k, v]) => el("option", { value: k, text: v, selected: k === sort })));
    const attrs = filter.attributes ? Object.entries(filter.attributes).map(([k, v]) => `${k}=${v}`).join(", ") : "";
    const form = el(
      "form",
      { class: "filters panel", id: "trace-filters" },
      input("name", "span name (glob)"),
      el("label", {}, "kind", kind),
      el("label", {}, "errors only", el("input", { type: "checkbox", name: "errors_only", checked: !!filter.errors_only })),
      input("service", "service"),
      input("agent", "agent"),
      input("model", "model"),
      input("tool_name", "tool"),
      input("min_duration_ms", "min ms", "number"),
      input("max_duration_ms", "max ms", "number"),
      input("start_after", "start after", "text", "ISO time, UTC"),
      input("start_before", "start before", "text", ""),
      input("text", "content regex"),
      el("label", {}, "attributes", el("input", { name: "attributes", placeholder: "key=value, …", value: attrs })),
      el("label", {}, "sort", sorter),
      el("button", { type: "submit", text: "Filter" }),
      el("button", { type: "button", class: "secondary", text: "Clear", onclick: () => go("traces") })
    );
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const data = new FormData(form);
      const next = {};
      for (const key of ["name", "service", "agent", "model", "tool_name", "text", "start_after", "start_before"]) {
        const v = String(data.get(key) || "").trim();
        if (v) next[key] = v;
      }
      for (const key of ["min_duration_ms", "max_duration_ms"]) {
        const v = String(data.get(key) || "").trim();
        if (v) next[key] = Number(v);
      }
      if (data.get("kind")) next.kind = [data.get("kind")];
      if (data.get("errors_only")) next.errors_only = true;
      const pairs = String(data.get("attributes") || "").split(",").map((s) => s.trim()).filter(Boolean);
      if (pairs.length) next.attributes = Object.fromEntries(pairs.map((p) => [p.split("=")[0].trim(), p.split("=").slice(1).join("=").trim()]));
      for (const key of ["trace_ids", "span_ids"]) if (filter[key]) next[key] = filter[key];
      const params = new URLSearchParams();
      if (Object.keys(next).length) params.set("f", JSON.stringify(next));
      params.set("sort", String(data.get("sort")));
      go("traces", params);
    });
    return form;
  }

  async function showTraces(params, token) {
    let filter = {};
    try {
      filter = JSON.parse(params.get("f") || "{}");
    } catch (e) {
      filter = {};
    }
    const sort = params.get("sort") || "-start_time";
    const body = el("tbody");
    const count = el("span", { class: "muted", id: "trace-total", text: "…" });
    const more = el("button", { class: "secondary", hidden: true, text: "Load more" });
    const active = Object.keys(filter).length ? el("div", { class: "note mono", text: "filter: " + JSON.stringify(filter) }) : null;
    app.replaceChildren(
      filterForm(filter, sort),
      active || "",
      el("div", { class: "panel" },
        el("h3", {}, "Traces ", count),
        el("table", { class: "list", id: "trace-list" },
          el("thead", {}, el("tr", {}, ["start", "trace", "root span", "service", "spans", "errors", "duration", "tokens in/out", "first error"].map((h) => el("th", { text: h })))),
          body),
        more)
    );
    let cursor = null;
    async function load() {
      const q = new URLSearchParams({ sort, limit: "50" });
      if (Object.keys(filter).length) q.set("filter", JSON.stringify(filter));
      if (cursor) q.set("cursor", cursor);
      const page = await fetchForView("/api/traces?" + q, token, true);
      if (!page) return;
      count.textContent = `${page.total} matching`;
      for (const t of page.traces) {
        const spanParam = new URLSearchParams();
        body.appendChild(
          el(
            "tr",
            { class: "clickable trace-row" + (t.error_count ? " error" : ""), "data-trace-id": t.trace_id, onclick: () => go("trace/" + encodeURIComponent(t.trace_id), spanParam) },
            el("td", { class: "mono", text: fmtTime(t.start_time) }),
            el("td", { class: "mono", title: t.trace_id, text: short(t.trace_id, 16) }),
            el("td", { text: t.root_name || "(no root)" }),
            el("td", { text: t.service || "" }),
            el("td", { text: String(t.span_count) }),
            el("td", {}, t.error_count ? el("span", { class: "error-text", text: String(t.error_count) }) : "0"),
            el("td", { text: fmtDuration(t.duration_ms) }),
            el("td", { class: "mono", text: `${t.input_tokens} / ${t.output_tokens}` }),
            el("td", { class: "error-text", title: t.first_error ? t.first_error.message || "" : "", text: t.first_error ? short(`${t.first_error.name}: ${t.first_error.message || ""}`, 60) : "" })
          )
        );
      }
      cursor = page.next_cursor;
      more.hidden = !cursor;
    }
    more.addEventListener("click", load);
    await load();
  }

  /* ----------------------------------------------------------------- trace */

  async function showTrace(traceId, params, token) {
    app.replaceChildren(el("p", { class: "muted", text: "Loading trace…" }));
    const tree = await fetchForView("/api/traces/" + encodeURIComponent(traceId), token);
    if (!tree) return;
    const s = tree.summary;
    const loadSpan = (span) => api(`/api/traces/${encodeURIComponent(traceId)}/spans/${encodeURIComponent(span.span_id)}`);
    app.replaceChildren(
      el("div", { class: "panel" },
        el("h3", {}, el("a", { href: "#/traces", text: "Traces" }), " / ", el("span", { class: "mono", text: traceId })),
        el("div", { class: "summary-line" },
          el("span", {}, "root ", el("b", { text: s.root_name || "(none)" })),
          el("span", {}, el("b", { text: String(s.span_count) }), " spans"),
          el("span", {}, el("b", { text: String(s.error_count) }), " errors"),
          el("span", { text: fmtTime(s.start_time) }),
          el("span", { text: fmtDuration(s.duration_ms) }),
          s.agents.length ? el("span", { text: "agents: " + s.agents.join(", ") }) : null,
          s.models.length ? el("span", { text: "models: " + s.models.join(", ") }) : null,
          el("span", { class: "mono", text: `tokens ${s.input_tokens} / ${s.output_tokens}` }))),
      traceView(tree, { highlight: params.get("span"), loadSpan })
    );
  }

  /* ------------------------------------------------------------------ runs */

  async function showRuns(token) {
    const runs = await fetchForView("/api/runs", token);
    if (!runs) return;
    const rows = runs.map((r) =>
      el("tr", { class: "clickable run-row", "data-run-id": r.id, onclick: () => go("run/" + encodeURIComponent(r.id)) },
        el("td", { class: "mono", text: fmtTime(r.created_at) }),
        el("td", { class: "mono", text: r.id }),
        el("td", {}, badge(r.status, "")),
        el("td", { text: String(r.findings) }),
        el("td", { text: short(r.prompt, 80) }),
        el("td", { class: "mono", text: r.trace_paths.join(", ") }))
    );
    app.replaceChildren(
      el("div", { class: "panel" }, el("h3", { text: "Runs" }),
        runs.length ? el("table", { class: "list", id: "run-list" }, el("thead", {}, el("tr", {}, ["created", "run", "status", "findings", "prompt", "traces"].map((h) => el("th", { text: h })))), el("tbody", {}, rows))
          : el("p", { class: "muted", text: "No runs yet: start one with `halo-mcp run TRACES -p ...` or analyze_traces over MCP." }))
    );
  }

  function findingCard(view, scale) {
    const f = view.finding;
    const matcher = f.matcher ? Object.fromEntries(Object.entries(f.matcher).filter(([, v]) => v !== null && v !== false)) : null;
    const matching = matcher ? el("a", { class: "matching-link", href: "#/traces?" + new URLSearchParams({ f: JSON.stringify(matcher) }), text: "matching traces →" }) : null;
    return el(
      "div",
      { class: "finding", "data-finding-id": f.id },
      el("div", { class: "finding-head" },
        el("span", { class: "rank", text: "#" + view.rank }), badge(f.severity), el("h3", { style: "margin:0", text: f.title }),
        el("span", { style: "margin-left:auto" }, view.interval ? prevalenceBar(view.interval, { max: scale }) : el("span", { class: "muted", text: "prevalence unknown" }))),
      el("div", { class: "finding-body" },
        el("p", { text: f.description }),
        kv([
          ["category", f.category],
          ["status", f.status],
          ["prevalence", f.prevalence ? `${f.prevalence.traces_matched} of ${f.prevalence.traces_in_scope} traces, ${f.prevalence.spans_matched} spans` : null],
          ["first / last seen", view.first_seen ? `${fmtTime(view.first_seen)} → ${fmtTime(view.last_seen)}` : null],
          ["root cause", f.root_cause],
          ["suggested change", f.suggested_change],
        ]),
        matching,
        el("h5", { text: `evidence (${f.evidence.length})` }),
        f.evidence.map((e) =>
          el("div", { class: "evidence-link" },
            el("a", { class: "mono", href: "#/trace/" + encodeURIComponent(e.trace_id) + (e.span_id ? "?" + new URLSearchParams({ span: e.span_id }) : ""), text: `${short(e.trace_id, 20)}${e.span_id ? " / " + e.span_id : ""}` }),
            e.excerpt ? el("blockquote", { class: "excerpt", text: e.excerpt }) : null)))
    );
  }

  async function showRun(runId, token) {
    const run = await fetchForView("/api/runs/" + encodeURIComponent(runId), token);
    if (!run) return;
    const scale = niceMax(Math.max(...run.findings.map((v) => (v.interval ? v.interval.high : 0)), 0.01));
    app.replaceChildren(
      el("div", { class: "panel" },
        el("h3", {}, el("a", { href: "#/runs", text: "Runs" }), " / ", el("span", { class: "mono", text: run.id })),
        el("p", { text: run.prompt }),
        el("div", { class: "summary-line" },
          el("span", {}, "status ", el("b", { text: run.status })),
          el("span", {}, el("b", { text: String(run.findings.length) }), " findings"),
          el("span", { text: "traces: " + run.trace_paths.join(", ") }),
          el("a", { href: "/runs/" + encodeURIComponent(run.id) + "/report.html", target: "_blank", id: "html-report", text: "HTML report ↗" })),
        run.error ? el("p", { class: "error-text", text: run.error }) : null),
      ...run.findings.map((v) => findingCard(v, scale))
    );
  }

  /* ---------------------------------------------------------------- triage */

  async function showTriage(token) {
    app.replaceChildren(el("p", { class: "muted", text: "Triaging the traces (no LLM)…" }));
    const report = await fetchForView("/api/triage", token);
    if (!report) return;
    const views = report.items.map((f, i) => ({ rank: i + 1, finding: f, interval: f.prevalence ? window.Halo.wilson(f.prevalence.traces_matched, f.prevalence.traces_in_scope) : null }));
    const scale = niceMax(Math.max(...views.map((v) => (v.interval ? v.interval.high : 0)), 0.01));
    app.replaceChildren(
      el("div", { class: "panel" },
        el("h3", { text: "Triage" }),
        el("div", { class: "summary-line" },
          el("span", {}, el("b", { text: String(report.traces) }), " traces"),
          el("span", {}, el("b", { text: String(report.spans) }), " spans"),
          el("span", {}, el("b", { text: String(report.error_spans) }), " error spans"),
          el("span", { text: `${report.elapsed_ms.toFixed(0)} ms` })),
        report.notes.map((n) => el("p", { class: "note", text: n }))),
      el("div", { id: "triage-items" }, views.map((v) => findingCard(v, scale))),
      report.tools.length
        ? el("div", { class: "panel" }, el("h3", { text: "Tools by failure rate" }),
            el("table", { class: "list" },
              el("thead", {}, el("tr", {}, ["tool", "calls", "errors", "failure rate", "traces with errors"].map((h) => el("th", { text: h })))),
              el("tbody", {}, report.tools.map((t) =>
                el("tr", { class: "clickable", onclick: () => go("traces", new URLSearchParams({ f: JSON.stringify({ tool_name: t.name, errors_only: true }) })) },
                  el("td", { text: t.name }), el("td", { text: String(t.calls) }), el("td", { text: String(t.errors) }),
                  el("td", { text: fmtPct(t.failure_rate) }), el("td", { text: String(t.traces_with_errors) }))))))
        : ""
    );
  }

  /* ------------------------------------------------------------- the shell */

  async function render() {
    const token = ++renderToken;
    const r = route();
    document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("active", a.dataset.nav === r.name || (a.dataset.nav === "runs" && r.name === "run") || (a.dataset.nav === "traces" && r.name === "trace")));
    if (r.name === "trace" && r.arg) await showTrace(r.arg, r.params, token);
    else if (r.name === "runs") await showRuns(token);
    else if (r.name === "run" && r.arg) await showRun(r.arg, token);
    else if (r.name === "triage") await showTriage(token);
    else await showTraces(r.params, token);
    if (token === renderToken) document.body.dataset.ready = String(token);
  }

  async function poll() {
    try {
      const s = await api("/api/status");
      live.textContent = `${s.traces} traces · ${s.spans} spans · live, updated ${fmtTime(s.updated_at)}`;
      live.dataset.generation = s.generation;
      if (generation !== null && s.generation !== generation && route().name === "traces") render();
      generation = s.generation;
    } catch (err) {
      live.textContent = "viewer unreachable: " + (err.message || err);
    }
  }

  window.addEventListener("hashchange", render);
  render();
  poll();
  setInterval(poll, 2000);
})();
