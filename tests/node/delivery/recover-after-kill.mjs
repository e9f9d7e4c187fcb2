// recover-after-kill (server on a SQLite file, run by the harness): A joins
// "r", sets data and gets 10 msgs; then `READY restart`: the harness kill -9's
// the server and starts a new one on the same file (new port, read from stdin).
// B publishes N (20) msgs on the new server; A, resuming its session on a new
// Manager (see resume() in common.mjs), must be recovered (same id, rooms,
// data) and get exactly those N, then live ones.
import {
  parseArgs, Run, once, until, client, resume, sessionOf, must, mustConnect, welcomes, Inbox,
  waitLength, publish, probe, checkExact, sameSet, restartServer, offsetEpoch,
} from "./common.mjs";

const opts = parseArgs("recover-after-kill", { count: 20 });
const run = new Run(opts);

const a = client(run, "/", { reconnection: false });
const b = client(run, "/", { reconnection: false });
const inboxA = new Inbox(a);
await mustConnect(run, a, "A connects");
await mustConnect(run, b, "B connects");
const rooms = await run.ack(a, "A join r", "join", "r");
const data = { user: "alice", since: "before the crash" };
run.equal(await run.ack(a, "A set-data", "set-data", data), "ok", "set-data ack");
const before = await publish(run, b, "r", "before", 10);
run.check(await waitLength(inboxA, 10), "A gets the 10 msgs before the crash", 10, inboxA.length);
checkExact(run, "A's msgs before the crash", inboxA.items, before);
const session = sessionOf(a);
run.check(typeof session.pid === "string" && session.pid.length > 0, "the CONNECT reply carried a pid", "a pid", session.pid);
run.equal(session.offset, inboxA.items.at(-1)?.offset, "A holds the offset of the last msg");
const epoch = offsetEpoch(session.offset);

// Both connections die with the server.
const goneA = once(a, "disconnect", 15000);
const goneB = once(b, "disconnect", 15000);
const url = await restartServer(run);
const [reasonA] = await must(run, goneA, "A notices the dead server");
await must(run, goneB, "B notices the dead server");

const b2 = client(run, "/", { reconnection: false }, url);
await mustConnect(run, b2, "B connects to the restarted server");
const missed = await publish(run, b2, "r", "after", opts.count, { from: 10 });
run.check(missed.every((m) => m.seq > before.at(-1).seq), "positions continue after the restart", `> ${before.at(-1).seq}`, missed[0]?.seq);

const a2 = resume(run, session, "/", { reconnection: false }, url);
const hello = welcomes(a2);
const inboxA2 = new Inbox(a2);
a2.connect();
await mustConnect(run, a2, "A resumes on the restarted server");
run.equal(a2.recovered, true, "socket.recovered on the restarted server");
run.equal(a2.id, session.id, "same socket id after the restart");
run.check(await waitLength(inboxA2, opts.count), `A gets the ${opts.count} msgs it missed`, opts.count, inboxA2.length);
const live = await publish(run, b2, "r", "live", 5, { from: 10 + opts.count });
run.check(await waitLength(inboxA2, opts.count + 5), "A gets live msgs after recovery", opts.count + 5, inboxA2.length);
const last = await probe(run, b2, "r", inboxA2, "probe");
checkExact(run, "A's msgs after the restart", inboxA2.items, [...missed, ...live, last]);
run.equal(offsetEpoch(inboxA2.items[0]?.offset), epoch, "same store epoch after the restart");
checkExact(run, "A's old connection got nothing more", inboxA.items, before);

run.check(await until(() => hello.length >= 1, 5000), "a welcome on the restarted server", 1, hello.length);
run.equal(hello[0]?.recovered, true, "welcome.recovered on the restarted server");
run.check(sameSet(hello[0]?.rooms, rooms), "rooms restored after the crash", rooms, hello[0]?.rooms);
run.equal(await run.ack(a2, "A get-data", "get-data"), data, "data restored after the crash");

Object.assign(run.counts, {
  beforeCrash: before.length, missedDuringRestart: missed.length, live: live.length + 1,
  receivedBefore: inboxA.length, receivedAfter: inboxA2.length, oldDisconnectReason: reasonA,
});
run.finish();
