// Speed benchmark: the same load against Tether's bench_server, the Node
// socket.io 4.8.1 server (bench/node-bench-server.mjs) and socketioxide
// (bench/socketioxide/, its version pinned by its Cargo.lock), alternating in
// one run, with connection state recovery off and then on (socketioxide has
// none: it runs once, and both of Tether's modes are compared with it);
// prints each figure, the peers' figures and the ratios, the goals of the
// performance issue (printed, not asserted), then the SQLite store's own
// figures (crates/tether-testkit/examples/store_bench.rs: group commit
// against one transaction per message).
//
//   node bench/speed.mjs [--seconds 5] [--conns 50] [--subs 1000] [--idle 10000]
//                        [--replay 20000] [--modes off,on] [--no-build]
//                        [--json FILE] [--markdown FILE] [--peers node,socketioxide]
//                        [--baseline BIN] [--phases idle,echo,fanout,ingest,replay]
//
// `--baseline BIN` compares with another build of bench_server (say one built
// from an earlier commit, copied aside) instead of Node: the same phases,
// alternating, ratios against the baseline; no store figures nor targets.
// `--phases` runs only the phases named.
//
// Phases, on a freshly started server each time:
//   idle     open --idle connections (200 at a time): connections per second,
//            server CPU per connection, server memory (RSS) per idle connection;
//   echo     --conns clients each with one acked echo in flight for --seconds;
//   fanout   one publisher, --subs subscribers in one room;
//   ingest   (recovery on) `store` events, 256 in flight: Tether acks once the
//            event is committed to SQLite (fsync); Node acks its in-memory
//            broadcast, having no store;
//   replay   (recovery on) a subscriber drops, --replay events are broadcast,
//            it comes back with its session id and offset: missed events per
//            second until the last one arrives (checked: all, in order).
// Raw WebSocket clients (frames by hand) keep the load generator cheap. With
// `taskset` and at least two cores, the server runs on core 0 and this script
// on core 1, so server CPU per operation is meaningful even when the load
// generator saturates first. Everything runs on 127.0.0.1 and every wait is
// bounded; a phase that does not complete fails the run.
import { createRequire } from "node:module";
import { spawn, spawnSync } from "node:child_process";
import { readFileSync, writeFileSync, existsSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { fileURLToPath } from "node:url";
const require = createRequire(new URL("../tests/node/package.json", import.meta.url));
const WebSocket = require("ws");
const root = fileURLToPath(new URL("..", import.meta.url));

const argv = process.argv.slice(2);
const flag = (name) => argv.includes(`--${name}`);
const opt = (name, dflt) => { const i = argv.indexOf(`--${name}`); return i >= 0 ? argv[i + 1] : dflt; };
const SECONDS = Number(opt("seconds", 5));
const CONNS = Number(opt("conns", 50));
const SUBS = Number(opt("subs", 1000));
const IDLE = Number(opt("idle", 10000));
const REPLAY = Number(opt("replay", 20000));
const MODES = opt("modes", "off,on").split(",");
const BASELINE = opt("baseline");
const PEERS = BASELINE ? ["baseline"] : opt("peers", "node,socketioxide").split(",");
const SOCKETIOXIDE = `${root}/bench/socketioxide/target/release/socketioxide-bench-server`;
const PHASES = opt("phases")?.split(",");
if (BASELINE && !existsSync(BASELINE)) throw new Error(`--baseline ${BASELINE}: no such file`);
const CLK_TCK = 100;
const ROOM = "room";

// Pin: this script to core 1, the servers to core 0.
const canPin = cpus().length >= 2 && spawnSync("taskset", ["-c", "0", "true"]).status === 0;
if (canPin && !process.env.TETHER_SPEED_PINNED) {
  const child = spawnSync("taskset", ["-c", "1", process.execPath, ...process.argv.slice(1)], {
    stdio: "inherit", env: { ...process.env, TETHER_SPEED_PINNED: "1" },
  });
  process.exit(child.status ?? 1);
}

if (!flag("no-build")) {
  const built = spawnSync("cargo", ["build", "--release", "--example", "bench_server", "--example", "store_bench"], { cwd: root, stdio: "inherit" });
  if (built.status !== 0) process.exit(built.status ?? 1);
  if (PEERS.includes("socketioxide")) {
    const peer = spawnSync("cargo", ["build", "--release", "--locked", "--manifest-path", "bench/socketioxide/Cargo.toml"], { cwd: root, stdio: "inherit" });
    if (peer.status !== 0) process.exit(peer.status ?? 1);
  }
}

function cpuSeconds(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(f[11]) + Number(f[12])) / CLK_TCK; // utime + stime
}
function rssKiB(pid) {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))[1]);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// Waits for cond(); `what` (a string, or a function giving one at the end)
// names what did not happen.
async function until(cond, ms, what) {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) throw new Error(`timeout: ${typeof what === "function" ? what() : what}`);
    await sleep(2);
  }
}

async function startServer(kind, durable) {
  const flags = [...(durable ? ["--durable"] : []), "0"];
  const bin = kind === "tether" ? [`${root}/target/release/examples/bench_server`, flags]
    : kind === "baseline" ? [BASELINE, flags]
    : kind === "socketioxide" ? [SOCKETIOXIDE, ["0"]]
    : ["node", [`${root}/bench/node-bench-server.mjs`, ...flags]];
  const [cmd, args] = canPin ? ["taskset", ["-c", "0", ...bin[0] === "node" ? [process.execPath] : [bin[0]], ...bin[1]]] : bin;
  const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
  const port = await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${kind} did not start`)), 20000);
    let buf = "";
    const on = (d) => { buf += d; const m = /listening (\d+)|127\.0\.0\.1:(\d+)/.exec(buf); if (m) { clearTimeout(t); resolve(Number(m[1] ?? m[2])); } };
    child.stdout.on("data", on);
    child.stderr.on("data", on);
    child.on("exit", (code) => reject(new Error(`${kind} exited with ${code}: ${buf}`)));
  });
  await sleep(200); // let the runtime settle before the RSS baseline
  return { child, port, pid: child.pid };
}
async function stopServer(server) {
  const exited = new Promise((r) => server.child.on("exit", r));
  server.child.kill("SIGINT");
  await Promise.race([exited, sleep(5000)]);
  server.child.kill("SIGKILL");
}

// A raw Socket.IO client on "/": resolves with { ws, hello } once connected.
function connect(port, onEvent, auth) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/socket.io/?EIO=4&transport=websocket`);
    const t = setTimeout(() => { ws.terminate(); reject(new Error("connect timeout")); }, 20000);
    ws.on("error", (e) => { clearTimeout(t); reject(e); });
    ws.on("message", (data) => {
      const s = data.toString();
      if (s === "2") return ws.send("3");
      if (s.startsWith("0")) return ws.send(auth ? `40${JSON.stringify(auth)}` : "40");
      if (s.startsWith("40")) { clearTimeout(t); return resolve({ ws, hello: JSON.parse(s.slice(2)) }); }
      onEvent?.(s);
    });
  });
}

function pct(sorted, p) { return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] : NaN; }

async function idle(port, pid) {
  const before = rssKiB(pid);
  const cpu0 = cpuSeconds(pid);
  const clients = [];
  const t0 = performance.now();
  for (let i = 0; i < IDLE; i += 200) {
    clients.push(...await Promise.all(Array.from({ length: Math.min(200, IDLE - i) }, () => connect(port))));
  }
  const secs = (performance.now() - t0) / 1000;
  const cpu = cpuSeconds(pid) - cpu0;
  await sleep(2000); // hold: heartbeats flow, buffers settle
  const after = rssKiB(pid);
  const alive = clients.filter((c) => c.ws.readyState === WebSocket.OPEN).length;
  clients.forEach((c) => c.ws.terminate());
  if (alive !== IDLE) throw new Error(`idle: ${alive} of ${IDLE} connections alive`);
  await sleep(1000);
  return {
    connections_per_s: IDLE / secs,
    server_cpu_us_per_connection: (cpu * 1e6) / IDLE,
    bytes_per_idle_connection: ((after - before) * 1024) / IDLE,
  };
}

async function echo(port, pid) {
  const lat = [];
  let done = 0;
  const clients = [];
  const deadline = performance.now() + SECONDS * 1000;
  const cpu0 = cpuSeconds(pid);
  const t0 = performance.now();
  await Promise.all(Array.from({ length: CONNS }, async () => {
    let sent = 0, start = 0, next;
    const { ws } = await connect(port, (s) => { if (s.startsWith("43")) { lat.push(performance.now() - start); done++; next(); } });
    clients.push(ws);
    await new Promise((resolve) => {
      next = () => {
        if (performance.now() > deadline) return resolve();
        start = performance.now();
        ws.send(`42${sent++}["echo","payload-${sent}"]`);
      };
      next();
    });
  }));
  const secs = (performance.now() - t0) / 1000;
  const cpu = cpuSeconds(pid) - cpu0;
  clients.forEach((c) => c.terminate());
  lat.sort((a, b) => a - b);
  return { acks_per_s: done / secs, p50_ms: pct(lat, 0.5), p99_ms: pct(lat, 0.99), server_cpu_us_per_ack: (cpu * 1e6) / done };
}

async function joinRoom(ws) {
  await new Promise((resolve) => {
    const on = (d) => { if (d.toString().startsWith("431")) { ws.off("message", on); resolve(); } };
    ws.on("message", on);
    ws.send(`421["join","${ROOM}"]`);
  });
}

async function fanout(port, pid) {
  let got = 0;
  const lat = [];
  const subs = [];
  for (let i = 0; i < SUBS; i += 100) {
    subs.push(...await Promise.all(Array.from({ length: Math.min(100, SUBS - i) }, () => connect(port, (s) => {
      if (s.startsWith('42["msg"')) { got++; lat.push(performance.now() - JSON.parse(s.slice(2))[1].t); }
    }))));
  }
  await Promise.all(subs.map((c) => joinRoom(c.ws)));
  const { ws: pub } = await connect(port);
  const msgs = Math.max(10, Math.round(2000 / Math.max(1, SUBS / 100)));
  const cpu0 = cpuSeconds(pid);
  const t0 = performance.now();
  for (let i = 0; i < msgs; i++) pub.send(`42["bcast","${ROOM}",{"i":${i},"t":${performance.now()}}]`);
  const want = msgs * SUBS;
  await until(() => got >= want, 120000, () => `fan-out: ${got} of ${want} delivered (a server that drops what it cannot buffer never gets there)`);
  const secs = (performance.now() - t0) / 1000;
  const cpu = cpuSeconds(pid) - cpu0;
  const rss = rssKiB(pid);
  [...subs.map((c) => c.ws), pub].forEach((c) => c.terminate());
  lat.sort((a, b) => a - b);
  return { deliveries_per_s: got / secs, p99_ms: pct(lat, 0.99), server_cpu_us_per_delivery: (cpu * 1e6) / got, rss_mib_with_subs: rss / 1024 };
}

async function ingest(port, pid) {
  const total = Math.max(1000, Math.round(SECONDS * 20000));
  let acked = 0, errors = 0, sent = 0;
  const { ws } = await connect(port, (s) => {
    if (!s.startsWith("43")) return;
    const ack = JSON.parse(s.slice(s.indexOf("[")));
    if (ack[0]?.error) errors++;
    acked++;
    if (sent < total) send();
  });
  const send = () => { ws.send(`42${sent}["store","ingest",{"i":${sent}}]`); sent++; };
  const cpu0 = cpuSeconds(pid);
  const t0 = performance.now();
  for (let i = 0; i < 256 && sent < total; i++) send();
  await until(() => acked >= total, 300000, () => `ingest ${acked}/${total}`);
  const secs = (performance.now() - t0) / 1000;
  const cpu = cpuSeconds(pid) - cpu0;
  ws.terminate();
  if (errors) throw new Error(`ingest: ${errors} events not stored`);
  return { acked_per_s: total / secs, server_cpu_us_per_event: (cpu * 1e6) / total };
}

async function replay(port, pid) {
  // A subscriber that got one event (so both servers have an offset for it).
  const first = [];
  const sub = await connect(port, (s) => first.push(s));
  await joinRoom(sub.ws);
  const { ws: pub } = await connect(port, () => {});
  pub.send(`42["bcast","${ROOM}",{"i":-1}]`);
  await until(() => first.some((s) => s.startsWith('42["msg"')), 10000, "first event");
  const firstArgs = JSON.parse(first.find((s) => s.startsWith('42["msg"')).slice(2));
  const offset = firstArgs[firstArgs.length - 1];
  const pidOf = sub.hello.pid;
  if (!pidOf || typeof offset !== "string") throw new Error("replay: the server gave no session id or offset");
  sub.ws.terminate();
  await sleep(500); // the server sees the transport close
  // What it misses: REPLAY broadcasts, each acked (256 in flight).
  let acked = 0, sent = 0;
  const send = () => { pub.send(`42${sent}["bcast","${ROOM}",{"i":${sent}}]`); sent++; };
  pub.on("message", (d) => { if (d.toString().startsWith("43")) { acked++; if (sent < REPLAY) send(); } });
  for (let i = 0; i < 256 && sent < REPLAY; i++) send();
  await until(() => acked >= REPLAY, 120000, () => `replay publish ${acked}/${REPLAY}`);
  await sleep(500); // stored (Tether commits in the background of a `bcast`)
  // It comes back: count the missed events, in order.
  let got = 0, next = 0, ordered = true, recovered = null;
  const cpu0 = cpuSeconds(pid);
  const t0 = performance.now();
  let t1 = t0;
  const back = await connect(port, (s) => {
    if (!s.startsWith('42["msg"')) return;
    const i = JSON.parse(s.slice(2))[1].i;
    if (i !== next) ordered = false;
    next = i + 1;
    got++;
    t1 = performance.now();
  }, { pid: pidOf, offset });
  recovered = back.hello.pid === pidOf; // how the official client tells
  await until(() => got >= REPLAY, 120000, () => `replay ${got}/${REPLAY}`);
  const cpu = cpuSeconds(pid) - cpu0;
  back.ws.terminate();
  pub.terminate();
  if (!ordered || got !== REPLAY) throw new Error(`replay: ${got} of ${REPLAY}, ordered ${ordered}`);
  return { replayed_per_s: REPLAY / ((t1 - t0) / 1000), server_cpu_us_per_event: (cpu * 1e6) / REPLAY, recovered: recovered ? 1 : 0 };
}

const fmt = (v) => (v >= 100 ? Math.round(v).toLocaleString("en-US") : v.toFixed(2));
const results = {};
for (const mode of MODES) {
  const durable = mode === "on";
  results[mode] = {};
  for (const kind of ["tether", ...PEERS]) {
    // socketioxide has no recovery: it runs once, with recovery off.
    if (kind === "socketioxide" && durable && MODES.includes("off")) continue;
    const all = { idle, echo, fanout, ...(durable && kind !== "socketioxide" ? { ingest, replay } : {}) };
    const phases = Object.fromEntries(Object.entries(all).filter(([name]) => !PHASES || PHASES.includes(name)));
    const out = {};
    for (const [name, phase] of Object.entries(phases)) {
      const server = await startServer(kind, durable);
      try {
        process.stderr.write(`recovery ${mode}, ${kind}: ${name}...\n`);
        out[name] = await phase(server.port, server.pid);
      } finally {
        await stopServer(server);
      }
    }
    results[mode][kind] = out;
  }
}

if (BASELINE) {
  // Against another build of Tether: the ratios, nothing else.
  console.log(`speed against ${BASELINE}: echo ${SECONDS}s × ${CONNS} connections, fan-out to ${SUBS}, idle ${IDLE}, replay ${REPLAY}; pinned: ${canPin ? "server core 0, load core 1" : "no"}`);
  for (const mode of MODES) {
    for (const [phase, figures] of Object.entries(results[mode].tether)) {
      for (const [key, a] of Object.entries(figures)) {
        const b = results[mode].baseline[phase][key];
        console.log(`recovery ${mode}`.padEnd(12) + ` ${`${phase}.${key}`.padEnd(44)} tether ${fmt(a).padStart(12)}   baseline ${fmt(b).padStart(12)}   ratio ${(a / b).toFixed(2)}`);
      }
    }
  }
  const jsonOut = opt("json");
  if (jsonOut) writeFileSync(jsonOut, JSON.stringify(results, null, 2));
  process.exit(0);
}

// The store's own figures (same machine, same run).
const storeRun = spawnSync(`${root}/target/release/examples/store_bench`, [], { encoding: "utf8" });
if (storeRun.status !== 0) throw new Error(`store_bench failed: ${storeRun.stderr}`);
const storeRow = (appenders) => new RegExp(`^fsync\\s+\\|\\s+${appenders}\\s+\\|\\s+(\\d+) \\(N=\\s*\\d+\\s*\\)\\s+\\|\\s+(\\d+) \\(n=`, "m").exec(storeRun.stdout);
const [few, many] = [storeRow(64), storeRow(1024)];
const replayRow = /replay: (\d+) entries.*: (\d+) msg\/s/.exec(storeRun.stdout);
if (!few || !many || !replayRow) throw new Error(`store_bench output not understood:\n${storeRun.stdout}`);
results.store = {
  group_commit_64_appenders_per_s: Number(few[1]), group_commit_1024_appenders_per_s: Number(many[1]),
  one_txn_per_message_appends_per_s: Number(few[2]), read_replay_per_s: Number(replayRow[2]),
};

// A peer's figures in `mode` (socketioxide's are the same in both).
const peerOf = (kind, mode) => kind === "socketioxide" ? (results.off ?? results.on)?.socketioxide : results[mode]?.[kind];
const rows = [];
for (const mode of MODES) {
  for (const [phase, figures] of Object.entries(results[mode].tether)) {
    for (const key of Object.keys(figures)) {
      const a = figures[key];
      const row = [`recovery ${mode}`, `${phase}.${key}`, fmt(a)];
      for (const kind of PEERS) {
        const b = peerOf(kind, mode)?.[phase]?.[key];
        row.push(b === undefined ? "-" : fmt(b), b === undefined ? "-" : (a / b).toFixed(2));
      }
      rows.push(row);
    }
  }
}
const onT = results.on?.tether, onN = results.on?.node, offT = results.off?.tether;
const sx = peerOf("socketioxide", "off");
const target = (name, value, goal, higher = true) => [name, fmt(value), `${higher ? "≥" : "≤"} ${fmt(goal)}`,
  (higher ? value >= goal : value <= goal) ? "met" : `not met (${higher ? (value / goal * 100).toFixed(0) + "% of it" : (value / goal).toFixed(2) + "× of it"})`];
const targets = [
  // Against socketioxide (the performance issue): server CPU per operation
  // at most 1/1.3 of its own, recovery on or off; connect rate with the
  // durable store at least its own.
  ...(sx ? [offT, onT].filter(Boolean).flatMap((t) => {
    const mode = t === offT ? "off" : "on";
    return [
      ...(t.echo ? [target(`echo, recovery ${mode}: socketioxide's server CPU per ack ÷ Tether's`, sx.echo.server_cpu_us_per_ack / t.echo.server_cpu_us_per_ack, 1.3)] : []),
      ...(t.fanout ? [target(`fan-out, recovery ${mode}: socketioxide's server CPU per delivery ÷ Tether's`, sx.fanout.server_cpu_us_per_delivery / t.fanout.server_cpu_us_per_delivery, 1.3)] : []),
      ...(t.idle ? [target(`connect, recovery ${mode}: Tether's connections/s ÷ socketioxide's`, t.idle.connections_per_s / sx.idle.connections_per_s, 1)] : []),
    ];
  }) : []),
  ...(onT?.fanout && onN?.fanout ? [target("fan-out, recovery on: deliveries per server CPU second × Node's (recovery on)", onN.fanout.server_cpu_us_per_delivery / onT.fanout.server_cpu_us_per_delivery, 3)] : []),
  ...(onT?.idle ? [target("bytes per idle connection, recovery on", onT.idle.bytes_per_idle_connection, 8192, false)] : []),
  ...(onT?.echo && onN?.echo ? [
    target("echo, recovery on: × Node", onT.echo.acks_per_s / onN.echo.acks_per_s, 3),
    // The load generator may saturate first: the same target in server CPU.
    target("echo, recovery on: Node's server CPU per ack ÷ Tether's", onN.echo.server_cpu_us_per_ack / onT.echo.server_cpu_us_per_ack, 3),
  ] : []),
  ...(onT?.fanout && onN?.fanout ? [target("fan-out, recovery on: × Node", onT.fanout.deliveries_per_s / onN.fanout.deliveries_per_s, 3)] : []),
  ...(onT?.replay ? [target("replay to a reconnecting client (msg/s)", onT.replay.replayed_per_s, 200000)] : []),
  ...(offT?.idle ? [target("bytes per idle connection, recovery off", offT.idle.bytes_per_idle_connection, 8192, false)] : []),
  target("durable appends per second (SQLite fsync, group commit, 1024 writers)", results.store.group_commit_1024_appenders_per_s, 100000),
  target("replay read from the store (msg/s)", results.store.read_replay_per_s, 200000),
];

const header = `speed: idle ${IDLE}, echo ${SECONDS}s × ${CONNS} connections, fan-out to ${SUBS}, replay ${REPLAY}; ` +
  `pinned: ${canPin ? "server core 0, load core 1" : "no"}`;
console.log(header);
for (const r of rows) {
  const peers = PEERS.map((kind, i) => `${kind} ${r[3 + 2 * i].padStart(12)} ratio ${r[4 + 2 * i].padStart(5)}`).join("   ");
  console.log(`${r[0].padEnd(12)} ${r[1].padEnd(44)} tether ${r[2].padStart(12)}   ${peers}`);
}
console.log(`store (fsync): group commit ${fmt(results.store.group_commit_64_appenders_per_s)}/s with 64 writers, ${fmt(results.store.group_commit_1024_appenders_per_s)}/s with 1024, vs one transaction per message ${fmt(results.store.one_txn_per_message_appends_per_s)}/s; read replay ${fmt(results.store.read_replay_per_s)}/s`);
for (const t of targets) console.log(`target: ${t[0]}: ${t[1]} (${t[2]}): ${t[3]}`);

const jsonFile = opt("json");
if (jsonFile) writeFileSync(jsonFile, JSON.stringify(results, null, 2));
const mdFile = opt("markdown");
if (mdFile) {
  const cpu = cpus()[0]?.model ?? "unknown CPU";
  const md = [
    `## Speed (\`node bench/speed.mjs ${argv.filter((a) => !["--markdown", mdFile].includes(a)).join(" ")}\`)`, "",
    `Measured ${new Date().toISOString()} on ${cpus().length} cores (${cpu}), ${Math.round(totalmem() / 2 ** 30)} GiB; ${header}.`,
    `Tether: \`examples/bench_server\` (release); Node: \`bench/node-bench-server.mjs\` on socket.io 4.8.1 and Node ${process.version}; socketioxide: \`bench/socketioxide\` (0.18.9 on axum 0.8, release, fat LTO).`,
    "Recovery on: Tether with its SQLite store (fsync), Node with its in-memory connection state recovery; socketioxide has none (its one run is in both).", "",
    `| recovery | figure | Tether | ${PEERS.map((k) => `${k} | ratio`).join(" | ")} |`, `|---|---|---:|${PEERS.map(() => "---:|---:").join("|")}|`,
    ...rows.map((r) => `| ${r.join(" | ")} |`), "",
    `SQLite store (\`examples/store_bench\`, fsync): ${fmt(results.store.group_commit_64_appenders_per_s)} appends/s with group commit and 64 concurrent writers, ` +
      `${fmt(results.store.group_commit_1024_appenders_per_s)}/s with 1024, against ` +
      `${fmt(results.store.one_txn_per_message_appends_per_s)}/s with one transaction per message; replay read ${fmt(results.store.read_replay_per_s)} msg/s.`, "",
    "| target | measured | goal | |", "|---|---:|---:|---|", ...targets.map((t) => `| ${t.join(" | ")} |`), "",
  ].join("\n");
  writeFileSync(mdFile, md);
}
console.log(JSON.stringify(results));
process.exit(0);
