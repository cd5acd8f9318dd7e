// envhub UI: the API client and small DOM helpers shared by the pages.
// Every call sends the key kept in this tab's sessionStorage; every error keeps the API's
// {"detail"} so that the pages can show it as it is.
import { createEditor } from "./editor.js";

const KEY_NAME = "envhub.key";

export function getKey() {
  return sessionStorage.getItem(KEY_NAME) || "";
}

export function setKey(key) {
  if (key) sessionStorage.setItem(KEY_NAME, key);
  else sessionStorage.removeItem(KEY_NAME);
}

export class ApiError extends Error {
  constructor(status, detail, path) {
    super(detail);
    this.status = status;
    this.detail = detail;
    this.path = path;
  }
  // "403 Forbidden — role 'auditor' (key 'x') may not POST /execute"
  describe() {
    const names = { 400: "Bad request", 401: "Not signed in", 403: "Forbidden", 404: "Not found", 409: "Conflict",
      410: "Gone", 413: "Too large", 415: "Unsupported media type", 422: "Invalid request", 429: "Too many requests",
      500: "Server error", 502: "Engine error", 503: "Unavailable", 504: "Timed out" };
    if (!this.status) return this.detail;
    return `${this.status} ${names[this.status] || "Error"} — ${this.detail}`;
  }
}

// Listeners told about a 401 (key missing, unknown or revoked): the app shows the sign-in.
const unauthorizedListeners = [];
export function onUnauthorized(fn) {
  unauthorizedListeners.push(fn);
}

function headers(extra) {
  const h = Object.assign({}, extra || {});
  const key = getKey();
  if (key) h["Authorization"] = `Bearer ${key}`;
  return h;
}

async function errorFrom(resp, path) {
  let detail = `${resp.status} ${resp.statusText}`;
  const text = await resp.text().catch(() => "");
  if (text) {
    try {
      const doc = JSON.parse(text);
      if (doc && typeof doc.detail === "string") detail = doc.detail;
      else if (doc && doc.detail !== undefined) detail = JSON.stringify(doc.detail);
      else detail = text.slice(0, 2000);
    } catch {
      detail = text.slice(0, 2000);
    }
  }
  const err = new ApiError(resp.status, detail, path);
  if (resp.status === 401) unauthorizedListeners.forEach((fn) => fn(err));
  return err;
}

// fetch() with the key; resolves to the Response when it is 2xx, else throws an ApiError.
export async function request(method, path, { body, signal, accept } = {}) {
  const h = headers(accept ? { Accept: accept } : {});
  const init = { method, headers: h, signal, cache: "no-store" };
  if (body !== undefined) {
    h["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(0, `cannot reach envhub (${method} ${path}): ${e.message}`, path);
  }
  if (!resp.ok) throw await errorFrom(resp, path);
  return resp;
}

export async function api(method, path, body, opts = {}) {
  const resp = await request(method, path, Object.assign({ body }, opts));
  if (resp.status === 204) return null;
  return resp.json();
}

export const get = (path, opts) => api("GET", path, undefined, opts);

// Follow a server-sent event stream with fetch (EventSource cannot send the Authorization
// header): onEvent({event, data, id}) for each event. Resolves when the stream ends.
export async function followEvents(path, onEvent, signal) {
  const resp = await request("GET", path, { signal, accept: "text/event-stream" });
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let ev = { event: "message", data: [], id: null };
  const dispatch = () => {
    if (ev.data.length || ev.event !== "message") onEvent({ event: ev.event, data: ev.data.join("\n"), id: ev.id });
    ev = { event: "message", data: [], id: null };
  };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let nl;
    while ((nl = buffer.search(/\r\n|\n|\r/)) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + (buffer[nl] === "\r" && buffer[nl + 1] === "\n" ? 2 : 1));
      if (line === "") { dispatch(); continue; }
      if (line.startsWith(":")) continue; // keepalive comment
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let val = colon < 0 ? "" : line.slice(colon + 1);
      if (val.startsWith(" ")) val = val.slice(1);
      if (field === "data") ev.data.push(val);
      else if (field === "event") ev.event = val;
      else if (field === "id") ev.id = val;
    }
  }
}

// Download the answer of GET @path (with the key) as a file named @filename.
export async function download(path, filename) {
  const resp = await request("GET", path);
  const blob = await resp.blob();
  saveBlob(blob, filename);
  return blob;
}

export function saveBlob(blob, filename) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

// ---- DOM helpers ----

export const $ = (id) => document.getElementById(id);

// h("td", {class: "x", dataset: {label: "Name"}}, "text", child...) -> element
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

export function badge(status) {
  const known = ["ready", "building", "failed", "queued", "running", "succeeded", "timeout", "oom", "error",
    "interrupted", "cancelled", "active", "deprecated", "retired", "drained", "lost", "engine_down"];
  return h("span", { class: `badge ${known.includes(status) ? status : "unknown"}` }, status || "unknown");
}

export function showError(el, err) {
  if (!el) return;
  if (!err) { el.hidden = true; el.textContent = ""; return; }
  el.textContent = err instanceof ApiError ? err.describe() : String(err.message || err);
  el.hidden = false;
}

export function fmtTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return d.toLocaleString(undefined, { year: "numeric", month: "short", day: "numeric", hour: "2-digit",
    minute: "2-digit", second: "2-digit" });
}

export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || seconds < 0 || Number.isNaN(seconds)) return "—";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 120) return `${seconds.toFixed(seconds < 10 ? 2 : 1)} s`;
  const m = Math.floor(seconds / 60);
  return `${m} min ${Math.round(seconds - m * 60)} s`;
}

export function fmtBytes(n) {
  if (n === null || n === undefined) return "—";
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

export function fact(dl, name, value) {
  dl.append(h("dt", null, name), h("dd", null, value instanceof Node ? value : value ?? "—"));
}

// A code editor on a textarea: Tab inserts spaces (Shift+Tab removes them), Esc lets the next
// Tab leave the field (keyboard users are never trapped), @onRun for Ctrl/Cmd+Enter.
export function codeEditor(ta, onRun) {
  let escaped = false;
  ta.addEventListener("keydown", (e) => {
    if (e.key === "Escape") { escaped = true; return; }
    if ((e.ctrlKey || e.metaKey) && e.key === "Enter" && onRun) {
      e.preventDefault();
      onRun();
      return;
    }
    if (e.key !== "Tab" || e.ctrlKey || e.altKey || e.metaKey) { escaped = false; return; }
    if (escaped) { escaped = false; return; }
    e.preventDefault();
    const { selectionStart: s, selectionEnd: end, value } = ta;
    const lineStart = value.lastIndexOf("\n", s - 1) + 1;
    if (e.shiftKey) {
      const m = /^ {1,4}/.exec(value.slice(lineStart));
      if (!m) return;
      ta.setRangeText("", lineStart, lineStart + m[0].length, "preserve");
      return;
    }
    if (s !== end && value.slice(s, end).includes("\n")) {
      // indent every selected line
      const block = value.slice(lineStart, end).replace(/^/gm, "    ");
      ta.setRangeText(block, lineStart, end, "select");
      return;
    }
    const spaces = " ".repeat(4 - ((s - lineStart) % 4));
    ta.setRangeText(spaces, s, end, "end");
  });
}

// A Python editor (CodeMirror, /ui/editor.js) in place of textarea @ta, which stays in the
// form, hidden, holding the code as it is edited: pages read ta.value as before. Its label
// focuses the editor; @onRun for Ctrl/Cmd+Enter and Shift+Enter. Returns the editor.
export function pythonEditor(ta, onRun) {
  const box = h("div", { class: "code-editor", id: `${ta.id}-editor` });
  ta.after(box);
  ta.hidden = true;
  ta.required = false;
  const label = document.querySelector(`label[for="${ta.id}"]`);
  const editor = createEditor(box, { doc: ta.value, onRun, label: label ? label.textContent : "Code (Python)",
    onChange: (text) => { ta.value = text; } });
  if (label) label.addEventListener("click", () => editor.focus());
  return editor;
}

export function base64FromBytes(bytes) {
  let bin = "";
  for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return btoa(bin);
}

export function bytesFromBase64(b64) {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

export function qs(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") u.set(k, v);
  const s = u.toString();
  return s ? `?${s}` : "";
}

// ---- pictures a job showed (the answer's `display`) ----

// The catalog keeps a picture's name, size and sha256, not its bytes: the pictures of the last
// few answers this page received are kept here, so the history's detail can show them too.
const shownPictures = new Map(); // execution id -> display entries
const SHOWN_KEPT = 10;

export function rememberPictures(id, display) {
  if (!id || !Array.isArray(display) || !display.length) return;
  shownPictures.delete(id);
  shownPictures.set(id, display);
  while (shownPictures.size > SHOWN_KEPT) shownPictures.delete(shownPictures.keys().next().value);
}

export function rememberedPictures(id) {
  return shownPictures.get(id) || null;
}

// <figure>s with each PNG inline (a data: URL) and its name as caption and alt text.
export function pictureFigures(display, label) {
  return (display || []).filter((d) => d && d.mime === "image/png" && typeof d.data === "string")
    .map((d, i) => h("figure", { class: "picture" },
      h("img", { src: `data:image/png;base64,${d.data}`, alt: `${label} ${i + 1}: ${d.name}` }),
      h("figcaption", null, d.name)));
}
