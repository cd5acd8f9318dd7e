// envhub UI: the Notebook page. A column of Python cells run one after another in one stateful
// session (POST /sessions, then /sessions/{id}/execute per cell): a cell's variables, imports
// and open files are there for the next. Below each cell: its status, stdout, stderr, the value
// of its final expression (`result`), its pictures (`display`) and any warning (an interpreter
// that ended, a deprecated environment). Cells can be re-run, added and removed; "Run all" runs
// them in order and stops at the first that fails. The session's files, as the last call left
// them, are listed with downloads. The session id stays in this tab (sessionStorage), so a
// reload finds the session again while it is open; the server closes idle ones.
import { $, ApiError, api, badge, bytesFromBase64, fmtBytes, fmtDuration, get, h, pictureFigures, showError } from "./api.js";
import { createEditor } from "./editor.js";

const STORE = "envhub.notebook";
const FIRST = `import math

radius = 2
math.pi * radius ** 2
`;
const TIMEOUT = 60;

let ctx;
let session = null; // {id, environment, stateful}
let cells = []; // {id, el, editor, out, label, runBtn}
let nextCell = 1;
let busy = false;
let fileUrls = [];

export function init(c) {
  ctx = c;
  $("nb-open").addEventListener("click", () => openSession().catch((err) => showError($("nb-error"), err)));
  $("nb-reset").addEventListener("click", resetSession);
  $("nb-close").addEventListener("click", closeSession);
  $("nb-add").addEventListener("click", () => addCell("").editor.focus());
  $("nb-run-all").addEventListener("click", runAll);
  addCell(FIRST);
}

export async function show() {
  const sel = $("nb-env");
  const keep = sel.value;
  try {
    const doc = await get("/environments");
    const ready = (doc.environments || []).filter((e) => e.status === "ready" && e.lifecycle !== "retired");
    sel.replaceChildren(h("option", { value: "" }, "(default image)"),
      ...ready.map((e) => h("option", { value: e.name }, `${e.name} (v${e.version})`)));
    if (ready.some((e) => e.name === keep)) sel.value = keep;
    showError($("nb-error"), null);
  } catch (err) {
    showError($("nb-error"), err);
  }
  if (!session) {
    const saved = JSON.parse(sessionStorage.getItem(STORE) || "null");
    if (saved && saved.id) {
      try {
        setSession(await get(`/sessions/${encodeURIComponent(saved.id)}`));
      } catch {
        sessionStorage.removeItem(STORE); // closed or reaped meanwhile
      }
    }
  }
  renderSession();
}

function setSession(s) {
  session = s ? { id: s.id, environment: s.environment, stateful: s.stateful, calls: s.calls } : null;
  if (session) sessionStorage.setItem(STORE, JSON.stringify({ id: session.id }));
  else sessionStorage.removeItem(STORE);
  renderSession();
}

function renderSession() {
  const st = $("nb-status");
  st.replaceChildren();
  if (!session) {
    st.append("No session yet: running a cell starts one in the chosen environment.");
  } else {
    st.append("Session ", h("span", { class: "mono", id: "nb-session-id" }, session.id), " in ",
      h("strong", null, session.environment || "the default image"),
      session.stateful ? " — cells share one Python interpreter." : " — each cell runs in a fresh process (no state kept).");
  }
  $("nb-env").disabled = !!session;
  $("nb-open").hidden = !!session;
  $("nb-reset").hidden = !session || !session.stateful;
  $("nb-close").hidden = !session;
}

async function openSession() {
  if (session) return session;
  const body = {};
  if ($("nb-env").value) body.environment = $("nb-env").value;
  $("nb-open").disabled = true;
  try {
    setSession(await api("POST", "/sessions", body));
  } finally {
    $("nb-open").disabled = false;
  }
  return session;
}

async function resetSession() {
  if (!session || busy) return;
  showError($("nb-error"), null);
  try {
    await api("POST", `/sessions/${encodeURIComponent(session.id)}/reset`);
    for (const c of cells) c.el.classList.add("stale");
    $("nb-status").append(" ", h("span", { class: "badge", id: "nb-restarted" }, "interpreter restarted"));
  } catch (err) {
    lost(err);
  }
}

async function closeSession() {
  if (!session || busy) return;
  showError($("nb-error"), null);
  try {
    await api("DELETE", `/sessions/${encodeURIComponent(session.id)}`);
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 404)) {
      showError($("nb-error"), err);
      return;
    }
  }
  setSession(null);
  renderFiles({});
}

// A 404 means the session is gone (closed elsewhere, or idle too long): say so, start afresh.
function lost(err) {
  if (err instanceof ApiError && err.status === 404 && session) {
    showError($("nb-error"), `The session ${session.id} has ended (closed, or idle too long); the next run starts a new one.`);
    setSession(null);
    return;
  }
  showError($("nb-error"), err);
}

function addCell(code, after) {
  const id = nextCell++;
  const label = h("span", { class: "cell-label mono", "aria-hidden": "true" }, "[ ]");
  const runBtn = h("button", { type: "button", class: "primary", "aria-label": `Run cell ${id}` }, "Run");
  const out = h("div", { class: "cell-out", "aria-live": "polite" });
  const box = h("div", { class: "code-editor" });
  const el = h("section", { class: "card cell", dataset: { cell: String(id) }, "aria-label": `Cell ${id}` },
    h("div", { class: "cell-head" }, label, runBtn,
      h("button", { type: "button", class: "link", "aria-label": `Delete cell ${id}`, onclick: () => removeCell(cell) }, "Delete")),
    box, out);
  const cell = { id, el, out, label, runBtn };
  cell.editor = createEditor(box, { doc: code, label: `Cell ${id} (Python)`,
    onRun: () => runCell(cell),
    onShiftRun: async () => {
      if (await runCell(cell)) nextOf(cell).editor.focus();
    } });
  runBtn.addEventListener("click", () => runCell(cell));
  const at = after ? cells.indexOf(after) + 1 : cells.length;
  cells.splice(at, 0, cell);
  if (after) after.el.after(el);
  else $("nb-cells").append(el);
  return cell;
}

function nextOf(cell) {
  const i = cells.indexOf(cell);
  return cells[i + 1] || addCell("", cell);
}

function removeCell(cell) {
  if (busy) return;
  cell.editor.destroy();
  cell.el.remove();
  cells = cells.filter((c) => c !== cell);
  if (!cells.length) addCell("");
}

function setBusy(on) {
  busy = on;
  for (const c of cells) c.runBtn.disabled = on;
  for (const id of ["nb-run-all", "nb-reset", "nb-close", "nb-add"]) $(id).disabled = on;
}

// Run one cell; true when it succeeded.
async function runCell(cell) {
  if (busy) return false;
  setBusy(true);
  showError($("nb-error"), null);
  cell.el.classList.remove("stale");
  cell.out.replaceChildren(h("p", { class: "progress", role: "status" }, h("span", { class: "spinner", "aria-hidden": "true" }), " Running…"));
  cell.label.textContent = "[*]";
  try {
    await openSession();
    const res = await api("POST", `/sessions/${encodeURIComponent(session.id)}/execute`,
      { code: cell.editor.value, timeout: TIMEOUT });
    session.calls = (session.calls || 0) + 1;
    cell.label.textContent = `[${session.calls}]`;
    renderOutput(cell, res);
    renderFiles(res.files || {});
    return res.success;
  } catch (err) {
    cell.label.textContent = "[ ]";
    cell.out.replaceChildren();
    lost(err);
    return false;
  } finally {
    setBusy(false);
  }
}

async function runAll() {
  for (const cell of [...cells]) {
    if (!(await runCell(cell))) return;
  }
}

function renderOutput(cell, res) {
  const out = cell.out;
  out.replaceChildren();
  out.append(h("p", { class: "cell-facts" }, badge(res.status), " ",
    h("span", { class: "muted" }, fmtDuration(res.execution_time)),
    res.exit_code > 0 ? h("span", { class: "muted" }, ` exit code ${res.exit_code}`) : null));
  if (res.warning) out.append(h("p", { class: "warn-box", role: "status" }, res.warning));
  if (res.stdout) out.append(h("pre", { class: "log out cell-stdout", tabindex: "0" }, res.stdout + (res.stdout_truncated ? "\n[truncated]" : "")));
  if (res.stderr) out.append(h("pre", { class: "log out cell-stderr", tabindex: "0" }, res.stderr + (res.stderr_truncated ? "\n[truncated]" : "")));
  if (res.result !== null && res.result !== undefined)
    out.append(h("pre", { class: "log cell-result", tabindex: "0", "aria-label": "Result" }, res.result));
  const pictures = pictureFigures(res.display, `Cell ${cell.id} figure`);
  if (pictures.length) out.append(h("div", { class: "images cell-display" }, ...pictures));
}

function renderFiles(files) {
  for (const u of fileUrls) URL.revokeObjectURL(u);
  fileUrls = [];
  const entries = Object.entries(files).sort(([a], [b]) => a.localeCompare(b));
  $("nb-files").replaceChildren(...entries.map(([path, b64]) => {
    const bytes = bytesFromBase64(b64);
    const url = URL.createObjectURL(new Blob([bytes], { type: "application/octet-stream" }));
    fileUrls.push(url);
    return h("li", null, h("a", { href: url, download: path.split("/").pop(), class: "mono" }, path),
      h("span", { class: "muted" }, fmtBytes(bytes.length)));
  }));
  $("nb-nofiles").hidden = entries.length !== 0;
}
