// modelpress compare --html: the report's table (sortable, filterable) and its size/quality plots, drawn from the
// comparison's JSON (export/compare/schema.py) embedded in the page. No library, no network.
(function () {
  "use strict";
  const report = JSON.parse(document.getElementById("report-data").textContent);
  const rows = report.rows;
  const $ = (id) => document.getElementById(id);
  const SVG = "http://www.w3.org/2000/svg";

  const fmt = {
    int: (v) => (v == null ? "–" : Math.round(v).toLocaleString("en-US")),
    fixed: (d) => (v) => (v == null ? "–" : v.toFixed(d)),
    bytes: (v) => {
      if (v == null) return "–";
      for (const [unit, scale] of [["GB", 1e9], ["MB", 1e6], ["kB", 1e3]]) {
        if (v >= scale) return (v / scale).toPrecision(3) + " " + unit;
      }
      return v + " B";
    },
  };

  function quality(r) {
    if (r.accuracy != null) return { value: 100 * r.accuracy, text: (100 * r.accuracy).toFixed(2) + " %", kind: "accuracy" };
    const cos = r.fidelity && r.fidelity.mean_cosine;
    if (cos != null) return { value: cos, text: "cos " + cos.toFixed(4), kind: "cosine" };
    return null;
  }

  function marks(r) {
    return (r.is_baseline ? " ★" : "") + (r.pareto ? " ◆" : "") + (r.status === "failed" ? " ✕" : "");
  }

  // [key, header, value for sorting, text, is text column]
  const COLUMNS = [
    ["model", "model", (r) => r.model, (r) => r.model + marks(r), true],
    ["version", "v", (r) => r.version, (r) => String(r.version), false],
    ["family", "family", (r) => r.family, (r) => r.family, true],
    ["precision", "precision", (r) => r.precision, (r) => r.precision, true],
    ["onnx_bytes", "ONNX size", (r) => r.onnx_bytes, (r) => fmt.bytes(r.onnx_bytes), false],
    ["size_ratio", "size ×", (r) => r.size_ratio, (r) => fmt.fixed(1)(r.size_ratio), false],
    ["quality", "accuracy / fidelity", (r) => (quality(r) || {}).value, (r) => (quality(r) || { text: "–" }).text, false],
    ["latency_p50_ms", "p50 ms", (r) => r.latency_p50_ms, (r) => fmt.fixed(3)(r.latency_p50_ms), false],
    ["latency_p99_ms", "p99 ms", (r) => r.latency_p99_ms, (r) => fmt.fixed(3)(r.latency_p99_ms), false],
    ["speedup_vs_torch", "vs torch ×", (r) => r.speedup_vs_torch, (r) => fmt.fixed(1)(r.speedup_vs_torch), false],
    ["throughput_rows_s", "rows/s", (r) => r.throughput_rows_s, (r) => fmt.int(r.throughput_rows_s), false],
    ["gzip_bytes", "gzip size", (r) => r.gzip_bytes, (r) => fmt.bytes(r.gzip_bytes), false],
    ["parameters", "params", (r) => r.parameters, (r) => fmt.int(r.parameters), false],
    ["lineage", "lineage", (r) => r.lineage.join(" → "), (r) => r.lineage.join(" → ") || "–", true],
    ["status", "status", (r) => r.status, (r) => r.status, true],
  ];

  const state = { sort: null, descending: false, family: "", precision: "" };

  function visible() {
    return rows.filter((r) => (!state.family || r.family === state.family) && (!state.precision || r.precision === state.precision));
  }

  function sorted(list) {
    if (!state.sort) return list;
    const col = COLUMNS.find((c) => c[0] === state.sort);
    const sign = state.descending ? -1 : 1;
    return list.slice().sort((a, b) => {
      const x = col[2](a), y = col[2](b);
      if (x == null && y == null) return 0;
      if (x == null) return 1; // unmeasured figures last, whatever the direction
      if (y == null) return -1;
      return (typeof x === "string" ? x.localeCompare(y) : x - y) * sign;
    });
  }

  function fillSelect(select, values) {
    for (const v of values) {
      const option = document.createElement("option");
      option.value = v;
      option.textContent = v;
      select.appendChild(option);
    }
  }

  function buildHeader() {
    const tr = $("head-row");
    for (const [key, header, , , text] of COLUMNS) {
      const th = document.createElement("th");
      th.scope = "col";
      if (text) th.className = "text";
      th.dataset.key = key;
      th.setAttribute("aria-sort", "none");
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = header;
      button.title = "Sort by " + header;
      button.addEventListener("click", () => {
        state.descending = state.sort === key ? !state.descending : false;
        state.sort = key;
        render();
      });
      th.appendChild(button);
      tr.appendChild(th);
    }
  }

  function renderTable(list) {
    const body = $("rows");
    body.replaceChildren();
    for (const r of sorted(list)) {
      const tr = document.createElement("tr");
      tr.dataset.model = r.model;
      if (r.pareto) tr.classList.add("pareto");
      if (r.status === "failed") tr.classList.add("failed");
      for (const [, , , text, isText] of COLUMNS) {
        const td = document.createElement("td");
        if (isText) td.className = "text";
        td.textContent = text(r);
        tr.appendChild(td);
      }
      body.appendChild(tr);
    }
    for (const th of document.querySelectorAll("#head-row th")) {
      const on = th.dataset.key === state.sort;
      th.setAttribute("aria-sort", on ? (state.descending ? "descending" : "ascending") : "none");
    }
    $("count").textContent = list.length + " of " + rows.length + " variants shown";
  }

  function el(name, attrs, parent) {
    const node = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (parent) parent.appendChild(node);
    return node;
  }

  function tooltipText(r) {
    const q = quality(r);
    return [
      r.model + " v" + r.version + " (" + r.precision + ")",
      "lineage: " + (r.lineage.join(" → ") || "none recorded"),
      "size: " + fmt.bytes(r.onnx_bytes) + (r.size_ratio != null ? " (" + r.size_ratio.toFixed(1) + "× smaller)" : ""),
      (!q ? "quality: not measured" : q.kind === "accuracy" ? "test accuracy: " + q.text : "mean cosine to fp32: " + q.value.toFixed(4)),
      "p50 / p99 at batch 1: " + fmt.fixed(3)(r.latency_p50_ms) + " / " + fmt.fixed(3)(r.latency_p99_ms) + " ms",
      "speedup vs PyTorch eager: " + (r.speedup_vs_torch != null ? r.speedup_vs_torch.toFixed(1) + "×" : "–"),
      r.pareto ? "on the Pareto front" : "not on the Pareto front",
    ];
  }

  function showTooltip(r, x, y) {
    const tip = $("tooltip");
    tip.replaceChildren();
    tooltipText(r).forEach((line, i) => {
      const div = document.createElement("div");
      div.textContent = line;
      if (i === 0) div.style.fontWeight = "700";
      tip.appendChild(div);
    });
    tip.hidden = false;
    const left = Math.min(x + 12, window.scrollX + document.documentElement.clientWidth - tip.offsetWidth - 8);
    tip.style.left = Math.max(window.scrollX + 4, left) + "px";
    tip.style.top = y + 12 + "px";
  }

  function hideTooltip() {
    $("tooltip").hidden = true;
  }

  function plotFamily(family, list) {
    const points = list.filter((r) => r.status === "ok" && r.onnx_bytes && quality(r));
    const figure = document.createElement("figure");
    const caption = document.createElement("figcaption");
    caption.textContent = family;
    figure.appendChild(caption);
    if (!points.length) {
      const p = document.createElement("p");
      p.textContent = "Nothing measurable in this family (no size or no quality figure).";
      figure.appendChild(p);
      return figure;
    }
    const W = 560, H = 360, M = { l: 58, r: 18, t: 14, b: 44 };
    const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, role: "group", "aria-label": family + ": quality against size" });
    const xs = points.map((r) => Math.log10(r.onnx_bytes));
    const ys = points.map((r) => quality(r).value);
    let [x0, x1] = [Math.min(...xs), Math.max(...xs)];
    let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
    const xpad = Math.max((x1 - x0) * 0.12, 0.15), ypad = Math.max((y1 - y0) * 0.15, quality(points[0]).kind === "accuracy" ? 0.5 : 0.002);
    const ceiling = quality(points[0]).kind === "accuracy" ? 100 : 1; // no accuracy above 100 %, no cosine above 1
    x0 -= xpad; x1 += xpad; y0 -= ypad; y1 = Math.min(y1 + ypad, ceiling + ypad / 4);
    const sx = (v) => M.l + ((Math.log10(v) - x0) / (x1 - x0)) * (W - M.l - M.r);
    const sy = (v) => H - M.b - ((v - y0) / (y1 - y0)) * (H - M.t - M.b);
    // Axes with a few ticks: sizes at 1-2-5 steps of each decade, quality at 5 even steps.
    el("line", { class: "axis", x1: M.l, y1: H - M.b, x2: W - M.r, y2: H - M.b }, svg);
    el("line", { class: "axis", x1: M.l, y1: M.t, x2: M.l, y2: H - M.b }, svg);
    for (let d = Math.floor(x0); d <= Math.ceil(x1); d++) {
      for (const m of [1, 2, 5]) {
        const v = m * Math.pow(10, d);
        const lv = Math.log10(v);
        if (lv < x0 || lv > x1) continue;
        const x = sx(v);
        el("line", { class: "grid", x1: x, y1: M.t, x2: x, y2: H - M.b }, svg);
        el("text", { x, y: H - M.b + 14, "text-anchor": "middle" }, svg).textContent = fmt.bytes(v);
      }
    }
    for (let i = 0; i <= 4; i++) {
      const v = y0 + ((y1 - y0) * i) / 4;
      const y = sy(v);
      el("line", { class: "grid", x1: M.l, y1: y, x2: W - M.r, y2: y }, svg);
      el("text", { x: M.l - 6, y: y + 4, "text-anchor": "end" }, svg).textContent = quality(points[0]).kind === "accuracy" ? v.toFixed(1) : v.toFixed(3);
    }
    el("text", { x: (M.l + W - M.r) / 2, y: H - 6, "text-anchor": "middle" }, svg).textContent = "ONNX size (log scale, external data included)";
    const ylabel = el("text", { x: 12, y: (M.t + H - M.b) / 2, "text-anchor": "middle", transform: `rotate(-90 12 ${(M.t + H - M.b) / 2})` }, svg);
    ylabel.textContent = quality(points[0]).kind === "accuracy" ? "test accuracy, %" : "mean cosine to fp32";
    // The Pareto front as a dashed step line, smallest first.
    const front = points.filter((r) => r.pareto).sort((a, b) => a.onnx_bytes - b.onnx_bytes);
    if (front.length > 1) {
      let d = "";
      front.forEach((r, i) => {
        const x = sx(r.onnx_bytes), y = sy(quality(r).value);
        d += i === 0 ? `M${x},${y}` : `H${x}V${y}`;
      });
      el("path", { class: "front", d, "data-role": "pareto-front" }, svg);
    }
    const placed = [];
    for (const r of points.slice().sort((a, b) => a.onnx_bytes - b.onnx_bytes)) {
      const x = sx(r.onnx_bytes), y = sy(quality(r).value);
      const g = el("g", { class: "point", tabindex: "0", "data-model": r.model, role: "img",
        "aria-label": tooltipText(r).join("; ") }, svg);
      // Shape, not colour alone: ◆ on the Pareto front, ■ the fp32 baseline, ○ the others.
      if (r.pareto) el("path", { class: "mark", d: `M${x},${y - 8}L${x + 8},${y}L${x},${y + 8}L${x - 8},${y}Z`, fill: "#b3261e", stroke: "#1b1f24" }, g);
      else if (r.is_baseline) el("rect", { class: "mark", x: x - 6, y: y - 6, width: 12, height: 12, fill: "#0b5cad", stroke: "#1b1f24" }, g);
      else el("circle", { class: "mark", cx: x, cy: y, r: 6, fill: "#fff", stroke: "#1b1f24", "stroke-width": 2 }, g);
      el("title", {}, g).textContent = tooltipText(r).join("\n");
      // Labels moved down until they overlap no label placed before (variants often sit within pixels).
      const width = 6.2 * r.model.length, right = x + 10 + width <= W - M.r;
      // Above the point first: the Pareto front's step runs right of it at its height.
      let ly = y - 9;
      for (const dy of [-9, 18, -22, 31, -35, 44]) {
        const box = [right ? x + 8 : x - 8 - width, y + dy - 10, right ? x + 8 + width : x - 8, y + dy];
        if (!placed.some((b) => box[0] < b[2] && b[0] < box[2] && box[1] < b[3] && b[1] < box[3])) {
          placed.push(box);
          ly = y + dy;
          break;
        }
      }
      el("text", { x: right ? x + 8 : x - 8, y: ly, "text-anchor": right ? "start" : "end" }, g).textContent = r.model;
      const show = (event) => {
        const box = g.getBoundingClientRect();
        const px = event && event.pageX != null && event.type !== "focus" ? event.pageX : box.right + window.scrollX;
        const py = event && event.pageY != null && event.type !== "focus" ? event.pageY : box.top + window.scrollY;
        showTooltip(r, px, py);
      };
      g.addEventListener("mousemove", show);
      g.addEventListener("focus", show);
      g.addEventListener("mouseleave", hideTooltip);
      g.addEventListener("blur", hideTooltip);
    }
    figure.appendChild(svg);
    return figure;
  }

  function renderPlots(list) {
    const plots = $("plots");
    plots.replaceChildren();
    const families = [...new Set(list.map((r) => r.family))].sort();
    for (const family of families) plots.appendChild(plotFamily(family, list.filter((r) => r.family === family)));
  }

  function render() {
    const list = visible();
    renderTable(list);
    renderPlots(list);
  }

  function renderMeta() {
    const m = report.machine || {};
    $("machine").textContent =
      `${m.cpu_model || "unknown CPU"} (${m.logical_cpus ?? "?"} logical CPUs; flags ${(m.cpu_flags || []).join(", ") || "none listed"}), ` +
      `${report.threads} threads, Python ${m.python || "?"}, ${m.platform || ""}. Throughput at batch ${report.throughput_batch}. ` +
      `Measured ${new Date(report.created_at).toISOString().replace("T", " ").slice(0, 16)} UTC.`;
    const notes = $("notes");
    for (const r of rows) for (const note of r.notes) {
      const li = document.createElement("li");
      li.textContent = r.model + ": " + note;
      notes.appendChild(li);
    }
    for (const [family, b] of Object.entries(report.baselines || {})) {
      const li = document.createElement("li");
      li.textContent = b.latency_p50_ms != null
        ? `PyTorch eager fp32 [${family}]: p50 ${b.latency_p50_ms.toFixed(3)} ms, p99 ${b.latency_p99_ms.toFixed(3)} ms at batch 1; ` +
          `${fmt.int(b.throughput_rows_s)} rows/s at batch ${b.throughput_batch ?? report.throughput_batch}.`
        : `PyTorch eager fp32 [${family}]: not measured (${b.notes.join("; ")}).`;
      notes.appendChild(li);
    }
  }

  function init() {
    renderMeta();
    const comparable = rows.filter((r) => r.status === "ok" && r.onnx_bytes && quality(r));
    if (!comparable.length) {
      const p = $("empty");
      p.hidden = false;
      p.textContent = rows.length
        ? `No comparable models: none of the ${rows.length} model(s) in ${report.repository} has both a size and a quality figure (see the status and notes below).`
        : `No comparable models: ${report.repository} holds no models.`;
    }
    fillSelect($("family"), [...new Set(rows.map((r) => r.family))].sort());
    fillSelect($("precision"), [...new Set(rows.map((r) => r.precision))].sort());
    $("family").addEventListener("change", (e) => { state.family = e.target.value; render(); });
    $("precision").addEventListener("change", (e) => { state.precision = e.target.value; render(); });
    document.addEventListener("keydown", (e) => { if (e.key === "Escape") hideTooltip(); });
    buildHeader();
    render();
    document.body.dataset.ready = "true";
  }

  init();
})();
