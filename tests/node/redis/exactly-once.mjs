// redis exactly-once (three Tether nodes sharing one Redis, run by
// tests/redis_nodes.rs): a "chat message" with a clientOffset sent to node A,
// then the same to node B, is stored once: B answers "duplicate" with A's
// position, and the namespace holds 1 message. The same clientOffset sent to A
// and B at once: one is stored, the other is its duplicate. A client on node C
// gets each stored message once.
//
// node redis/exactly-once.mjs --url NODE_A --b NODE_B --c NODE_C --transport websocket
import {
  parseArgs, Run, client, mustConnect, Inbox, until, checkExact,
} from "../delivery/common.mjs";

const opts = parseArgs("redis-exactly-once", { b: "", c: "", timeout: 60000, ackTimeout: 10000 });
const run = new Run(opts);

const a = client(run, "/", {}, opts.url);
const b = client(run, "/", {}, opts.b);
const c = client(run, "/", {}, opts.c);
const inboxC = new Inbox(c, "chat message");
await mustConnect(run, a, "connect to node A");
await mustConnect(run, b, "connect to node B");
await mustConnect(run, c, "connect to node C");

const first = await run.ack(a, "chat message on A", "chat message", "hello", "co-1");
run.check(Number.isInteger(first?.seq) && first.duplicate === false, "A stores it", "{seq, duplicate: false}", first);
const second = await run.ack(b, "the same on B", "chat message", "hello", "co-1");
run.equal(second, { seq: first.seq, duplicate: true }, "B finds it stored by A");
run.equal(await run.ack(a, "count on A", "count"), 1, "stored once (count on A)");
run.equal(await run.ack(b, "count on B", "count"), 1, "stored once (count on B)");

const [x, y] = await Promise.all([
  run.ack(a, "race on A", "chat message", "race", "co-2"),
  run.ack(b, "race on B", "chat message", "race", "co-2"),
]);
run.check(Number.isInteger(x?.seq) && x.seq === y?.seq, "one position for both tries", x?.seq, y?.seq);
run.equal([x?.duplicate, y?.duplicate].filter((d) => d === false).length, 1, "one try stored, the other a duplicate");
run.equal(await run.ack(c, "count on C", "count"), 2, "two messages stored");

const last = await run.ack(a, "probe on A", "chat message", "probe", "co-3");
run.check(await until(() => inboxC.items.some((m) => m.payload === "probe"), 10000), "the probe reaches node C");
checkExact(run, "client on node C", inboxC.items, [
  { key: "hello", seq: first.seq }, { key: "race", seq: x?.seq }, { key: "probe", seq: last?.seq },
]);

Object.assign(run.counts, { stored: 3, receivedOnC: inboxC.length });
run.finish();
