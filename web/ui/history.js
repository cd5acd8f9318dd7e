// envhub UI: the History page. The filters of GET /executions, a table paged by cursor, one
// execution's detail, export as CSV or JSON lines (fetched with the key, saved from a Blob), a
// chart of executions per day by status (SVG drawn here) and the audit chain's status.
import { $, ApiError, badge, download, fact, fmtBytes, fmtDuration, fmtTime, get, h, pictureFigures, qs, rememberedPictures,
  showError } from "./api.js";

const STATUSES = ["succeeded", "failed", "timeout", "oom", "error", "interrupted"];
const COLORS = { succeeded: "#16a34a", failed: "#dc2626", timeout: "#d97706", oom: "#7c3aed", error: "#6b7280",
  interrupted: "#0891b2", running: "#2563eb", queued: "#93c5fd" };
const SVG = "http://www.w3.org/2000/svg";

let ctx;
let cursors = [""];   // cursor of each page shown so far; the last is the current page's
let nextCursor = null;
let filters = {};
let loadedOnce = false;

export function init(c) {
  ctx = c;
  $("hist-filters").addEventListener("submit", (e) => {
    e.preventDefault();
    applyFilters();
  });
  $("hist-filters").addEventListener("reset", () => setTimeout(applyFilters, 0));
  $("hist-next").addEventListener("click", () => {
    if (!nextCursor) return;
    cursors.push(nextCursor);
    loadPage();
  });
  $("hist-prev").addEventListener("click", () => {
    if (cursors.length < 2) return;
    cursors.pop();
    loadPage();
  });
  $("hist-close").addEventListener("click", () => { location.hash = "#/history"; });
  $("hist-export-csv").addEventListener("click", () => exportAs("csv"));
  $("hist-export-jsonl").addEventListener("click", () => exportAs("jsonl"));
  $("hist-verify").addEventListener("click", verifyChain);
}

export function reset() {
  loadedOnce = false;
  cursors = [""];
}

export async function show(id) {
  // runners and curators see their own executions only: no principal filter for them
  $("hist-principal-box").hidden = !!(ctx.me && ctx.me.own_history_only);
  if (!loadedOnce) {
    loadedOnce = true;
    loadEnvNames();
    applyFilters();
  }
  if (id) openDetail(id);
  else $("hist-detail").hidden = true;
}

async function loadEnvNames() {
  try {
    const doc = await get("/environments");
    $("hist-env-list").replaceChildren(...(doc.environments || []).map((e) => h("option", { value: e.name })));
  } catch {
    /* the field still takes any name */
  }
}

function isoOf(local) {
  if (!local) return "";
  const d = new Date(local);
  return Number.isNaN(d.getTime()) ? "" : d.toISOString();
}

function readFilters() {
  const f = {
    environment: $("hist-env").value.trim(),
    environment_version: $("hist-version").value.trim(),
    code_sha256: $("hist-sha").value.trim().toLowerCase(),
    status: $("hist-status").value,
    since: isoOf($("hist-since").value),
    until: isoOf($("hist-until").value),
    q: $("hist-q").value.trim(),
  };
  if (!(ctx.me && ctx.me.own_history_only)) f.principal = $("hist-principal").value.trim();
  return f;
}

function applyFilters() {
  filters = readFilters();
  cursors = [""];
  loadPage();
  if (ctx.can("audit")) {
    loadChart();
    if ($("hist-chain").dataset.done !== "1") verifyChain();
  }
}

// ---- the table ----

function field(item, ...names) {
  for (const n of names) if (item[n] !== undefined && item[n] !== null) return item[n];
  return null;
}

function durationOf(item) {
  const ms = field(item, "duration_ms");
  if (ms !== null && ms >= 0) return ms / 1000;
  const s = field(item, "execution_time", "duration");
  return s !== null ? s : null;
}

function envLabel(item) {
  const env = field(item, "environment");
  if (!env) return "(default image)";
  const v = field(item, "environment_version", "version");
  return v ? `${env} v${v}` : env;
}

let pageSeq = 0;
async function loadPage() {
  const seq = ++pageSeq;
  const limit = $("hist-limit").value;
  const cursor = cursors[cursors.length - 1];
  showError($("hist-error"), null);
  let doc;
  try {
    doc = await get(`/executions${qs(Object.assign({}, filters, { cursor, limit }))}`);
    if (seq !== pageSeq) return; // a newer request decides what the table shows
  } catch (err) {
    if (seq !== pageSeq) return;
    showError($("hist-error"), err);
    $("hist-rows").replaceChildren();
    $("hist-next").disabled = true;
    $("hist-prev").disabled = cursors.length < 2;
    return;
  }
  const items = doc.items || doc.executions || [];
  nextCursor = doc.next_cursor || null;
  $("hist-rows").replaceChildren(...items.map((it) => h("tr", { dataset: { id: it.id } },
    h("td", { dataset: { label: "When" } }, fmtTime(field(it, "started_at", "queued_at", "recorded_at"))),
    h("td", { dataset: { label: "Execution" } }, h("a", { href: `#/history/${encodeURIComponent(it.id)}`, class: "mono exec-link" }, it.id)),
    h("td", { dataset: { label: "Environment" } }, envLabel(it)),
    h("td", { dataset: { label: "Principal" } }, field(it, "principal") || "—"),
    h("td", { dataset: { label: "Status" } }, badge(it.status)),
    h("td", { dataset: { label: "Exit" } }, field(it, "exit_code") === null || it.exit_code < 0 ? "—" : String(it.exit_code)),
    h("td", { dataset: { label: "Duration" } }, fmtDuration(durationOf(it))))));
  $("hist-empty").hidden = items.length !== 0;
  $("hist-next").disabled = !nextCursor;
  $("hist-prev").disabled = cursors.length < 2;
  $("hist-page").textContent = `Page ${cursors.length} · ${items.length} shown`;
}

// ---- one execution ----

let detailSeq = 0;
async function openDetail(id) {
  const seq = ++detailSeq;
  const box = $("hist-detail");
  box.hidden = false;
  $("hist-detail-title").textContent = `Execution ${id}`;
  showError($("hist-detail-error"), null);
  for (const el of ["hist-code", "hist-stdout", "hist-stderr"]) $(el).textContent = "";
  $("hist-facts").replaceChildren();
  $("hist-files").replaceChildren();
  $("hist-display").replaceChildren();
  $("hist-display-box").hidden = true;
  box.scrollIntoView({ block: "start" });
  let ex;
  try {
    ex = await get(`/executions/${encodeURIComponent(id)}`);
    if (seq !== detailSeq) return;
  } catch (err) {
    if (seq !== detailSeq) return;
    showError($("hist-detail-error"), err);
    return;
  }
  const dl = $("hist-facts");
  fact(dl, "Status", badge(ex.status));
  fact(dl, "Exit code", field(ex, "exit_code") === null || ex.exit_code < 0 ? "—" : String(ex.exit_code));
  if (ex.error) fact(dl, "Error", ex.error);
  fact(dl, "Environment", envLabel(ex));
  if (ex.warning) fact(dl, "Warning", ex.warning);
  if (field(ex, "image")) fact(dl, "Image", h("span", { class: "mono" }, ex.image));
  if (field(ex, "image_id")) fact(dl, "Image id", h("span", { class: "mono" }, ex.image_id));
  if (ex.node) fact(dl, "Node", ex.node);
  fact(dl, "Principal", field(ex, "principal") || "—");
  if (field(ex, "client_addr", "client")) fact(dl, "Client", field(ex, "client_addr", "client"));
  fact(dl, "Queued", fmtTime(field(ex, "queued_at")));
  fact(dl, "Started", fmtTime(field(ex, "started_at")));
  fact(dl, "Finished", fmtTime(field(ex, "finished_at")));
  fact(dl, "Duration", fmtDuration(durationOf(ex)));
  if (field(ex, "timeout", "timeout_s") !== null) fact(dl, "Timeout", `${field(ex, "timeout", "timeout_s")} s`);
  if (field(ex, "code_sha256")) fact(dl, "Code sha256", h("span", { class: "mono" }, ex.code_sha256));
  if (field(ex, "chain_seq")) fact(dl, "Audit chain", h("span", { class: "mono" }, `#${ex.chain_seq} ${(ex.chain_hash || "").slice(0, 16)}…`));
  $("hist-code").textContent = field(ex, "code") ?? "";
  // retention (ENVHUB_RETENTION_DAYS) dropped the texts: say so, with what was kept of them
  const pruned = (name) => `[pruned ${fmtTime(ex.output_pruned_at)}: ${fmtBytes(ex[`${name}_size`] ?? 0)}, sha256 ${ex[`${name}_sha256`] || "—"}]`;
  $("hist-stdout").textContent = ex.output_pruned ? pruned("stdout")
    : (field(ex, "stdout") ?? "") + (ex.stdout_truncated ? "\n[truncated]" : "");
  $("hist-stderr").textContent = ex.output_pruned ? pruned("stderr")
    : (field(ex, "stderr") ?? "") + (ex.stderr_truncated ? "\n[truncated]" : "");
  const files = Array.isArray(ex.files) ? ex.files : [];
  // pictures: the catalog keeps their name, size and sha256 (the files table); their bytes only
  // when this page ran the job
  const shown = files.filter((f) => f.direction === "display");
  if (shown.length) {
    const pictures = pictureFigures(rememberedPictures(ex.id || id), "Figure");
    $("hist-display").replaceChildren(...pictures);
    $("hist-display-note").textContent = pictures.length
      ? `${shown.length} picture${shown.length === 1 ? "" : "s"} shown by the code, as this page received them.`
      : `${shown.length} picture${shown.length === 1 ? "" : "s"} shown by the code: the history keeps their names, sizes and sha256 (below), not the images.`;
    $("hist-display-box").hidden = false;
  }
  $("hist-files").replaceChildren(...(files.length ? files.map((f) => h("tr", null,
    h("td", null, f.direction || "—"), h("td", { class: "mono" }, f.path), h("td", null, fmtBytes(f.size)),
    h("td", { class: "mono" }, (f.sha256 || "").slice(0, 16) + (f.sha256 ? "…" : ""))))
    : [h("tr", null, h("td", { colspan: "4", class: "muted" }, "No files."))]));
}

// ---- export ----

async function exportAs(format) {
  const state = $("hist-export-state");
  const f = readFilters();
  state.textContent = `Exporting ${format === "csv" ? "CSV" : "JSON lines"}…`;
  showError($("hist-error"), null);
  try {
    const stamp = new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19);
    const blob = await download(`/executions/export${qs(Object.assign({ format }, f))}`,
      `envhub-executions-${stamp}.${format === "csv" ? "csv" : "jsonl"}`);
    state.textContent = `Exported ${fmtBytes(blob.size)}.`;
  } catch (err) {
    state.textContent = "";
    showError($("hist-error"), err);
  }
}

// ---- chart: executions per day by status ----

function statsGroups(doc) {
  const list = doc.groups || doc.stats || doc.items || [];
  return list.map((g) => ({ key: g.key ?? g.day ?? g.group, count: g.count ?? g.total ?? 0 }));
}

async function loadChart() {
  const box = $("hist-chart");
  showError($("hist-chart-error"), null);
  const base = Object.assign({}, filters);
  delete base.status;
  const wanted = filters.status ? [filters.status] : STATUSES;
  const days = new Map(); // day -> {status: count}
  try {
    const answers = await Promise.all(wanted.map((s) => get(`/executions/stats${qs(Object.assign({ group: "day", status: s }, base))}`)));
    answers.forEach((doc, i) => {
      for (const g of statsGroups(doc)) {
        if (!g.key) continue;
        if (!days.has(g.key)) days.set(g.key, {});
        days.get(g.key)[wanted[i]] = g.count;
      }
    });
  } catch (err) {
    box.replaceChildren();
    showError($("hist-chart-error"), err);
    return;
  }
  drawChart(box, dayRange(days), wanted);
}

// Every day from the first with executions (or two weeks back) to the last (or today), so that
// quiet days show as gaps; at most 31 days, the newest.
function dayRange(days) {
  const keys = [...days.keys()].sort();
  const today = new Date().toISOString().slice(0, 10);
  const dayMs = 86400000;
  const last = keys.length && keys[keys.length - 1] > today ? keys[keys.length - 1] : today;
  const lastMs = Date.parse(`${last}T00:00:00Z`);
  let firstMs = Math.min(keys.length ? Date.parse(`${keys[0]}T00:00:00Z`) : lastMs, lastMs - 13 * dayMs);
  firstMs = Math.max(firstMs, lastMs - 30 * dayMs);
  const out = [];
  for (let t = firstMs; t <= lastMs; t += dayMs) {
    const key = new Date(t).toISOString().slice(0, 10);
    out.push([key, days.get(key) || {}]);
  }
  return out;
}

function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

function drawChart(box, days, statuses) {
  const legend = $("hist-chart-legend");
  legend.replaceChildren(...statuses.map((s) => h("li", null, h("span", { class: `swatch sw-${s}` }), s)));
  if (!days.some(([, c]) => statuses.some((s) => c[s]))) {
    box.replaceChildren(h("p", { class: "muted" }, "No executions in this range."));
    return;
  }
  const W = 640, H = 240, left = 40, bottom = 28, top = 10, right = 8;
  const totals = days.map(([, c]) => statuses.reduce((n, s) => n + (c[s] || 0), 0));
  const max = Math.max(1, ...totals);
  const step = Math.max(1, Math.ceil(max / 4)); // whole executions per grid line
  const ymax = step * 4;
  const plotW = W - left - right, plotH = H - top - bottom;
  const bw = plotW / days.length;
  const sum = totals.reduce((a, b) => a + b, 0);
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img",
    "aria-label": `Executions per day: ${sum} over ${days.length} days, at most ${max} in a day` });
  for (let i = 0; i <= 4; i++) {
    const v = (ymax * i) / 4;
    const y = top + plotH - (v / ymax) * plotH;
    root.append(svg("line", { x1: left, x2: W - right, y1: y, y2: y, stroke: "#e5e7eb" }),
      svg("text", { x: left - 6, y: y + 4, "text-anchor": "end" }, v));
  }
  const labelEvery = Math.ceil(days.length / 7);
  days.forEach(([day, counts], i) => {
    let y = top + plotH;
    const w = Math.max(1, Math.min(bw * 0.7, 36));
    const x = left + i * bw + (bw - w) / 2;
    const g = svg("g", { class: "bar", "data-day": day });
    g.append(svg("title", null, `${day}: ${statuses.filter((s) => counts[s]).map((s) => `${counts[s]} ${s}`).join(", ") || "none"}`));
    for (const s of statuses) {
      const n = counts[s] || 0;
      if (!n) continue;
      const hgt = (n / ymax) * plotH;
      y -= hgt;
      g.append(svg("rect", { x, y, width: w, height: hgt, fill: COLORS[s] || "#9ca3af" }));
    }
    root.append(g);
    if ((days.length - 1 - i) % labelEvery === 0)
      root.append(svg("text", { x: left + i * bw + bw / 2, y: H - 8, "text-anchor": "middle" }, day.slice(5)));
  });
  box.replaceChildren(root);
}

// ---- the audit chain ----

async function verifyChain() {
  const out = $("hist-chain");
  const btn = $("hist-verify");
  btn.disabled = true;
  out.className = "muted";
  out.textContent = "Verifying…";
  try {
    const v = await get("/audit/verify");
    const head = typeof v.head === "object" && v.head ? (v.head.hash || v.head.seq || JSON.stringify(v.head)) : v.head;
    out.dataset.done = "1";
    if (v.ok) {
      out.className = "chain-ok";
      out.textContent = `Chain intact: verified ${v.count} rows.${head ? ` Head ${String(head).slice(0, 16)}…` : ""}`;
    } else {
      out.className = "chain-bad";
      out.textContent = `Chain broken after ${v.count} rows: first bad row ${v.first_bad_id || "(rows missing at the end)"}${v.reason ? ` — ${v.reason}` : ""}.`;
    }
  } catch (err) {
    out.className = "error-box";
    out.textContent = err instanceof ApiError ? err.describe() : String(err);
  } finally {
    btn.disabled = false;
  }
}
