// Pictures without saving files (issue 14, item 5), in Debian's chromium against a real envhub
// (open mode: the loopback browser is an admin): matplotlib figures shown with plt.show() appear
// inline on the Run page, apart from the output files, and in the execution's history detail.
//
//   cd tests/e2e && ENVHUB_BIN=/abs/build/envhub node --test display.test.mjs
import assert from "node:assert/strict";
import fs from "node:fs";
import { after, before, describe, test } from "node:test";
import {
  closeBrowser, engineAnswers, Envhub, fillCode, launchBrowser, removeLabelled, RUN_ID, screenshot, until, watchPage,
} from "./lib/envhub.mjs";

const PLOT = `plot-${RUN_ID}`;
// Debian's matplotlib, as environments/data-science.sh installs it (the same script as the API
// tests' environment, tests/api/conftest.py PLOT_SCRIPT, so that the engine's build cache serves both)
const PLOT_SCRIPT = `#!/bin/bash
# envhub API tests: python3-requests and python3-matplotlib from Debian
apt-get update
apt-get install -y --no-install-recommends python3-requests python3-matplotlib
rm -rf /var/lib/apt/lists/*
`;
const BUILD_MS = 400000;
const CODE = `import matplotlib.pyplot as plt

plt.plot([1, 2, 3, 4], [1, 4, 9, 16], marker="o")
plt.title("shown ${RUN_ID}")
plt.show()
plt.bar(["a", "b", "c"], [3, 1, 2])
print("two figures")
`;



const skip = !(await engineAnswers()) ? `no Docker engine answers on the socket (make engine starts one)` : false;
if (skip && process.env.CI === "true") throw new Error(skip);

describe("pictures in the UI", { skip }, () => {
  const server = new Envhub();
  let browser;

  before(async () => {
    await server.start();
    const r = await server.api("POST", "/environments",
      { body: { name: PLOT, description: "e2e: matplotlib", setup_script: PLOT_SCRIPT } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    browser = await launchBrowser();
  });

  after(async () => {
    await closeBrowser(browser);
    await server.stop();
    await removeLabelled();
    if (!process.exitCode) fs.rmSync(server.dir, { recursive: true, force: true });
    else console.log(`envhub log and catalog kept in ${server.dir}`);
  });

  test("figures shown with plt.show() appear inline on the Run page and in the history", { timeout: BUILD_MS + 120000 },
    async () => {
      const env = await server.waitEnv(PLOT, undefined, BUILD_MS);
      assert.equal(env.status, "ready", `${PLOT}: ${env.error}`);
      const page = await browser.context.newPage();
      const seen = watchPage(page, server.url);
      await page.goto(`${server.url}/#/run`);
      await until(async () => (await page.locator(`#run-env option[value="${PLOT}"]`).count()) === 1, 15000,
        "the environment choice");
      await page.selectOption("#run-env", PLOT);
      await fillCode(page, "run-code", CODE);
      await page.click("#run-submit");
      await page.locator("#run-result").waitFor({ state: "visible", timeout: 120000 });
      assert.match(await page.textContent("#run-stdout"), /two figures/);
      assert.match(await page.textContent("#run-facts"), /succeeded/);

      // one shown by plt.show(), one left open at the end: both inline, in order
      const imgs = page.locator("#run-display img");
      await until(async () => (await imgs.count()) === 2, 10000, "two pictures");
      assert.equal(await page.isVisible("#run-display-box"), true);
      assert.equal(await imgs.nth(0).getAttribute("alt"), "Figure 1: figure-1.png");
      assert.equal(await imgs.nth(1).getAttribute("alt"), "Figure 2: figure-2.png");
      assert.match(await imgs.nth(0).getAttribute("src"), /^data:image\/png;base64,iVBORw0KGgo/);
      for (let i = 0; i < 2; i++) {
        await until(async () => imgs.nth(i).evaluate((el) => el.complete && el.naturalWidth > 0), 10000, `picture ${i + 1}`);
        const size = await imgs.nth(i).evaluate((el) => ({ w: el.naturalWidth, h: el.naturalHeight }));
        assert.deepEqual(size, { w: 640, h: 480 });
      }
      // pictures are not output files
      assert.equal(await page.locator("#run-outfiles li").count(), 0);
      assert.equal(await page.isVisible("#run-nofiles"), true);
      await screenshot(page, "run-display");

      // the history's detail lists them (direction display) and shows what this page received
      const id = (await page.textContent("#run-facts a")).trim();
      assert.match(id, /^ex_/);
      await page.click("#run-facts a");
      await until(async () => /plt\.show/.test((await page.textContent("#hist-code")) || ""), 15000, "the execution's code");
      const files = await page.textContent("#hist-files");
      assert.match(files, /display/);
      assert.match(files, /figure-1\.png/);
      assert.match(files, /figure-2\.png/);
      await until(async () => (await page.locator("#hist-display img").count()) === 2, 10000, "the pictures in the history");
      assert.match(await page.textContent("#hist-display-note"), /2 pictures/);

      // a run without pictures hides the box again
      await page.goto(`${server.url}/#/run`);
      await fillCode(page, "run-code", "print('no plot')");
      await page.click("#run-submit");
      await until(async () => /no plot/.test((await page.textContent("#run-stdout")) || ""), 60000, "the second run");
      assert.equal(await page.isVisible("#run-display-box"), false);
      assert.equal(await page.locator("#run-display img").count(), 0);
      assert.deepEqual(seen.external, [], "the page asked other hosts");
      assert.deepEqual(seen.errors, [], "the page logged errors");
      await page.close();
    });
});
