// The /ui page: served models with live figures, and try-it panels that call the public API (V2 metadata and
// statistics, V1 :predict and :explain). No library and no build step; every request is same-origin.
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  // Sent on every API call: with auth on, the session cookie counts only beside this header (see session.py).
  const HEADERS = { "X-Modelpress-UI": "1" };
  const SIDE = 8; // the digits pad: 8 x 8 pixels, values 0..16 as in the training data
  const INK = 16;
  const EXAMPLE_THREE = [0, 0, 7, 15, 13, 1, 0, 0, 0, 8, 13, 6, 15, 4, 0, 0, 0, 2, 1, 13, 13, 0, 0, 0, 0, 0, 2, 15, 11, 1, 0, 0,
    0, 0, 0, 1, 12, 12, 1, 0, 0, 0, 0, 0, 1, 10, 8, 0, 0, 0, 8, 4, 5, 14, 9, 0, 0, 0, 7, 13, 13, 9, 0, 0];
  const state = { models: [], digits: [], texts: [], tabular: [], pixels: new Array(SIDE * SIDE).fill(0), cursor: 27 };

  class ApiError extends Error {}

  async function api(path, body) {
    const init = { headers: { ...HEADERS }, credentials: "same-origin" };
    if (body !== undefined) {
      init.method = "POST";
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    if (response.status === 401) {
      window.location.assign("/ui"); // the session ended (token rotated): back to the sign-in form
      throw new ApiError("signed out: the token changed or the session ended");
    }
    const text = await response.text();
    let payload = null;
    try { payload = JSON.parse(text); } catch (e) { payload = null; }
    if (!response.ok) {
      // The server's own message, e.g. "input 'input': expected shape [-1, 64] FP32, got [1, 63] FP32".
      throw new ApiError((payload && payload.error) || `HTTP ${response.status}: ${text.slice(0, 200)}`);
    }
    return payload;
  }

  function showError(id, error) {
    const p = $(id);
    if (error) {
      p.textContent = error.message || String(error);
      p.hidden = false;
    } else {
      p.hidden = true;
      p.textContent = "";
    }
  }

  const fmtBytes = (v) => {
    if (v == null) return "–";
    for (const [unit, scale] of [["GB", 1e9], ["MB", 1e6], ["kB", 1e3]]) if (v >= scale) return (v / scale).toPrecision(3) + " " + unit;
    return v + " B";
  };
  const fmt = (v, digits) => (v == null ? "–" : Number(v).toFixed(digits));

  function quality(q) {
    if (!q) return "–";
    if (q.accuracy != null) return (100 * q.accuracy).toFixed(2) + " %";
    const cos = q.mean_cosine ?? q.cosine_mean;
    if (cos != null) return "cos " + Number(cos).toFixed(4);
    return "–";
  }

  function features(meta) {
    const shape = meta.inputs[0].shape.slice(1);
    return shape.every((d) => d > 0) ? shape.reduce((a, b) => a * b, 1) : null;
  }

  // ---- served models and live figures ------------------------------------------------------------------------
  async function loadModels() {
    const server = await api("/v2");
    $("server").textContent = `${server.name} ${server.version} · Open Inference Protocol (V2) and KServe V1`;
    const stats = await api("/v2/models/stats");
    const models = [];
    for (const s of stats.model_stats) {
      const meta = await api("/v2/models/" + encodeURIComponent(s.name));
      models.push({ name: s.name, version: s.version, meta, params: meta.parameters || {} });
    }
    models.sort((a, b) => a.name.localeCompare(b.name));
    state.models = models;
    const numeric = (m) => m.meta.inputs.length === 1 && m.meta.inputs[0].datatype !== "BYTES";
    state.digits = models.filter((m) => m.params.task === "classification" && numeric(m) && features(m.meta) === SIDE * SIDE);
    state.tabular = models.filter((m) => m.params.task === "classification" && numeric(m) && !state.digits.includes(m));
    state.texts = models.filter((m) => m.params.task === "embedding" && m.meta.inputs[0].datatype === "BYTES");
    renderModels();
  }

  function cell(tr, text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }

  function renderModels() {
    const body = $("model-rows");
    body.replaceChildren();
    if (!state.models.length) {
      const tr = document.createElement("tr");
      const td = cell(tr, "No model is served (the repository is empty, or every model failed to load: see the server's log).");
      td.colSpan = 12;
      body.appendChild(tr);
    }
    for (const m of state.models) {
      const tr = document.createElement("tr");
      tr.dataset.model = m.name;
      tr.dataset.version = m.version;
      cell(tr, m.name, "name");
      cell(tr, m.version, "num");
      cell(tr, m.params.task || "–");
      cell(tr, m.params.precision || "–");
      cell(tr, fmtBytes(m.params.size_bytes), "num");
      cell(tr, quality(m.params.quality));
      cell(tr, (m.params.lineage || []).join(" → ") || "–", "lineage");
      cell(tr, (m.params.providers || []).map((p) => p.replace(/ExecutionProvider$/, "")).join(", ") || "–");
      for (const key of ["rps", "p50", "p99", "queue"]) cell(tr, "–", "num live-" + key);
      body.appendChild(tr);
    }
  }

  async function refreshLive() {
    if (document.visibilityState === "hidden") return;
    try {
      const live = await api("/ui/live");
      $("window").textContent = Math.round(live.window_s);
      for (const f of live.models) {
        const tr = document.querySelector(`#model-rows tr[data-model="${CSS.escape(f.name)}"][data-version="${CSS.escape(f.version)}"]`);
        if (!tr) continue;
        tr.querySelector(".live-rps").textContent = fmt(f.requests_per_s, 2);
        tr.querySelector(".live-p50").textContent = fmt(f.p50_ms, 2);
        tr.querySelector(".live-p99").textContent = fmt(f.p99_ms, 2);
        tr.querySelector(".live-queue").textContent = fmt(f.queue_mean_ms, 3);
      }
      document.body.dataset.live = "ok";
      showError("page-error", null);
    } catch (e) {
      showError("page-error", e);
    }
  }

  // ---- digits: the drawing pad -----------------------------------------------------------------------------
  function drawPad() {
    const canvas = $("pad"), ctx = canvas.getContext("2d"), size = canvas.width / SIDE;
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    state.pixels.forEach((v, i) => {
      const shade = Math.round(255 - (255 * v) / INK);
      ctx.fillStyle = `rgb(${shade},${shade},${shade})`;
      ctx.fillRect((i % SIDE) * size, Math.floor(i / SIDE) * size, size, size);
    });
    ctx.strokeStyle = "#d0d7de";
    for (let k = 1; k < SIDE; k++) {
      ctx.beginPath(); ctx.moveTo(k * size, 0); ctx.lineTo(k * size, canvas.height); ctx.stroke();
      ctx.beginPath(); ctx.moveTo(0, k * size); ctx.lineTo(canvas.width, k * size); ctx.stroke();
    }
    if (document.activeElement === canvas) {
      ctx.strokeStyle = "#0b5cad";
      ctx.lineWidth = 4;
      ctx.strokeRect((state.cursor % SIDE) * size + 2, Math.floor(state.cursor / SIDE) * size + 2, size - 4, size - 4);
      ctx.lineWidth = 1;
    }
    const inked = state.pixels.filter((v) => v > 0).length;
    canvas.setAttribute("aria-label", `8 by 8 drawing pad, ${inked} of 64 cells inked; cursor at row ${Math.floor(state.cursor / SIDE) + 1}, ` +
      `column ${(state.cursor % SIDE) + 1}. Arrow keys move, Space inks or clears the cell, Delete clears it.`);
  }

  function inkAt(index, soft) {
    state.pixels[index] = INK;
    if (!soft) return;
    const r = Math.floor(index / SIDE), c = index % SIDE;
    for (const [dr, dc] of [[0, 1], [1, 0], [0, -1], [-1, 0]]) {
      const rr = r + dr, cc = c + dc;
      if (rr >= 0 && rr < SIDE && cc >= 0 && cc < SIDE) state.pixels[rr * SIDE + cc] = Math.min(INK, state.pixels[rr * SIDE + cc] + 4);
    }
  }

  let timer = null;
  function predictSoon() {
    clearTimeout(timer);
    timer = setTimeout(predictDigits, 350);
  }

  function setupPad() {
    const canvas = $("pad");
    let drawing = false;
    const indexAt = (event) => {
      const box = canvas.getBoundingClientRect();
      const c = Math.floor(((event.clientX - box.left) / box.width) * SIDE), r = Math.floor(((event.clientY - box.top) / box.height) * SIDE);
      return r >= 0 && r < SIDE && c >= 0 && c < SIDE ? r * SIDE + c : null;
    };
    const stroke = (event) => {
      const i = indexAt(event);
      if (i != null) { inkAt(i, true); state.cursor = i; drawPad(); }
    };
    canvas.addEventListener("pointerdown", (e) => { drawing = true; canvas.setPointerCapture(e.pointerId); stroke(e); });
    canvas.addEventListener("pointermove", (e) => { if (drawing) stroke(e); });
    const end = () => { if (drawing) { drawing = false; predictSoon(); } };
    canvas.addEventListener("pointerup", end);
    canvas.addEventListener("pointercancel", end);
    canvas.addEventListener("keydown", (e) => {
      const moves = { ArrowLeft: -1, ArrowRight: 1, ArrowUp: -SIDE, ArrowDown: SIDE };
      if (e.key in moves) {
        const next = state.cursor + moves[e.key];
        const sameRow = Math.floor(next / SIDE) === Math.floor(state.cursor / SIDE);
        if (next >= 0 && next < SIDE * SIDE && (Math.abs(moves[e.key]) === SIDE || sameRow)) state.cursor = next;
      } else if (e.key === " " || e.key === "Enter") {
        state.pixels[state.cursor] = state.pixels[state.cursor] >= INK / 2 ? 0 : INK;
        predictSoon();
      } else if (e.key === "Delete" || e.key === "Backspace") {
        state.pixels[state.cursor] = 0;
        predictSoon();
      } else {
        return;
      }
      e.preventDefault();
      drawPad();
    });
    canvas.addEventListener("focus", drawPad);
    canvas.addEventListener("blur", drawPad);
    $("clear").addEventListener("click", () => { state.pixels.fill(0); drawPad(); clearDigitResults(); });
    $("example").addEventListener("click", () => { state.pixels = EXAMPLE_THREE.slice(); drawPad(); predictDigits(); });
    $("predict").addEventListener("click", predictDigits);
    $("explain-model").addEventListener("change", explainDigit);
    drawPad();
  }

  function clearDigitResults() {
    $("digits-results").querySelector("tbody").replaceChildren();
    const heat = $("heat");
    heat.getContext("2d").clearRect(0, 0, heat.width, heat.height);
    delete heat.dataset.state;
    showError("digits-error", null);
  }

  async function predictDigits() {
    showError("digits-error", null);
    const body = $("digits-results").querySelector("tbody");
    const rows = [];
    try {
      for (const m of state.digits) {
        const started = performance.now();
        const out = await api(`/v1/models/${encodeURIComponent(m.name)}:predict`, { instances: [state.pixels] });
        const ms = performance.now() - started;
        const p = out.predictions[0];
        rows.push([m.name, p.label, p.probabilities[p.label], ms]);
      }
    } catch (e) {
      showError("digits-error", e);
      return;
    }
    body.replaceChildren();
    for (const [name, label, prob, ms] of rows) {
      const tr = document.createElement("tr");
      tr.dataset.model = name;
      cell(tr, name);
      cell(tr, label, "prediction");
      cell(tr, fmt(prob, 3), "num");
      cell(tr, fmt(ms, 1), "num");
      body.appendChild(tr);
    }
    await explainDigit();
  }

  async function explainDigit() {
    const name = $("explain-model").value;
    if (!name) return;
    let e;
    try {
      const out = await api(`/v1/models/${encodeURIComponent(name)}:explain`, { instances: [state.pixels] });
      e = out.explanations[0];
    } catch (error) {
      showError("digits-error", error);
      return;
    }
    drawHeat(e, name);
  }

  function drawHeat(e, name) {
    const canvas = $("heat"), ctx = canvas.getContext("2d"), size = canvas.width / SIDE;
    const values = e.attributions.flat(Infinity);
    const peak = Math.max(1e-12, ...values.map(Math.abs));
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    values.forEach((v, i) => {
      const x = (i % SIDE) * size, y = Math.floor(i / SIDE) * size;
      const ink = Math.round(255 - (110 * state.pixels[i]) / INK); // the drawing, faint, under the map
      ctx.fillStyle = `rgb(${ink},${ink},${ink})`;
      ctx.fillRect(x, y, size, size);
      const strength = Math.abs(v) / peak;
      ctx.fillStyle = v >= 0 ? `rgba(217,130,43,${strength})` : `rgba(59,125,216,${strength})`;
      ctx.fillRect(x, y, size, size);
      if (strength >= 0.2) { // marks, so the map reads without colour too
        ctx.fillStyle = strength > 0.55 ? "#fff" : "#1b1f24";
        ctx.font = `bold ${Math.round(size * 0.55)}px system-ui, sans-serif`;
        ctx.textAlign = "center";
        ctx.textBaseline = "middle";
        ctx.fillText(v >= 0 ? "+" : "−", x + size / 2, y + size / 2);
      }
    });
    const top = values.map((v, i) => [v, i]).sort((a, b) => b[0] - a[0])[0];
    canvas.dataset.state = "explained";
    canvas.dataset.cells = String(values.length);
    canvas.setAttribute("aria-label", `attribution map of ${name} for its prediction ${e.target}: the pixel at row ` +
      `${Math.floor(top[1] / SIDE) + 1}, column ${(top[1] % SIDE) + 1} supported it most`);
    $("heat-caption").textContent = `${name} predicts ${e.target} (p = ${fmt(e.probability, 3)}). + pixels (orange) ` +
      `pushed it towards ${e.target}, − (blue) away; occlusion with the ${e.baseline} as the blank value, ${e.model_rows} model rows.`;
  }

  // ---- text: two sentences -----------------------------------------------------------------------------------
  function cosine(a, b) {
    let dot = 0, na = 0, nb = 0;
    for (let i = 0; i < a.length; i++) { dot += a[i] * b[i]; na += a[i] * a[i]; nb += b[i] * b[i]; }
    return dot / Math.sqrt(na * nb);
  }

  const vector = (p) => (Array.isArray(p) ? p.flat(Infinity) : Object.values(p)[0].flat(Infinity));

  async function compareTexts() {
    showError("text-error", null);
    const texts = [$("text-a").value, $("text-b").value];
    const rows = [];
    try {
      for (const m of state.texts) {
        const started = performance.now();
        const out = await api(`/v1/models/${encodeURIComponent(m.name)}:predict`, { instances: texts });
        const ms = performance.now() - started;
        rows.push([m.name, cosine(vector(out.predictions[0]), vector(out.predictions[1])), ms]);
      }
    } catch (e) {
      showError("text-error", e);
      return;
    }
    const body = $("text-results").querySelector("tbody");
    body.replaceChildren();
    for (const [name, similarity, ms] of rows) {
      const tr = document.createElement("tr");
      tr.dataset.model = name;
      cell(tr, name);
      cell(tr, fmt(similarity, 4), "num similarity");
      cell(tr, fmt(ms, 1), "num");
      body.appendChild(tr);
    }
    await explainTexts(texts);
  }

  function bar(parent, label, value, peak, text) {
    const row = document.createElement("div");
    row.className = "bar-row";
    const name = document.createElement("span");
    name.textContent = label;
    const track = document.createElement("div");
    track.className = "bar-track";
    const fill = document.createElement("div");
    fill.className = "bar" + (value < 0 ? " negative" : "");
    fill.style.width = (100 * Math.abs(value)) / Math.max(peak, 1e-12) + "%";
    track.appendChild(fill);
    const number = document.createElement("span");
    number.className = "bar-value";
    number.textContent = text;
    row.append(name, track, number);
    parent.appendChild(row);
  }

  async function explainTexts(texts) {
    const name = $("text-explain-model").value;
    const target = $("token-bars");
    target.replaceChildren();
    if (!name) return;
    let out;
    try {
      out = await api(`/v1/models/${encodeURIComponent(name)}:explain`, { instances: texts });
    } catch (e) {
      showError("text-error", e);
      return;
    }
    const heading = document.createElement("h3");
    heading.textContent = `Words that moved ${name}'s embedding most (1 − cosine when the word is removed)`;
    target.appendChild(heading);
    out.explanations.forEach((e, k) => {
      const scored = e.tokens.map((t, i) => [t, e.attributions[i]]).filter(([, v]) => v != null);
      const peak = Math.max(0, ...scored.map(([, v]) => Math.abs(v)));
      const p = document.createElement("p");
      p.className = "sentence";
      p.textContent = `Sentence ${k + 1}: “${texts[k]}”`;
      target.appendChild(p);
      for (const [t, v] of scored.sort((a, b) => b[1] - a[1]).slice(0, 5)) bar(target, t, v, peak, v.toFixed(4));
      if (!scored.length) {
        const note = document.createElement("p");
        note.className = "hint";
        note.textContent = "One word only: removing it leaves nothing to compare.";
        target.appendChild(note);
      }
    });
    target.dataset.state = "explained";
  }

  // ---- tabular classifiers -----------------------------------------------------------------------------------
  function fillTabularInput() {
    const m = state.tabular.find((t) => t.name === $("tab-model").value);
    if (m) $("tab-input").value = JSON.stringify(new Array(features(m.meta) || 1).fill(0));
  }

  async function explainTabular() {
    showError("tab-error", null);
    const result = $("tab-result");
    result.replaceChildren();
    let instance;
    try {
      instance = JSON.parse($("tab-input").value);
    } catch (e) {
      showError("tab-error", new Error("the instance is not valid JSON: " + e.message));
      return;
    }
    let e;
    try {
      e = (await api(`/v1/models/${encodeURIComponent($("tab-model").value)}:explain`, { instances: [instance] })).explanations[0];
    } catch (error) {
      showError("tab-error", error);
      return;
    }
    const values = e.attributions.flat(Infinity);
    const names = e.feature_names || values.map((_, i) => "feature " + i);
    const p = document.createElement("p");
    p.textContent = `Prediction ${e.target} (p = ${fmt(e.probability, 3)}). Top features (drop in p when set to the ${e.baseline}):`;
    result.appendChild(p);
    const peak = Math.max(...values.map(Math.abs));
    values.map((v, i) => [names[i], v]).sort((a, b) => Math.abs(b[1]) - Math.abs(a[1])).slice(0, 8)
      .forEach(([n, v]) => bar(result, n, v, peak, (v >= 0 ? "+" : "−") + Math.abs(v).toFixed(4)));
    result.dataset.state = "explained";
  }

  function fillSelect(id, models) {
    const select = $(id);
    select.replaceChildren();
    for (const m of models) {
      const option = document.createElement("option");
      option.value = m.name;
      option.textContent = `${m.name} (${m.params.precision || "?"})`;
      select.appendChild(option);
    }
  }

  async function init() {
    try {
      await loadModels();
    } catch (e) {
      showError("page-error", e);
      return;
    }
    if (state.digits.length) {
      $("digits-panel").hidden = false;
      fillSelect("explain-model", state.digits);
      setupPad();
    }
    if (state.texts.length) {
      $("text-panel").hidden = false;
      fillSelect("text-explain-model", state.texts);
      $("compare").addEventListener("click", compareTexts);
    }
    if (state.tabular.length) {
      $("tabular-panel").hidden = false;
      fillSelect("tab-model", state.tabular);
      $("tab-model").addEventListener("change", fillTabularInput);
      $("tab-explain").addEventListener("click", explainTabular);
      fillTabularInput();
    }
    await refreshLive();
    setInterval(refreshLive, 2000);
    document.body.dataset.ready = "true";
  }

  init();
})();
