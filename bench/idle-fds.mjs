// Holds N idle connections against a running `tether serve` and reports the
// server's open file descriptors (/proc/PID/fd) and CPU time (utime + stime
// from /proc/PID/stat) while they are held and after they are gone.
//   node bench/idle-fds.mjs --port 3000 --pid PID --count 20000 --kind tcp|sio [--hold 5]
// kind tcp: raw TCP connections that send nothing; the server's header read
//   timeout closes them (the script waits for that, at most --wait seconds).
// kind sio: Socket.IO clients over WebSocket (handshake + CONNECT to "/")
//   that answer pings and hold their session; the script closes them.
// The connections are shared by --procs worker processes (default 2), each
// needing count/procs file descriptors (raise `ulimit -n` to that).
// Bounded: every connection has a deadline, every wait an end; it always exits.
import { createRequire } from "node:module";
import { readFileSync, readdirSync } from "node:fs";
import net from "node:net";
const require = createRequire(new URL("../tests/node/package.json", import.meta.url));
const WebSocket = require("ws");

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, v, i, a) => (i % 2 === 0 ? [...acc, [v.replace(/^--/, ""), a[i + 1]]] : acc), []));
const port = Number(args.port ?? 3000);
const pid = args.pid;
const count = Number(args.count ?? 20000);
const kind = args.kind ?? "tcp";
const hold = Number(args.hold ?? 5) * 1000;
const wait = Number(args.wait ?? 30) * 1000;
const TCK = 100; // CLK_TCK on Linux

const fds = () => readdirSync(`/proc/${pid}/fd`).length;
function cpuSeconds() {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) / TCK;
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// CPU share of one core used by the server over `ms`.
async function cpuOver(ms) {
  const c0 = cpuSeconds(), t0 = performance.now();
  await sleep(ms);
  return Number(((cpuSeconds() - c0) / ((performance.now() - t0) / 1000)).toFixed(3));
}

const sockets = [];
let opened = 0, failed = 0, closedByServer = 0;
function openTcp() {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: "127.0.0.1" });
    let settled = false, connected = false;
    const end = (ok) => { if (settled) return; settled = true; connected = ok; clearTimeout(timer); ok ? opened++ : failed++; resolve(); };
    const timer = setTimeout(() => { end(false); s.destroy(); }, 20000);
    s.on("connect", () => end(true));
    s.on("close", () => { if (connected && !s.released) closedByServer++; end(false); });
    s.on("error", () => end(false));
    sockets.push(s);
  });
}
function openSio() {
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/socket.io/?EIO=4&transport=websocket`);
    let settled = false, connected = false;
    const end = (ok) => { if (settled) return; settled = true; connected = ok; clearTimeout(timer); ok ? opened++ : failed++; resolve(); };
    const timer = setTimeout(() => { end(false); ws.terminate(); }, 20000);
    ws.on("message", (data) => {
      const s = data.toString();
      if (s.startsWith("0")) ws.send("40");
      else if (s.startsWith("40")) end(true);
      else if (s === "2") ws.send("3");
    });
    ws.on("close", () => { if (connected && !ws.released) closedByServer++; end(false); });
    ws.on("error", () => end(false));
    sockets.push(ws);
  });
}

const procs = Number(args.procs ?? 2);
if (process.send) {
  // A worker: opens its share, reports, then waits for "release".
  const share = Number(args.share);
  const open = kind === "sio" ? openSio : openTcp;
  for (let i = 0; i < share; i += 500) {
    await Promise.all(Array.from({ length: Math.min(500, share - i) }, open));
  }
  process.send({ opened, failed });
  process.on("message", async (msg) => {
    if (msg === "closed?") process.send({ closedByServer });
    if (msg === "release") {
      for (const s of sockets) { s.released = true; s.terminate ? s.terminate() : s.destroy(); }
      process.send({ released: true });
      setTimeout(() => process.exit(0), 200);
    }
  });
} else {
  // The main process holds no connection: `procs` workers share them, so
  // that each stays under the machine's open files limit.
  const { fork } = await import("node:child_process");
  const report = { kind, count, procs, fds_before: fds(), cpu_idle_before: await cpuOver(1000) };
  const cpu0 = cpuSeconds(), t0 = performance.now();
  const workers = Array.from({ length: procs }, () =>
    fork(new URL(import.meta.url).pathname, [...process.argv.slice(2), "--share", String(Math.ceil(count / procs))]));
  const ask = (w, msg) => new Promise((resolve) => { w.once("message", resolve); if (msg) w.send(msg); });
  const done = await Promise.race([Promise.all(workers.map((w) => ask(w))), sleep(120000).then(() => null)]);
  report.opened = done ? done.reduce((a, d) => a + d.opened, 0) : null;
  report.failed = done ? done.reduce((a, d) => a + d.failed, 0) : null;
  report.connect_seconds = (performance.now() - t0) / 1000;
  report.server_cpu_seconds_connecting = Number((cpuSeconds() - cpu0).toFixed(2));
  report.fds_held = fds();
  report.cpu_share_while_held = await cpuOver(hold);
  report.fds_held_after_hold = fds();
  const closed = async () => (await Promise.all(workers.map((w) => ask(w, "closed?")))).reduce((a, d) => a + d.closedByServer, 0);
  if (kind === "tcp") {
    // The server closes them itself (header read timeout).
    const end = performance.now() + wait;
    let n = await closed();
    while (n < report.opened && performance.now() < end) { await sleep(200); n = await closed(); }
    report.closed_by_server = n;
    report.seconds_from_start_until_closed = (performance.now() - t0) / 1000;
    report.fds_after_server_closed = fds();
  } else {
    report.closed_by_server_while_held = await closed();
  }
  await Promise.all(workers.map((w) => ask(w, "release")));
  const end = performance.now() + wait;
  while (fds() > report.fds_before && performance.now() < end) await sleep(100);
  await sleep(1000);
  report.fds_after_release = fds();
  report.cpu_share_after_release = await cpuOver(2000);
  console.log(JSON.stringify(report));
  process.exit(0);
}
