// One official `socket.io-client` (tests/node, pinned by its lock file) in the
// correctness benchmark `tether-bench faults` (crates/tether-bench), speaking
// the chat app's wire contract (shared README, section 1.1):
//
//   node bench/faults-node.mjs --role pub --id n0 --url http://127.0.0.1:PORT --count 300
//   node bench/faults-node.mjs --role sub --id n1 --url http://127.0.0.1:PORT [--slowMs 2]
//
// A publisher emits `("chat message", "<id>#<seq>", "<id>-<seq>")` for seq 1..count
// (with --padBytes N, the content ends with `|` and N filler bytes),
// one at a time, with `retries` and `ackTimeout`; a try that runs out of retries,
// or whose ack is an error, is emitted again with the same clientOffset, so the
// server stores each message once. A subscriber connects with
// `auth: { serverOffset }` and moves serverOffset to each message it receives
// (the tutorial's client). With --slowMs it spins that long per message, which
// blocks the event loop: the socket is not read meanwhile (a slow consumer).
//
// Output: one JSON line per observation on stdout, read by the benchmark:
//   {"ev":"connect","recovered":bool,"ms":null|N}   (ms: since the disconnection)
//   {"ev":"disconnect","reason":"..."}   {"ev":"connect_error","message":"...","active":bool}
//   {"ev":"sent","seq":N}       {"ev":"ack","seq":N,"offset":N,"duplicate":bool}
//   {"ev":"retry","seq":N,"why":"..."}   {"ev":"done"}   (publisher)
//   {"ev":"msg","c":"<content>","o":N}                   (subscriber)
//   {"ev":"summary",...}  last, when stdin closes or --deadlineMs runs out.
// Every loop is bounded by --deadlineMs; the process exits when its stdin
// closes (the benchmark's stop signal) or at the deadline.
import { createRequire } from "node:module";

const require = createRequire(new URL("../tests/node/package.json", import.meta.url));
const { io } = require("socket.io-client");

// Milliseconds on the monotonic clock (a wall-clock step moves no deadline).
const now = () => Math.round(performance.now());

const opts = {
  role: "", id: "", url: "", count: 0, paceMs: 0, ackTimeoutMs: 1000, retries: 1000,
  slowMs: 0, padBytes: 0, deadlineMs: 120000, transports: "websocket",
};
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) {
  const key = argv[i].replace(/^--/, "");
  const val = argv[i + 1];
  if (!(key in opts) || val === undefined) {
    console.error(`faults-node: bad argument ${argv[i]}`);
    process.exit(2);
  }
  opts[key] = typeof opts[key] === "number" ? Number(val) : val;
  if (typeof opts[key] === "number" && !Number.isFinite(opts[key])) {
    console.error(`faults-node: --${key} wants a number`);
    process.exit(2);
  }
}
if (!["pub", "sub"].includes(opts.role) || !opts.id || !opts.url) {
  console.error("usage: node bench/faults-node.mjs --role pub|sub --id ID --url URL [--count N] [--paceMs MS] [--ackTimeoutMs MS] [--retries N] [--slowMs MS] [--padBytes N] [--deadlineMs MS] [--transports websocket|polling,websocket]");
  process.exit(2);
}

const started = now();
const deadline = started + opts.deadlineMs;
const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const counts = { connects: 0, recovered: 0, disconnects: 0, sent: 0, acked: 0, duplicateAcks: 0, retries: 0, received: 0 };

const pub = opts.role === "pub";
const socket = io(opts.url, {
  auth: { serverOffset: 0 },
  transports: opts.transports.split(","),
  forceNew: true,
  reconnectionDelay: 100,
  reconnectionDelayMax: 1000,
  ...(pub ? { ackTimeout: opts.ackTimeoutMs, retries: opts.retries } : {}),
});

let disconnectedAt = null;
socket.on("connect", () => {
  counts.connects++;
  if (socket.recovered) counts.recovered++;
  out({ ev: "connect", recovered: socket.recovered, ms: disconnectedAt === null ? null : now() - disconnectedAt });
  disconnectedAt = null;
});
socket.on("disconnect", (reason) => {
  counts.disconnects++;
  disconnectedAt = now();
  out({ ev: "disconnect", reason });
});
// A refusal by the namespace (CONNECT_ERROR) leaves the socket inactive: the
// official client does not try again by itself (the tutorial's code neither).
socket.on("connect_error", (e) => out({ ev: "connect_error", message: String(e?.message ?? e), active: socket.active }));

let finished = false;
function finish(why) {
  if (finished) return;
  finished = true;
  out({ ev: "summary", id: opts.id, role: opts.role, why, ms: now() - started, ...counts });
  socket.close();
  // stdout to a pipe is synchronous on Linux: everything above is written.
  process.exit(0);
}
process.stdin.on("end", () => finish("stdin closed"));
process.stdin.on("error", () => finish("stdin error"));
process.stdin.resume();
setTimeout(() => finish("deadline"), Math.max(0, deadline - now())).unref();

if (pub) {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  for (let seq = 1; seq <= opts.count && now() < deadline; seq++) {
    const content = `${opts.id}#${seq}` + (opts.padBytes > 0 ? "|" + "x".repeat(opts.padBytes) : "");
    const clientOffset = `${opts.id}-${seq}`;
    counts.sent++;
    out({ ev: "sent", seq });
    // Same clientOffset on every try: the server stores the message once.
    while (now() < deadline) {
      let ack;
      try {
        ack = await socket.emitWithAck("chat message", content, clientOffset);
      } catch (e) {
        counts.retries++;
        out({ ev: "retry", seq, why: String(e?.message ?? e) });
        continue;
      }
      if (ack && Number.isInteger(ack.seq)) {
        counts.acked++;
        if (ack.duplicate) counts.duplicateAcks++;
        out({ ev: "ack", seq, offset: ack.seq, duplicate: !!ack.duplicate });
        break;
      }
      counts.retries++;
      out({ ev: "retry", seq, why: `error ack ${JSON.stringify(ack)}` });
      await sleep(50);
    }
    if (opts.paceMs > 0) await sleep(opts.paceMs);
  }
  out({ ev: "done" });
} else {
  socket.on("chat message", (content, serverOffset) => {
    counts.received++;
    socket.auth.serverOffset = serverOffset;
    out({ ev: "msg", c: content, o: serverOffset });
    if (opts.slowMs > 0) {
      const until = now() + opts.slowMs;
      while (now() < until) { /* a slow consumer: the event loop is busy */ }
    }
  });
}
