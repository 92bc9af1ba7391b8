// inferd status page: polls the JSON API of the server that served it and draws what it finds.
//
// Every REFRESH seconds: each model's traffic over the last minute (/v1/models/{m}/metrics)
// is added to its charts. Every SLOW_EVERY refreshes: models and versions, experiments,
// rollouts, alerts. Every DRIFT_MS: drift (a drift read runs a check, so not every tick).
// Anything that answers 404 (an older server) or 403 (a key without the role) is shown as
// "not available" rather than breaking the rest of the page.
"use strict";

const params = new URLSearchParams(window.location.search);
const REFRESH_S = Math.min(60, Math.max(0.5, Number(params.get("refresh")) || 2));
const SLOW_EVERY = Math.max(1, Math.round(10 / REFRESH_S));
const DRIFT_MS = 30000;
const KEY_STORE = "inferd.apiKey";
const MAX_ALERTS = 20;

const state = {
  key: window.sessionStorage.getItem(KEY_STORE) || "",
  models: [],          // [{name, versions: [{version, stage, status, served, memory}]}]
  modelsNote: "",      // why the models table is partial or empty
  drift: new Map(),    // model -> {version -> status} or a reason string
  charts: new Map(),   // model -> {rate, latency, errors}
  tick: 0,
  reload: true,        // reload everything at the next tick (a key was entered)
  driftAt: 0,
};

async function api(path) {
  const headers = {Accept: "application/json"};
  if (state.key) {
    headers.Authorization = `Bearer ${state.key}`;
  }
  try {
    const response = await fetch(path, {headers, cache: "no-store"});
    let body = null;
    try {
      body = await response.json();
    } catch (err) {
      body = null;
    }
    return {ok: response.ok, status: response.status, body};
  } catch (err) {
    return {ok: false, status: 0, body: null};
  }
}

/** Why a read failed, in words a user can act on. */
function reason(reply, what) {
  if (reply.status === 404 || reply.status === 405) {
    return `${what}: not available on this server`;
  }
  if (reply.status === 401) {
    return `${what}: not available without an API key (enter one above)`;
  }
  if (reply.status === 403) {
    return `${what}: not available to this key (needs the operator role)`;
  }
  if (reply.status === 0) {
    return `${what}: server unreachable`;
  }
  const detail = reply.body && reply.body.error ? reply.body.error : `HTTP ${reply.status}`;
  return `${what}: ${detail}`;
}

function cell(value, cls) {
  const td = document.createElement("td");
  td.textContent = value === null || value === undefined || value === "" ? "–" : String(value);
  if (cls) {
    td.className = cls;
  }
  return td;
}

function fillTable(id, rows, status) {
  const body = document.querySelector(`#${id} tbody`);
  body.replaceChildren(...rows);
  document.querySelector(`.status[data-for="${id}"]`).textContent = status || "";
}

function notice(text) {
  const box = document.getElementById("notice");
  box.textContent = text || "";
  box.hidden = !text;
}

function bytes(n) {
  if (n === null || n === undefined) {
    return null;
  }
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function when(value) {
  if (value === null || value === undefined || value === "") {
    return null;
  }
  const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString();
}

// ---- models and versions ----

async function loadModels() {
  const list = await api("/v1/models");
  if (list.ok) {
    const details = await Promise.all(list.body.map((m) => api(`/v1/models/${encodeURIComponent(m.name)}`)));
    return {models: details.map((d, i) => ({
      name: list.body[i].name,
      versions: d.ok ? d.body.versions.map((v) => ({version: String(v.version), stage: v.stage,
                                                      status: v.status, served: v.served})) : [],
    }))};
  }
  // A predict key may not list the registry; the served versions it may still read.
  const stats = await api("/v2/models/stats");
  if (!stats.ok) {
    return {models: null, error: reason(list, "models")};
  }
  const byName = new Map();
  for (const s of stats.body.model_stats) {
    if (!byName.has(s.name)) {
      byName.set(s.name, {name: s.name, versions: []});
    }
    byName.get(s.name).versions.push({version: String(s.version), stage: null, status: null,
                                      served: null});
  }
  return {models: [...byName.values()], error: "registry stages need an operator key"};
}

async function addServedState(models) {
  const reads = [];
  for (const model of models) {
    for (const v of model.versions) {
      if (v.served === null || v.served === "READY") {
        const path = `/v2/models/${encodeURIComponent(model.name)}/versions/${encodeURIComponent(v.version)}`;
        reads.push(api(path).then((r) => {
          if (r.ok && r.body.parameters) {
            v.served = r.body.parameters.state;
            v.memory = r.body.parameters.memory_bytes;
            v.device = r.body.parameters.device;
          }
        }));
      }
    }
  }
  await Promise.all(reads);
}

function driftText(model, version) {
  const found = state.drift.get(model);
  if (found === undefined) {
    return {text: "…"};
  }
  if (typeof found === "string") {
    return {text: found, cls: "muted"};
  }
  const status = found[version];
  if (status === undefined) {
    return {text: "not watched", cls: "muted"};
  }
  return {text: status.replace("_", " "), cls: status === "drift" ? "bad" : status === "ok" ? "good" : "muted"};
}

function renderModels() {
  const rows = [];
  for (const model of state.models) {
    for (const v of model.versions) {
      const tr = document.createElement("tr");
      tr.dataset.model = model.name;
      tr.dataset.version = v.version;
      const drift = driftText(model.name, v.version);
      const device = v.device ? ` (${v.device})` : "";
      tr.append(cell(model.name), cell(v.version), cell(v.stage), cell(v.status),
                cell(v.served, v.served === "READY" ? "good" : v.served === "UNAVAILABLE" ? "bad" : ""),
                cell(v.memory === undefined ? null : bytes(v.memory) + device), cell(drift.text, drift.cls));
      rows.push(tr);
    }
  }
  fillTable("models", rows, state.modelsNote || (rows.length ? "" : "no models registered"));
}

async function refreshModels() {
  const found = await loadModels();
  state.modelsNote = found.error || "";
  if (found.models === null) {
    state.models = [];
    renderModels();
    syncCharts();  // no models to show: no charts either
    return;
  }
  await addServedState(found.models);
  state.models = found.models;
  renderModels();
  syncCharts();
}

// ---- traffic charts ----

function syncCharts() {
  const box = document.getElementById("charts");
  const names = new Set(state.models.map((m) => m.name));
  for (const [name, charts] of state.charts) {
    if (!names.has(name)) {
      charts.card.remove();
      state.charts.delete(name);
    }
  }
  for (const name of names) {
    if (state.charts.has(name)) {
      continue;
    }
    const card = document.createElement("div");
    card.className = "model-charts";
    card.dataset.model = name;
    const title = document.createElement("h3");
    title.textContent = name;
    const figure = (metric) => {
      const f = document.createElement("figure");
      f.dataset.model = name;
      f.dataset.metric = metric;
      return f;
    };
    const rate = figure("rate");
    const latency = figure("latency");
    const errors = figure("errors");
    card.append(title, rate, latency, errors);
    box.append(card);
    state.charts.set(name, {
      card,
      rate: new LineChart(rate, {title: "requests per second", series: ["req/s"]}),
      latency: new LineChart(latency, {title: "latency", series: ["p50", "p95", "p99"], unit: " ms"}),
      errors: new LineChart(errors, {title: "errors (% of requests)", series: ["5xx", "4xx"], unit: "%"}),
    });
  }
}

async function refreshMetrics() {
  const now = Date.now();
  await Promise.all([...state.charts.entries()].map(async ([name, charts]) => {
    const reply = await api(`/v1/models/${encodeURIComponent(name)}/metrics?minutes=1`);
    const total = reply.ok ? reply.body.total : null;
    if (!total) {
      charts.rate.push(now, [null]);
      charts.latency.push(now, [null, null, null]);
      charts.errors.push(now, [null, null]);
      charts.card.title = reason(reply, "traffic");
      return;
    }
    const share = (n) => (total.requests ? (100 * n) / total.requests : 0);
    charts.rate.push(now, [total.request_rate]);
    charts.latency.push(now, [total.latency.p50_ms, total.latency.p95_ms, total.latency.p99_ms]);
    charts.errors.push(now, [share(total.errors), share(total.client_errors)]);
    charts.card.title = "";
  }));
}

// ---- drift, experiments, rollouts, alerts ----

async function refreshDrift() {
  await Promise.all(state.models.map(async (model) => {
    const reply = await api(`/v1/models/${encodeURIComponent(model.name)}/drift`);
    if (!reply.ok) {
      state.drift.set(model.name, reason(reply, "drift").replace(/^drift: /, ""));
      return;
    }
    const byVersion = {};
    for (const v of reply.body.versions) {
      byVersion[String(v.version)] = v.status;
    }
    state.drift.set(model.name, byVersion);
  }));
  renderModels();
}

async function refreshExperiments() {
  const reply = await api("/v1/experiments");
  if (!reply.ok) {
    fillTable("experiments", [], reason(reply, "experiments"));
    return;
  }
  const rows = reply.body.map((e) => {
    const tr = document.createElement("tr");
    tr.dataset.id = e.id;
    const weights = (e.weights || []).map((w) => `${(100 * w).toFixed(0)}%`).join(" / ");
    tr.append(cell(e.id), cell(e.name), cell(e.model), cell(e.state), cell(weights), cell(e.winner));
    return tr;
  });
  fillTable("experiments", rows, rows.length ? "" : "no experiments");
}

async function refreshRollouts() {
  const reply = await api("/v1/rollouts");
  if (!reply.ok) {
    fillTable("rollouts", [], reason(reply, "rollouts"));
    return;
  }
  const rows = reply.body.map((r) => {
    const tr = document.createElement("tr");
    tr.dataset.id = r.id;
    tr.append(cell(r.id), cell(r.name), cell(r.model),
              cell(r.state, r.state === "rolled_back" ? "bad" : r.state === "completed" ? "good" : ""),
              cell(`${r.baseline} → ${r.candidate}`), cell(`${r.percent}%`), cell(r.reason));
    return tr;
  });
  fillTable("rollouts", rows, rows.length ? "" : "no rollouts");
}

async function refreshAlerts() {
  const reply = await api("/v1/alerts?limit=" + MAX_ALERTS);
  if (!reply.ok) {
    fillTable("alerts", [], reason(reply, "alerts"));
    return;
  }
  // Active ones (pending, firing) first, newest first; then fired ones from the history.
  const body = reply.body;
  const active = [...(body.active || [])].reverse();
  const seen = new Set(active.map((a) => a.id));
  const list = active.concat((body.history || []).filter((a) => !seen.has(a.id))).slice(0, MAX_ALERTS);
  const rows = list.map((a) => {
    const tr = document.createElement("tr");
    tr.dataset.id = String(a.id);
    const labels = a.labels || {};
    const about = [labels.model, labels.version && `v${labels.version}`, labels.rollout, labels.job]
      .filter(Boolean).join(" ");
    tr.append(cell(when(a.fired_at || a.started_at)), cell(a.rule), cell(about),
              cell(`${a.state} (${a.severity})`, a.state === "firing" ? "bad" : a.state === "resolved" ? "good" : ""),
              cell(a.summary));
    return tr;
  });
  const none = body.evaluating === false ? "no alert rules on this server (inferd serve --alerts-file)" : "no alerts";
  fillTable("alerts", rows, rows.length ? "" : none);
}

// ---- the loop ----

async function refreshSlow() {
  await refreshModels();
  await Promise.all([refreshExperiments(), refreshRollouts(), refreshAlerts()]);
  if (Date.now() - state.driftAt >= DRIFT_MS) {
    state.driftAt = Date.now();
    await refreshDrift();
  }
}

async function tick() {
  try {
    const probe = await api("/v2/health/live");
    if (probe.status === 0) {
      notice("The server does not answer; retrying.");
    } else {
      notice("");
      if (state.reload || state.tick % SLOW_EVERY === 0) {
        state.reload = false;
        await refreshSlow();
      }
      await refreshMetrics();
      document.getElementById("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
      document.body.dataset.ticks = String(state.tick + 1);
    }
  } catch (err) {
    notice(`The page hit an error: ${err}`);
  } finally {
    state.tick += 1;
    window.setTimeout(tick, REFRESH_S * 1000);
  }
}

function start() {
  document.getElementById("refresh").textContent = String(REFRESH_S);
  const input = document.getElementById("api-key");
  input.value = state.key;
  document.getElementById("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    state.key = input.value.trim();
    window.sessionStorage.setItem(KEY_STORE, state.key);
    state.reload = true;  // the next tick reloads everything with the key
    state.driftAt = 0;
  });
  document.getElementById("forget-key").addEventListener("click", () => {
    state.key = "";
    input.value = "";
    window.sessionStorage.removeItem(KEY_STORE);
    state.reload = true;
    state.driftAt = 0;
  });
  tick();
}

document.addEventListener("DOMContentLoaded", start);
