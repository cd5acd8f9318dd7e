// The Nodes page (issue 15, item 4), in Debian's chromium against a real envhub in cluster mode
// (ENVHUB_CLUSTER=swarm) with two `envhub node` processes on this machine's engine: an admin
// sees each node, its state and slots, and the jobs it ran; Drain and Resume change what the
// server does (a drained node takes no job); a runner's key does not see the page.
//
//   cd tests/e2e && ENVHUB_BIN=/abs/build/envhub node --test nodes.test.mjs
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import {
  BIN, closeBrowser, engineAnswers, Envhub, LABEL, launchBrowser, removeLabelled, RUN_ID, screenshot, serverEnv, until,
  watchPage,
} from "./lib/envhub.mjs";

const skip = !(await engineAnswers()) ? `no Docker engine answers on the socket (make engine starts one)` : false;
if (skip && process.env.CI === "true") throw new Error(skip);

describe("the nodes page", { skip }, () => {
  let server;
  let keyFile;
  const nodes = [];
  const names = [`e${RUN_ID.slice(0, 6)}-a`, `e${RUN_ID.slice(0, 6)}-b`];
  let browser;
  let page;
  let seen;

  before(async () => {
    const dir = fs.mkdtempSync(path.join(fs.realpathSync("/tmp"), "envhub-e2e-key-"));
    keyFile = path.join(dir, "node.key");
    fs.writeFileSync(keyFile, `${RUN_ID}${RUN_ID}${RUN_ID}\n`, { mode: 0o600 });
    server = new Envhub(["--cluster", "swarm", "--node-key-file", keyFile, "--pool-size", "0"]);
    await server.start();
    for (const name of names) {
      const log = fs.openSync(path.join(server.dir, `node-${name}.log`), "a");
      nodes.push(spawn(BIN, ["node", "--name", name, "--node-key-file", keyFile, "--labels", LABEL,
        "--pool-size", "0", "--concurrent-limit", "2"],
      { env: { ...serverEnv(), ENVHUB_URL: server.url }, stdio: ["ignore", log, log], detached: true }));
      fs.closeSync(log);
    }
    await until(async () => {
      const r = await server.api("GET", "/cluster/nodes");
      return r.body.nodes && r.body.nodes.filter((n) => n.state === "ready").length === 2;
    }, 30000, "both nodes to report");
    browser = await launchBrowser();
    page = await browser.context.newPage();
    seen = watchPage(page, server.url);
  });

  after(async () => {
    await closeBrowser(browser);
    for (const p of nodes) {
      if (p.exitCode === null && p.signalCode === null) {
        const exited = new Promise((r) => p.once("exit", r));
        process.kill(p.pid, "SIGTERM");
        await exited;
      }
    }
    if (server) await server.stop();
    await removeLabelled();
    fs.rmSync(path.dirname(keyFile), { recursive: true, force: true });
    if (!process.exitCode) fs.rmSync(server.dir, { recursive: true, force: true });
    else console.log(`envhub log and catalog kept in ${server.dir}`);
  });

  const row = (name) => page.locator(`#nodes-rows tr[data-node="${name}"]`);

  test("an admin sees the nodes, drains one and resumes it", { timeout: 120000 }, async () => {
    for (let i = 0; i < 4; i++) {
      const r = await server.api("POST", "/execute", { body: { code: `print(${i})` } });
      assert.equal(r.status, 200, JSON.stringify(r.body));
    }
    await page.goto(`${server.url}/#/nodes`);
    await row(names[0]).waitFor();
    await row(names[1]).waitFor();
    for (const name of names) {
      assert.match(await row(name).locator(".node-state").textContent(), /ready/);
    }
    await until(async () => /4 placed/.test(await page.locator("#nodes-summary").textContent()), 10000,
      "the summary to count the 4 jobs");
    const done = async (name) => Number(await row(name).locator("td").nth(4).textContent());
    assert.equal((await done(names[0])) + (await done(names[1])), 4);
    await screenshot(page, "nodes");

    // drain the first: the page says so, and the server gives it nothing
    await row(names[0]).getByRole("button", { name: `Drain ${names[0]}` }).click();
    await until(async () => /drained/.test(await row(names[0]).locator(".node-state").textContent()), 10000,
      "the drained state");
    const before = await done(names[0]);
    for (let i = 0; i < 4; i++) {
      const r = await server.api("POST", "/execute", { body: { code: "print('b')" } });
      assert.equal(r.status, 200);
      const ex = await server.api("GET", `/executions/${r.body.id}`);
      assert.equal(ex.body.node, names[1]);
    }
    await page.waitForTimeout(2500); // the page refreshes itself every 2 s
    assert.equal(await done(names[0]), before);
    await row(names[0]).getByRole("button", { name: `Resume ${names[0]}` }).click();
    await until(async () => /ready/.test(await row(names[0]).locator(".node-state").textContent()), 10000,
      "the ready state again");

    // the History page names the node of an execution
    const r = await server.api("POST", "/execute", { body: { code: "print('h')" } });
    await page.goto(`${server.url}/#/history/${r.body.id}`);
    await until(async () => (await page.locator("#hist-detail").textContent()).includes("Node"), 15000,
      "the execution's node in its detail");
    assert.deepEqual(seen.errors, []);
    assert.deepEqual(seen.external, []);
  });

  test("a runner's key does not see the page", { timeout: 60000 }, async () => {
    const key = server.createKey(`runner-${RUN_ID}`, "runner");
    const p = await browser.context.newPage();
    await p.goto(`${server.url}/`);
    await p.locator("#signin-key").fill(key);
    await p.locator("#signin-key").press("Enter");
    await p.locator("#who-role").waitFor();
    assert.equal(await p.locator('#nav a[data-page="nodes"]').isVisible(), false);
    await p.goto(`${server.url}/#/nodes`);
    await until(async () => !(await p.locator("#notice").isHidden()), 10000, "the notice");
    assert.match(await p.locator("#notice-text").textContent(), /admins only/);
    await p.close();
  });
});
