// Opens N Socket.IO connections over raw WebSocket (handshake + CONNECT to "/"),
// keeps them alive answering pings for --hold seconds, and reports how many
// connected and the server's resident memory (from /proc, given --pid).
//   node bench/idle-connections.mjs --url ws://127.0.0.1:3000 --count 10000 --pid PID [--hold 5]
// Bounded: every connection attempt has a deadline; the script always exits.
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
const require = createRequire(new URL("../tests/node/package.json", import.meta.url));
const WebSocket = require("ws");

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, v, i, a) => (i % 2 === 0 ? [...acc, [v.replace(/^--/, ""), a[i + 1]]] : acc), []));
const url = (args.url ?? "ws://127.0.0.1:3000").replace(/^http/, "ws") + "/socket.io/?EIO=4&transport=websocket";
const count = Number(args.count ?? 10000);
const hold = Number(args.hold ?? 5) * 1000;
const pid = args.pid;

function rssKiB() {
  if (!pid) return null;
  const m = readFileSync(`/proc/${pid}/status`, "utf8").match(/VmRSS:\s+(\d+)/);
  return m ? Number(m[1]) : null;
}

const before = rssKiB();
let connected = 0, failed = 0;
const sockets = [];
function open() {
  return new Promise((resolve) => {
    const ws = new WebSocket(url);
    const timer = setTimeout(() => { failed++; ws.terminate(); resolve(); }, 20000);
    ws.on("message", (data) => {
      const s = data.toString();
      if (s.startsWith("0")) ws.send("40");
      else if (s.startsWith("40")) { connected++; clearTimeout(timer); resolve(); }
      else if (s === "2") ws.send("3");
    });
    ws.on("error", () => { clearTimeout(timer); failed++; resolve(); });
    sockets.push(ws);
  });
}
const t0 = performance.now();
const batch = 200;
for (let i = 0; i < count; i += batch) {
  await Promise.all(Array.from({ length: Math.min(batch, count - i) }, open));
}
const connectSecs = (performance.now() - t0) / 1000;
await new Promise((r) => setTimeout(r, hold));
const after = rssKiB();
const alive = sockets.filter((s) => s.readyState === WebSocket.OPEN).length;
const report = { count, connected, failed, alive_after_hold: alive, connect_seconds: connectSecs,
  connections_per_second: Math.round(connected / connectSecs),
  server_rss_kib_before: before, server_rss_kib_after: after,
  bytes_per_connection: before && after ? Math.round(((after - before) * 1024) / Math.max(connected, 1)) : null };
console.log(JSON.stringify(report));
for (const s of sockets) s.terminate();
process.exit(connected === count && alive === count ? 0 : 1);
