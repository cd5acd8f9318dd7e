// envhub UI: the Environments page. List with status badges and a filter, the create form
// (templates from GET /templates, a setup-script editor), and one environment's detail: facts,
// the live build log (server-sent events read through fetch), rebuild, delete with
// confirmation, build history and package inventory; for curators the policy (at create, or
// changed with a rebuild) and the lifecycle (deprecate, retire, reinstate).
import { $, ApiError, api, badge, codeEditor, fact, fmtDuration, fmtTime, followEvents, get, h, request, showError }
  from "./api.js";

const MAX_LOG_LINES = 20000;
const POLL_MS = 3000;

let ctx;
let all = [];           // the environments last listed
let templates = [];
let openName = null;    // the environment shown in the detail panel
let follow = null;      // {controller, timer, version} of the log being followed
let pollTimer = null;
let autoFilled = { name: "", description: "" };
let active = false;
let formsFor = null;    // the environment the policy and lifecycle inputs were filled for
let confirmAction = null;

const enc = encodeURIComponent;

// The policy's fields (executor/policy.c); sizes are entered in KiB or MiB, sent in bytes.
const MIB = 1024 * 1024;
const POLICY = [
  { key: "timeout_default", label: "Default timeout", unit: "s", min: 1 },
  { key: "timeout_max", label: "Maximum timeout", unit: "s", min: 1 },
  { key: "memory", label: "Memory", unit: "MiB", scale: MIB, min: 6 },
  { key: "cpu", label: "CPUs", unit: "", step: "any", min: 0.01 },
  { key: "pids", label: "Processes", unit: "", min: 8 },
  { key: "output_limit", label: "Output limit", unit: "KiB", scale: 1024, min: 1 },
  { key: "workspace_size", label: "Workspace", unit: "MiB", scale: MIB, min: 1 },
  { key: "network", label: "Network", choices: ["none", "bridge"] },
  { key: "pool_size", label: "Warm pool size", unit: "containers", min: 0 },
  { key: "recycle", label: "Jobs per container", unit: "", min: 1 },
  { key: "preload", label: "Preload modules", unit: "comma-separated", list: true },
];

function policyInputs(box, prefix) {
  box.replaceChildren(...POLICY.map((f) => {
    const id = `${prefix}-${f.key}`;
    const input = f.choices
      ? h("select", { id }, h("option", { value: "" }, "server's setting"), ...f.choices.map((c) => h("option", null, c)))
      : f.list
        ? h("input", { id, type: "text", placeholder: "none (e.g. numpy, pandas)", spellcheck: "false" })
        : h("input", { id, type: "number", min: f.min, step: f.step || (f.scale ? "any" : "1"), placeholder: "server's setting" });
    return h("div", null, h("label", { for: id }, f.label, f.unit ? ` (${f.unit})` : ""), input);
  }));
}

function readPolicy(prefix) {
  const policy = {};
  for (const f of POLICY) {
    const v = $(`${prefix}-${f.key}`).value.trim();
    if (v === "") continue;
    policy[f.key] = f.list ? v.split(/[\s,]+/).filter(Boolean)
      : f.choices ? v : f.scale ? Math.round(Number(v) * f.scale) : Number(v);
  }
  return policy;
}

function fillPolicy(prefix, policy) {
  for (const f of POLICY) {
    const v = policy ? policy[f.key] : undefined;
    $(`${prefix}-${f.key}`).value = v === undefined || v === null ? ""
      : f.list ? v.join(", ") : f.scale ? +(v / f.scale).toFixed(3) : v;
  }
}

function policyText(policy) {
  const parts = POLICY.filter((f) => policy && policy[f.key] !== undefined && policy[f.key] !== null).map((f) => {
    const v = policy[f.key];
    if (f.list) return `${f.label.toLowerCase()} ${v.join(", ")}`;
    const shown = f.scale ? +(v / f.scale).toFixed(2) : v;
    return `${f.label.toLowerCase()} ${shown}${f.unit ? ` ${f.unit}` : ""}`;
  });
  return parts.length ? parts.join(" · ") : "the server's settings";
}

export function init(c) {
  ctx = c;
  $("env-filter").addEventListener("input", renderList);
  $("env-new").addEventListener("click", () => toggleCreate(true));
  $("env-create-cancel").addEventListener("click", () => toggleCreate(false));
  $("env-create").addEventListener("submit", createEnv);
  $("env-template").addEventListener("change", applyTemplate);
  codeEditor($("env-script"));
  $("env-close").addEventListener("click", () => { location.hash = "#/environments"; });
  $("env-rebuild").addEventListener("click", () => rebuild());
  $("env-delete").addEventListener("click", () => askConfirm("env-delete", "Delete",
    `Delete environment '${openName}'? Its images are removed and a build in progress is cancelled; its executions stay in the history.`,
    deleteEnv));
  $("env-confirm-no").addEventListener("click", () => {
    $("env-confirm").hidden = true;
    $(confirmAction.from).focus();
  });
  $("env-confirm-yes").addEventListener("click", () => confirmAction.run());
  $("env-pkg-filter").addEventListener("input", filterPackages);
  policyInputs($("env-policy"), "env-policy");
  policyInputs($("env-policy-new"), "env-policy-new");
  $("env-create").addEventListener("reset", () => { $("env-policy-box").open = false; });
  $("env-policy-form").addEventListener("submit", (e) => {
    e.preventDefault();
    rebuild(readPolicy("env-policy-new"));
  });
  $("env-deprecate").addEventListener("click", () => setLifecycle("deprecated"));
  $("env-retire").addEventListener("click", () => askConfirm("env-retire", "Retire",
    `Retire environment '${openName}'? It runs nothing from now on, its images are removed after the grace period and its history stays; Reinstate brings it back.`,
    () => setLifecycle("retired")));
  $("env-reinstate").addEventListener("click", () => setLifecycle("active"));
}

// The confirmation box under the facts, for the button @from: @yes runs @run.
function askConfirm(from, yes, text, run) {
  confirmAction = { from, run };
  $("env-confirm-text").textContent = text;
  $("env-confirm-yes").textContent = yes;
  $("env-confirm").hidden = false;
  $("env-confirm-no").focus();
}

export function reset() {
  templates = [];
  $("env-template").replaceChildren(h("option", { value: "" }, "(empty script)"));
}

let showSeq = 0;

export async function show(name) {
  active = true;
  const seq = ++showSeq;
  await loadList();
  if (seq !== showSeq) return; // navigated again meanwhile: the newer call decides
  if (ctx.can("environments_write") && !templates.length) loadTemplates();
  if (name) openDetail(name);
  else closeDetail();
}

export function leave() {
  active = false;
  stopFollow();
  clearTimeout(pollTimer);
}

// ---- list ----

async function loadList() {
  clearTimeout(pollTimer);
  try {
    const doc = await get("/environments");
    all = doc.environments || [];
    showError($("env-list-error"), null);
  } catch (err) {
    showError($("env-list-error"), err);
  }
  renderList();
  // badges follow builds without a reload
  if (active && all.some((e) => e.status === "building" || (e.latest_build && ["queued", "building"].includes(e.latest_build.status))))
    pollTimer = setTimeout(loadList, POLL_MS);
}

function versionText(e) {
  const lb = e.latest_build;
  let text = e.version ? `v${e.version}` : "—";
  if (lb && lb.version > (e.version || 0) && ["queued", "building"].includes(lb.status)) text += ` (v${lb.version} building)`;
  return text;
}

function renderList() {
  const q = $("env-filter").value.trim().toLowerCase();
  const rows = all.filter((e) => !q || [e.name, e.status, e.description, e.base_image].join(" ").toLowerCase().includes(q));
  $("env-rows").replaceChildren(...rows.map((e) => h("tr", { class: e.name === openName ? "selected" : "", dataset: { name: e.name } },
    h("td", { dataset: { label: "Name" } }, h("a", { href: `#/environments/${enc(e.name)}`, class: "env-link" }, e.name)),
    h("td", { dataset: { label: "Status" } }, h("span", null, badge(e.status),
      e.lifecycle && e.lifecycle !== "active" ? [" ", badge(e.lifecycle)] : null)),
    h("td", { dataset: { label: "Version" } }, versionText(e)),
    h("td", { dataset: { label: "Base image" }, class: "mono" }, e.base_image),
    h("td", { dataset: { label: "Last used" } }, e.last_used ? fmtTime(e.last_used) : "never"),
    h("td", { dataset: { label: "Description" }, class: "desc" }, e.description || ""))));
  $("env-empty").hidden = all.length !== 0;
  $("env-empty").textContent = all.length ? "" : "No environments yet.";
  if (all.length && !rows.length) {
    $("env-empty").hidden = false;
    $("env-empty").textContent = "No environment matches the filter.";
  }
}

// ---- create ----

async function loadTemplates() {
  try {
    const doc = await get("/templates");
    templates = doc.templates || [];
    $("env-template").replaceChildren(h("option", { value: "" }, "(empty script)"),
      ...templates.map((t) => h("option", { value: t.name }, t.name)));
  } catch (err) {
    showError($("env-create-error"), err);
  }
}

function toggleCreate(open) {
  $("env-create").hidden = !open;
  $("env-new").setAttribute("aria-expanded", String(open));
  if (open) {
    showError($("env-create-error"), null);
    $("env-template").focus();
  } else {
    $("env-new").focus();
  }
}

function applyTemplate() {
  const t = templates.find((x) => x.name === $("env-template").value);
  $("env-template-hint").textContent = t ? t.description : "";
  if (!t) return;
  $("env-script").value = t.script;
  if (!$("env-name").value || $("env-name").value === autoFilled.name) {
    $("env-name").value = t.name;
    autoFilled.name = t.name;
  }
  if (!$("env-description").value || $("env-description").value === autoFilled.description) {
    $("env-description").value = t.description;
    autoFilled.description = t.description;
  }
}

async function createEnv(e) {
  e.preventDefault();
  const btn = $("env-create-submit");
  const body = {
    name: $("env-name").value.trim(),
    description: $("env-description").value,
    setup_script: $("env-script").value,
  };
  if ($("env-base").value.trim()) body.base_image = $("env-base").value.trim();
  const policy = readPolicy("env-policy");
  if (Object.keys(policy).length) body.policy = policy;
  btn.disabled = true;
  showError($("env-create-error"), null);
  try {
    const env = await api("POST", "/environments", body);
    $("env-create").reset();
    autoFilled = { name: "", description: "" };
    $("env-template-hint").textContent = "";
    toggleCreate(false);
    location.hash = `#/environments/${enc(env.name)}`;
  } catch (err) {
    showError($("env-create-error"), err);
  } finally {
    btn.disabled = false;
  }
}

// ---- detail ----

function closeDetail() {
  stopFollow();
  openName = null;
  formsFor = null;
  $("env-detail").hidden = true;
  renderList();
}

async function openDetail(name) {
  const switched = name !== openName;
  openName = name;
  renderList();
  $("env-detail").hidden = false;
  $("env-detail-title").textContent = name;
  if (switched) {
    stopFollow();
    $("env-confirm").hidden = true;
    $("env-log").textContent = "";
    $("env-log-state").textContent = "";
    $("env-log-elapsed").textContent = "";
    $("env-facts").replaceChildren();
    $("env-builds").replaceChildren();
    $("env-packages").replaceChildren();
    $("env-pkg-count").textContent = "";
    $("env-script-view").textContent = "";
    $("env-policy-edit").open = false;
    formsFor = null;
    $("env-detail").scrollIntoView({ block: "start" });
  }
  showError($("env-detail-error"), null);
  await refreshDetail(name, true);
}

// Facts, builds and packages; with @withLog, the newest build's log too (live while it builds).
async function refreshDetail(name, withLog) {
  let env;
  try {
    env = await get(`/environments/${enc(name)}`);
  } catch (err) {
    showError($("env-detail-error"), err);
    return;
  }
  if (openName !== name) return;
  renderFacts(env);
  const builds = await loadBuilds(name);
  loadPackages(env);
  const newest = builds && builds[0];
  if (withLog && newest && (!follow || follow.version !== newest.version)) showLog(name, newest);
}

function renderFacts(env) {
  const dl = $("env-facts");
  dl.replaceChildren();
  fact(dl, "Status", badge(env.status));
  fact(dl, "Version in service", env.version ? `v${env.version}` : "none yet");
  fact(dl, "Docker image", h("span", { class: "mono" }, env.docker_image));
  fact(dl, "Base image", h("span", { class: "mono" }, env.base_image));
  fact(dl, "Python", env.python_version);
  fact(dl, "Description", env.description || "—");
  fact(dl, "Created", `${fmtTime(env.created_at)}${env.created_by ? ` by ${env.created_by}` : ""}`);
  fact(dl, "Last used", env.last_used ? fmtTime(env.last_used) : "never");
  fact(dl, "Policy", h("span", { id: "env-policy-text" }, policyText(env.policy)));
  if (env.runs) fact(dl, "Runs", `${env.runs["7d"]} in 7 days · ${env.runs["30d"]} in 30 · ${env.runs["90d"]} in 90`);
  const lc = env.lifecycle || "active";
  fact(dl, "Lifecycle", h("span", { id: "env-lifecycle-state" }, badge(lc),
    env.replacement ? ` — use ${env.replacement} instead` : "",
    env.lifecycle_changed_at ? h("span", { class: "muted" }, ` since ${fmtTime(env.lifecycle_changed_at)}${env.lifecycle_changed_by ? ` (${env.lifecycle_changed_by})` : ""}`) : ""));
  if (env.warning) fact(dl, "Warning", env.warning);
  if (env.drift && env.drift.drifted) fact(dl, "Base image drift", `${env.base_image} has changed since this version was built: rebuild to catch up`);
  if (env.error) fact(dl, "Error", h("span", { class: "error-text", id: "env-error-text" }, env.error));
  $("env-script-view").textContent = env.setup_script;
  $("env-reinstate").disabled = lc === "active";
  $("env-retire").disabled = lc === "retired";
  $("env-names").replaceChildren(...all.filter((e) => e.name !== env.name && e.lifecycle !== "retired")
    .map((e) => h("option", { value: e.name })));
  if (formsFor !== env.name) { // filled once per environment shown: a curator's edits stay
    formsFor = env.name;
    $("env-replacement").value = env.replacement || "";
    fillPolicy("env-policy-new", env.policy);
  }
}

async function loadBuilds(name) {
  let builds = [];
  try {
    builds = (await get(`/environments/${enc(name)}/builds`)).builds || [];
  } catch (err) {
    showError($("env-detail-error"), err);
  }
  $("env-builds").replaceChildren(...builds.map((b) => {
    const took = b.started_at && b.finished_at ? (new Date(b.finished_at) - new Date(b.started_at)) / 1000 : null;
    return h("tr", null,
      h("td", null, `v${b.version}`),
      h("td", null, badge(b.status), b.cache_hit ? h("span", { class: "muted" }, " cached") : null),
      h("td", null, fmtTime(b.queued_at)),
      h("td", null, fmtDuration(took)),
      h("td", { class: "mono" }, b.image_id ? b.image_id.replace("sha256:", "").slice(0, 12) : "—"),
      h("td", null, b.error || ""),
      h("td", null, h("button", { type: "button", class: "link", onclick: () => showLog(name, b),
        "aria-label": `Show the log of build v${b.version}` }, "Log")));
  }));
  return builds;
}

let allPackages = [];
async function loadPackages(env) {
  allPackages = [];
  if (!env.version) {
    $("env-pkg-count").textContent = "No version is ready yet.";
    $("env-packages").replaceChildren();
    return;
  }
  try {
    const doc = await get(`/environments/${enc(env.name)}/packages`);
    allPackages = doc.packages || [];
  } catch (err) {
    $("env-pkg-count").textContent = err instanceof ApiError ? err.describe() : String(err);
    return;
  }
  filterPackages();
}

function filterPackages() {
  const q = $("env-pkg-filter").value.trim().toLowerCase();
  const rows = allPackages.filter((p) => !q || p.name.toLowerCase().includes(q));
  $("env-pkg-count").textContent = `${rows.length} of ${allPackages.length}`;
  $("env-packages").replaceChildren(...rows.slice(0, 2000).map((p) =>
    h("tr", null, h("td", null, p.manager), h("td", null, p.name), h("td", { class: "mono" }, p.version))));
}

// ---- build log ----

function stopFollow() {
  if (!follow) return;
  follow.controller.abort();
  clearInterval(follow.timer);
  follow = null;
}

function appendLog(lines) {
  const pre = $("env-log");
  const atBottom = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 40;
  pre.append(lines.join("\n") + "\n");
  while (pre.childNodes.length > 1 && pre.textContent.length > MAX_LOG_LINES * 200) pre.firstChild.remove();
  if (atBottom) pre.scrollTop = pre.scrollHeight;
}

function startedAt(b) {
  return new Date(b.started_at || b.queued_at || Date.now()).getTime();
}

async function showLog(name, build) {
  stopFollow();
  const pre = $("env-log");
  pre.textContent = "";
  const live = ["queued", "building"].includes(build.status);
  $("env-log-title").textContent = `Build log — v${build.version}`;
  if (!live) {
    $("env-log-state").replaceChildren(`v${build.version} `, badge(build.status));
    const took = build.started_at && build.finished_at ? (new Date(build.finished_at) - new Date(build.started_at)) / 1000 : null;
    $("env-log-elapsed").textContent = took !== null ? `took ${fmtDuration(took)}` : "";
    try {
      const resp = await request("GET", `/environments/${enc(name)}/builds/${build.version}/log`);
      const text = await resp.text();
      if (openName === name) {
        pre.textContent = text || "(empty log)";
        pre.scrollTop = pre.scrollHeight;
      }
    } catch (err) {
      pre.textContent = err instanceof ApiError ? err.describe() : String(err);
    }
    return;
  }
  const controller = new AbortController();
  const t0 = startedAt(build);
  const tick = () => { $("env-log-elapsed").textContent = `elapsed ${fmtDuration((Date.now() - t0) / 1000)}`; };
  follow = { controller, version: build.version, timer: setInterval(tick, 1000) };
  tick();
  $("env-log-state").replaceChildren(`v${build.version} `, badge(build.status), " live");
  let pending = [];
  let scheduled = false;
  const flush = () => { scheduled = false; if (pending.length) { appendLog(pending); pending = []; } };
  let ended = null;
  try {
    await followEvents(`/environments/${enc(name)}/builds/${build.version}/log?follow=1`, (ev) => {
      if (ev.event === "end") {
        try { ended = JSON.parse(ev.data); } catch { ended = { status: "unknown" }; }
        return;
      }
      if (ev.event === "message") {
        pending.push(ev.data);
        if (!scheduled) { scheduled = true; requestAnimationFrame(flush); }
      }
    }, controller.signal);
  } catch (err) {
    if (err.name === "AbortError") return;
    flush();
    appendLog([`[log stream failed: ${err instanceof ApiError ? err.describe() : err.message}]`]);
  }
  flush();
  if (!follow || follow.controller !== controller) return;
  clearInterval(follow.timer);
  const elapsed = (Date.now() - t0) / 1000;
  follow = null;
  if (ended) {
    $("env-log-state").replaceChildren(`v${ended.version ?? build.version} `, badge(ended.status));
    $("env-log-elapsed").textContent = `took ${fmtDuration(elapsed)}`;
    if (ended.error) showError($("env-detail-error"), `Build v${ended.version ?? build.version} ${ended.status}: ${ended.error}`);
  }
  // the build ended: refresh the badges, the facts, the history and the packages
  if (active) {
    loadList();
    if (openName === name) await refreshDetail(name, false);
  }
}

// ---- rebuild, lifecycle, delete ----

// A rebuild of the same definition; with @policy (from the policy form), under that policy.
async function rebuild(policy) {
  const name = openName;
  const btn = policy ? $("env-policy-rebuild") : $("env-rebuild");
  btn.disabled = true;
  showError($("env-detail-error"), null);
  try {
    const build = await api("POST", `/environments/${enc(name)}/rebuild`, policy ? { policy } : undefined);
    if (policy) {
      $("env-policy-edit").open = false;
      formsFor = null; // filled again from the policy in service once the build ends
    }
    await loadList();
    await loadBuilds(name);
    showLog(name, build);
  } catch (err) {
    showError($("env-detail-error"), err);
  } finally {
    btn.disabled = false;
  }
}

async function setLifecycle(state) {
  const name = openName;
  const body = { state };
  const replacement = $("env-replacement").value.trim();
  if (state !== "active" && replacement) body.replacement = replacement;
  const buttons = ["env-deprecate", "env-retire", "env-reinstate"].map((id) => $(id));
  buttons.forEach((b) => { b.disabled = true; });
  $("env-confirm").hidden = true;
  showError($("env-detail-error"), null);
  let env = null;
  try {
    env = await api("POST", `/environments/${enc(name)}/lifecycle`, body);
  } catch (err) {
    showError($("env-detail-error"), err);
  }
  buttons.forEach((b) => { b.disabled = false; });
  if (openName !== name) return;
  formsFor = null; // the replacement as the server now has it
  await loadList();
  await refreshDetail(name, !!(env && env.rebuild)); // reinstated after its images went: a build to follow
}

async function deleteEnv() {
  const name = openName;
  showError($("env-detail-error"), null);
  try {
    await api("DELETE", `/environments/${enc(name)}`);
    $("env-confirm").hidden = true;
    location.hash = "#/environments";
    await loadList();
    $("env-filter").focus();
  } catch (err) {
    $("env-confirm").hidden = true;
    showError($("env-detail-error"), err);
  }
}
