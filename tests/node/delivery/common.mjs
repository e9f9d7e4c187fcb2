// Shared helpers for the delivery scenarios (tests/node/README.md, "Delivery
// contract"). Built on ../lib.mjs: Run, parseArgs, once, until, ...
import { createInterface } from "node:readline";
import { io, once, until, sleep } from "../lib.mjs";

export { parseArgs, Run, once, until, sleep, waitForCount } from "../lib.mjs";

// ---------------------------------------------------------------- offsets --

// Tether offsets are `t.<epoch>.<seq>` (the epoch may itself contain dots).
export function offsetSeq(offset) {
  const m = typeof offset === "string" ? /^t\.(.+)\.(\d+)$/.exec(offset) : null;
  return m ? Number(m[2]) : null;
}

export function offsetEpoch(offset) {
  const m = typeof offset === "string" ? /^t\.(.+)\.(\d+)$/.exec(offset) : null;
  return m ? m[1] : null;
}

// ---------------------------------------------------------------- clients --

// A socket of its own Manager (forceNew: never multiplexed with another
// client of the run) on `url` (default: the run's --url), with the run's
// transport; tracked by the run so finish() closes it.
export function client(run, nsp = "/", extra = {}, url = run.opts.url) {
  const full = url.replace(/\/+$/, "") + (nsp === "/" ? "" : nsp);
  const socket = io(full, run.socketOptions({ forceNew: true, ...extra }));
  let notes = 0;
  socket.on("connect_error", (e) => notes++ < 3 && console.error(`note: ${nsp} connect_error: ${e.message}`));
  run.sockets.push(socket);
  return socket;
}

// Resumes a session on a NEW Manager (another URL after a server restart, or
// a second connection while the first is alive). The official client puts
// {pid, offset} into its CONNECT auth only when it already holds a pid from an
// earlier CONNECT reply (private fields `_pid` and `_lastOffset`; there is no
// public option), so we set them before connecting, exactly as its own
// reconnection would. `offset` may be undefined (no stored event received yet).
export function resume(run, { pid, offset }, nsp = "/", extra = {}, url = run.opts.url) {
  const socket = client(run, nsp, { ...extra, autoConnect: false }, url);
  socket._pid = pid;
  socket._lastOffset = offset;
  return socket;
}

// The session a socket would present on reconnection.
export function sessionOf(socket) {
  return { pid: socket._pid, offset: socket._lastOffset, id: socket.id };
}

// Resolves when the socket is connected (now or next), rejects on
// connect_error or after ms.
export function connected(socket, ms = 10000) {
  if (socket.connected) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => { off(); reject(new Error(`not connected within ${ms} ms`)); }, ms);
    const ok = () => { off(); resolve(); };
    const ko = (e) => { off(); reject(new Error(`connect_error: ${e?.message}`)); };
    const off = () => { clearTimeout(t); socket.off("connect", ok); socket.off("connect_error", ko); };
    socket.on("connect", ok);
    socket.on("connect_error", ko);
  });
}

// Like connected() but a failure ends the run with `label`.
export async function mustConnect(run, socket, label, ms = 10000) {
  try {
    await connected(socket, ms);
  } catch (e) {
    run.finish(`${label}: ${e.message}`);
    await new Promise(() => {});
  }
}

// Awaits a promise from once(), ending the run with `label` if it rejects.
export async function must(run, promise, label) {
  try {
    return await promise;
  } catch (e) {
    run.finish(`${label}: ${e.message}`);
    return new Promise(() => {});
  }
}

// Every "welcome" a socket gets (volatile, not stored: may be missing when the
// socket's buffer is full).
export function welcomes(socket) {
  const list = [];
  socket.on("welcome", (w) => list.push(w));
  return list;
}

// Records every stored event `event` a socket receives: {args, payload,
// offset, seq}. The offset is the last argument.
export class Inbox {
  constructor(socket, event = "msg") {
    this.items = [];
    this.event = event;
    this.listen(socket);
  }

  listen(socket) {
    socket.on(this.event, (...args) => {
      const offset = args[args.length - 1];
      this.items.push({ args, payload: args[0], offset, seq: offsetSeq(offset) });
    });
    return this;
  }

  get length() {
    return this.items.length;
  }

  keys(from = 0) {
    return this.items.slice(from).map((m) => keyOf(m.payload));
  }
}

// Key of a published payload: `${tag}:${i}`, or the string itself (chat messages).
export function keyOf(payload) {
  if (payload && typeof payload === "object" && "tag" in payload) return `${payload.tag}:${payload.i}`;
  return typeof payload === "string" ? payload : JSON.stringify(payload);
}

// Wait (bounded by a stall of stallMs without progress) until inbox holds n.
export async function waitLength(inbox, n, stallMs = 5000) {
  let last = -1, since = performance.now();
  while (inbox.length < n) {
    if (inbox.length !== last) { last = inbox.length; since = performance.now(); }
    else if (performance.now() - since > stallMs) break;
    await sleep(10);
  }
  return inbox.length >= n;
}

// ------------------------------------------------------------- publishing --

// Publishes `msg` events {tag, i, ...extra} to `room` through `socket`'s
// "publish" handler, i = from..from+n-1, at most `window` in flight (see
// below).
// Handlers of one socket run in arrival order on the server, so the order of
// the emits is the order of the positions. Resolves with [{key, seq}] in
// publish order; a missing ack or a store error fails the run. (A window
// keeps the load realistic: past max_queued_events / 2 queued events the
// server stops reading from the client until its handlers catch up.)
export async function publish(run, socket, room, tag, n, { from = 0, extra = {}, window = 256 } = {}) {
  const acks = new Array(n);
  let next = 0;
  const lane = async () => {
    while (next < n) {
      const k = next++;
      acks[k] = await run.ack(socket, `publish ${tag}:${from + k} to ${room}`, "publish", room, { tag, i: from + k, ...extra });
    }
  };
  await Promise.all(Array.from({ length: Math.min(window, n) }, lane));
  return acks.map((a, k) => {
    const key = `${tag}:${from + k}`;
    run.check(a && Number.isInteger(a.seq), `publish ${key}: ack carries a seq`, "{seq: n}", a);
    return { key, seq: a?.seq };
  });
}

// Publishes one probe to `room` and waits until `inbox` has it: anything a
// socket gets before the probe has arrived by then (one connection, in order).
export async function probe(run, publisher, room, inbox, tag, ms = 10000) {
  const [p] = await publish(run, publisher, room, tag, 1);
  const ok = await until(() => inbox.items.some((m) => keyOf(m.payload) === p.key), ms);
  run.check(ok, `${tag}: probe ${p.key} arrives within ${ms} ms`);
  return p;
}

// ---------------------------------------------------------------- checking --

// Checks that `got` (the received items, in arrival order) is exactly
// `expected` ([{key, seq}]): same keys in the same order, no duplicate, no gap,
// each with the offset of its publish. Reports a summary instead of huge lists.
export function checkExact(run, label, got, expected) {
  const gotKeys = got.map((m) => keyOf(m.payload));
  const wantKeys = expected.map((e) => e.key);
  const counts = new Map();
  for (const k of gotKeys) counts.set(k, (counts.get(k) ?? 0) + 1);
  const dups = [...counts].filter(([, c]) => c > 1).map(([k, c]) => `${k} x${c}`);
  const want = new Set(wantKeys);
  const missing = wantKeys.filter((k) => !counts.has(k));
  const extra = [...counts.keys()].filter((k) => !want.has(k));
  let firstDiff = -1;
  for (let i = 0; i < Math.max(gotKeys.length, wantKeys.length); i++) {
    if (gotKeys[i] !== wantKeys[i]) { firstDiff = i; break; }
  }
  const ok = firstDiff === -1;
  run.check(ok, `${label}: exactly the ${wantKeys.length} expected events, once each, in order`,
    `${wantKeys.length} events`, ok ? null : {
      received: gotKeys.length,
      duplicates: dups.length, firstDuplicates: dups.slice(0, 5),
      missing: missing.length, firstMissing: missing.slice(0, 5),
      unexpected: extra.length, firstUnexpected: extra.slice(0, 5),
      firstDifferenceAt: firstDiff,
      expectedThere: wantKeys.slice(firstDiff, firstDiff + 3),
      gotThere: gotKeys.slice(firstDiff, firstDiff + 3),
    });
  // Offsets: each event carries the position its publish was acked with.
  const seqOf = new Map(expected.map((e) => [e.key, e.seq]));
  const wrong = got.filter((m) => seqOf.has(keyOf(m.payload)) && m.seq !== seqOf.get(keyOf(m.payload)));
  run.check(wrong.length === 0, `${label}: every event's offset names its acked position`, 0,
    wrong.slice(0, 3).map((m) => ({ key: keyOf(m.payload), offset: m.offset, acked: seqOf.get(keyOf(m.payload)) })));
  return ok && wrong.length === 0;
}

export function sameSet(a, b) {
  return JSON.stringify([...(a ?? [])].sort()) === JSON.stringify([...(b ?? [])].sort());
}

// ----------------------------------------------------------------- harness --

// Talking to the harness (tests/delivery_node.rs): the script prints
// `READY <what>` on stdout and reads the harness's answer, one line on stdin
// (`URL http://127.0.0.1:PORT` for `READY restart`). Run by hand, type it.
let lines = null;
const waiting = [];
function stdinLines() {
  if (lines) return;
  lines = [];
  const rl = createInterface({ input: process.stdin });
  rl.on("line", (line) => {
    const w = waiting.shift();
    if (w) w(line);
    else lines.push(line);
  });
}

export function askHarness(run, what, ms = 60000) {
  stdinLines();
  process.stdout.write(`READY ${what}\n`);
  return new Promise((resolve) => {
    const t = setTimeout(() => run.finish(`harness did not answer "READY ${what}" within ${ms} ms`), ms);
    const got = (line) => { clearTimeout(t); resolve(line.trim()); };
    if (lines.length) got(lines.shift());
    else waiting.push(got);
  });
}

// Asks the harness to kill -9 the server and start it again on the same store;
// resolves with the new server's URL.
export async function restartServer(run) {
  const line = await askHarness(run, "restart");
  const url = line.replace(/^URL\s+/, "");
  if (!/^https?:\/\//.test(url)) run.finish(`harness answered ${JSON.stringify(line)}, not "URL http://..."`);
  return url;
}

export { io };
