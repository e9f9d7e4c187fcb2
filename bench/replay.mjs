// Replay speed: how fast a reconnecting client receives what it missed.
// Stores N chat messages through `tether serve` (acked, 200 in flight), then
// connects a new client with auth.serverOffset 0 and times how long it takes
// to receive all N (the server reads them from its store and streams them).
//   node bench/replay.mjs --url http://127.0.0.1:3000 [--count 50000] [--transport websocket]
// Bounded: every wait has a deadline; exits non-zero if a message is missing.
import { createRequire } from "node:module";
const require = createRequire(new URL("../tests/node/package.json", import.meta.url));
const { io } = require("socket.io-client");

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, v, i, a) => (i % 2 === 0 ? [...acc, [v.replace(/^--/, ""), a[i + 1]]] : acc), []));
const url = args.url ?? "http://127.0.0.1:3000";
const count = Number(args.count ?? 50000);
const transports = [args.transport ?? "websocket"];
const deadline = (ms, what) => new Promise((_, reject) => setTimeout(() => reject(new Error(`timeout: ${what}`)), ms).unref());

const writer = io(url, { transports, auth: {} });
await Promise.race([new Promise((r) => writer.on("connect", r)), deadline(10000, "writer connect")]);
const run = `${Date.now()}`;
let next = 0;
const t0 = performance.now();
async function lane() {
  while (next < count) {
    const i = next++;
    await writer.timeout(30000).emitWithAck("chat message", `m${i}`, `${run}-${i}`);
  }
}
await Promise.race([Promise.all(Array.from({ length: 200 }, lane)), deadline(600000, "stores")]);
const storeSecs = (performance.now() - t0) / 1000;

const reader = io(url, { transports, auth: { serverOffset: 0 }, forceNew: true });
let received = 0;
let last = 0;
let ordered = true;
const t1 = performance.now();
const done = new Promise((resolve) => {
  reader.on("chat message", (content, offset) => {
    if (offset <= last) ordered = false;
    last = offset;
    if (typeof content === "string" && content.startsWith("m")) received++;
    if (received >= count) resolve();
  });
});
await Promise.race([done, deadline(600000, "replay")]).catch((e) => console.error(e.message));
const replaySecs = (performance.now() - t1) / 1000;
console.log(JSON.stringify({
  count, transport: transports[0], stored_per_second: Math.round(count / storeSecs),
  replayed: received, ordered, replay_seconds: replaySecs, replayed_per_second: Math.round(received / replaySecs),
}));
writer.close();
reader.close();
process.exit(received >= count && ordered ? 0 : 1);
