// Shared helpers for the browser scenarios (see README.md).
//
// Every scenario drives the chat page (web/index.html) served by `tether
// serve` in Debian's headless Chromium (/usr/bin/chromium, installed by
// scripts/install-debian.sh chromium) through playwright-core. Each simulated person
// ("user") is a Chromium of its own on a new, empty user data dir, so each has
// its own localStorage (the page's outbox) and its own network switch.
//
// A scenario records checks, prints one final JSON line on stdout (the
// verdict) and exits 0 only if every check passed.
import { chromium } from "playwright-core";
import { isDeepStrictEqual, inspect } from "node:util";
import { createInterface } from "node:readline";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

export const CHROMIUM = "/usr/bin/chromium";
export const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/// How long one wait for the page may take (reconnection backoff included).
export const WAIT_MS = 30_000;

// `node SCRIPT URL [URL...] [--timeout MS] [--screenshot PATH]`.
export function parseArgs(scenario, { urls = 1 } = {}) {
  const opts = { scenario, urls: [], timeout: 120_000, screenshot: null };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--timeout") opts.timeout = Number(argv[++i]);
    else if (a === "--screenshot") opts.screenshot = argv[++i];
    else if (/^https?:\/\//.test(a)) opts.urls.push(a.endsWith("/") ? a : a + "/");
    else usage(scenario, `bad argument ${a}`);
  }
  if (opts.urls.length < urls) usage(scenario, `wants ${urls} server URL(s)`);
  if (!Number.isFinite(opts.timeout) || opts.timeout <= 0) usage(scenario, "--timeout wants a number of ms");
  return opts;
}

function usage(scenario, msg) {
  console.error(`${scenario}: ${msg}`);
  console.error(`usage: node ${scenario}.mjs http://127.0.0.1:PORT/ [--timeout MS] [--screenshot PATH]`);
  process.exit(2);
}

export function show(v) {
  return inspect(v, { depth: 6, breakLength: Infinity, maxArrayLength: 200, maxStringLength: 200 });
}

// A scenario run: its checks, counts and users (browsers) to close.
export class Run {
  constructor(opts) {
    this.opts = opts;
    this.passed = 0;
    this.failures = [];
    this.counts = {};
    this.extra = {};
    this.users = [];
    this.finished = false;
    this.lines = null;
    const timer = setTimeout(() => this.finish(`overall timeout of ${opts.timeout} ms hit`), opts.timeout);
    timer.unref();
    process.on("unhandledRejection", (e) => this.finish(`unhandled rejection: ${e?.stack ?? e}`));
    process.on("uncaughtException", (e) => this.finish(`uncaught exception: ${e?.stack ?? e}`));
    for (const sig of ["SIGTERM", "SIGINT"]) process.on(sig, () => this.finish(`stopped by ${sig}`));
  }

  log(...args) {
    console.error(`[${this.opts.scenario}]`, ...args);
  }

  // Record a check; returns whether it passed.
  check(cond, what, expected, got) {
    if (cond) {
      this.passed++;
    } else {
      this.failures.push(what);
      this.log(`FAIL: ${what}`);
      if (arguments.length > 2) {
        this.log(`  expected: ${show(expected)}`);
        this.log(`  got:      ${show(got)}`);
      }
    }
    return !!cond;
  }

  equal(got, expected, what) {
    return this.check(isDeepStrictEqual(got, expected), what, expected, got);
  }

  // A new person: a Chromium of its own on a new empty user data dir.
  // `options`: more launchPersistentContext options (a phone's viewport,
  // isMobile, colorScheme...).
  async user(label, options = {}) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `tether-chromium-${label}-`));
    const user = new User(this, label, dir);
    this.users.push(user);
    user.context = await chromium.launchPersistentContext(dir, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 720, height: 540 },
      timeout: WAIT_MS,
      ...options,
    });
    user.context.setDefaultTimeout(WAIT_MS);
    user.page = user.context.pages()[0] ?? (await user.context.newPage());
    user.watchPage();
    return user;
  }

  // Lines the harness writes on our stdin (kill-restart), read on demand.
  async line(prefix, timeoutMs) {
    if (!this.lines) {
      this.lines = { queue: [], waiters: [] };
      const rl = createInterface({ input: process.stdin });
      rl.on("line", (l) => {
        const w = this.lines.waiters.shift();
        if (w) w(l);
        else this.lines.queue.push(l);
      });
      rl.on("close", () => {
        for (const w of this.lines.waiters.splice(0)) w(null);
        this.lines.closed = true;
      });
    }
    const next = () =>
      this.lines.queue.length
        ? Promise.resolve(this.lines.queue.shift())
        : this.lines.closed
          ? Promise.resolve(null)
          : new Promise((resolve) => this.lines.waiters.push(resolve));
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const left = deadline - performance.now();
      if (left <= 0) return null;
      let timer;
      const got = await Promise.race([
        next(),
        new Promise((resolve) => (timer = setTimeout(() => resolve(undefined), left))),
      ]);
      clearTimeout(timer);
      if (got === undefined || got === null) return null;
      if (got.startsWith(prefix)) return got;
      this.log(`ignored stdin line ${show(got)}`);
    }
  }

  // Closes every browser, prints the verdict and exits (0 only if all passed).
  async finish(fatal) {
    if (this.finished) return;
    this.finished = true;
    if (fatal) this.check(false, fatal);
    const closing = Promise.allSettled(this.users.map((u) => u.close()));
    await Promise.race([closing, new Promise((r) => setTimeout(r, 10_000).unref())]);
    const ok = this.failures.length === 0;
    const verdict = {
      scenario: this.opts.scenario,
      ok,
      passed: this.passed,
      failed: this.failures.length,
      failures: this.failures,
      counts: this.counts,
      ...this.extra,
    };
    process.stdout.write(JSON.stringify(verdict) + "\n", () => process.exit(ok ? 0 : 1));
  }
}

// One person with the chat page open.
export class User {
  constructor(run, label, dir) {
    this.run = run;
    this.label = label;
    this.dir = dir;
    this.context = null;
    this.page = null;
    this.typed = []; // texts this user typed, in order
    this.pageErrors = [];
  }

  watchPage() {
    this.page.on("pageerror", (e) => {
      this.pageErrors.push(String(e?.message ?? e));
      this.run.log(`${this.label}: page error: ${e?.message ?? e}`);
    });
  }

  async open(url) {
    this.url = url;
    await this.page.goto(url, { waitUntil: "load" });
    await this.watchStatus();
    return this.waitStatus("connected", "page connects");
  }

  // Records every change of #status[data-state] in window.__tetherStates.
  async watchStatus() {
    await this.page.evaluate(() => {
      const status = document.getElementById("status");
      window.__tetherStates = [status.dataset.state];
      new MutationObserver(() => window.__tetherStates.push(status.dataset.state)).observe(status, {
        attributes: true,
        attributeFilter: ["data-state"],
      });
    });
  }

  async states() {
    return this.page.evaluate(() => window.__tetherStates ?? []);
  }

  async status() {
    return this.page.evaluate(() => document.getElementById("status")?.dataset.state ?? null);
  }

  async setOffline(offline) {
    await this.context.setOffline(offline);
  }

  // Types one message in the form and sends it (Enter), as a person would.
  async send(text, { keyboard = false } = {}) {
    const input = this.page.locator("#input");
    if (keyboard) {
      await input.click();
      await input.pressSequentially(text);
    } else {
      await input.fill(text);
    }
    await input.press("Enter");
    await this.page.waitForFunction(() => document.getElementById("input").value === "", null, { timeout: WAIT_MS });
    this.typed.push(text);
  }

  // Sets the optional name field (kept in localStorage by the page on send).
  async setName(name) {
    await this.page.locator("#name").fill(name);
  }

  // What the list shows: one entry per li, in order.
  async list() {
    return this.page.evaluate(() =>
      [...document.querySelectorAll("#messages > li")].map((li) => ({
        text: li.querySelector(".text")?.textContent ?? null,
        who: li.querySelector(".who:not(.anon)")?.textContent ?? null,
        mark: li.querySelector(".mark")?.textContent ?? "",
        state: li.dataset.state ?? null,
        mine: li.classList.contains("mine"),
        time: li.querySelector("time.time")?.dateTime ?? null,
        id: li.dataset.id ?? null,
        offset: li.dataset.offset === undefined ? null : Number(li.dataset.offset),
        pending: li.classList.contains("pending"),
      })),
    );
  }

  // The page's outbox (localStorage "tether.outbox").
  async outbox() {
    return this.page.evaluate(() => {
      try {
        return JSON.parse(localStorage.getItem("tether.outbox") || "[]");
      } catch {
        return null;
      }
    });
  }

  // Waits for a condition in the page; a timeout is a failed check.
  async waitFor(fn, arg, what, timeout = WAIT_MS) {
    try {
      await this.page.waitForFunction(fn, arg, { timeout });
      return true;
    } catch (e) {
      let seen = "";
      try {
        const l = await this.list();
        seen = ` (shows ${l.length} li, ${l.filter((x) => x.pending).length} pending, status ${await this.status()})`;
      } catch {}
      this.run.check(false, `${this.label}: ${what}: not within ${timeout} ms${seen}: ${String(e?.message ?? e).split("\n")[0]}`);
      return false;
    }
  }

  waitStatus(state, what) {
    return this.waitFor(
      (s) => document.getElementById("status")?.dataset.state === s,
      state,
      `${what} (#status data-state=${state})`,
    );
  }

  waitNotConnected(what) {
    return this.waitFor(
      () => document.getElementById("status")?.dataset.state !== "connected",
      null,
      `${what} (#status leaves data-state=connected)`,
    );
  }

  // Waits until the li showing `text` is confirmed (not pending).
  waitConfirmedText(text, what) {
    return this.waitFor(
      (t) =>
        [...document.querySelectorAll("#messages > li:not(.pending)")].some((li) => li.querySelector(".text")?.textContent === t),
      text,
      `${what}: ${JSON.stringify(text)} shown as sent`,
    );
  }

  // Waits until at least n li are shown and none is pending (every one
  // shown from the server, with its position).
  waitSettled(n, what) {
    return this.waitFor(
      (n) => {
        const lis = document.querySelectorAll("#messages > li");
        return lis.length >= n && !document.querySelector("#messages > li.pending, #messages > li:not([data-offset])");
      },
      n,
      `${what}: ${n} messages shown, none pending`,
    );
  }

  // Waits until n li are pending.
  waitPending(n, what) {
    return this.waitFor(
      (n) => document.querySelectorAll("#messages > li.pending").length >= n,
      n,
      `${what}: ${n} messages shown pending`,
    );
  }

  async close() {
    try {
      if (this.context) await this.context.close();
    } finally {
      fs.rmSync(this.dir, { recursive: true, force: true });
    }
  }
}

// The checks every scenario ends with: every page shows exactly `expected`
// (texts, in order; null: any order the server chose, all pages alike), each
// once, none pending, in increasing server positions, the same on all pages.
// Returns the common history as [offset, text, id] triples.
export async function checkHistories(run, users, expected, { counts = true } = {}) {
  const lists = [];
  for (const u of users) {
    const list = await u.list();
    lists.push(list);
    const texts = list.map((m) => m.text);
    const pending = list.filter((m) => m.pending).length;
    if (counts) {
      run.counts[`${u.label}_shown`] = list.length;
      run.counts[`${u.label}_pending`] = pending;
    }
    run.equal(pending, 0, `${u.label}: no message stays pending`);
    if (expected) run.equal(texts, expected, `${u.label}: shows exactly the typed messages, each once, in order`);
    run.equal(new Set(texts).size, texts.length, `${u.label}: no message shown twice`);
    const ids = list.map((m) => m.id);
    run.check(ids.every((id) => typeof id === "string" && id.length > 0), `${u.label}: every message has a client id`, "ids", ids);
    run.equal(new Set(ids).size, ids.length, `${u.label}: every client id shown once`);
    const offsets = list.map((m) => m.offset);
    run.check(
      offsets.every((o, i) => Number.isInteger(o) && o > 0 && (i === 0 || o > offsets[i - 1])),
      `${u.label}: messages in increasing server positions`,
      "increasing positive integers",
      offsets,
    );
    run.equal(u.pageErrors, [], `${u.label}: no error in the page`);
  }
  const key = (l) => l.map((m) => [m.offset, m.text, m.id]);
  for (let i = 1; i < users.length; i++) {
    run.equal(key(lists[i]), key(lists[0]), `${users[i].label} shows the same history as ${users[0].label}`);
  }
  return key(lists[0] ?? []);
}
