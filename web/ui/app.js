// envhub UI: start-up, sign-in, roles and the router (#/environments, #/run, #/notebook,
// #/history, #/nodes). The pages live in envs.js, run.js, notebook.js, history.js and nodes.js; the API client
// in api.js.
import { $, ApiError, get, getKey, h, onUnauthorized, setKey, showError } from "./api.js";
import * as envs from "./envs.js";
import * as run from "./run.js";
import * as notebook from "./notebook.js";
import * as history from "./history.js";
import * as nodes from "./nodes.js";

const pages = { environments: envs, run, notebook, history, nodes };
const ctx = {
  me: null,
  notify(err) {
    const box = $("notice");
    $("notice-text").textContent = err instanceof ApiError ? err.describe() : String(err && err.message ? err.message : err);
    box.hidden = false;
  },
  can(what) {
    return !!(ctx.me && ctx.me.can && ctx.me.can[what]);
  },
};
let current = null;
let started = false;

function applyRoles() {
  for (const el of document.querySelectorAll("[data-can]")) el.classList.toggle("role-hidden", !ctx.can(el.dataset.can));
  const who = $("who");
  who.replaceChildren();
  if (!ctx.me) return;
  who.append(h("span", null, "Signed in as ", h("strong", { id: "who-principal" }, ctx.me.principal)),
    h("span", { class: "role", id: "who-role" }, ctx.me.role));
  if (ctx.me.open_mode) who.append(h("span", { class: "role", title: "No API key exists: loopback callers act as admin" }, "open mode"));
  if (getKey()) who.append(h("button", { type: "button", id: "signout", onclick: signOut }, "Sign out"));
}

function showOnly(id) {
  for (const sec of document.querySelectorAll("main > .page")) sec.hidden = sec.id !== id;
  $("loading").hidden = true;
}

function showSignin(message) {
  ctx.me = null;
  if (current && pages[current].leave) pages[current].leave();
  current = null;
  $("nav").hidden = true;
  applyRoles();
  showOnly("page-signin");
  showError($("signin-error"), message || null);
  $("signin-key").focus();
}

function signOut() {
  setKey("");
  location.hash = "#/environments";
  start();
}

function route() {
  if (!ctx.me) return;
  $("notice").hidden = true; // a message belongs to the page it was shown on
  const parts = (location.hash || "#/environments").replace(/^#\/?/, "").split("/");
  let page = parts[0] || "environments";
  if (!pages[page]) page = "environments";
  const arg = parts.slice(1).map(decodeURIComponent).join("/") || null;
  if ((page === "run" || page === "notebook") && !ctx.can("run")) {
    ctx.notify(`Your role (${ctx.me.role}) may not run code.`);
    page = "environments";
  }
  if (page === "nodes" && !ctx.can("keys")) {
    ctx.notify(`Your role (${ctx.me.role}) may not see the nodes: admins only.`);
    page = "environments";
  }
  for (const a of document.querySelectorAll("#nav a[data-page]")) {
    if (a.dataset.page === page) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  if (current && current !== page && pages[current].leave) pages[current].leave();
  const changed = current !== page;
  current = page;
  showOnly(`page-${page}`);
  pages[page].show(arg, changed);
  if (changed) document.title = `envhub — ${page[0].toUpperCase()}${page.slice(1)}`;
}

async function start() {
  $("loading").hidden = false;
  try {
    ctx.me = await get("/me");
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      showSignin(getKey() ? err : null);
      return;
    }
    $("loading").hidden = true;
    ctx.notify(err);
    return;
  }
  $("nav").hidden = false;
  applyRoles();
  if (!started) {
    started = true;
    for (const p of Object.values(pages)) p.init(ctx);
  }
  for (const p of Object.values(pages)) if (p.reset) p.reset();
  route();
}

function main() {
  $("notice-close").addEventListener("click", () => { $("notice").hidden = true; });
  $("signin-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const key = $("signin-key").value.trim();
    if (!key) return;
    setKey(key);
    $("signin-key").value = "";
    await start();
  });
  onUnauthorized((err) => {
    // a revoked key, or one never given: back to the sign-in form, saying why
    if (ctx.me) showSignin(err);
  });
  window.addEventListener("hashchange", route);
  start();
}

main();
