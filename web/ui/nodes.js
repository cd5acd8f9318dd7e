// envhub UI: the Nodes page (admins). Cluster mode's nodes from GET /cluster/nodes, refreshed
// every 2 s while the page is shown: state, slots, running and leased jobs, jobs done and lost,
// warm images, pools, pulls under way, when each was last heard; Drain and Resume per node.
import { $, api, badge, fmtTime, get, h, showError } from "./api.js";

let ctx;
let timer = null;

export function init(c) {
  ctx = c;
}

export function show() {
  load();
  if (!timer) timer = setInterval(load, 2000);
}

export function leave() {
  clearInterval(timer);
  timer = null;
}

async function act(name, what) {
  try {
    await api("POST", `/cluster/nodes/${encodeURIComponent(name)}/${what}`, {});
    await load();
  } catch (err) {
    showError($("nodes-error"), err);
  }
}

function list(items) {
  if (!items || !items.length) return h("span", { class: "muted" }, "—");
  return h("ul", { class: "plain" }, ...items.map((x) => h("li", null, x)));
}

async function load() {
  let doc;
  try {
    doc = await get("/cluster/nodes");
  } catch (err) {
    showError($("nodes-error"), err);
    return;
  }
  showError($("nodes-error"), null);
  const off = doc.mode !== "swarm";
  $("nodes-off").hidden = !off;
  $("nodes-table").hidden = off;
  if (off) {
    $("nodes-summary").textContent = "";
    return;
  }
  const up = doc.nodes.filter((n) => n.state === "ready").length;
  $("nodes-summary").textContent = `${doc.nodes.length} nodes, ${up} taking jobs; ${doc.queued} queued, ` +
    `${doc.leased} leased; ${doc.placed} placed, ${doc.requeued} requeued, ${doc.interrupted} interrupted ` +
    `by a lost node (a node is lost after ${doc.node_timeout_s} s of silence).`;
  const rows = doc.nodes.map((n) => h("tr", { "data-node": n.name },
    h("th", { scope: "row" }, n.name, n.engine ? h("div", { class: "muted small" }, n.engine) : null),
    h("td", { class: "node-state" }, badge(n.state), n.engine_error ? h("div", { class: "muted small" }, n.engine_error) : null),
    h("td", null, String(n.slots)),
    h("td", null, String(n.running)),
    h("td", null, String(n.leased)),
    h("td", null, String(n.jobs_done)),
    h("td", null, String(n.jobs_lost)),
    h("td", null, list(n.warm)),
    h("td", null, list(n.pools)),
    h("td", null, list(n.pulling)),
    h("td", null, fmtTime(n.last_seen)),
    h("td", null, n.drained
      ? h("button", { type: "button", class: "node-resume", onclick: () => act(n.name, "resume") }, `Resume ${n.name}`)
      : h("button", { type: "button", class: "node-drain", onclick: () => act(n.name, "drain") }, `Drain ${n.name}`))));
  $("nodes-rows").replaceChildren(...rows);
}
