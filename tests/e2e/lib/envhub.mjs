// Helpers of the browser tests: an envhub process on 127.0.0.1 (like tests/api/helpers.py),
// the Docker engine over its unix socket (clean-up of what the run labelled), API calls, and
// Debian's chromium through playwright-core (no browser download, ever).
import { spawn, execFileSync } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(HERE, "..", "..", "..");
export const SCREENSHOTS = path.resolve(HERE, "..", "screenshots");
export const BIN = path.resolve(process.env.ENVHUB_BIN || path.join(ROOT, "build", "envhub"));
export const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
export const RUN_ID = Math.random().toString(16).slice(2, 14).padEnd(12, "0");
export const LABEL = `envhub.test=${RUN_ID}`;

// ---- the Docker engine (clean-up only) ----

function dockerSocket() {
  const host = process.env.DOCKER_HOST || "";
  return host.startsWith("unix://") ? host.slice("unix://".length) : "/var/run/docker.sock";
}

export function docker(method, p, timeoutMs = 30000) {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: dockerSocket(), method, path: p, headers: { Host: "docker" }, timeout: timeoutMs },
      (res) => {
        let body = "";
        res.on("data", (c) => { body += c; });
        res.on("end", () => {
          let doc = body;
          try { doc = body ? JSON.parse(body) : null; } catch { /* text */ }
          resolve({ status: res.statusCode, body: doc });
        });
      });
    req.on("timeout", () => req.destroy(new Error(`engine: ${method} ${p} timed out`)));
    req.on("error", reject);
    req.end();
  });
}

export async function engineAnswers() {
  try {
    return (await docker("GET", "/_ping", 5000)).status === 200;
  } catch {
    return false;
  }
}

// Removes the containers and images this run labelled, and the noted build-step images.
export async function removeLabelled(stepImages = []) {
  const filters = encodeURIComponent(JSON.stringify({ label: [LABEL] }));
  const removed = [];
  const cs = await docker("GET", `/v1.41/containers/json?all=1&filters=${filters}`);
  for (const c of cs.body || []) {
    await docker("DELETE", `/v1.41/containers/${c.Id}?force=1`);
    removed.push(`container ${c.Id.slice(0, 12)}`);
  }
  const images = await docker("GET", `/v1.41/images/json?filters=${filters}`);
  for (const im of images.body || []) {
    const r = await docker("DELETE", `/v1.41/images/${im.Id}?force=1`, 120000);
    if (r.status === 200) removed.push(`image ${im.Id.slice(7, 19)}`);
  }
  // a failed build's COPY step stays as an untagged, unlabelled image: removed when unused
  for (const ref of stepImages) await docker("DELETE", `/v1.41/images/${ref}`, 60000).catch(() => {});
  return removed;
}

// The image id docker build printed after the COPY setup.sh step of a build log.
export function stepImagesOf(log) {
  const lines = log.split("\n").map((l) => l.trim());
  const out = [];
  lines.forEach((line, i) => {
    if (line.startsWith("Step ") && line.includes("COPY setup.sh")) {
      for (const after of lines.slice(i + 1, i + 4)) {
        const m = /^---> ([0-9a-f]{12})$/.exec(after);
        if (m) { out.push(m[1]); break; }
      }
    }
  });
  return out;
}

// ---- the envhub process ----

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// The test process's environment less every setting the server reads: the flags alone decide.
export function serverEnv() {
  const drop = new Set(["SANDBOX_TIMEOUT", "MAX_CODE_LENGTH", "MAX_FILE_SIZE", "DOCKER_IMAGE", "MEMORY_LIMIT",
    "CPU_LIMIT", "NETWORK_MODE", "WORK_DIR", "CONCURRENT_LIMIT"]);
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !drop.has(k) && !k.startsWith("ENVHUB_")));
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export class Envhub {
  // flags: more `envhub serve` flags (e.g. ["--cors-origins", "http://127.0.0.1:1234"])
  constructor(flags = []) {
    this.flags = flags;
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), "envhub-e2e-"));
    this.db = path.join(this.dir, "envhub.db");
    this.logPath = path.join(this.dir, "envhub.log");
    this.proc = null;
    this.port = 0;
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  // `envhub key create` on the catalog file; returns the secret.
  createKey(name, role) {
    const out = execFileSync(BIN, ["--db", this.db, "key", "create", "--name", name, "--role", role],
      { env: serverEnv(), stdio: ["ignore", "pipe", "pipe"] }).toString();
    const m = /ehk_[0-9a-f]+_[0-9a-f]+/.exec(out);
    if (!m) throw new Error(`envhub key create printed no key: ${out}`);
    return m[0];
  }

  async start() {
    for (let attempt = 0; attempt < 3; attempt++) {
      this.port = await freePort();
      const args = ["serve", "--listen", `127.0.0.1:${this.port}`, "--db", this.db, "--labels", LABEL,
        ...this.flags];
      const log = fs.openSync(this.logPath, "a");
      fs.writeSync(log, `\n$ ${BIN} ${args.join(" ")}\n`);
      this.proc = spawn(BIN, args, { env: serverEnv(), stdio: ["ignore", log, log], detached: true });
      fs.closeSync(log);
      const deadline = Date.now() + 30000;
      while (Date.now() < deadline) {
        if (this.proc.exitCode !== null) break;
        try {
          const r = await fetch(`${this.url}/health`);
          if (r.status === 200) return this;
        } catch { /* not yet */ }
        await sleep(100);
      }
      await this.stop();
      if (!/address/i.test(this.logTail(20))) break;
    }
    throw new Error(`envhub did not become healthy; ${this.logPath}:\n${this.logTail()}`);
  }

  // SIGTERM by PID, then SIGKILL after 10 s.
  async stop() {
    const p = this.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise((r) => p.once("exit", r));
    try { process.kill(p.pid, "SIGTERM"); } catch { return; }
    const t = setTimeout(() => { try { process.kill(p.pid, "SIGKILL"); } catch { /* gone */ } }, 10000);
    await exited;
    clearTimeout(t);
  }

  logTail(n = 60) {
    try {
      return fs.readFileSync(this.logPath, "utf8").split("\n").slice(-n).join("\n");
    } catch {
      return "";
    }
  }

  async api(method, p, { key, body } = {}) {
    const headers = {};
    if (key) headers.Authorization = `Bearer ${key}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const r = await fetch(this.url + p, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await r.text();
    let doc = text;
    try { doc = JSON.parse(text); } catch { /* text */ }
    return { status: r.status, body: doc };
  }

  // Polls GET /environments/NAME until it is no longer building; returns it.
  async waitEnv(name, key, withinMs) {
    const deadline = Date.now() + withinMs;
    for (;;) {
      const r = await this.api("GET", `/environments/${name}`, { key });
      if (r.status !== 200) throw new Error(`GET /environments/${name}: ${r.status} ${JSON.stringify(r.body)}`);
      if (r.body.status !== "building") return r.body;
      if (Date.now() > deadline) {
        const log = await this.api("GET", `/environments/${name}/logs`, { key });
        throw new Error(`${name} still building after ${withinMs / 1000} s:\n${String(log.body).slice(-3000)}`);
      }
      await sleep(1000);
    }
  }
}

// ---- the browser ----

// Debian's chromium, headless, with a fresh profile and nothing that reaches the network.
export async function launchBrowser() {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "envhub-e2e-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    acceptDownloads: true,
    viewport: { width: 1280, height: 900 },
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  return { context, profile };
}

// Closes a browser of launchBrowser() (null is fine) and removes its profile.
export async function closeBrowser(browser) {
  if (!browser) return;
  await browser.context.close();
  fs.rmSync(browser.profile, { recursive: true, force: true });
}

// Polls fn() every 200 ms until it gives something truthy, which it returns; throws past withinMs.
export async function until(fn, withinMs, what) {
  const deadline = Date.now() + withinMs;
  for (;;) {
    const last = await fn();
    if (last) return last;
    if (Date.now() > deadline) throw new Error(`timed out after ${withinMs / 1000} s waiting for ${what}`);
    await sleep(200);
  }
}

// Records what a page asks of other hosts and the errors it shows in its console.
export function watchPage(page, origin) {
  const seen = { external: [], errors: [] };
  page.on("request", (req) => {
    const u = req.url();
    if (!u.startsWith(origin) && !u.startsWith("blob:") && !u.startsWith("data:")) seen.external.push(u);
  });
  page.on("pageerror", (e) => seen.errors.push(`pageerror: ${e.message}`));
  page.on("console", (m) => {
    // the API's 4xx answers the tests cause on purpose show as failed resources
    if (m.type() === "error" && !/Failed to load resource/.test(m.text())) seen.errors.push(`console: ${m.text()}`);
  });
  return seen;
}

// @name-1280.png and @name-390.png; fullPage false for the very long documentation pages.
export async function screenshot(page, name, { fullPage = true } = {}) {
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  const size = page.viewportSize();
  for (const width of [1280, 390]) {
    await page.setViewportSize({ width, height: width === 390 ? 844 : 900 });
    await page.waitForTimeout(150);
    await page.screenshot({ path: path.join(SCREENSHOTS, `${name}-${width}.png`), fullPage });
  }
  await page.setViewportSize(size);
}

export function script(name) {
  return fs.readFileSync(path.join(ROOT, "environments", `${name}.sh`), "utf8");
}

// Replace the code in the editor that stands in for textarea #@id (the UI's Python editor).
export async function fillCode(page, id, text) {
  await setEditor(page, page.locator(`#${id}-editor .cm-content`), text);
}

// Replace the text of the code editor @content (its .cm-content): select all, Delete (the
// editor's own command), then insert the text into the empty editor. (Replacing a selection of
// several lines natively, as Playwright's fill() does, makes the browser merge the lines with
// styled elements, which the UI's Content-Security-Policy refuses; the editor redraws them.)
export async function setEditor(page, content, text) {
  await content.focus();
  await page.keyboard.press("Control+A");
  await page.keyboard.press("Delete");
  if (text) await page.keyboard.insertText(text);
  await page.waitForTimeout(60);
}

// The text of a code editor (CodeMirror) inside @locator, line by line.
export async function editorText(locator) {
  return (await locator.locator(".cm-line").allTextContents()).join("\n");
}

// Type @text into the focused code editor as a person would: line by line, Enter between the
// lines (the editor indents), with a pause before each Enter so that the editor has read what
// was typed (CodeMirror reads typed text from the page a moment after it lands).
export async function typeCode(page, text) {
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    if (lines[i]) await page.keyboard.type(lines[i], { delay: 5 });
    if (i < lines.length - 1) {
      await page.waitForTimeout(60);
      await page.keyboard.press("Enter");
    }
  }
  await page.waitForTimeout(60);
}
