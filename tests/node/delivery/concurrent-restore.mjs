// concurrent-restore: one session presented by several connections at once.
// Phase 1: A (joined "c", 5 msgs, offset copied) is still connected when A2, a
// new Manager with A's pid and that offset, connects; 5 more msgs were
// published in between (A got them live). The newer takes the session over: A
// gets "io server disconnect", A2 is recovered with A's id and gets msgs 6..10
// (missed from its offset) then live ones, exactly once.
// Phase 2: A3 and A4 present A2's session at the same moment: at most one of
// A2/A3/A4 stays connected, the others end with "io server disconnect" or a
// connect_error; the survivor is recovered and gets each later msg once, the
// others nothing after they were let go.
import {
  parseArgs, Run, once, until, client, resume, sessionOf, must, mustConnect, Inbox, waitLength,
  publish, probe, checkExact,
} from "./common.mjs";

const opts = parseArgs("concurrent-restore");
const run = new Run(opts);
const noRetry = { reconnection: false };

// Tracks a socket's fate: connects, disconnect reasons, connect errors, and
// how many msgs it had when it was let go.
function watch(socket, label) {
  const st = { label, socket, inbox: new Inbox(socket), connects: 0, reasons: [], errors: [], atDisconnect: null };
  socket.on("connect", () => st.connects++);
  socket.on("disconnect", (r) => { st.reasons.push(r); st.atDisconnect ??= st.inbox.length; });
  socket.on("connect_error", (e) => st.errors.push(e.message));
  return st;
}

const b = client(run, "/");
await mustConnect(run, b, "B connects");
const a = client(run, "/", noRetry);
const A = watch(a, "A");
await mustConnect(run, a, "A connects");
await run.ack(a, "A join c", "join", "c");
const first = await publish(run, b, "c", "first", 5);
run.check(await waitLength(A.inbox, 5), "A gets the first 5 msgs", 5, A.inbox.length);
const session = sessionOf(a);
const second = await publish(run, b, "c", "second", 5);
run.check(await waitLength(A.inbox, 10), "A gets the second 5 msgs live", 10, A.inbox.length);

// Phase 1: A2 takes over while A is connected.
const aGone = once(a, "disconnect", 10000);
const a2 = resume(run, session, "/", noRetry);
const A2 = watch(a2, "A2");
a2.connect();
await mustConnect(run, a2, "A2 connects with A's session");
const [reason] = await must(run, aGone, "A is let go when A2 takes the session over");
run.equal(reason, "io server disconnect", "A's disconnect reason");
run.equal(a2.recovered, true, "A2 recovered");
run.equal(a2.id, session.id, "A2 has A's socket id");
const live1 = await publish(run, b, "c", "live1", 10);
run.check(await waitLength(A2.inbox, 15), "A2 gets the 5 it missed + 10 live", 15, A2.inbox.length);
const p1 = await probe(run, b, "c", A2.inbox, "probe1");
checkExact(run, "A2's msgs", A2.inbox.items, [...second, ...live1, p1]);
checkExact(run, "A's msgs (nothing after it was let go)", A.inbox.items, [...first, ...second]);

// Phase 2: two more connections present A2's session at the same time.
const s2 = sessionOf(a2);
const a3 = resume(run, s2, "/", noRetry);
const a4 = resume(run, s2, "/", noRetry);
const A3 = watch(a3, "A3");
const A4 = watch(a4, "A4");
a3.connect();
a4.connect();
// Answered: connected, refused, or let go (possibly before its CONNECT reply
// was processed: the client then sees only "io server disconnect").
const decided = (st) => st.connects > 0 || st.errors.length > 0 || st.reasons.length > 0;
const live = () => [A2, A3, A4].filter((st) => st.socket.connected);
const settled = await until(() => decided(A3) && decided(A4) && live().length <= 1, 10000);
run.check(settled, "phase 2 settles: A3 and A4 answered, at most one connection left", "<= 1 connected",
  [A2, A3, A4].map((st) => ({ [st.label]: { connected: st.socket.connected, connects: st.connects, reasons: st.reasons, errors: st.errors } })));
const survivors = live();
run.equal(survivors.length, 1, "exactly one survivor");
const survivor = survivors[0];
const losers = [A2, A3, A4].filter((st) => st !== survivor);
if (survivor) {
  run.equal(survivor.socket.recovered, true, `the survivor (${survivor.label}) is recovered`);
  run.equal(survivor.socket.id, session.id, `the survivor (${survivor.label}) keeps the socket id`);
}
for (const st of losers) {
  run.check(st.reasons.every((r) => r === "io server disconnect"), `${st.label} was let go with "io server disconnect"`, "io server disconnect", st.reasons);
}
const mark = new Map(losers.map((st) => [st, st.inbox.length]));
const survivorFrom = survivor ? survivor.inbox.length : 0;
const live2 = await publish(run, b, "c", "live2", 10);
if (survivor) {
  run.check(await waitLength(survivor.inbox, survivorFrom + 10), "the survivor gets the 10 later msgs", survivorFrom + 10, survivor.inbox.length);
  const p2 = await probe(run, b, "c", survivor.inbox, "probe2");
  const got = survivor.inbox.items.slice(survivorFrom);
  checkExact(run, `${survivor.label}'s msgs after phase 2`, got, [...live2, p2]);
  // A3/A4 resumed at A2's last offset: whatever they got before settling must
  // not repeat what A2 already had.
  if (survivor !== A2) {
    const before = survivor.inbox.items.slice(0, survivorFrom);
    checkExact(run, `${survivor.label}'s msgs while taking over`, before, []);
  }
}
for (const st of losers) {
  run.equal(st.inbox.length, mark.get(st), `${st.label} gets nothing after it was let go`);
}

Object.assign(run.counts, {
  survivor: survivor?.label ?? null,
  fates: Object.fromEntries([A, A2, A3, A4].map((st) => [st.label, { connects: st.connects, reasons: st.reasons, errors: st.errors, msgs: st.inbox.length }])),
  letGoBeforeConnect: [A3, A4].filter((st) => st.connects === 0 && st.reasons.length > 0).map((st) => st.label),
});
run.finish();
