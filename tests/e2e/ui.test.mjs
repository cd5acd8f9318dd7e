// The envhub UI in Debian's chromium against a real envhub and a real Docker engine, one user
// flow per test. One server serves the whole file (with an admin and an auditor key); the
// data-science environment is built once, in the background from the start, and shared.
// Screenshots of every page at 1280 and 390 px go to tests/e2e/screenshots/.
//
//   cd tests/e2e && ENVHUB_BIN=/abs/build/envhub node --test *.test.mjs   (make e2e)
import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import { after, before, describe, test } from "node:test";
import {
  closeBrowser, engineAnswers, Envhub, fillCode, launchBrowser, removeLabelled, RUN_ID, screenshot, script, stepImagesOf, until,
  watchPage,
} from "./lib/envhub.mjs";

const DS = `ds-${RUN_ID}`;
const BASIC = `basic-${RUN_ID}`;
const BROKEN = `broken-${RUN_ID}`;
const POLICY = `policy-${RUN_ID}`;
const MIB = 1024 * 1024;
const DS_BUILD_MS = 400000;
const PLOT_CODE = `import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

plt.plot([1, 2, 3, 4], [1, 4, 9, 16], marker="o")
plt.title("envhub e2e ${RUN_ID}")
plt.savefig("plot.png")
print("plotted", 6 * 7)
`;



const skip = !(await engineAnswers())
  ? `no Docker engine answers on the socket (make engine starts one)` : false;
if (skip && process.env.CI === "true") throw new Error(skip);

describe("envhub UI", { skip }, () => {
  const server = new Envhub();
  let keys;
  let browser;
  let page;
  let seen;
  let plotRun = null; // {id} of the matplotlib execution, for the history test
  const stepImages = [];

  before(async () => {
    keys = { admin: server.createKey("e2e-admin", "admin"), auditor: server.createKey("e2e-auditor", "auditor") };
    await server.start();
    // the long build starts at once and serves the run and history tests
    const r = await server.api("POST", "/environments",
      { key: keys.admin, body: { name: DS, description: "e2e: data science", setup_script: script("data-science") } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    browser = await launchBrowser();
    page = await browser.context.newPage();
    seen = watchPage(page, server.url);
  });

  after(async () => {
    for (const name of [BROKEN]) {
      const log = await server.api("GET", `/environments/${name}/logs`, { key: keys.admin }).catch(() => null);
      if (log && typeof log.body === "string") stepImages.push(...stepImagesOf(log.body));
    }
    await closeBrowser(browser);
    await server.stop();
    await removeLabelled(stepImages);
    if (!process.exitCode) fs.rmSync(server.dir, { recursive: true, force: true });
    else console.log(`envhub log and catalog kept in ${server.dir}`);
  });

  // The newest build shown in the detail panel ended ready (not live any more): its state text.
  async function builtReady(p, version, what) {
    const state = await until(async () => {
      const t = (await p.textContent("#env-log-state")) || "";
      return t.startsWith(`v${version} `) && /ready|failed/.test(t) && !/live/.test(t) ? t : null;
    }, 120000, what);
    assert.match(state, /ready/, `${what}: ${state}; log:\n${await p.textContent("#env-log")}`);
  }

  // every test: nothing asked of another host, no script error, no CSP violation
  function assertClean() {
    assert.deepEqual(seen.external, [], "the page asked other hosts");
    assert.deepEqual(seen.errors, [], "the page logged errors");
  }

  async function signIn(p, key) {
    await p.goto(`${server.url}/`);
    await p.locator("#signin-key").waitFor({ state: "visible" });
    await p.fill("#signin-key", key);
    await p.click("#signin-form button[type=submit]");
    await p.locator("#nav").waitFor({ state: "visible" });
  }

  test("signing in with a key shows who is signed in", { timeout: 60000 }, async () => {
    await page.goto(`${server.url}/`);
    await page.locator("#signin-key").waitFor({ state: "visible" });
    await screenshot(page, "signin");
    // a wrong key is refused with the API's detail
    await page.fill("#signin-key", "ehk_000000000000_" + "0".repeat(48));
    await page.click("#signin-form button[type=submit]");
    await until(async () => /401/.test((await page.textContent("#signin-error")) || ""), 10000, "the 401 detail");
    assert.match(await page.textContent("#signin-error"), /unknown or revoked/);
    await signIn(page, keys.admin);
    assert.equal(await page.textContent("#who-principal"), "e2e-admin");
    assert.equal(await page.textContent("#who-role"), "admin");
    assertClean();
  });

  test("creates an environment from a template and shows its build log live until it is ready", { timeout: 300000 },
    async () => {
      await page.goto(`${server.url}/#/environments`);
      await page.click("#env-new");
      await page.locator("#env-create").waitFor({ state: "visible" });
      await until(async () => (await page.locator("#env-template option").count()) > 1, 10000, "the templates");
      await page.selectOption("#env-template", "basic-python");
      assert.match(await page.inputValue("#env-script"), /python3-requests/);
      assert.equal(await page.inputValue("#env-name"), "basic-python");
      // Tab in the editor inserts spaces
      await page.focus("#env-script");
      await page.keyboard.press("End");
      await page.keyboard.press("Tab");
      assert.match(await page.inputValue("#env-script"), / {1,4}$/);
      await page.fill("#env-name", BASIC);
      await page.click("#env-create-submit");

      await until(async () => (await page.textContent("#env-detail-title")) === BASIC, 10000, "the detail panel");
      // log lines appear while the build runs, with the elapsed time
      let liveLines = 0;
      let elapsedSeen = false;
      const boxes = new Set(); // the log box's place and size while lines stream in: no layout jumps
      const env = await until(async () => {
        const state = (await page.textContent("#env-log-state")) || "";
        const lines = ((await page.textContent("#env-log")) || "").split("\n").filter(Boolean).length;
        if (/live/.test(state)) {
          liveLines = Math.max(liveLines, lines);
          elapsedSeen ||= /elapsed \d/.test((await page.textContent("#env-log-elapsed")) || "");
          const b = await page.locator("#env-log").evaluate((el) => {
            const r = el.getBoundingClientRect();
            return `${Math.round(r.top + window.scrollY)},${Math.round(r.height)}`;
          });
          if (lines > 0) boxes.add(b);
        }
        return /ready|failed/.test(state) && !/live/.test(state) ? state : null;
      }, 240000, `${BASIC} to finish building`);
      assert.match(env, /ready/, `the build ended: ${env}; log:\n${await page.textContent("#env-log")}`);
      assert.ok(liveLines > 0, "no log line appeared before the build ended");
      assert.ok(elapsedSeen, "no elapsed time was shown while building");
      assert.equal(boxes.size, 1, `the log box moved or changed size while streaming: ${[...boxes].join(" ")}`);
      assert.match(await page.textContent("#env-log-elapsed"), /took/);
      // the list shows it ready, with its version
      const row = page.locator(`#env-rows tr[data-name="${BASIC}"]`);
      await until(async () => /ready/.test(await row.textContent()), 15000, "the ready badge in the list");
      assert.match(await row.textContent(), /v1/);
      await until(async () => (await page.locator("#env-packages tr").count()) > 0, 15000, "the package inventory");
      assert.ok((await page.locator("#env-builds tr").count()) >= 1);
      await screenshot(page, "environments");
      assertClean();
    });

  test("shows a failed build's error", { timeout: 240000 }, async () => {
    await page.goto(`${server.url}/#/environments`);
    await page.click("#env-new");
    await page.selectOption("#env-template", "");
    await page.fill("#env-name", BROKEN);
    await page.fill("#env-description", "fails on purpose");
    await page.fill("#env-script", "#!/bin/bash\necho about to fail\nfalse\necho never\n");
    await page.click("#env-create-submit");
    await until(async () => (await page.textContent("#env-detail-title")) === BROKEN, 10000, "the detail panel");
    await page.locator("#env-detail-error").waitFor({ state: "visible", timeout: 180000 });
    const detail = await page.textContent("#env-detail-error");
    assert.match(detail, /failed/);
    assert.match(detail, /setup\.sh failed at line 3: false/);
    assert.match(await page.textContent("#env-log"), /about to fail/);
    await until(async () => /failed/.test(await page.locator(`#env-rows tr[data-name="${BROKEN}"]`).textContent()), 15000,
      "the failed badge");
    assert.match(await page.textContent("#env-facts"), /setup\.sh failed at line 3/);
    await screenshot(page, "environment-failed");
    assertClean();
  });

  test("creates an environment with a policy, shows it, and rebuilds it under another", { timeout: 180000 }, async () => {
    await page.goto(`${server.url}/#/environments`);
    await page.click("#env-new");
    await page.selectOption("#env-template", "");
    await page.fill("#env-name", POLICY);
    await page.fill("#env-description", "e2e: a policy set in the form");
    // a script of its own: no build cache shared with other runs (whose clean-up may remove it meanwhile)
    await page.fill("#env-script", `#!/bin/bash\necho policy-ok ${RUN_ID}\n`);
    assert.equal(await page.isVisible("#env-policy-memory"), false, "the policy section starts collapsed");
    await page.click("#env-policy-box summary");
    await page.fill("#env-policy-memory", "256");
    await page.fill("#env-policy-timeout_max", "60");
    await page.click("#env-create-submit");
    await until(async () => (await page.textContent("#env-detail-title")) === POLICY, 10000, "the detail panel");
    await builtReady(page, 1, `${POLICY} v1 to build`);
    let env = (await server.api("GET", `/environments/${POLICY}`, { key: keys.admin })).body;
    assert.deepEqual(env.policy, { memory: 256 * MIB, timeout_max: 60 });
    await until(async () => /memory 256 MiB/.test((await page.textContent("#env-policy-text")) || ""), 10000, "the policy fact");
    assert.match(await page.textContent("#env-policy-text"), /maximum timeout 60 s/);

    // a curator changes the policy with a rebuild: the form starts from the current one
    await page.click("#env-policy-edit summary");
    assert.equal(await page.inputValue("#env-policy-new-memory"), "256");
    await page.fill("#env-policy-new-memory", "128");
    await page.fill("#env-policy-new-timeout_max", "");
    await page.click("#env-policy-rebuild");
    await builtReady(page, 2, `${POLICY} v2 to build`);
    await until(async () => /memory 128 MiB/.test((await page.textContent("#env-policy-text")) || ""), 10000, "the new policy");
    env = (await server.api("GET", `/environments/${POLICY}`, { key: keys.admin })).body;
    assert.equal(env.version, 2);
    assert.deepEqual(env.policy, { memory: 128 * MIB });
    assertClean();
  });

  test("a curator deprecates an environment (runs warn), retires it (runs refused) and reinstates it", { timeout: 120000 },
    async () => {
      await page.goto(`${server.url}/#/environments/${BASIC}`);
      await until(async () => (await page.textContent("#env-detail-title")) === BASIC, 10000, "the detail panel");
      await until(async () => /active/.test((await page.textContent("#env-lifecycle-state")) || ""), 10000, "the lifecycle");
      assert.equal(await page.isDisabled("#env-reinstate"), true);
      await page.fill("#env-replacement", POLICY);
      await page.click("#env-deprecate");
      await until(async () => /deprecated — use .* instead/.test((await page.textContent("#env-lifecycle-state")) || ""), 10000,
        "the deprecated state");
      assert.match(await page.textContent("#env-lifecycle-state"), new RegExp(`use ${POLICY} instead`));
      const row = page.locator(`#env-rows tr[data-name="${BASIC}"]`);
      await until(async () => /deprecated/.test(await row.textContent()), 10000, "the deprecated badge in the list");
      await screenshot(page, "curation");

      // it still runs, and the answer's warning is shown
      const code = `print("still runs ${RUN_ID}")`;
      await page.goto(`${server.url}/#/run`);
      await until(async () => (await page.locator(`#run-env option[value="${BASIC}"]`).count()) === 1, 10000, "the choice");
      assert.match(await page.textContent(`#run-env option[value="${BASIC}"]`), /deprecated/);
      await page.selectOption("#run-env", BASIC);
      await fillCode(page, "run-code", code);
      await page.click("#run-submit");
      await until(async () => /still runs/.test((await page.textContent("#run-stdout")) || ""), 60000, "the output");
      const warning = `environment '${BASIC}' is deprecated; use '${POLICY}' instead`;
      assert.equal(await page.isVisible("#run-warning"), true);
      assert.equal(await page.textContent("#run-warning"), warning);
      const id = (await page.textContent("#run-facts a")).trim();

      // the history finds it by environment version and code hash
      await page.goto(`${server.url}/#/history`);
      await page.fill("#hist-env", BASIC);
      await page.fill("#hist-version", "1");
      await page.fill("#hist-sha", crypto.createHash("sha256").update(code).digest("hex"));
      await page.click("#hist-filters button[type=submit]");
      await until(async () => {
        const ids = await page.locator("#hist-rows tr").evaluateAll((rows) => rows.map((r) => r.dataset.id));
        return ids.length === 1 && ids[0] === id;
      }, 15000, `the history filtered to ${id}`);
      await page.fill("#hist-version", "2");
      await page.click("#hist-filters button[type=submit]");
      await until(async () => (await page.locator("#hist-rows tr").count()) === 0, 15000, "no run of version 2");
      await page.click("#hist-reset");

      // retired (after a confirmation): not offered, and a run reached anyway is refused with the API's 410
      await page.goto(`${server.url}/#/environments/${BASIC}`);
      await until(async () => (await page.textContent("#env-detail-title")) === BASIC, 10000, "the detail panel");
      await page.click("#env-retire");
      await page.locator("#env-confirm").waitFor({ state: "visible" });
      assert.match(await page.textContent("#env-confirm-text"), /Retire environment/);
      await page.click("#env-confirm-yes");
      await until(async () => /retired — use/.test((await page.textContent("#env-lifecycle-state")) || ""), 10000, "the retired state");
      assert.equal(await page.isDisabled("#env-retire"), true);
      await page.goto(`${server.url}/#/run`);
      await until(async () => /retired/.test((await page.textContent(`#run-env option[value="${BASIC}"]`)) || ""), 10000,
        "the retired choice");
      assert.equal(await page.isDisabled(`#run-env option[value="${BASIC}"]`), true);
      await page.evaluate((name) => { document.getElementById("run-env").value = name; }, BASIC);
      await page.click("#run-submit");
      await page.locator("#run-error").waitFor({ state: "visible" });
      assert.equal(await page.textContent("#run-error"),
        `410 Gone — environment '${BASIC}' is retired; use '${POLICY}' instead`);
      const refused = await server.api("POST", "/execute", { key: keys.admin, body: { code: "print(1)", environment: BASIC } });
      assert.equal(refused.status, 410);

      // reinstated: active and runnable again
      await page.goto(`${server.url}/#/environments/${BASIC}`);
      await until(async () => /retired/.test((await page.textContent("#env-lifecycle-state")) || ""), 10000, "the detail panel");
      await page.click("#env-reinstate");
      await until(async () => /^active/.test((await page.textContent("#env-lifecycle-state")) || ""), 10000, "the active state");
      assert.doesNotMatch(await page.textContent("#env-facts"), /is deprecated|is retired/);
      const again = await server.api("POST", "/execute", { key: keys.admin, body: { code: "print(1)", environment: BASIC } });
      assert.equal(again.status, 200, JSON.stringify(again.body));
      assert.equal(again.body.warning, undefined);
      assertClean();
    });

  test("runs matplotlib code in the data-science environment and shows the text and the image", { timeout: DS_BUILD_MS + 120000 },
    async () => {
      const ds = await server.waitEnv(DS, keys.admin, DS_BUILD_MS);
      assert.equal(ds.status, "ready", `data-science: ${ds.error}`);
      await page.goto(`${server.url}/#/run`);
      await until(async () => (await page.locator(`#run-env option[value="${DS}"]`).count()) === 1, 10000, "the environment choice");
      // only ready environments are offered
      assert.equal(await page.locator(`#run-env option[value="${BROKEN}"]`).count(), 0);
      await page.selectOption("#run-env", DS);
      await fillCode(page, "run-code", PLOT_CODE);
      await page.focus("#run-code-editor .cm-content");
      await page.keyboard.press("Control+Enter");
      await page.locator("#run-progress").waitFor({ state: "visible", timeout: 5000 });
      await page.locator("#run-result").waitFor({ state: "visible", timeout: 120000 });
      assert.match(await page.textContent("#run-stdout"), /plotted 42/);
      assert.match(await page.textContent("#run-facts"), /succeeded/);
      const img = page.locator("#run-images img");
      await img.waitFor({ state: "visible" });
      assert.equal(await img.getAttribute("alt"), "output image plot.png");
      const size = await img.evaluate((el) => ({ w: el.naturalWidth, h: el.naturalHeight }));
      assert.ok(size.w > 100 && size.h > 100, `the PNG did not render: ${JSON.stringify(size)}`);
      assert.ok(await page.locator('#run-outfiles a[download="plot.png"]').count());
      plotRun = { id: (await page.textContent("#run-facts a")).trim() };
      assert.match(plotRun.id, /^ex_/);
      await screenshot(page, "run");
      assertClean();
    });

  test("uploads input files (picker and drag and drop) and reads them back", { timeout: 120000 }, async () => {
    await page.goto(`${server.url}/#/run`);
    await page.selectOption("#run-env", "");
    await page.setInputFiles("#run-files", { name: "input.txt", mimeType: "text/plain", buffer: Buffer.from("hello from the browser\n") });
    // a drop on the drop zone, as a person dragging a file there
    await page.evaluate(() => {
      const dt = new DataTransfer();
      dt.items.add(new File(["a,b\n1,2\n"], "data.csv", { type: "text/csv" }));
      document.getElementById("run-drop").dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }));
    });
    await until(async () => (await page.locator("#run-file-list li").count()) === 2, 5000, "two input files listed");
    await fillCode(page, "run-code", [
      "text = open('input.txt').read()",
      "print(text.upper(), end='')",
      "rows = open('data.csv').read().splitlines()",
      "open('out.txt', 'w').write(f'{len(rows)} rows: ' + rows[1])",
    ].join("\n"));
    await page.click("#run-submit");
    await until(async () => /HELLO FROM THE BROWSER/.test((await page.textContent("#run-stdout")) || ""), 60000, "the upper-cased input");
    const link = page.locator('#run-outfiles a[download="out.txt"]');
    await link.waitFor();
    const [download] = await Promise.all([page.waitForEvent("download"), link.click()]);
    assert.equal(fs.readFileSync(await download.path(), "utf8"), "2 rows: 1,2");
    assertClean();
  });

  test("filters the history to the matplotlib run, opens it and exports it as CSV", { timeout: 120000 }, async () => {
    assert.ok(plotRun, "the matplotlib test did not run");
    await page.goto(`${server.url}/#/history`);
    await page.fill("#hist-env", DS);
    await page.selectOption("#hist-status", "succeeded");
    await page.fill("#hist-q", "savefig");
    await page.click("#hist-filters button[type=submit]");
    await until(async () => {
      const ids = await page.locator("#hist-rows tr").evaluateAll((rows) => rows.map((r) => r.dataset.id));
      return ids.length === 1 && ids[0] === plotRun.id;
    }, 15000, `the history filtered to ${plotRun.id}`);
    await page.click(`#hist-rows a.exec-link`);
    await until(async () => /savefig/.test((await page.textContent("#hist-code")) || ""), 15000, "the execution's code");
    const facts = await page.textContent("#hist-facts");
    assert.match(facts, new RegExp(`${DS} v1`));
    assert.match(facts, /e2e-admin/);
    assert.match(await page.textContent("#hist-stdout"), /plotted 42/);
    assert.match(await page.textContent("#hist-files"), /plot\.png/);

    const [download] = await Promise.all([page.waitForEvent("download"), page.click("#hist-export-csv")]);
    assert.match(download.suggestedFilename(), /\.csv$/);
    const lines = fs.readFileSync(await download.path(), "utf8").trim().split(/\r?\n/);
    assert.equal(lines.length, 2, `CSV: a header and one row, got:\n${lines.join("\n")}`);
    assert.match(lines[0], /\bid\b/);
    assert.ok(lines[1].includes(plotRun.id) && lines[1].includes(DS), lines[1]);

    // the chart and the audit chain (admins and auditors)
    await page.locator("#hist-chart svg").waitFor({ timeout: 15000 });
    assert.ok(await page.locator("#hist-chart rect").count() >= 1);
    await until(async () => /verified \d+ rows/.test((await page.textContent("#hist-chain")) || ""), 30000, "the chain status");
    assert.match(await page.textContent("#hist-chain"), /Chain intact/);
    await screenshot(page, "history");
    assertClean();
  });

  test("an auditor sees no create or run controls, and a 403 is shown with its detail", { timeout: 60000 }, async () => {
    const p = await browser.context.newPage(); // a new tab: its own sessionStorage, so signed out
    const s = watchPage(p, server.url);
    await signIn(p, keys.auditor);
    assert.equal(await p.textContent("#who-role"), "auditor");
    assert.equal(await p.isVisible('#nav a[data-page="run"]'), false);
    assert.equal(await p.isVisible("#env-new"), false);
    await p.goto(`${server.url}/#/environments/${BASIC}`);
    await until(async () => (await p.textContent("#env-detail-title")) === BASIC, 10000, "the detail panel");
    assert.equal(await p.isVisible("#env-rebuild"), false);
    assert.equal(await p.isVisible("#env-delete"), false);
    assert.equal(await p.isVisible("#env-log"), true);
    // the lifecycle and the policy are shown, their controls are not
    await until(async () => /active/.test((await p.textContent("#env-lifecycle-state")) || ""), 10000, "the lifecycle");
    assert.equal(await p.isVisible("#env-curate"), false);
    assert.equal(await p.isVisible("#env-deprecate"), false);
    assert.equal(await p.isVisible("#env-policy-rebuild"), false);
    // a control the role may not use, reached anyway: the API's 403 is shown as it is
    await p.evaluate(() => document.getElementById("env-rebuild").click());
    await p.locator("#env-detail-error").waitFor({ state: "visible" });
    assert.match(await p.textContent("#env-detail-error"), /403 Forbidden — role 'auditor' \(key 'e2e-auditor'\) may not POST/);
    // the Run page is not offered
    await p.goto(`${server.url}/#/run`);
    await until(async () => /may not run code/.test((await p.textContent("#notice-text")) || ""), 5000, "the notice");
    assert.equal(await p.isVisible("#page-run"), false);
    // auditors see the whole history, with export and the audit chain
    await p.goto(`${server.url}/#/history`);
    // both runs of the admin: auditors see every execution
    await until(async () => (await p.locator("#hist-rows tr").count()) >= 2, 15000, "every execution");
    assert.match(await p.textContent("#hist-rows"), /e2e-admin/);
    assert.equal(await p.isVisible("#hist-export-csv"), true);
    await screenshot(p, "auditor");
    await p.close();
    assert.deepEqual(s.external, []);
    assert.deepEqual(s.errors, []);
  });

  test("the API documentation pages work offline", { timeout: 60000 }, async () => {
    await page.goto(`${server.url}/docs`);
    await until(async () => (await page.locator(".opblock").count()) > 20, 20000, "Swagger UI's operations");
    assert.ok(await page.getByText("/environments/{name}/builds/{version}/log", { exact: true }).count());
    await screenshot(page, "docs", { fullPage: false });
    await page.goto(`${server.url}/redoc`);
    await until(async () => (await page.locator("[data-section-id]").count()) > 20, 20000, "ReDoc's sections");
    await screenshot(page, "redoc", { fullPage: false });
    assertClean();
  });
});

describe("envhub UI in open mode", { skip }, () => {
  const server = new Envhub();
  let browser;

  before(async () => {
    await server.start();
    browser = await launchBrowser();
  });

  after(async () => {
    await closeBrowser(browser);
    await server.stop();
    await removeLabelled();
    fs.rmSync(server.dir, { recursive: true, force: true });
  });

  test("a loopback browser is let in without a key while no key exists", { timeout: 60000 }, async () => {
    const page = await browser.context.newPage();
    const seen = watchPage(page, server.url);
    await page.goto(`${server.url}/`);
    await page.locator("#nav").waitFor({ state: "visible" });
    assert.equal(await page.isVisible("#page-signin"), false);
    assert.match(await page.textContent("#who"), /admin.*open mode/);
    assert.equal(await page.isVisible("#env-new"), true);
    assert.equal(await page.isVisible("#signout"), false);
    assert.deepEqual(seen.external, []);
    assert.deepEqual(seen.errors, []);
  });
});
