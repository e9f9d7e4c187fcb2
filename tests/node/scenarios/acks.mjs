// acks: N "echo" emits with ack (emitWithAck, up to 100 in flight), every ack
// must carry the same args; then 100 "server-ack" round trips where the server
// asks us ("ask" n -> n*2) and acks our reply back.
import { parseArgs, Run, once } from "../lib.mjs";

const opts = parseArgs("acks", { count: 10000, inflight: 100, rounds: 100 });
const run = new Run(opts);
const N = opts.count;

const socket = run.connect("/");
let asked = 0;
socket.on("ask", (n, ack) => { asked++; ack(n * 2); });
await once(socket, "welcome");

// Client -> server acks, bounded concurrency.
const acked = new Array(N).fill(0);
let next = 0, mismatches = 0; // stop after a few mismatches to keep stderr short
async function worker() {
  while (next < N) {
    const i = next++;
    const payload = { i, s: "x" + i };
    run.count("sent");
    const reply = await run.ack(socket, `ack #${i}`, "echo", payload);
    acked[i]++;
    run.count("acked");
    if (!run.equal(reply, payload, `ack #${i} payload`) && ++mismatches > 5) run.finish("too many mismatches");
  }
}
await Promise.all(Array.from({ length: Math.min(opts.inflight, N) }, worker));
run.equal(acked.filter((c) => c === 1).length, N, "every echo acked exactly once");

// Multi-arg ack: all args must come back (emitWithAck only yields the first).
const args = await run.ackAll(socket, "multi-arg ack", "echo", 1, "two", [3], { four: 4 }, null);
run.equal(args, [1, "two", [3], { four: 4 }, null], "multi-arg ack");

// Server -> client acks.
for (let n = 0; n < opts.rounds; n++) {
  const reply = await run.ack(socket, `server-ack #${n}`, "server-ack", n);
  run.count("serverAcks");
  if (!run.equal(reply, n * 2, `server-ack #${n}`) && ++mismatches > 5) run.finish("too many mismatches");
}
run.equal(asked, opts.rounds, "number of ask events");
run.count("asked", asked);
await run.assertTransport(socket);
run.finish();
