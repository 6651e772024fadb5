// Rampart's live dashboard: reads this listener's /metrics once a second
// and shows rates over the last interval; a purge needs the admin token,
// typed here and sent as a header, never in a URL.
"use strict";

const HISTORY = 300;
let previous = null;
const history = [];

// Parses Prometheus / OpenMetrics text into {name: [{labels, value}]}.
function parse(text) {
  const out = {};
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/);
    if (!m) continue;
    const labels = {};
    if (m[3]) {
      for (const l of m[3].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
        labels[l[1]] = l[2].replace(/\\"/g, '"').replace(/\\\\/g, "\\");
      }
    }
    (out[m[1]] = out[m[1]] || []).push({ labels, value: Number(m[4]) });
  }
  return out;
}

function key(labels, names) { return names.map((n) => labels[n] || "").join("\u0000"); }

// Sums a metric's samples by the given labels: Map(key -> {labels, value}).
function sum(metrics, name, by = [], where = () => true) {
  const out = new Map();
  for (const s of metrics[name] || []) {
    if (!where(s.labels)) continue;
    const k = key(s.labels, by);
    const e = out.get(k) || { labels: s.labels, value: 0 };
    e.value += s.value;
    out.set(k, e);
  }
  return out;
}

function total(metrics, name, where) {
  let t = 0;
  for (const e of sum(metrics, name, [], where).values()) t += e.value;
  return t;
}

// Per-second change of a counter between two scrapes, by labels.
function rate(now, before, dt, name, by = [], where) {
  const a = sum(now, name, by, where), b = before ? sum(before, name, by, where) : new Map();
  const out = new Map();
  for (const [k, e] of a) out.set(k, { labels: e.labels, value: Math.max(0, e.value - ((b.get(k) || {}).value || 0)) / dt });
  return out;
}

// The q-quantile (seconds) of a histogram's observations between scrapes.
function quantile(now, before, name, q, where = () => true) {
  const buckets = new Map();
  for (const [snap, sign] of [[now, 1], [before, -1]]) {
    for (const s of (snap && snap[name + "_bucket"]) || []) {
      if (!where(s.labels)) continue;
      const le = s.labels.le === "+Inf" ? Infinity : Number(s.labels.le);
      buckets.set(le, (buckets.get(le) || 0) + sign * s.value);
    }
  }
  const edges = [...buckets.keys()].sort((a, b) => a - b);
  const count = buckets.get(Infinity) || 0;
  if (count <= 0) return null;
  const want = q * count;
  let lower = 0, below = 0;
  for (const le of edges) {
    const c = buckets.get(le);
    if (c >= want) {
      if (le === Infinity) return lower;
      return lower + (le - lower) * ((want - below) / Math.max(c - below, 1e-9));
    }
    lower = le; below = c;
  }
  return null;
}

const ms = (s) => (s == null ? "–" : (s * 1000).toFixed(s < 0.01 ? 2 : 0));
const num = (v) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));
const pct = (v) => (v == null || !isFinite(v) ? "–" : (100 * v).toFixed(1) + " %");

function text(id, value, cls) {
  const el = document.getElementById(id);
  el.textContent = value;
  if (cls !== undefined) el.className = cls;
}

function rows(id, data) {
  const body = document.querySelector("#" + id + " tbody");
  body.replaceChildren(...data.map((cells) => {
    const tr = document.createElement("tr");
    for (const c of cells) {
      const td = document.createElement("td");
      if (typeof c === "object" && c) { td.textContent = c.text; td.className = c.cls || ""; } else td.textContent = c;
      tr.appendChild(td);
    }
    return tr;
  }));
}

function draw() {
  const canvas = document.getElementById("chart");
  const g = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, pad = 30;
  g.clearRect(0, 0, w, h);
  g.font = "11px system-ui";
  const series = [["rps", "#2e5aac"], ["p95", "#c01048"]];
  for (let i = 0; i <= 4; i++) {
    const y = pad / 2 + ((h - pad) * i) / 4;
    g.strokeStyle = "#e4e7ec"; g.beginPath(); g.moveTo(pad, y); g.lineTo(w, y); g.stroke();
  }
  series.forEach(([field, color], n) => {
    const values = history.map((p) => p[field]).filter((v) => v != null);
    const max = Math.max(1e-9, ...values);
    g.strokeStyle = color; g.lineWidth = 2; g.beginPath();
    history.forEach((p, i) => {
      if (p[field] == null) return;
      const x = pad + ((w - pad) * i) / Math.max(HISTORY - 1, 1);
      const y = pad / 2 + (h - pad) * (1 - p[field] / max);
      i === 0 ? g.moveTo(x, y) : g.lineTo(x, y);
    });
    g.stroke();
    g.fillStyle = color;
    g.fillText(field + " max " + (field === "p95" ? max.toFixed(1) + " ms" : max.toFixed(0) + "/s"), pad + 4 + n * 160, 11);
  });
}

function render(now, before, dt) {
  const build = (now.rampart_build_info || [])[0];
  if (build) text("build", "build " + build.labels.version + " (" + build.labels.commit + ")");
  const generation = total(now, "rampart_config_generation");
  const reloads = sum(now, "rampart_config_reloads_total", ["result"]);
  const rejected = [...reloads.values()].filter((e) => e.labels.result === "rejected").reduce((a, e) => a + e.value, 0);
  text("config", "config generation " + generation + (rejected ? ", " + rejected + " reload(s) rejected" : ""), rejected ? "warn" : "");
  const redis = now.rampart_redis_up;
  text("redis", redis ? (redis[0].value ? "Redis up" : "Redis DOWN") : "", redis && !redis[0].value ? "bad" : "ok");

  const requests = "rampart_request_duration_seconds_count";
  const rps = [...rate(now, before, dt, requests).values()].reduce((a, e) => a + e.value, 0);
  text("rps", num(rps));
  const lookups = [...rate(now, before, dt, "rampart_cache_results_total", [], (l) => l.result !== "bypass" && l.result !== "uncacheable").values()].reduce((a, e) => a + e.value, 0);
  const byTier = rate(now, before, dt, "rampart_cache_hits_total", ["tier"]);
  const tier = (t) => [...byTier.values()].filter((e) => e.labels.tier === t).reduce((a, e) => a + e.value, 0);
  text("hits", lookups ? pct(tier("l1") / lookups) + " / " + pct(tier("l2") / lookups) : "–");
  const h = "rampart_request_duration_seconds";
  const p95 = quantile(now, before, h, 0.95);
  text("latency", ms(quantile(now, before, h, 0.5)) + " / " + ms(p95) + " / " + ms(quantile(now, before, h, 0.99)) + " ms");
  const classes = ["2", "3", "4", "5"].map((c) => [...rate(now, before, dt, requests, [], (l) => (l.status || "").startsWith(c)).values()].reduce((a, e) => a + e.value, 0));
  text("classes", classes.map(num).join(" / "), classes[3] > 0 ? "bad" : "");
  text("inflight", total(now, "rampart_in_flight_requests") + " / " + total(now, "rampart_open_connections", (l) => l.listener === "public"));
  const limited = [...rate(now, before, dt, "rampart_rate_limited_total").values()].reduce((a, e) => a + e.value, 0);
  const shed = [...rate(now, before, dt, "rampart_shed_requests_total").values()].reduce((a, e) => a + e.value, 0);
  text("refused", num(limited) + " / " + num(shed), limited + shed > 0 ? "warn" : "");

  history.push({ rps, p95: p95 == null ? null : p95 * 1000 });
  while (history.length > HISTORY) history.shift();
  draw();

  const routes = [...sum(now, requests, ["route"]).values()].map((e) => e.labels.route).sort();
  rows("routes", routes.map((route) => {
    const on = (l) => l.route === route;
    const r = [...rate(now, before, dt, requests, [], on).values()].reduce((a, e) => a + e.value, 0);
    const errors = [...rate(now, before, dt, requests, [], (l) => on(l) && (l.status || "").startsWith("5")).values()].reduce((a, e) => a + e.value, 0);
    const looked = [...rate(now, before, dt, "rampart_cache_results_total", [], (l) => on(l) && l.result !== "bypass" && l.result !== "uncacheable").values()].reduce((a, e) => a + e.value, 0);
    const hit = [...rate(now, before, dt, "rampart_cache_hits_total", [], on).values()].reduce((a, e) => a + e.value, 0);
    const lim = [...rate(now, before, dt, "rampart_rate_limited_total", [], on).values()].reduce((a, e) => a + e.value, 0);
    return [route, num(r), ms(quantile(now, before, h, 0.95, on)), looked ? pct(hit / looked) : "–", { text: num(errors), cls: errors ? "bad" : "" }, num(lim)];
  }));

  const upstreams = [...sum(now, "rampart_upstream_healthy_targets", ["upstream"]).values()].map((e) => e.labels.upstream).sort();
  rows("upstreams", upstreams.map((u) => {
    const on = (l) => l.upstream === u;
    const healthy = total(now, "rampart_upstream_healthy_targets", on);
    const open = (now.rampart_circuit_state || []).filter((s) => on(s.labels) && s.value === 2).length;
    const depth = ["critical", "high", "default", "low"].map((p) => total(now, "rampart_queue_depth", (l) => on(l) && l.priority === p)).join("/");
    const capacity = (now.rampart_queue_capacity || []).filter((s) => on(s.labels)).map((s) => s.value)[0];
    const shedU = [...rate(now, before, dt, "rampart_shed_requests_total", [], on).values()].reduce((a, e) => a + e.value, 0);
    const retries = [...rate(now, before, dt, "rampart_upstream_retries_total", [], on).values()].reduce((a, e) => a + e.value, 0);
    return [u, { text: String(healthy), cls: healthy ? "ok" : "bad" }, { text: String(open), cls: open ? "bad" : "" },
      capacity === undefined ? "no queue" : depth + " / " + capacity, num(shedU), num(retries),
      ms(quantile(now, before, "rampart_upstream_duration_seconds", 0.95, on))];
  }));

  const purges = sum(now, "rampart_purges_total", ["source"]);
  const keys = sum(now, "rampart_purged_keys_total", ["source"]);
  const events = sum(now, "rampart_events_total", ["event"]);
  rows("purges", [
    ...[...purges.values()].map((e) => [e.labels.source, String(e.value), String((keys.get(key(e.labels, ["source"])) || {}).value || 0)]),
    ...[...events.values()].map((e) => ["event " + e.labels.event, String(e.value), ""]),
  ]);
}

async function tick() {
  try {
    const started = performance.now();
    const response = await fetch("/metrics", { cache: "no-store" });
    if (!response.ok) throw new Error("/metrics answered " + response.status);
    const now = parse(await response.text());
    const at = performance.now();
    const dt = previous ? (at - previous.at) / 1000 : 1;
    render(now, previous && previous.metrics, Math.max(dt, 0.001));
    previous = { metrics: now, at };
    text("status", "updated " + new Date().toLocaleTimeString() + " (" + Math.round(at - started) + " ms)", "");
  } catch (e) {
    text("status", "cannot read /metrics: " + e.message, "bad");
  }
}

document.getElementById("purge").addEventListener("submit", async (event) => {
  event.preventDefault();
  const token = document.getElementById("token").value;
  const body = document.getElementById("what").value;
  try {
    const response = await fetch("/admin/purge", {
      method: "POST",
      headers: { Authorization: "Bearer " + token, "Content-Type": "application/json" },
      body,
    });
    text("purged", response.status + " " + (await response.text()), response.ok ? "ok" : "bad");
  } catch (e) {
    text("purged", e.message, "bad");
  }
});

tick();
setInterval(tick, 1000);
