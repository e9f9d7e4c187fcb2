// inbox: messages for a user are kept until a device of that user acks them.
// 5 dms pushed to alice while she is offline; device A1 gets them in order and
// acks; 3 more arrive live (A1 leaves #7 unacked but acks #8, which covers
// it); A1 leaves; 2 more are pushed; device A2 gets them and does not ack,
// device A3 then gets them too and acks; a live one reaches both. Bob,
// connected throughout, gets none. Then A3's transport drops while #12 is
// pushed: A3 comes back recovered and gets #12, then #13 live.
import { parseArgs, Run, client, mustConnect, until, sleep } from "./common.mjs";

const opts = parseArgs("inbox");
const run = new Run(opts);

function device(user, { skip = () => false, reconnect = false } = {}) {
  const again = reconnect ? { reconnection: true, reconnectionDelay: 50, reconnectionDelayMax: 50, randomizationFactor: 0 } : {};
  const s = client(run, "/inbox", { auth: { user }, ...again });
  const got = [];
  s.on("dm", (payload, seq, ack) => {
    got.push({ n: payload.n, seq });
    if (typeof ack === "function" && !skip(payload.n)) ack("ok");
  });
  return { s, got };
}

const p = client(run, "/inbox", { auth: { user: "pusher" } });
await mustConnect(run, p, "pusher connects");
const bob = device("bob");
await mustConnect(run, bob.s, "bob connects");

const seqs = [];
async function push(n) {
  const answer = await run.ack(p, `push ${n}`, "push", "alice", { n });
  seqs.push(answer?.seq);
  return answer?.seq;
}
const pending = () => run.ack(p, "pending", "pending", "alice");
async function pendingIs(want, label) {
  const deadline = performance.now() + 5000;
  let last;
  for (;;) {
    last = await pending();
    if (JSON.stringify(last) === JSON.stringify(want) || performance.now() > deadline) break;
    await sleep(20);
  }
  run.check(JSON.stringify(last) === JSON.stringify(want), label, want, last);
}

for (let n = 1; n <= 5; n++) await push(n);
run.equal(JSON.stringify(await pending()), JSON.stringify(seqs.slice(0, 5)), "5 pending while alice is offline");

const a1 = device("alice", { skip: (n) => n === 7 });
await mustConnect(run, a1.s, "A1 connects");
run.check(await until(() => a1.got.length >= 5, 5000), "A1 gets the 5 pending", 5, a1.got.length);
run.equal(JSON.stringify(a1.got.map((g) => g.n)), "[1,2,3,4,5]", "A1: pending in order");
await pendingIs([], "A1's acks clear the inbox");

for (let n = 6; n <= 8; n++) await push(n);
run.check(await until(() => a1.got.length >= 8, 5000), "A1 gets 3 live", 8, a1.got.length);
run.equal(JSON.stringify(a1.got.map((g) => g.n)), "[1,2,3,4,5,6,7,8]", "A1: live in order, once each");
await pendingIs([], "the ack of #8 covers the unacked #7");

a1.s.disconnect();
await push(9);
await push(10);
await pendingIs([seqs[8], seqs[9]], "2 pending while alice is away");

// A2 takes the pending ones but does not ack: they stay pending, so A3,
// connecting after, gets them too (an ack from any device would clear them
// for the user: that is the point of a per-user inbox).
const a2 = device("alice", { skip: () => true });
await mustConnect(run, a2.s, "A2 connects");
run.check(await until(() => a2.got.length >= 2, 5000), "A2 gets the 2 pending", 2, a2.got.length);
run.equal(JSON.stringify(a2.got.map((g) => g.n)), "[9,10]", "A2: exactly #9 and #10, in order");
await pendingIs([seqs[8], seqs[9]], "unacked by A2: still pending");
const a3 = device("alice", { reconnect: true });
await mustConnect(run, a3.s, "A3 connects");
run.check(await until(() => a3.got.length >= 2, 5000), "A3 gets the 2 pending", 2, a3.got.length);
run.equal(JSON.stringify(a3.got.map((g) => g.n)), "[9,10]", "A3: exactly #9 and #10, in order");
await pendingIs([], "A3's acks clear the inbox");
await push(11);
run.check(await until(() => a2.got.length >= 3 && a3.got.length >= 3, 5000), "both devices get a live dm", 3, [a2.got.length, a3.got.length]);
run.equal(bob.got.length, 0, "bob gets none of alice's dms");
run.equal(new Set(seqs).size, 11, "11 distinct inbox positions so far");


// A3's transport drops; a dm is pushed meanwhile. A3 comes back recovered
// (middlewares skipped: the user is restored with the session) and gets the
// pending dm, then a live one: a recovered device is still alice's.
const a3gone = new Promise((resolve) => a3.s.once("disconnect", resolve));
const a3back = new Promise((resolve) => a3.s.once("connect", resolve));
a3.s.io.engine.close();
await a3gone;
await push(12);
await a3back;
run.equal(a3.s.recovered, true, "A3 recovered its session");
run.check(await until(() => a3.got.length >= 4, 5000), "recovered A3 gets the dm pushed while it was away", 4, a3.got.length);
await pendingIs([], "recovered A3's ack clears it");
await push(13);
run.check(await until(() => a3.got.length >= 5, 5000), "recovered A3 gets a live dm", 5, a3.got.length);
run.equal(JSON.stringify(a3.got.map((g) => g.n)), "[9,10,11,12,13]", "A3: every dm once, in order");
run.equal(bob.got.length, 0, "still none for bob");

Object.assign(run.counts, { pushed: seqs.length, a1: a1.got.length, a2: a2.got.length, a3: a3.got.length, bob: bob.got.length });
run.finish();
