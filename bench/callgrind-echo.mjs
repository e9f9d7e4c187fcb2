// What one echo round trip costs the server, in counts that the machine's
// noise does not move: user-space instructions (valgrind's callgrind) and
// system calls (strace -c). The server runs under each tool twice, once for
// --few and once for --many acked echoes from one raw WebSocket client (one
// in flight); the difference of the two totals over the difference of the
// counts leaves out start-up, connection and shutdown.
//
//   node bench/callgrind-echo.mjs [--bin target/release/examples/bench_server]
//                                 [--args --durable] [--few 300] [--many 1300]
//
// --bin may be any server of the benchmark contract (shared notes 1.2), such
// as bench/socketioxide/target/release/socketioxide-bench-server. Prints one
// JSON line: {"bin", "args", "few", "many", "instructions_per_echo",
// "syscalls_per_echo"}.
import { createRequire } from "node:module";
import { spawn, spawnSync } from "node:child_process";
import { readFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
const require = createRequire(new URL("../tests/node/package.json", import.meta.url));
const WebSocket = require("ws");
const root = fileURLToPath(new URL("..", import.meta.url));

const argv = process.argv.slice(2);
const opt = (name, dflt) => { const i = argv.indexOf(`--${name}`); return i >= 0 ? argv[i + 1] : dflt; };
const BIN = opt("bin", `${root}/target/release/examples/bench_server`);
const ARGS = opt("args", "").split(" ").filter(Boolean);
const FEW = Number(opt("few", 300));
const MANY = Number(opt("many", 1300));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function run(tool, count) {
  const dir = mkdtempSync(join(tmpdir(), "tether-callgrind-"));
  const out = join(dir, `${tool}.out`);
  const command = tool === "callgrind"
    ? ["valgrind", ["--tool=callgrind", `--callgrind-out-file=${out}`, BIN, ...ARGS, "0"]]
    : ["strace", ["-f", "-qq", "-c", "-o", out, BIN, ...ARGS, "0"]];
  const child = spawn(command[0], command[1], { stdio: ["ignore", "pipe", "pipe"] });
  let log = "";
  const port = await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no port within 120 s: ${log}`)), 120000);
    const on = (d) => { log += d; const m = /127\.0\.0\.1:(\d+)|listening (\d+)/.exec(log); if (m) { clearTimeout(t); resolve(Number(m[1] ?? m[2])); } };
    child.stdout.on("data", on);
    child.stderr.on("data", on);
    child.on("exit", (code) => reject(new Error(`exited with ${code}: ${log}`)));
  });
  await new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/socket.io/?EIO=4&transport=websocket`);
    const t = setTimeout(() => reject(new Error("echoes did not finish within 300 s")), 300000);
    let done = 0;
    ws.on("error", reject);
    ws.on("message", (data) => {
      const s = data.toString();
      if (s === "2") return ws.send("3");
      if (s.startsWith("0")) return ws.send("40");
      if (s.startsWith("40")) return ws.send(`420["echo","payload-0"]`);
      if (s.startsWith("43")) {
        done++;
        if (done === count) { clearTimeout(t); ws.close(); return resolve(); }
        ws.send(`42${done}["echo","payload-${done}"]`);
      }
    });
  });
  await sleep(500);
  const exited = new Promise((r) => child.on("exit", r));
  if (tool === "strace") {
    // The server is strace's child: it gets the signal, strace writes its
    // table once the server is gone.
    const found = spawnSync("pgrep", ["-P", String(child.pid)], { encoding: "utf8" }).stdout.trim().split("\n")[0];
    if (!found) throw new Error("the server under strace is gone");
    process.kill(Number(found), "SIGINT");
  } else {
    child.kill("SIGINT");
  }
  const timer = setTimeout(() => child.kill("SIGKILL"), 60000);
  await exited;
  clearTimeout(timer);
  const text = readFileSync(out, "utf8");
  rmSync(dir, { recursive: true, force: true });
  // callgrind: "summary: N"; strace -c: the last line, "100.00 ... CALLS [ERRORS] total".
  const m = tool === "callgrind" ? /^(?:summary|totals): (\d+)/m.exec(text) : /^\s*100\.00\s+\S+\s+\S+\s+(\d+)\s+(?:\d+\s+)?total\s*$/m.exec(text);
  if (!m) throw new Error(`no total in the ${tool} output:\n${text}`);
  return Number(m[1]);
}

const perEcho = async (tool) => {
  const few = await run(tool, FEW);
  const many = await run(tool, MANY);
  return Math.round(((many - few) / (MANY - FEW)) * 10) / 10;
};
const instructions = await perEcho("callgrind");
const syscalls = await perEcho("strace");
console.log(JSON.stringify({ bin: BIN, args: ARGS, few: FEW, many: MANY, instructions_per_echo: Math.round(instructions), syscalls_per_echo: syscalls }));
