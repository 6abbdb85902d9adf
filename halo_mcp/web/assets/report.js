/* The self-contained report: reads the JSON embedded in the page and draws it.
 * Findings are listed ranked; clicking one opens it (its charts and evidence waterfalls
 * are drawn when first opened, so a report with many findings opens fast).
 */
"use strict";
(function () {
  const { el, badge, niceMax, fmtTime, fmtPct, short, prevalenceBar, rateChart, checkBars, traceView, kv } = window.Halo;
  const started = performance.now();
  const data = JSON.parse(document.getElementById("halo-data").textContent);
  const app = document.getElementById("app");
  // One bar scale for every finding, so bars compare at a glance.
  const scale = niceMax(Math.max(...data.findings.map((v) => (v.interval ? v.interval.high : 0)), 0.01));

  function header() {
    const run = data.run;
    const range = data.time_range ? `${fmtTime(data.time_range[0])} → ${fmtTime(data.time_range[1])}` : null;
    return el(
      "div",
      { class: "panel" },
      el("h1", { text: "HALO report" }),
      el("div", { class: "mono muted", text: `run ${run.id}` }),
      el("p", { text: run.prompt }),
      el(
        "div",
        { class: "summary-line" },
        el("span", {}, "status ", el("b", { text: run.status })),
        el("span", {}, el("b", { text: String(data.findings.length) }), " findings"),
        data.traces_in_scope !== null ? el("span", {}, el("b", { text: String(data.traces_in_scope) }), " traces") : null,
        range ? el("span", { text: range }) : null,
        el("span", { text: "traces: " + run.trace_paths.join(", ") }),
        el("span", { text: "generated " + fmtTime(data.generated_at) })
      ),
      run.error ? el("p", { class: "error-text", text: run.error }) : null,
      run.warning ? el("p", { class: "error-text", text: `warning (${run.outcome}): ${run.warning}` }) : null,
      data.notes.map((n) => el("p", { class: "note", text: n }))
    );
  }

  function checkPanel() {
    if (!data.check) return null;
    const c = data.check;
    return el(
      "div",
      { class: "panel", id: "check-summary" },
      el("h3", { text: "Check: before / after the fix" }),
      el("div", { class: "summary-line" },
        Object.entries(c.verdicts).map(([v, n]) => el("span", {}, badge(v, "verdict-" + v), " ", el("b", { text: String(n) })))),
      el("p", { class: "note", text: `Before: ${c.baseline}. After: ${c.new_paths.join(", ")} (${c.traces_in_scope} traces). Rule: ${c.rule}.` })
    );
  }

  function ciCell(view) {
    if (!view.interval) return el("span", { class: "muted", text: "not computed" });
    const p = view.finding.prevalence;
    return el("span", {}, prevalenceBar(view.interval, { max: scale }), el("div", { class: "muted", style: "font-size:11px", text: `${p.traces_matched} of ${p.traces_in_scope} traces` }));
  }

  function table() {
    const body = el("tbody");
    const t = el(
      "table",
      { class: "list", id: "findings-table" },
      el("thead", {}, el("tr", {}, ["#", "severity", "finding", `prevalence (95% CI; bars 0–${fmtPct(scale, 0)})`, "first seen", "last seen", "status", data.check ? "check" : null].filter(Boolean).map((h) => el("th", { text: h })))),
      body
    );
    for (const view of data.findings) {
      const f = view.finding;
      const row = el(
        "tr",
        { class: "clickable finding-row", "data-finding-id": f.id, onclick: () => open(f.id, true) },
        el("td", { class: "rank", text: String(view.rank) }),
        el("td", {}, badge(f.severity)),
        el("td", {}, el("a", { href: "#" + f.id, text: f.title, onclick: (e) => { e.preventDefault(); } }), el("div", { class: "muted", style: "font-size:11px", text: `${f.category} · ${f.source}` })),
        el("td", {}, ciCell(view)),
        el("td", { class: "mono", text: fmtTime(view.first_seen) || "–" }),
        el("td", { class: "mono", text: fmtTime(view.last_seen) || "–" }),
        el("td", {}, badge(f.status)),
        data.check ? el("td", {}, view.check ? badge(view.check.verdict, "verdict-" + view.check.verdict) : el("span", { class: "muted", text: "–" })) : null
      );
      body.appendChild(row);
    }
    return el("div", { class: "panel" }, el("h3", { text: "Findings, most severe and most prevalent first" }), t);
  }

  const sections = new Map();

  function section(view) {
    const f = view.finding;
    const body = el("div", { class: "finding-body" });
    const box = el(
      "section",
      { class: "finding collapsed", id: f.id, "data-finding-id": f.id },
      el("div", { class: "finding-head", onclick: () => open(f.id, false) },
        el("span", { class: "rank", text: "#" + view.rank }), badge(f.severity), el("h3", { style: "margin:0", text: f.title }),
        el("span", { class: "muted mono", style: "margin-left:auto", text: f.id })),
      body
    );
    sections.set(f.id, { box, body, view, drawn: false });
    return box;
  }

  function drawBody(entry) {
    const { body, view } = entry;
    const f = view.finding;
    const text = (label, value) => (value ? [el("h5", { text: label }), el("p", { text: value })] : null);
    const left = el(
      "div",
      { class: "facts" },
      text("what happens", f.description),
      text("root cause", f.root_cause),
      text("suggested harness change", f.suggested_change),
      text("how to validate", f.validation),
      f.code_refs && f.code_refs.length ? [el("h5", { text: "code" }), f.code_refs.map((r) => el("div", { class: "mono", text: `${r.path}:${r.start_line}-${r.end_line}${r.verified ? "" : " (unverified)"}` }))] : null,
      f.suspect_commits && f.suspect_commits.length ? [el("h5", { text: "suspect commits" }), f.suspect_commits.map((c) => el("div", { class: "mono", text: `${c.sha.slice(0, 10)} ${c.subject || ""}` }))] : null,
      f.matcher ? [el("h5", { text: "matcher" }), el("pre", { class: "content", text: JSON.stringify(Object.fromEntries(Object.entries(f.matcher).filter(([, v]) => v !== null && v !== false)), null, 1) })] : null,
      f.status_reasons && f.status_reasons.length ? [el("h5", { text: "status" }), f.status_reasons.map((r) => el("div", { class: "note", text: `${r.code}: ${r.detail}` }))] : null
    );
    const right = el(
      "div",
      {},
      el("h5", { text: "prevalence (95% Wilson interval)" }),
      ciCell(view),
      kv([
        ["first seen", fmtTime(view.first_seen) || "–"],
        ["last seen", fmtTime(view.last_seen) || "–"],
        ["spans matched", f.prevalence ? String(f.prevalence.spans_matched) : null],
      ]),
      view.rates.length ? [el("h5", { text: view.rates.some((b) => b.days > 1) ? "rate per period" : "rate per day" }), rateChart(view.rates)] : null,
      view.check ? [el("h5", { text: "check: before / after" }), checkBars(view.check)] : null,
      view.notes.map((n) => el("p", { class: "note", text: n }))
    );
    body.appendChild(el("div", { class: "cols", style: "margin-top:12px" }, left, right));
    body.appendChild(el("h5", { text: `evidence (${f.evidence.length})` }));
    const drawn = new Set();
    for (const ev of f.evidence) {
      const box = el("div", { class: "evidence", "data-trace-id": ev.trace_id });
      box.appendChild(
        el("div", { class: "mono" }, `trace ${short(ev.trace_id, 32)}`, ev.span_id ? ` · span ${ev.span_id}` : "", " ", badge(ev.verified ? "verified" : "unverified"))
      );
      if (ev.excerpt) box.appendChild(el("blockquote", { class: "excerpt", text: ev.excerpt }));
      const tree = data.traces[ev.trace_id];
      if (tree && !drawn.has(ev.trace_id + "/" + ev.span_id)) {
        drawn.add(ev.trace_id + "/" + ev.span_id);
        box.appendChild(traceView(tree, { highlight: ev.span_id }));
      } else if (!tree) {
        box.appendChild(el("p", { class: "note", text: "This trace is not drawn in the report." }));
      }
      body.appendChild(box);
    }
    entry.drawn = true;
  }

  function open(id, scroll) {
    const entry = sections.get(id);
    if (!entry) return;
    const collapsed = entry.box.classList.contains("collapsed");
    if (collapsed && !entry.drawn) drawBody(entry);
    entry.box.classList.toggle("collapsed", !collapsed && !scroll ? true : false);
    document.querySelectorAll("tr.finding-row").forEach((r) => r.classList.toggle("open", r.dataset.findingId === id && !entry.box.classList.contains("collapsed")));
    if (scroll) entry.box.scrollIntoView({ block: "start" });
  }

  app.replaceChildren(header(), checkPanel() || "", table(), el("h2", { text: "Findings in detail" }), ...data.findings.map(section));
  if (!data.findings.length) app.appendChild(el("p", { class: "muted", text: "This run has no findings." }));
  if (location.hash && sections.has(location.hash.slice(1))) open(location.hash.slice(1), true);
  document.body.dataset.renderMs = (performance.now() - started).toFixed(1);
  document.body.dataset.ready = "1";
})();
