// zero-event-recovery: A joins "z" but has received no stored event yet (only
// the volatile welcome), so its reconnection carries a pid and no offset. A is
// dropped; while it is away (it reconnects by hand, after the publishes) N (10)
// msgs go to "z" (and 3 to another room). It must be recovered and get exactly
// the N — none of the 3 published to "z" before it connected.
import {
  parseArgs, Run, once, client, must, mustConnect, welcomes, Inbox, waitLength, publish, probe,
  checkExact, sameSet, until,
} from "./common.mjs";

const opts = parseArgs("zero-event-recovery", { count: 10 });
const run = new Run(opts);

const b = client(run, "/");
await mustConnect(run, b, "B connects");
const old = await publish(run, b, "z", "before-session", 3);

const a = client(run, "/", { reconnection: false });
const hello = welcomes(a);
const inbox = new Inbox(a);
await mustConnect(run, a, "A connects");
const rooms = await run.ack(a, "A join z", "join", "z");
run.check(await until(() => hello.length >= 1, 5000), "A gets a welcome", 1, hello.length);
run.equal(inbox.length, 0, "A got no stored event");
run.equal(a._lastOffset, undefined, "A holds no offset");
const id = a.id;

const gone = once(a, "disconnect", 10000);
a.emit("drop-transport");
const [reason] = await must(run, gone, "A dropped");
run.equal(reason, "transport close", "disconnect reason");
const missed = await publish(run, b, "z", "gap", opts.count);
await publish(run, b, "other", "elsewhere", 3);

a.connect();
await mustConnect(run, a, "A reconnects");
run.equal(a.recovered, true, "socket.recovered with no offset");
run.equal(a.id, id, "same socket id");
run.check(await waitLength(inbox, opts.count), `A gets the ${opts.count} missed msgs`, opts.count, inbox.length);
const last = await probe(run, b, "z", inbox, "probe");
checkExact(run, "A's msgs", inbox.items, [...missed, last]);
run.check(await until(() => hello.length >= 2, 5000), "a welcome after the reconnection", 2, hello.length);
run.check(sameSet(hello[1]?.rooms, rooms), "rooms restored", rooms, hello[1]?.rooms);

Object.assign(run.counts, { beforeSession: old.length, missed: missed.length, received: inbox.length });
run.finish();
