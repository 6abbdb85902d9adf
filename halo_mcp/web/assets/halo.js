/* halo-mcp web components: span waterfall, span details, prevalence bars, rate charts.
 * Hand-written DOM and SVG, no library: the report must open offline years from now, and
 * the viewer must not fetch anything from the network. Text goes in through textContent
 * only (never innerHTML), so span content cannot inject markup. Shared by report and viewer.
 */
"use strict";
(function (root) {
  const SVG_NS = "http://www.w3.org/2000/svg";

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    setAttrs(node, attrs);
    append(node, children);
    return node;
  }

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    setAttrs(node, attrs);
    append(node, children);
    return node;
  }

  function setAttrs(node, attrs) {
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.setAttribute("class", value);
      else if (key === "text") node.textContent = String(value);
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
  }

  function append(node, children) {
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }

  /** Milliseconds since the epoch, keeping the microseconds Date.parse drops. */
  function timeMs(iso) {
    if (!iso) return NaN;
    const frac = /\.(\d+)/.exec(iso);
    const base = Date.parse(iso.replace(/\.\d+/, ""));
    return frac ? base + parseFloat("0." + frac[1]) * 1000 : base;
  }

  function fmtDuration(ms) {
    if (ms === null || ms === undefined || isNaN(ms)) return "";
    if (ms === 0) return "0";
    if (ms < 1) return (ms * 1000).toFixed(0) + " µs";
    if (ms < 1000) return ms.toFixed(ms < 10 ? 1 : 0) + " ms";
    if (ms < 60000) return (ms / 1000).toFixed(ms < 10000 ? 2 : 1) + " s";
    return (ms / 60000).toFixed(1) + " min";
  }

  function fmtTime(iso) {
    if (!iso) return "";
    const d = new Date(timeMs(iso));
    return isNaN(d) ? String(iso) : d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
  }

  function fmtPct(rate, digits) {
    return (rate * 100).toFixed(digits === undefined ? 1 : digits) + "%";
  }

  function short(id, n) {
    n = n || 12;
    return id && id.length > n ? id.slice(0, n) + "…" : id || "";
  }

  function badge(text, kind) {
    return el("span", { class: "badge " + (kind || String(text).toLowerCase()), text: text });
  }

  /* -------------------------------------------------------------- waterfall */

  /**
   * A trace as a tree (left) and a timeline (right), one row per span, depth-first.
   * options.highlight: span id drawn outlined and scrolled to; options.onSelect(span):
   * called when a row is clicked (and for the highlighted span first).
   */
  function waterfall(tree, options) {
    options = options || {};
    const nodes = tree.nodes || [];
    const starts = nodes.map((n) => timeMs(n.span.start_time));
    const t0 = Math.min(...starts);
    const t1 = Math.max(...nodes.map((n, i) => starts[i] + (n.span.duration_ms || 0)));
    const total = Math.max(t1 - t0, 0.001);
    const box = el("div", { class: "wf", "data-trace-id": tree.trace_id });
    const axis = el("div", { class: "wf-axis" }, el("div", { class: "wf-name", text: "span" }));
    const ticks = el("div", { class: "wf-track" });
    for (let i = 0; i <= 4; i++) {
      ticks.appendChild(
        el("span", { class: "wf-tick", style: `left:${i * 25}%`, text: fmtDuration((total * i) / 4) })
      );
    }
    axis.appendChild(ticks);
    box.appendChild(axis);
    const rows = [];
    let selected = null;
    function select(row, span) {
      if (selected) selected.classList.remove("sel");
      selected = row;
      row.classList.add("sel");
      if (options.onSelect) options.onSelect(span);
    }
    nodes.forEach((node, i) => {
      const span = node.span;
      const left = ((starts[i] - t0) / total) * 100;
      const width = Math.max(((span.duration_ms || 0) / total) * 100, 0.3);
      const isError = span.status === "error";
      const caret = el("span", { class: "wf-caret", text: node.children ? "▾" : "" });
      const name = el(
        "div",
        { class: "wf-name", style: `padding-left:${6 + node.depth * 14}px`, title: span.name },
        caret,
        badge(span.kind || "other", "kind-" + (span.kind || "other")),
        el("span", { class: "wf-label", text: span.tool_name && span.tool_name !== span.name ? `${span.name} · ${span.tool_name}` : span.name }),
        isError ? el("span", { class: "wf-err", title: span.error_message || "error", text: "✖" }) : null
      );
      const bar = el("div", {
        class: "wf-bar kind-" + (span.kind || "other") + (isError ? " error" : ""),
        style: `left:${left.toFixed(3)}%;width:${width.toFixed(3)}%`,
      });
      const label = el("span", {
        class: "wf-dur",
        style: left + width > 80 ? `right:${(100 - left).toFixed(3)}%` : `left:${(left + width).toFixed(3)}%`,
        text: fmtDuration(span.duration_ms),
      });
      const row = el(
        "div",
        {
          class: "wf-row" + (isError ? " error" : "") + (span.span_id === options.highlight ? " hl" : ""),
          "data-span-id": span.span_id,
          "data-depth": node.depth,
          tabindex: 0,
        },
        name,
        el("div", { class: "wf-track" }, bar, label)
      );
      row.addEventListener("click", (ev) => {
        if (ev.target === caret && node.children) {
          toggle(i, caret);
          return;
        }
        select(row, span);
      });
      row.addEventListener("keydown", (ev) => {
        if (ev.key === "Enter") select(row, span);
      });
      rows.push(row);
      box.appendChild(row);
    });
    function toggle(index, caret) {
      const depth = nodes[index].depth;
      const hide = caret.textContent === "▾";
      caret.textContent = hide ? "▸" : "▾";
      for (let j = index + 1; j < nodes.length && nodes[j].depth > depth; j++) {
        rows[j].hidden = hide;
        const c = rows[j].querySelector(".wf-caret");
        if (c && c.textContent) c.textContent = "▾";
      }
    }
    if (tree.truncated) {
      box.appendChild(el("div", { class: "note", text: `Only the first ${nodes.length} spans are drawn (of ${tree.summary.span_count}).` }));
    }
    const target = options.highlight && rows.find((r) => r.dataset.spanId === options.highlight);
    if (target) {
      const index = rows.indexOf(target);
      // Selecting after insertion lets the caller's details panel exist first; the
      // scrolling container (if any) brings the highlighted row into view.
      setTimeout(() => {
        select(target, nodes[index].span);
        const scroller = box.parentElement;
        if (scroller && scroller.scrollHeight > scroller.clientHeight) {
          scroller.scrollTop = Math.max(0, target.offsetTop - scroller.clientHeight / 3);
        }
      }, 0);
    }
    return box;
  }

  /* ------------------------------------------------------------ span details */

  function kv(rows) {
    const table = el("table", { class: "kv" });
    for (const [key, value] of rows) {
      if (value === null || value === undefined || value === "") continue;
      table.appendChild(el("tr", {}, el("th", { text: key }), el("td", {}, value instanceof Node ? value : String(value))));
    }
    return table;
  }

  function valueText(value) {
    return typeof value === "string" ? value : JSON.stringify(value, null, 1);
  }

  /** Everything known about one span: facts, attributes, input/output, events. */
  function spanDetails(span) {
    const box = el("div", { class: "span-details", "data-span-id": span.span_id });
    box.appendChild(el("h4", { text: span.name }));
    box.appendChild(
      kv([
        ["span id", span.span_id],
        ["parent", span.parent_span_id],
        ["kind", span.kind],
        ["status", span.status],
        ["error", span.error_message],
        ["start", fmtTime(span.start_time)],
        ["duration", fmtDuration(span.duration_ms)],
        ["service", span.service],
        ["agent", span.agent],
        ["model", span.model],
        ["tool", span.tool_name],
        ["tokens in/out", span.input_tokens || span.output_tokens ? `${span.input_tokens || 0} / ${span.output_tokens || 0}` : null],
      ])
    );
    for (const field of ["input", "output"]) {
      if (span[field]) {
        box.appendChild(el("h5", { text: field }));
        box.appendChild(el("pre", { class: "content", text: span[field] }));
      }
    }
    if (span.attributes && Object.keys(span.attributes).length) {
      box.appendChild(el("h5", { text: `attributes (${Object.keys(span.attributes).length})` }));
      const keys = Object.keys(span.attributes).sort();
      const table = kv(keys.map((k) => [k, el("code", { text: valueText(span.attributes[k]) })]));
      table.classList.add("attrs");
      box.appendChild(table);
    } else if (span.attributes === undefined || span.attributes === null) {
      box.appendChild(el("p", { class: "muted", text: "Attributes not loaded." }));
    }
    if (span.events && span.events.length) {
      box.appendChild(el("h5", { text: `events (${span.events.length})` }));
      box.appendChild(el("pre", { class: "content", text: span.events.map(valueText).join("\n") }));
    }
    return box;
  }

  /* ------------------------------------------------------------------ charts */

  /** A rate as a bar with its 95% interval as a whisker. interval: {rate, low, high}. */
  function prevalenceBar(interval, options) {
    options = options || {};
    const w = options.width || 180;
    const h = 16;
    const scale = options.max || 1;
    const x = (v) => Math.min(w, (v / scale) * w);
    const title = `${fmtPct(interval.rate)} (95% CI ${fmtPct(interval.low)}–${fmtPct(interval.high)})`;
    return el(
      "span",
      { class: "prev" },
      svg(
        "svg",
        { class: "prev-bar", width: w, height: h, viewBox: `0 0 ${w} ${h}`, role: "img", "aria-label": title },
        svg("title", { text: title }),
        svg("rect", { class: "prev-track", x: 0, y: 3, width: w, height: h - 6, rx: 2 }),
        svg("rect", { class: "prev-fill", x: 0, y: 3, width: Math.max(x(interval.rate), 1), height: h - 6, rx: 2 }),
        svg("line", { class: "prev-ci", x1: x(interval.low), x2: x(interval.high), y1: h / 2, y2: h / 2 }),
        svg("line", { class: "prev-ci", x1: x(interval.low), x2: x(interval.low), y1: 2, y2: h - 2 }),
        svg("line", { class: "prev-ci", x1: x(interval.high), x2: x(interval.high), y1: 2, y2: h - 2 })
      ),
      el("span", { class: "prev-text", text: fmtPct(interval.rate) }),
      el("span", { class: "prev-ci-text muted", text: ` ${fmtPct(interval.low)}–${fmtPct(interval.high)}` })
    );
  }

  function niceMax(v) {
    if (v <= 0) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  /** Matched / traces per bucket as bars; buckets: [{start, days, traces, matched}]. */
  function rateChart(buckets, options) {
    options = options || {};
    const w = options.width || 460;
    const h = options.height || 130;
    const pad = { l: 40, r: 8, t: 8, b: 22 };
    const rates = buckets.map((b) => (b.traces ? b.matched / b.traces : 0));
    const top = niceMax(Math.max(...rates, 0.0001));
    const iw = w - pad.l - pad.r;
    const ih = h - pad.t - pad.b;
    const bw = iw / Math.max(buckets.length, 1);
    const chart = svg("svg", { class: "rate-chart", width: w, height: h, viewBox: `0 0 ${w} ${h}`, role: "img", "aria-label": "rate per day" });
    for (const f of [0, 0.5, 1]) {
      const y = pad.t + ih - f * ih;
      chart.appendChild(svg("line", { class: "grid", x1: pad.l, x2: w - pad.r, y1: y, y2: y }));
      chart.appendChild(svg("text", { class: "axis", x: pad.l - 4, y: y + 3, "text-anchor": "end", text: fmtPct(top * f, top * f < 0.1 && f ? 1 : 0) }));
    }
    buckets.forEach((b, i) => {
      const r = rates[i];
      const bh = (r / top) * ih;
      const x = pad.l + i * bw + Math.min(2, bw * 0.1);
      const bar = svg("rect", { class: "rate-bar" + (b.traces ? "" : " empty"), x, y: pad.t + ih - bh, width: Math.max(bw - Math.min(4, bw * 0.2), 1), height: Math.max(bh, b.matched ? 1 : 0) });
      const span = b.days > 1 ? ` (+${b.days - 1} d)` : "";
      bar.appendChild(svg("title", { text: `${b.start}${span}: ${b.matched} of ${b.traces} traces (${fmtPct(r)})` }));
      chart.appendChild(bar);
    });
    const every = Math.max(1, Math.ceil(buckets.length / 6));
    buckets.forEach((b, i) => {
      if (i % every && i !== buckets.length - 1) return;
      chart.appendChild(svg("text", { class: "axis", x: pad.l + i * bw + bw / 2, y: h - 6, "text-anchor": "middle", text: String(b.start).slice(5) }));
    });
    return chart;
  }

  /** Before vs after of a check, as two bars on one scale. */
  function checkBars(check) {
    const rows = [];
    const max = Math.max(
      ...[check.before, check.after].filter(Boolean).map((p) => (p.traces_in_scope ? p.traces_matched / p.traces_in_scope : 0)),
      0.0001
    );
    for (const [label, p] of [["before", check.before], ["after", check.after]]) {
      if (!p) {
        rows.push(el("div", { class: "check-row" }, el("span", { class: "check-label", text: label }), el("span", { class: "muted", text: "no figure" })));
        continue;
      }
      const iv = wilson(p.traces_matched, p.traces_in_scope);
      rows.push(
        el(
          "div",
          { class: "check-row" },
          el("span", { class: "check-label", text: label }),
          prevalenceBar(iv, { width: 140, max: niceMax(Math.max(max, iv.high)) }),
          el("span", { class: "muted", text: ` ${p.traces_matched}/${p.traces_in_scope} traces` })
        )
      );
    }
    return el(
      "div",
      { class: "check" },
      el("div", {}, badge(check.verdict, "verdict-" + check.verdict), " ", el("span", { class: "muted", text: check.reason })),
      rows
    );
  }

  /** Wilson 95% interval, as in halo_mcp/web/report_data.py (used for check figures). */
  function wilson(k, n) {
    if (!n) return { rate: 0, low: 0, high: 1 };
    const z = 1.959963984540054;
    const p = k / n;
    const d = 1 + (z * z) / n;
    const c = (p + (z * z) / (2 * n)) / d;
    const h = (z * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n))) / d;
    return { rate: p, low: Math.max(0, c - h), high: Math.min(1, c + h) };
  }

  /** A waterfall with a details panel that follows the selected row. */
  function traceView(tree, options) {
    options = options || {};
    const details = el("div", { class: "details-panel" }, el("p", { class: "muted", text: "Click a span to see its attributes." }));
    const fall = waterfall(tree, {
      highlight: options.highlight,
      onSelect: (span) => {
        const show = (full) => details.replaceChildren(spanDetails(full));
        if (options.loadSpan && (span.attributes === undefined || span.attributes === null)) {
          details.replaceChildren(el("p", { class: "muted", text: "Loading…" }));
          options.loadSpan(span).then(show, (err) => details.replaceChildren(el("p", { class: "error-text", text: String(err) })));
        } else show(span);
      },
    });
    return el("div", { class: "trace-view" }, el("div", { class: "wf-scroll" }, fall), details);
  }

  root.Halo = { niceMax, el, svg, badge, timeMs, fmtDuration, fmtTime, fmtPct, short, waterfall, spanDetails, prevalenceBar, rateChart, checkBars, wilson, traceView, kv };
})(window);
