// Shared helpers for the interop scenarios (see README.md).
// Every scenario: parse args, arm a global timeout, record checks, print one
// final JSON line on stdout and exit 0 only if every check passed.
import { io, Manager } from "socket.io-client";
import msgpackParser from "socket.io-msgpack-parser";
import { isDeepStrictEqual, inspect } from "node:util";

const TRANSPORTS = {
  polling: ["polling"],
  websocket: ["websocket"],
  upgrade: ["polling", "websocket"],
};

export function parseArgs(scenario, defaults = {}) {
  // --count is accepted by every scenario (ignored where there is nothing to count).
  const opts = { scenario, url: null, transport: null, timeout: 30000, ackTimeout: 5000, parser: "default", count: 0, ...defaults };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const key = argv[i].replace(/^--/, "");
    const val = argv[++i];
    if (!(key in opts) || key === "scenario" || val === undefined) usage(scenario, `bad argument ${argv[i - 1]}`);
    opts[key] = typeof opts[key] === "number" ? Number(val) : val;
    if (typeof opts[key] === "number" && !Number.isFinite(opts[key])) usage(scenario, `--${key} wants a number`);
  }
  if (!opts.url) usage(scenario, "--url is required");
  if (!TRANSPORTS[opts.transport]) usage(scenario, `unknown transport ${opts.transport}`);
  if (!["default", "msgpack"].includes(opts.parser)) usage(scenario, `unknown parser ${opts.parser}`);
  return opts;
}

function usage(scenario, msg) {
  console.error(`${scenario}: ${msg}`);
  console.error(`usage: node scenarios/${scenario}.mjs --url http://127.0.0.1:PORT --transport polling|websocket|upgrade [--count N] [--timeout MS] [--ackTimeout MS] [--parser default|msgpack]`);
  process.exit(2);
}

// A test run: collects failures and counts, owns the sockets it must close.
export class Run {
  constructor(opts) {
    this.opts = opts;
    this.failures = [];
    this.counts = {};
    this.sockets = [];
    this.done = false;
    const timer = setTimeout(() => this.finish(`overall timeout of ${opts.timeout} ms hit`), opts.timeout);
    timer.unref();
    process.on("unhandledRejection", (e) => this.finish(`unhandled rejection: ${e?.stack ?? e}`));
    process.on("uncaughtException", (e) => this.finish(`uncaught exception: ${e?.stack ?? e}`));
  }

  // Record a check; returns whether it passed.
  check(cond, what, expected, got) {
    if (!cond) {
      this.failures.push(what);
      console.error(`FAIL ${this.opts.scenario}/${this.opts.transport}: ${what}`);
      if (arguments.length > 2) {
        console.error(`  expected: ${show(expected)}`);
        console.error(`  got:      ${show(got)}`);
      }
    }
    return !!cond;
  }

  equal(got, expected, what) {
    return this.check(isDeepStrictEqual(got, expected), what, expected, got);
  }

  // Build socket options for this run's transport (extra options win).
  socketOptions(extra = {}) {
    const o = { transports: TRANSPORTS[this.opts.transport], reconnection: false, ...extra };
    if (this.opts.parser === "msgpack") o.parser = msgpackParser;
    return o;
  }

  // io(url + nsp) with the run's transport; tracks engine upgrades per manager.
  connect(nsp = "/", extra = {}) {
    const url = this.opts.url.replace(/\/+$/, "") + (nsp === "/" ? "" : nsp);
    const socket = io(url, this.socketOptions(extra));
    trackUpgrades(socket.io);
    let notes = 0; // log the first few connect errors (reconnecting sockets repeat them)
    socket.on("connect_error", (e) => notes++ < 3 && console.error(`note: ${nsp} connect_error: ${e.message}`));
    this.sockets.push(socket);
    return socket;
  }

  // Check the manager's current engine uses the expected transport. In
  // "upgrade" mode wait (bounded) until the engine reported an "upgrade" to websocket.
  async assertTransport(socket, label = "socket") {
    const mgr = socket.io;
    if (this.opts.transport === "upgrade") {
      const deadline = performance.now() + 5000;
      while (!(mgr.engine?.__tetherUpgraded && mgr.engine.transport?.name === "websocket") && performance.now() < deadline) {
        await sleep(20);
      }
      this.check(mgr.engine?.__tetherUpgraded === true, `${label}: engine emitted "upgrade"`, true, mgr.engine?.__tetherUpgraded ?? false);
    }
    const want = this.opts.transport === "polling" ? "polling" : "websocket";
    this.equal(mgr.engine?.transport?.name, want, `${label}: final transport name`);
  }

  // socket.emitWithAck(...args) bounded by --ackTimeout; a missing ack fails the run.
  async ack(socket, label, ...args) {
    try {
      return await socket.timeout(this.opts.ackTimeout).emitWithAck(...args);
    } catch (e) {
      this.finish(`${label}: ${e.message} (no ack within ${this.opts.ackTimeout} ms)`);
      return new Promise(() => {}); // the process is exiting
    }
  }

  // Like ack() but resolves with the list of ALL ack arguments.
  ackAll(socket, label, ...args) {
    return new Promise((resolve) =>
      socket.timeout(this.opts.ackTimeout).emit(...args, (err, ...reply) => {
        if (err) this.finish(`${label}: ${err.message} (no ack within ${this.opts.ackTimeout} ms)`);
        else resolve(reply);
      }));
  }

  count(name, n = 1) {
    this.counts[name] = (this.counts[name] ?? 0) + n;
  }

  // Close everything, print the single JSON line, exit. `error` = fatal failure.
  finish(error) {
    if (this.done) return;
    this.done = true;
    if (error) {
      this.failures.push(error);
      console.error(`FAIL ${this.opts.scenario}/${this.opts.transport}: ${error}`);
    }
    for (const s of this.sockets) {
      try { s.disconnect(); s.io.engine?.close(); } catch { /* ignore */ }
    }
    const ok = this.failures.length === 0;
    const line = { scenario: this.opts.scenario, transport: this.opts.transport, ok, ...this.counts };
    if (!ok) line.failures = this.failures.length;
    process.stdout.write(JSON.stringify(line) + "\n", () => process.exit(ok ? 0 : 1));
  }
}

function trackUpgrades(mgr) {
  if (mgr.__tetherTracked) return;
  mgr.__tetherTracked = true;
  const hook = () => {
    const eng = mgr.engine;
    if (!eng || eng.__tetherHooked) return;
    eng.__tetherHooked = true;
    eng.__tetherUpgraded = false;
    eng.on("upgrade", (t) => { eng.__tetherUpgraded = t?.name === "websocket"; });
  };
  hook(); // engine is created synchronously in io() when autoConnect is on
  mgr.on("open", hook); // and again on every reconnection
}

function show(v) {
  return inspect(v, { depth: 6, maxArrayLength: 20, maxStringLength: 200, breakLength: Infinity });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Resolve with the args of the next `event` on `emitter` (rejects after ms).
export function once(emitter, event, ms = 5000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      emitter.off(event, on);
      reject(new Error(`no "${event}" within ${ms} ms`));
    }, ms);
    const on = (...args) => { clearTimeout(t); resolve(args); };
    emitter.once(event, on);
  });
}

// Wait until list.length >= n, giving up once nothing new arrived for stallMs.
export async function waitForCount(list, n, stallMs = 3000) {
  let last = -1, since = performance.now();
  while (list.length < n) {
    if (list.length !== last) { last = list.length; since = performance.now(); }
    else if (performance.now() - since > stallMs) break;
    await sleep(10);
  }
}

// Wait until pred() is true, polling every 10 ms; returns pred() at the end.
export async function until(pred, ms = 5000) {
  const deadline = performance.now() + ms;
  while (!pred() && performance.now() < deadline) await sleep(10);
  return pred();
}

// Normalise any binary value to a Buffer, or null if it isn't binary.
export function asBuffer(v) {
  if (Buffer.isBuffer(v)) return v;
  if (v instanceof ArrayBuffer) return Buffer.from(v);
  if (ArrayBuffer.isView(v)) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  return null;
}

// Deterministic test bytes.
export function bytes(n, seed = 1) {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed * 7) & 0xff;
  return b;
}

export { io, Manager };
