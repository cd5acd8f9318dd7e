// A web application on another origin drives envhub from the browser with a client written
// the way SimplePySandbox's JavaScript client is (fetch, JSON, the same paths): allowed when
// its origin is listed in ENVHUB_CORS_ORIGINS (preflight, grant, answers readable), refused
// when it is not (the browser sees no grant and the server runs nothing). The pages are
// served on other loopback ports by this test; the browser is Debian's chromium.
//
//   cd tests/e2e && ENVHUB_BIN=/abs/build/envhub node --test cors.test.mjs
import assert from "node:assert/strict";
import fs from "node:fs";
import http from "node:http";
import { after, before, describe, test } from "node:test";
import {
  closeBrowser, engineAnswers, Envhub, freePort, launchBrowser, removeLabelled, watchPage,
} from "./lib/envhub.mjs";

const skip = !(await engineAnswers())
  ? `no Docker engine answers on the socket (make engine starts one)` : false;
if (skip && process.env.CI === "true") throw new Error(skip);

// The page of the other application: the client (SimplePySandbox's calls) and nothing else.
const PAGE = `<!doctype html><meta charset="utf-8"><title>another app</title>
<script>
class SandboxClient {
  constructor(baseUrl) { this.baseUrl = baseUrl.replace(/\\/$/, ""); }
  async executeCode(code, options = {}) {
    const r = await fetch(this.baseUrl + "/execute", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ code, timeout: options.timeout || 30, ...options }) });
    return { status: r.status, body: await r.json() };
  }
  async createEnvironment(config) {
    const r = await fetch(this.baseUrl + "/environments", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(config) });
    return { status: r.status, body: await r.json() };
  }
  async listEnvironments() {
    const r = await fetch(this.baseUrl + "/environments");
    return { status: r.status, body: await r.json() };
  }
  async healthCheck() {
    const r = await fetch(this.baseUrl + "/health");
    return { status: r.status, body: await r.json() };
  }
}
</script>`;

function servePage() {
  return new Promise(async (resolve) => {
    const port = await freePort();
    const srv = http.createServer((req, res) => {
      res.writeHead(200, { "Content-Type": "text/html; charset=utf-8" });
      res.end(PAGE);
    });
    srv.listen(port, "127.0.0.1", () => resolve({ srv, origin: `http://127.0.0.1:${port}` }));
  });
}

// Runs `calls` (a function of the client, in the page) and returns what it returned or threw.
async function inPage(page, baseUrl, calls) {
  return page.evaluate(async ([url, body]) => {
    const client = new SandboxClient(url);
    try {
      return { ok: await (new Function("client", `return (async () => { ${body} })()`))(client) };
    } catch (e) {
      return { error: `${e.name}: ${e.message}` };
    }
  }, [baseUrl, calls]);
}

describe("envhub from a page of another origin", { skip }, () => {
  let allowed, refused, server, browser;

  before(async () => {
    allowed = await servePage();
    refused = await servePage();
    server = new Envhub(["--cors-origins", allowed.origin]);
    await server.start();
    browser = await launchBrowser();
  });

  after(async () => {
    await closeBrowser(browser);
    allowed?.srv.close();
    refused?.srv.close();
    if (server) {
      await server.stop();
      fs.rmSync(server.dir, { recursive: true, force: true });
    }
    await removeLabelled();
  });

  test("a listed origin runs code, lists environments and reads errors", { timeout: 120000 }, async () => {
    const page = await browser.context.newPage();
    const seen = watchPage(page, allowed.origin);
    await page.goto(`${allowed.origin}/`);
    const r = await inPage(page, server.url, `
      const health = await client.healthCheck();
      const run = await client.executeCode("print(6 * 7)");
      const envs = await client.listEnvironments();
      const bad = await client.createEnvironment({ name: "-bad name-", setup_script: "true" });
      return { health, run, envs, bad };`);
    assert.ok(r.ok, r.error);
    assert.equal(r.ok.health.status, 200);
    assert.equal(r.ok.health.body.status, "healthy");
    assert.equal(r.ok.run.status, 200);
    assert.equal(r.ok.run.body.success, true);
    assert.equal(r.ok.run.body.stdout, "42\n");
    assert.equal(r.ok.envs.status, 200);
    assert.ok(Array.isArray(r.ok.envs.body.environments));
    // an error answer is readable too: the grant is on every answer
    assert.ok(r.ok.bad.status >= 400 && r.ok.bad.status < 500, JSON.stringify(r.ok.bad));
    assert.equal(typeof r.ok.bad.body.detail, "string");
    // a JSON POST is not a simple request: the browser asked first (the server's log)
    assert.match(server.logTail(200), /method=OPTIONS path=\/execute status=204/);
    const runs = await server.api("GET", "/executions");
    assert.equal(runs.body.items.length, 1);
    assert.deepEqual(seen.errors, []);
    await page.close();
  });

  test("an unlisted origin is refused: the browser sees no grant and nothing runs", { timeout: 60000 }, async () => {
    const before = (await server.api("GET", "/executions")).body.items.length;
    const page = await browser.context.newPage();
    await page.goto(`${refused.origin}/`);
    const run = await inPage(page, server.url, `return await client.executeCode("print(1)");`);
    assert.match(run.error || "", /TypeError/, JSON.stringify(run));
    const health = await inPage(page, server.url, `return await client.healthCheck();`);
    assert.match(health.error || "", /TypeError/, JSON.stringify(health));
    const after = (await server.api("GET", "/executions")).body.items.length;
    assert.equal(after, before, "the refused origin's code ran");
    await page.close();
  });
});
