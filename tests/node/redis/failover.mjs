// redis failover (three Tether nodes sharing one Redis, run by
// tests/redis_nodes.rs): X, on node A, joins "k" and gets M1 (N msgs)
// published through node C. `READY kill-a`: the harness stops node A abruptly
// (like kill -9: no goodbye to anyone, X's stored session still says
// "connected"). N more (M2) are published through C while X is away. X resumes
// its session on node B (a new Manager with its pid and last offset, as the
// official client does on reconnection) and must be recovered, with the same
// id and rooms, and get exactly M2, then live msgs.
//
// node redis/failover.mjs --url NODE_A --b NODE_B --c NODE_C --transport websocket [--count N]
import {
  parseArgs, Run, once, client, resume, sessionOf, must, mustConnect, Inbox, waitLength,
  publish, probe, checkExact, askHarness, offsetEpoch,
} from "../delivery/common.mjs";

const opts = parseArgs("redis-failover", { b: "", c: "", count: 50, timeout: 120000, ackTimeout: 10000 });
const run = new Run(opts);

const x = client(run, "/", {}, opts.url);
const p = client(run, "/", {}, opts.c);
const inboxX = new Inbox(x);
await mustConnect(run, x, "X connects to node A");
await mustConnect(run, p, "the publisher connects to node C");
await run.ack(x, "X joins k", "join", "k");
const m1 = await publish(run, p, "k", "m1", opts.count);
run.check(await waitLength(inboxX, opts.count), `X gets M1 (${opts.count}) on node A`, opts.count, inboxX.length);
checkExact(run, "X on node A", inboxX.items, m1);
const session = sessionOf(x);
run.check(typeof session.pid === "string" && session.pid.length > 0, "the CONNECT reply carried a pid", "a pid", session.pid);
run.equal(session.offset, inboxX.items.at(-1)?.offset, "X holds the offset of the last msg");

const gone = once(x, "disconnect", 15000);
const answer = await askHarness(run, "kill-a");
run.equal(answer, "OK", "the harness stopped node A");
const [reason] = await must(run, gone, "X notices node A is gone");

const m2 = await publish(run, p, "k", "m2", opts.count, { from: opts.count });
const y = resume(run, session, "/", {}, opts.b);
const inboxY = new Inbox(y);
y.connect();
await mustConnect(run, y, "X resumes on node B");
run.equal(y.recovered, true, "socket.recovered on node B");
run.equal(y.id, session.id, "same socket id on node B");
run.check(await waitLength(inboxY, opts.count), `X gets the ${opts.count} it missed, on node B`, opts.count, inboxY.length);
const live = await publish(run, p, "k", "live", 5, { from: 2 * opts.count });
const last = await probe(run, p, "k", inboxY, "probe");
checkExact(run, "X on node B", inboxY.items, [...m2, ...live, last]);
run.equal(offsetEpoch(inboxY.items[0]?.offset), offsetEpoch(session.offset), "one epoch for every node");
checkExact(run, "X's connection to node A got nothing more", inboxX.items, m1);

Object.assign(run.counts, { before: m1.length, missed: m2.length, live: live.length + 1, received: inboxY.length, reason });
run.finish();
