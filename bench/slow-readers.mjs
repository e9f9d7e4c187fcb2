// Memory under slow readers: stores --history chat messages of --size
// characters through `tether serve` (acked, 200 in flight; --history 0 uses
// what the store holds), then opens --count raw WebSocket clients that connect
// with auth.serverOffset 0 and never read (their sockets paused), holds them
// for --hold seconds, closes them and waits --settle seconds. Reports the
// server's resident memory (from /proc, given --pid) before, with them
// connected (the highest sample) and after they left, and the send budget's
// gauge from /metrics when the server has it.
//   node bench/slow-readers.mjs --url http://127.0.0.1:3000 --pid PID \
//     [--history 8000] [--size 4000] [--count 300] [--hold 10] [--settle 5]
// Bounded: every wait has a deadline; the script always exits.
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
const require = createRequire(new URL("../tests/node/package.json", import.meta.url));
const { io } = require("socket.io-client");
const WebSocket = require("ws");

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, v, i, a) => (i % 2 === 0 ? [...acc, [v.replace(/^--/, ""), a[i + 1]]] : acc), []));
const url = args.url ?? "http://127.0.0.1:3000";
const wsUrl = url.replace(/^http/, "ws") + "/socket.io/?EIO=4&transport=websocket";
const history = Number(args.history ?? 8000);
const size = Number(args.size ?? 4000);
const count = Number(args.count ?? 300);
const hold = Number(args.hold ?? 10) * 1000;
const settle = Number(args.settle ?? 5) * 1000;
const pid = args.pid;
const deadline = (ms, what) => new Promise((_, reject) => setTimeout(() => reject(new Error(`timeout: ${what}`)), ms).unref());
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function rssKiB() {
  if (!pid) return null;
  const m = readFileSync(`/proc/${pid}/status`, "utf8").match(/VmRSS:\s+(\d+)/);
  return m ? Number(m[1]) : null;
}

async function buffered() {
  try {
    const res = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5000) });
    const m = (await res.text()).match(/^tether_send_buffer_bytes (\S+)$/m);
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

if (history > 0) {
  const writer = io(url, { transports: ["websocket"], auth: {} });
  await Promise.race([new Promise((r) => writer.on("connect", r)), deadline(10000, "writer connect")]);
  const run = `${Date.now()}`;
  const content = "x".repeat(size);
  let next = 0;
  async function lane() {
    while (next < history) {
      const i = next++;
      await writer.timeout(30000).emitWithAck("chat message", content, `${run}-${i}`);
    }
  }
  await Promise.race([Promise.all(Array.from({ length: 200 }, lane)), deadline(600000, "stores")]);
  writer.close();
  await sleep(1000);
}

const before = rssKiB();
let connected = 0, failed = 0;
const sockets = [];
function open() {
  return new Promise((resolve) => {
    const ws = new WebSocket(wsUrl);
    const timer = setTimeout(() => { failed++; ws.terminate(); resolve(); }, 20000);
    ws.on("message", (data) => {
      const s = data.toString();
      if (s.startsWith("0")) ws.send('40{"serverOffset":0}');
      else if (s.startsWith("40")) {
        // Connected: from now on it reads nothing (its socket is paused).
        connected++;
        clearTimeout(timer);
        ws.pause();
        resolve();
      }
    });
    ws.on("error", () => { clearTimeout(timer); failed++; resolve(); });
    sockets.push(ws);
  });
}
const t0 = performance.now();
for (let i = 0; i < count; i += 50) {
  await Promise.all(Array.from({ length: Math.min(50, count - i) }, open));
}
const connectSecs = (performance.now() - t0) / 1000;
let withClients = 0;
let maxBuffered = null;
const holdEnd = performance.now() + hold;
while (performance.now() < holdEnd) {
  withClients = Math.max(withClients, rssKiB() ?? 0);
  const b = await buffered();
  if (b !== null) maxBuffered = Math.max(maxBuffered ?? 0, b);
  await sleep(250);
}
for (const s of sockets) s.terminate();
await sleep(settle);
const after = rssKiB();
const afterBuffered = await buffered();
console.log(JSON.stringify({
  history, size, count, connected, failed, connect_seconds: connectSecs,
  server_rss_kib_before: before, server_rss_kib_with_clients: withClients, server_rss_kib_after: after,
  bytes_per_client: before && withClients ? Math.round(((withClients - before) * 1024) / Math.max(connected, 1)) : null,
  max_send_buffer_bytes: maxBuffered, send_buffer_bytes_after: afterBuffered,
}));
process.exit(connected === count ? 0 : 1);
