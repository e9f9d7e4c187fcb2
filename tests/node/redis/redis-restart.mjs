// redis restart (three Tether nodes on a private Redis with AOF and fsync at
// every write, run by tests/redis_nodes.rs): "chat message"s m0..m(N-1), each
// with its clientOffset, are sent through node A; a client on node C listens.
// After N/2 acked, `READY redis-stop`: the harness shuts Redis down; K emits
// meanwhile must each get an error. `READY redis-start`: Redis is back on the
// same data; every message not yet acked is sent again (same clientOffset)
// until acked. Every acked message is stored exactly once (count = N, each
// clientOffset once) and the client on C gets each exactly once, in order.
//
// node redis/redis-restart.mjs --url NODE_A --b NODE_B --c NODE_C --transport websocket [--count N]
import {
  parseArgs, Run, client, mustConnect, Inbox, waitLength, until, sleep, checkExact, askHarness,
} from "../delivery/common.mjs";

const opts = parseArgs("redis-restart", { b: "", c: "", count: 100, outage: 10, timeout: 180000, ackTimeout: 15000 });
const run = new Run(opts);
const half = Math.floor(opts.count / 2);

const pub = client(run, "/", {}, opts.url);
const sub = client(run, "/", {}, opts.c);
const inbox = new Inbox(sub, "chat message");
await mustConnect(run, pub, "connect to node A");
await mustConnect(run, sub, "connect to node C");

async function sendOnce(i) {
  try {
    return await pub.timeout(opts.ackTimeout).emitWithAck("chat message", `m${i}`, `co-${i}`);
  } catch (e) {
    return { error: `no ack: ${e.message}` };
  }
}

let retries = 0;
async function sendUntilAcked(i) {
  for (let attempt = 0; attempt < 200; attempt++) {
    const ack = await sendOnce(i);
    if (Number.isInteger(ack?.seq)) return ack;
    retries++;
    await sleep(100);
  }
  run.finish(`m${i} was never acked`);
  return new Promise(() => {});
}

const acks = new Map();
for (let i = 0; i < half; i++) {
  const ack = await sendUntilAcked(i);
  run.equal(ack.duplicate, false, `m${i} stored at its first try`);
  acks.set(i, ack);
}
run.check(await waitLength(inbox, half), `C gets the first ${half}`, half, inbox.length);

run.equal(await askHarness(run, "redis-stop"), "OK", "the harness stopped Redis");
let outageErrors = 0;
for (let i = half; i < half + opts.outage; i++) {
  const ack = await sendOnce(i);
  if (ack?.error) outageErrors++;
}
run.equal(outageErrors, opts.outage, "every emit while Redis is down gets an error");
run.equal(await askHarness(run, "redis-start"), "OK", "the harness started Redis again");

for (let i = half; i < opts.count; i++) acks.set(i, await sendUntilAcked(i));
const count = await sendCount();
run.equal(count, opts.count, "every acked message stored once");

const expected = [...acks].map(([i, a]) => ({ key: `m${i}`, seq: a.seq })).sort((x, y) => x.seq - y.seq);
run.equal(new Set(expected.map((e) => e.seq)).size, opts.count, "each message has a position of its own");
const last = await sendUntilAcked("-probe");
run.check(await until(() => inbox.items.some((m) => m.payload === "m-probe"), 20000), "the probe reaches C");
checkExact(run, "client on node C", inbox.items, [...expected, { key: "m-probe", seq: last.seq }]);

async function sendCount() {
  for (let attempt = 0; attempt < 100; attempt++) {
    try {
      const n = await pub.timeout(opts.ackTimeout).emitWithAck("count");
      if (Number.isInteger(n)) return n;
    } catch { /* retry */ }
    await sleep(100);
  }
  return null;
}

Object.assign(run.counts, { acked: acks.size, outageErrors, retries, receivedOnC: inbox.length });
run.finish();
