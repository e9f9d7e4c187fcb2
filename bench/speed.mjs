// Speed benchmark: the same load against Tether's bench_server and the Node
// socket.io 4.8.1 server, one after the other, in one run; prints each figure
// and the ratio. Raw WebSocket clients (Engine.IO/Socket.IO frames by hand) so
// that the load generator stays cheap.
//   node bench/speed.mjs [--durable] [--seconds 5] [--conns 50] [--subs 1000]
// Both servers are started and stopped by the script, on loopback; every phase
// is bounded in time and count. Server CPU comes from /proc/PID/stat.
import { createRequire } from "node:module";
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
const require = createRequire(new URL("../tests/node/package.json", import.meta.url));
const WebSocket = require("ws");
const root = fileURLToPath(new URL("..", import.meta.url));

const argv = process.argv.slice(2);
const opt = (name, dflt) => { const i = argv.indexOf(`--${name}`); return i >= 0 ? Number(argv[i + 1]) : dflt; };
const durable = argv.includes("--durable");
const SECONDS = opt("seconds", 5);
const CONNS = opt("conns", 50);
const SUBS = opt("subs", 1000);
const CLK_TCK = 100;

function cpuSeconds(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(f[11]) + Number(f[12])) / CLK_TCK; // utime + stime
}
function rssKiB(pid) {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))[1]);
}

async function startServer(kind) {
  const cmd = kind === "tether"
    ? [`${root}/target/release/examples/bench_server`, [...(durable ? ["--durable"] : []), "0"]]
    : ["node", [`${root}/bench/node-bench-server.mjs`, ...(durable ? ["--durable"] : []), "0"]];
  const child = spawn(cmd[0], cmd[1], { stdio: ["ignore", "pipe", "pipe"] });
  const port = await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${kind} did not start`)), 20000);
    let buf = "";
    const on = (d) => { buf += d; const m = /listening (\d+)|127\.0\.0\.1:(\d+)/.exec(buf); if (m) { clearTimeout(t); resolve(Number(m[1] ?? m[2])); } };
    child.stdout.on("data", on);
    child.stderr.on("data", on);
  });
  return { child, port, pid: child.pid };
}

// A raw Socket.IO client on "/": resolves once connected.
function connect(port, onEvent) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/socket.io/?EIO=4&transport=websocket`);
    const t = setTimeout(() => reject(new Error("connect timeout")), 20000);
    ws.on("error", reject);
    ws.on("message", (data) => {
      const s = data.toString();
      if (s === "2") return ws.send("3");
      if (s.startsWith("0")) return ws.send("40");
      if (s.startsWith("40")) { clearTimeout(t); return resolve(ws); }
      onEvent?.(s);
    });
  });
}

function pct(sorted, p) { return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] : NaN; }

async function echo(port, pid) {
  const lat = [];
  let done = 0;
  const clients = [];
  const deadline = Date.now() + SECONDS * 1000;
  const cpu0 = cpuSeconds(pid);
  const t0 = Date.now();
  await Promise.all(Array.from({ length: CONNS }, async () => {
    let sent = 0, start = 0, next;
    const ws = await connect(port, (s) => { if (s.startsWith("43")) { lat.push(performance.now() - start); done++; next(); } });
    clients.push(ws);
    await new Promise((resolve) => {
      next = () => {
        if (Date.now() > deadline) return resolve();
        start = performance.now();
        ws.send(`42${sent++}["echo","payload-${sent}"]`);
      };
      next();
    });
  }));
  const secs = (Date.now() - t0) / 1000;
  const cpu = cpuSeconds(pid) - cpu0;
  clients.forEach((c) => c.terminate());
  lat.sort((a, b) => a - b);
  return { acks_per_s: done / secs, p50_ms: pct(lat, 0.5), p99_ms: pct(lat, 0.99), server_cpu_us_per_ack: (cpu * 1e6) / done };
}

async function fanout(port, pid) {
  let got = 0;
  const subs = [];
  for (let i = 0; i < SUBS; i += 100) {
    subs.push(...await Promise.all(Array.from({ length: Math.min(100, SUBS - i) }, () => connect(port, (s) => { if (s.startsWith('42["msg"')) got++; }))));
  }
  await Promise.all(subs.map((ws) => new Promise((resolve) => {
    const on = (d) => { if (d.toString().startsWith("431")) { ws.off("message", on); resolve(); } };
    ws.on("message", on);
    ws.send('421["join","room"]');
  })));
  const pub = await connect(port);
  const msgs = Math.max(10, Math.round(2000 / Math.max(1, SUBS / 100)));
  const cpu0 = cpuSeconds(pid);
  const t0 = Date.now();
  for (let i = 0; i < msgs; i++) pub.send(`42["bcast","room",{"i":${i}}]`);
  const want = msgs * SUBS;
  const until = Date.now() + 60000;
  while (got < want && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
  const secs = (Date.now() - t0) / 1000;
  const cpu = cpuSeconds(pid) - cpu0;
  const rss = rssKiB(pid);
  [...subs, pub].forEach((c) => c.terminate());
  return { deliveries_per_s: got / secs, delivered: got, expected: want, server_cpu_us_per_delivery: (cpu * 1e6) / Math.max(got, 1), rss_kib_with_subs: rss };
}

const results = {};
for (const kind of ["tether", "node"]) {
  const server = await startServer(kind);
  try {
    results[kind] = { echo: await echo(server.port, server.pid), fanout: await fanout(server.port, server.pid) };
  } finally {
    server.child.kill("SIGINT");
  }
}
const line = (name, a, b) => console.log(`${name.padEnd(34)} tether ${a.toFixed(2).padStart(12)}   node ${b.toFixed(2).padStart(12)}   ratio ${(a / b).toFixed(2)}`);
console.log(`speed: ${SECONDS}s echo with ${CONNS} connections, fan-out to ${SUBS} subscribers, durable=${durable}`);
for (const [phase, figures] of Object.entries(results.tether)) {
  for (const key of Object.keys(figures)) line(`${phase}.${key}`, figures[key], results.node[phase][key]);
}
console.log(JSON.stringify(results));
process.exit(0);
