// The Notebook page (issue 14, item 4), in Debian's chromium against a real envhub (open mode:
// the loopback browser is an admin): Python cells run one after another in one stateful session,
// each with its stdout, stderr and result below it; cells re-run, the interpreter restarts, the
// session's files are listed; the code editor (CodeMirror) highlights Python and indents it.
//
//   cd tests/e2e && ENVHUB_BIN=/abs/build/envhub node --test notebook.test.mjs
import assert from "node:assert/strict";
import fs from "node:fs";
import { after, before, describe, test } from "node:test";
import {
  closeBrowser, editorText, engineAnswers, Envhub, launchBrowser, removeLabelled, screenshot, setEditor, typeCode, until,
  watchPage,
} from "./lib/envhub.mjs";

const skip = !(await engineAnswers()) ? `no Docker engine answers on the socket (make engine starts one)` : false;
if (skip && process.env.CI === "true") throw new Error(skip);

describe("the notebook", { skip }, () => {
  const server = new Envhub(["--pool-size", "1"]);
  let browser;
  let page;
  let seen;

  before(async () => {
    await server.start();
    browser = await launchBrowser();
    page = await browser.context.newPage();
    await page.bringToFront(); // the editor places the caret only in a focused window
    await page.addInitScript(() => document.addEventListener("securitypolicyviolation", (e) =>
      console.error(`CSP ${e.violatedDirective} ${e.target && (e.target.className || e.target.nodeName)} ${e.sample} ${e.sourceFile}:${e.lineNumber}:${e.columnNumber}`)));
    seen = watchPage(page, server.url);
  });

  after(async () => {
    await closeBrowser(browser);
    await server.stop();
    await removeLabelled();
    if (!process.exitCode) fs.rmSync(server.dir, { recursive: true, force: true });
    else console.log(`envhub log and catalog kept in ${server.dir}`);
  });

  const cell = (n) => page.locator("#nb-cells .cell").nth(n);
  const content = (n) => cell(n).locator(".cm-content");
  async function output(n, what) {
    await until(async () => (await cell(n).locator(".cell-facts").count()) === 1, 60000, `cell ${n + 1}'s output`);
    return (await cell(n).locator(what).count()) ? cell(n).locator(what).textContent() : null;
  }
  async function runAndWait(n, how) {
    const before = await cell(n).locator(".cell-label").textContent();
    if (how) await how();
    else await cell(n).getByRole("button", { name: /^Run cell/ }).click();
    await until(async () => {
      const label = await cell(n).locator(".cell-label").textContent();
      return label !== before && label !== "[*]" && (await cell(n).locator(".cell-facts").count()) === 1;
    }, 60000, `cell ${n + 1} to run`);
  }

  test("cells share one interpreter, show stdout, stderr and results, and re-run", { timeout: 240000 }, async () => {
    await page.goto(`${server.url}/#/notebook`);
    await page.locator("#nb-cells .cell").first().waitFor();
    assert.equal(await page.getAttribute('#nav a[data-page="notebook"]', "aria-current"), "page");
    assert.match(await page.textContent("#nb-status"), /No session yet/);

    // the first cell's sample: its last expression is the result; running it opens the session
    await runAndWait(0);
    assert.equal(await output(0, ".cell-result"), "12.566370614359172");
    assert.equal(await cell(0).locator(".cell-label").textContent(), "[1]");
    const sid = (await page.textContent("#nb-session-id")).trim();
    assert.match(sid, /^se_/);
    assert.match(await page.textContent("#nb-status"), /share one Python interpreter/);

    // a second cell uses the first one's names; Shift+Enter runs it and moves to a new cell
    await page.click("#nb-add");
    await setEditor(page, content(1), "radius = 3\nprint('radius', radius)\nround(math.pi * radius ** 2, 2)");
    await runAndWait(1, async () => {
      await content(1).focus();
      await page.keyboard.press("Shift+Enter");
    });
    assert.equal(await output(1, ".cell-stdout"), "radius 3\n");
    assert.equal(await output(1, ".cell-result"), "28.27");
    assert.equal(await page.locator("#nb-cells .cell").count(), 3, "Shift+Enter on the last cell adds one");
    await until(async () => page.evaluate(() => document.activeElement.closest(".cell")
      === document.querySelectorAll("#nb-cells .cell")[2]), 5000, "the focus in the new cell");

    // typed code is indented as Python and highlighted
    await typeCode(page, "def area(r):\nreturn math.pi * r ** 2\n");
    await page.keyboard.press("Shift+Tab");
    await typeCode(page, "print(area(1) > 3)\nopen('notes.txt', 'w').write('from the notebook')\n1 / 0");
    assert.equal(await editorText(cell(2)), "def area(r):\n    return math.pi * r ** 2\nprint(area(1) > 3)\n"
      + "open('notes.txt', 'w').write('from the notebook')\n1 / 0");
    const keyword = cell(2).locator(".cm-line span", { hasText: /^def$/ });
    assert.equal(await keyword.count(), 1, "the keyword has a highlighted span of its own");
    const [kw, plain] = await Promise.all([keyword.evaluate((el) => getComputedStyle(el).color),
      cell(2).locator(".cm-content").evaluate((el) => getComputedStyle(el).color)]);
    assert.notEqual(kw, plain, "keywords are coloured apart from the text");

    // an exception: stderr and the failed status, the interpreter and the files kept
    await runAndWait(2, async () => {
      await page.keyboard.press("Control+Enter");
    });
    assert.equal(await output(2, ".cell-stdout"), "True\n");
    assert.match(await output(2, ".cell-stderr"), /ZeroDivisionError: division by zero\n$/);
    assert.match(await cell(2).locator(".cell-facts").textContent(), /failed/);
    await until(async () => (await page.locator('#nb-files a[download="notes.txt"]').count()) === 1, 5000, "the file listed");
    const [download] = await Promise.all([page.waitForEvent("download"), page.click('#nb-files a[download="notes.txt"]')]);
    assert.equal(fs.readFileSync(await download.path(), "utf8"), "from the notebook");

    // re-run the second cell after an edit: the names are still there
    await setEditor(page, content(1), "radius += 1\nradius");
    await runAndWait(1);
    assert.equal(await output(1, ".cell-result"), "4");
    assert.equal(await cell(1).locator(".cell-label").textContent(), "[4]");
    await screenshot(page, "notebook");

    // a restart loses the names; Run all runs the cells in order and stops at the failure
    await page.click("#nb-reset");
    await page.locator("#nb-restarted").waitFor();
    await runAndWait(1);
    assert.match(await output(1, ".cell-stderr"), /NameError: name 'radius' is not defined/);
    await page.locator("#nb-cells .cell").nth(1).getByRole("button", { name: /^Delete cell/ }).click();
    assert.equal(await page.locator("#nb-cells .cell").count(), 2);
    await setEditor(page, content(0), "import math\nradius = 10\nradius");
    await page.click("#nb-run-all");
    await until(async () => /ZeroDivisionError/.test((await cell(1).locator(".cell-out").textContent()) || ""), 60000,
      "Run all to reach the second cell");
    assert.equal(await output(0, ".cell-result"), "10");
    assert.match(await output(1, ".cell-stdout"), /True/);

    // the session is the API's: listed there, then closed from the page
    const listed = await server.api("GET", `/sessions/${sid}`);
    assert.equal(listed.status, 200);
    assert.equal(listed.body.stateful, true);
    assert.ok(listed.body.calls >= 6, JSON.stringify(listed.body));
    await page.click("#nb-close");
    await until(async () => /No session yet/.test(await page.textContent("#nb-status")), 10000, "the session closed");
    assert.equal((await server.api("GET", `/sessions/${sid}`)).status, 404);
    assert.deepEqual(seen.external, [], "the page asked other hosts");
    assert.deepEqual(seen.errors, [], "the page logged errors");
  });

  test("the Run page edits code in the same editor and runs it with Ctrl+Enter", { timeout: 120000 }, async () => {
    await page.goto(`${server.url}/#/run`);
    const editor = page.locator("#run-code-editor .cm-content");
    await editor.waitFor();
    assert.equal(await page.isVisible("#run-code"), false, "the textarea gives way to the editor");
    await setEditor(page, editor, "");
    await typeCode(page, "for i in range(2):\nprint('line', i)");
    assert.equal(await editorText(page.locator("#run-code-editor")), "for i in range(2):\n    print('line', i)");
    await page.keyboard.press("Control+Enter");
    await until(async () => /line 1/.test((await page.textContent("#run-stdout")) || ""), 60000, "the output");
    assert.equal(await page.textContent("#run-stdout"), "line 0\nline 1\n");
    assert.deepEqual(seen.errors, [], "the page logged errors");
  });
});
