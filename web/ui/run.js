// envhub UI: the Run page. Pick a ready environment, write code (a Python editor; Ctrl/Cmd+Enter
// or Shift+Enter runs), add input files (picker or drag and drop), run with POST /execute, and see stdout, stderr, the
// exit status, the duration, the pictures the code showed (matplotlib figures, the answer's
// `display`) and the output files: downloads, and images shown inline. A deprecated
// environment's warning is shown above the result; retired ones are listed but not offered.
import { $, api, badge, base64FromBytes, bytesFromBase64, fact, fmtBytes, fmtDuration, get, h, pictureFigures,
  pythonEditor, rememberPictures, showError } from "./api.js";

const SAMPLE = `import platform

print("Hello from", platform.python_version())
`;
const IMAGE_TYPES = { png: "image/png", jpg: "image/jpeg", jpeg: "image/jpeg", gif: "image/gif", svg: "image/svg+xml",
  webp: "image/webp" };
const TEXT_TYPES = { txt: "text/plain", csv: "text/csv", json: "application/json", html: "text/html", md: "text/markdown" };

let ctx;
let inputs = new Map(); // name -> File
let running = false;
let objectUrls = [];

export function init(c) {
  ctx = c;
  $("run-code").value = SAMPLE;
  pythonEditor($("run-code"), () => $("run-form").requestSubmit());
  $("run-form").addEventListener("submit", runCode);
  $("run-files").addEventListener("change", () => {
    addFiles($("run-files").files);
    $("run-files").value = "";
  });
  const drop = $("run-drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer && e.dataTransfer.files) addFiles(e.dataTransfer.files);
  });
}

export async function show() {
  const sel = $("run-env");
  const keep = sel.value;
  try {
    const doc = await get("/environments");
    const ready = (doc.environments || []).filter((e) => e.status === "ready");
    sel.replaceChildren(h("option", { value: "" }, "(default image)"), ...ready.map((e) => e.lifecycle === "retired"
      ? h("option", { value: e.name, disabled: true }, `${e.name} (retired${e.replacement ? `: use ${e.replacement}` : ""})`)
      : h("option", { value: e.name }, `${e.name} (v${e.version}${e.lifecycle === "deprecated" ? ", deprecated" : ""})`)));
    const runnable = (name) => ready.some((e) => e.name === name && e.lifecycle !== "retired");
    const wanted = new URLSearchParams(location.hash.split("?")[1] || "").get("env");
    if (wanted && runnable(wanted)) sel.value = wanted;
    else if (runnable(keep)) sel.value = keep;
    showError($("run-error"), null);
  } catch (err) {
    showError($("run-error"), err);
  }
}

function addFiles(list) {
  for (const f of list) inputs.set(f.name, f);
  renderInputs();
}

function renderInputs() {
  $("run-file-list").replaceChildren(...[...inputs.values()].map((f) => h("li", null,
    h("span", { class: "mono" }, f.name), h("span", { class: "muted" }, fmtBytes(f.size)),
    h("button", { type: "button", class: "link", "aria-label": `Remove ${f.name}`,
      onclick: () => { inputs.delete(f.name); renderInputs(); } }, "Remove"))));
}

async function runCode(e) {
  e.preventDefault();
  if (running) return;
  const timeout = Number($("run-timeout").value);
  const body = { code: $("run-code").value, timeout };
  if ($("run-env").value) body.environment = $("run-env").value;
  showError($("run-error"), null);
  $("run-result").hidden = true; // the last run's result does not pass for this one's
  running = true;
  $("run-submit").disabled = true;
  $("run-progress").hidden = false;
  const t0 = performance.now();
  const tick = setInterval(() => { $("run-elapsed").textContent = `${((performance.now() - t0) / 1000).toFixed(1)} s`; }, 100);
  try {
    if (inputs.size) {
      body.files = {};
      for (const f of inputs.values()) body.files[f.name] = base64FromBytes(new Uint8Array(await f.arrayBuffer()));
    }
    const res = await api("POST", "/execute", body);
    renderResult(res, (performance.now() - t0) / 1000);
  } catch (err) {
    showError($("run-error"), err);
  } finally {
    clearInterval(tick);
    running = false;
    $("run-submit").disabled = false;
    $("run-progress").hidden = true;
  }
}

function extOf(path) {
  const m = /\.([A-Za-z0-9]+)$/.exec(path);
  return m ? m[1].toLowerCase() : "";
}

function renderResult(res, wall) {
  for (const u of objectUrls) URL.revokeObjectURL(u);
  objectUrls = [];
  $("run-warning").hidden = !res.warning;
  $("run-warning").textContent = res.warning || "";
  const dl = $("run-facts");
  dl.replaceChildren();
  fact(dl, "Status", badge(res.status || (res.success ? "succeeded" : "failed")));
  fact(dl, "Exit code", res.exit_code === undefined || res.exit_code === null || res.exit_code < 0 ? "—" : String(res.exit_code));
  fact(dl, "Duration", `${fmtDuration(res.execution_time)} (round trip ${fmtDuration(wall)})`);
  if (res.id) fact(dl, "Execution", ctx.can("history")
    ? h("a", { href: `#/history/${encodeURIComponent(res.id)}`, class: "mono" }, res.id) : h("span", { class: "mono" }, res.id));
  const errBox = $("run-result-error");
  errBox.hidden = !res.error;
  errBox.textContent = res.error || "";
  const pictures = pictureFigures(res.display, "Figure");
  $("run-display").replaceChildren(...pictures);
  $("run-display-box").hidden = pictures.length === 0;
  rememberPictures(res.id, res.display);
  $("run-stdout").textContent = res.stdout + (res.stdout_truncated ? "\n[truncated]" : "");
  $("run-stderr").textContent = res.stderr + (res.stderr_truncated ? "\n[truncated]" : "");

  const files = Object.entries(res.files || {});
  const list = $("run-outfiles");
  const images = $("run-images");
  list.replaceChildren();
  images.replaceChildren();
  for (const [path, b64] of files.sort(([a], [b]) => a.localeCompare(b))) {
    const bytes = bytesFromBase64(b64);
    const ext = extOf(path);
    const type = IMAGE_TYPES[ext] || TEXT_TYPES[ext] || "application/octet-stream";
    const blob = new Blob([bytes], { type });
    const url = URL.createObjectURL(blob);
    objectUrls.push(url);
    const base = path.split("/").pop();
    list.append(h("li", null, h("a", { href: url, download: base, class: "mono" }, path),
      h("span", { class: "muted" }, fmtBytes(bytes.length)),
      inputs.has(path) ? h("span", { class: "muted" }, "(input)") : null));
    if (IMAGE_TYPES[ext]) images.append(h("figure", null, h("img", { src: url, alt: `output image ${path}` }), h("figcaption", null, path)));
  }
  for (const skipped of res.files_skipped || [])
    list.append(h("li", null, h("span", { class: "mono" }, skipped), h("span", { class: "muted" }, "left out")));
  $("run-nofiles").hidden = files.length !== 0 || (res.files_skipped || []).length !== 0;
  $("run-result").hidden = false;
}
