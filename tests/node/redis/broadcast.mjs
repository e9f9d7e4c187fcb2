// redis broadcast (three Tether nodes sharing one Redis, run by
// tests/redis_nodes.rs): a client on each node joins "r"; N (500) msgs are
// published to "r" through node A; each client, on A, B and C, gets exactly
// those N, once each, in position order, each with the offset its publish was
// acked with.
//
// node redis/broadcast.mjs --url NODE_A --b NODE_B --c NODE_C --transport websocket [--count N]
import {
  parseArgs, Run, client, mustConnect, Inbox, waitLength, publish, until, keyOf, checkExact,
} from "../delivery/common.mjs";

const opts = parseArgs("redis-broadcast", { b: "", c: "", count: 500, timeout: 120000, ackTimeout: 10000 });
const run = new Run(opts);
const nodes = { A: opts.url, B: opts.b, C: opts.c };

const subs = {};
for (const [name, url] of Object.entries(nodes)) {
  const socket = client(run, "/", {}, url);
  await mustConnect(run, socket, `connect to node ${name}`);
  await run.ack(socket, `join r on node ${name}`, "join", "r");
  subs[name] = { socket, inbox: new Inbox(socket) };
}

const started = performance.now();
const sent = await publish(run, subs.A.socket, "r", "b", opts.count);
for (const [name, { inbox }] of Object.entries(subs)) {
  run.check(await waitLength(inbox, opts.count, 10000), `node ${name}: ${opts.count} msgs arrive`, opts.count, inbox.length);
}
const ms = performance.now() - started;
// A last one: once a client has it, whatever was on its way to it has arrived.
const [last] = await publish(run, subs.A.socket, "r", "probe", 1);
for (const [name, { inbox }] of Object.entries(subs)) {
  const ok = await until(() => inbox.items.some((m) => keyOf(m.payload) === last.key), 10000);
  run.check(ok, `node ${name}: the probe arrives`);
  checkExact(run, `client on node ${name}`, inbox.items, [...sent, last]);
}

Object.assign(run.counts, {
  published: sent.length,
  delivered: Object.values(subs).reduce((n, s) => n + s.inbox.length, 0),
  ms,
});
run.finish();
