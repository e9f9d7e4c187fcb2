// seam-under-load: A joins "s" and is dropped; B (also in "s", to watch the
// burst) starts "publish-burst" of N (2000) msgs to "s" and A reconnects WHILE
// the burst runs (as soon as B has seen the first msg): A catches up from the
// store and switches to live at the seam. A's sequence must be exactly
// 0..N-1, in order, no gap, no duplicate. Checked too: the reconnection did
// land inside the burst (B had seen some but not all msgs when A was
// connected again), else the seam was not exercised.
import {
  parseArgs, Run, once, until, client, must, mustConnect, Inbox, waitLength, checkExact, publish,
} from "./common.mjs";

const opts = parseArgs("seam-under-load", { count: 2000, timeout: 60000 });
const run = new Run(opts);
const N = opts.count;
const TAG = "burst";

const b = client(run, "/");
const watch = new Inbox(b);
await mustConnect(run, b, "B connects");
await run.ack(b, "B join s", "join", "s");
const a = client(run, "/", { reconnection: false });
const inbox = new Inbox(a);
await mustConnect(run, a, "A connects");
await run.ack(a, "A join s", "join", "s");
// One msg before, so that A resumes from a real offset.
const [first] = await publish(run, b, "s", "first", 1);
run.check(await waitLength(inbox, 1), "A gets the first msg", 1, inbox.length);
const id = a.id;

const gone = once(a, "disconnect", 10000);
a.emit("drop-transport");
await must(run, gone, "A dropped");
run.equal(await run.ack(b, "publish-burst", "publish-burst", "s", N, TAG), "started", "publish-burst ack");
run.check(await until(() => watch.length >= 2, 10000), "the burst has begun (B sees it)", ">= 1 burst msg", watch.length - 1);
const seenAtReconnect = watch.length - 1;
a.connect();
await mustConnect(run, a, "A reconnects during the burst");
const seenAtConnected = watch.length - 1;
run.equal(a.recovered, true, "socket.recovered");
run.equal(a.id, id, "same socket id");
run.check(seenAtConnected < N, "A was connected again before the burst ended (the seam is exercised)", `< ${N}`, seenAtConnected);

run.check(await waitLength(watch, N + 1, 10000), `B sees the whole burst`, N + 1, watch.length);
run.check(await waitLength(inbox, N + 1, 10000), `A gets the whole burst`, N + 1, inbox.length);
const expected = Array.from({ length: N }, (_, i) => ({ key: `${TAG}:${i}` }));
const last = await publish(run, b, "s", "probe", 1);
run.check(await until(() => inbox.items.some((m) => m.payload?.tag === "probe"), 10000), "A gets the probe");
// Positions: the burst's own acks are not seen by the client; B's view (same
// room, never disconnected) gives each msg's position.
const seqOf = new Map(watch.items.map((m) => [`${m.payload?.tag}:${m.payload?.i}`, m.seq]));
checkExact(run, "B's msgs", watch.items, [first, ...expected.map((e) => ({ ...e, seq: seqOf.get(e.key) })), ...last]);
checkExact(run, "A's msgs", inbox.items, [first, ...expected.map((e) => ({ ...e, seq: seqOf.get(e.key) })), ...last]);

Object.assign(run.counts, { burst: N, seenByBWhenAReconnected: seenAtReconnect, seenByBWhenAConnected: seenAtConnected, received: inbox.length - 2 });
run.finish();
