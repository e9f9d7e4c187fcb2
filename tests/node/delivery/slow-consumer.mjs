// slow-consumer (websocket): a raw Engine.IO/Socket.IO client over `ws`
// (tests/node/node_modules/ws) joins "slow", then stops reading (the TCP
// socket is paused) while P (the official client) publishes N (5000) msgs of
// ~1 KB to "slow"; once every publish is acked it reads again. It must get
// all N exactly once, in order. If the server closed the connection meanwhile
// (e.g. no pong while paused), the raw client resumes its session (CONNECT
// with {pid, offset}) and must be recovered and still get all N; the verdict
// says which happened (closed, recoveries).
import WebSocket from "ws";
import {
  parseArgs, Run, until, client, mustConnect, publish, checkExact, offsetSeq, sleep,
} from "./common.mjs";

const opts = parseArgs("slow-consumer", { count: 5000, timeout: 120000, ackTimeout: 60000 });
const run = new Run(opts);
const N = opts.count;
const PAD = "x".repeat(1000);

// A Socket.IO client on one Engine.IO WebSocket, by hand (EIO=4, namespace /).
class RawClient {
  constructor(base) {
    this.base = base.replace(/^http/, "ws").replace(/\/+$/, "") + "/socket.io/?EIO=4&transport=websocket";
    this.msgs = []; // {payload, offset, seq}
    this.pid = null;
    this.offset = undefined;
    this.id = null;
    this.connections = 0;
    this.closes = [];
    this.acks = new Map();
    this.nextAck = 0;
    this.report = null;
  }

  // Opens a WebSocket and connects to "/" (with {pid, offset} when resuming).
  // Resolves with {sid, pid} from the CONNECT reply.
  open(resumeSession) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.base);
      this.ws = ws;
      this.connections++;
      let connected = false;
      ws.on("message", (data) => {
        const text = data.toString();
        if (text[0] === "0") { // Engine.IO open: connect to "/"
          const auth = resumeSession ? { pid: this.pid, ...(this.offset ? { offset: this.offset } : {}) } : null;
          ws.send(auth ? `40${JSON.stringify(auth)}` : "40");
        } else if (text === "2") {
          ws.send("3");
        } else if (text.startsWith("40")) {
          const hello = JSON.parse(text.slice(2));
          this.recovered = !!(resumeSession && hello.pid && hello.pid === this.pid);
          this.report = hello.recovery ?? null;
          this.id = hello.sid;
          this.pid = hello.pid;
          connected = true;
          resolve(hello);
        } else if (text.startsWith("44")) {
          reject(new Error(`connect_error ${text.slice(2)}`));
        } else if (text.startsWith("42")) {
          const [event, ...args] = JSON.parse(text.slice(2));
          if (event === "msg") {
            const offset = args[args.length - 1];
            this.msgs.push({ payload: args[0], offset, seq: offsetSeq(offset) });
            this.offset = offset;
          }
        } else if (text.startsWith("43")) {
          const m = /^43(\d+)(.*)$/.exec(text);
          const cb = m && this.acks.get(Number(m[1]));
          if (cb) { this.acks.delete(Number(m[1])); cb(JSON.parse(m[2])); }
        }
      });
      ws.on("close", (code) => {
        this.closes.push({ code, at: this.msgs.length });
        if (!connected) reject(new Error(`closed before CONNECT reply (${code})`));
      });
      ws.on("error", (e) => { if (!connected) reject(e); });
    });
  }

  emitWithAck(event, ...args) {
    const id = this.nextAck++;
    return new Promise((resolve) => {
      this.acks.set(id, resolve);
      this.ws.send(`42${id}${JSON.stringify([event, ...args])}`);
    });
  }

  get open_() {
    return this.ws?.readyState === WebSocket.OPEN;
  }
}

const raw = new RawClient(opts.url);
const hello = await raw.open(false).catch((e) => run.finish(`raw client connects: ${e.message}`));
run.check(typeof hello?.pid === "string", "the CONNECT reply carries a pid", "pid", hello);
const rooms = await raw.emitWithAck("join", "slow");
run.check(rooms?.[0]?.includes?.("slow"), "raw client joined slow", "[..., 'slow']", rooms);

const p = client(run, "/");
await mustConnect(run, p, "P connects");
// One msg first: the raw client holds a real offset before it stops reading.
const [first] = await publish(run, p, "slow", "first", 1);
run.check(await until(() => raw.msgs.length >= 1, 5000), "raw client gets the first msg");

raw.ws._socket.pause();
const pausedAt = performance.now();
const sent = await publish(run, p, "slow", "bulk", N, { extra: { pad: PAD } });
const pausedMs = performance.now() - pausedAt;
raw.ws._socket.resume();

// Read everything; if the server closed the connection, resume the session.
let recoveries = 0;
const recoveredFlags = [];
const deadline = performance.now() + 60000;
let last = -1, since = performance.now();
while (raw.msgs.length < N + 1 && performance.now() < deadline) {
  if (!raw.open_ && raw.ws.readyState === WebSocket.CLOSED) {
    if (recoveries >= 5) break;
    recoveries++;
    await raw.open(true).catch((e) => run.finish(`raw client resumes its session: ${e.message}`));
    recoveredFlags.push(raw.recovered);
    run.check(raw.recovered, `recovery ${recoveries}: the session is restored`, true, { recovered: raw.recovered, report: raw.report });
    since = performance.now();
  }
  if (raw.msgs.length !== last) { last = raw.msgs.length; since = performance.now(); }
  else if (performance.now() - since > 10000) break;
  await sleep(10);
}
const probeMsg = await publish(run, p, "slow", "probe", 1);
run.check(await until(() => raw.msgs.some((m) => m.payload?.tag === "probe"), 10000), "raw client gets the probe");
checkExact(run, "raw client's msgs", raw.msgs, [first, ...sent, ...probeMsg]);
const payloadOk = raw.msgs.filter((m) => m.payload?.tag === "bulk").every((m) => m.payload.pad === PAD);
run.check(payloadOk, "bulk payloads intact");

Object.assign(run.counts, {
  published: N, received: raw.msgs.filter((m) => m.payload?.tag === "bulk").length, pausedMs,
  closed: raw.closes.length > 0, recoveries, recoveredFlags, closes: raw.closes,
});
run.finish();
