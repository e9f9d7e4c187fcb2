// rooms: three separate connections A, B, C. A and B join R, C does not.
// Checks io.to(room), socket.to(room) (excludes sender), broadcast acks
// ("gather") and leave, with exact per-client message lists.
import { parseArgs, Run, once, until, sleep } from "../lib.mjs";

const opts = parseArgs("rooms", { settle: 300 });
const run = new Run(opts);

// Unique room name so parallel runs against one server don't see each other.
const R = `r1-${process.pid}-${Date.now()}`;
const clients = {};
for (const name of ["A", "B", "C"]) {
  const s = run.connect("/", { forceNew: true, auth: { name } });
  const c = (clients[name] = { s, msgs: [], asks: 0 });
  run.count(`msg${name}`, 0);
  s.on("msg", (p) => { c.msgs.push(p); run.count(`msg${name}`); });
  s.on("ask", (n, ack) => { c.asks++; ack(n * 2); });
}
const { A, B, C } = clients;
run.check(A.s.io !== B.s.io && B.s.io !== C.s.io, "separate Managers", true, false);
await Promise.all([A, B, C].map((c) => once(c.s, "welcome")));

const ack = (c, ...args) => run.ack(c.s, `${c.s.auth.name} ${args[0]}`, ...args);
run.equal(await ack(A, "join", R), "joined", "A join ack");
run.equal(await ack(B, "join", R), "joined", "B join ack");

// Wait until every expected message arrived, then a bit more for extras.
async function expectMsgs(step, want) {
  await until(() => Object.entries(want).every(([n, w]) => clients[n].msgs.length >= w.length), 5000);
  await sleep(opts.settle);
  for (const [n, w] of Object.entries(want)) run.equal(clients[n].msgs, w, `${step}: messages seen by ${n}`);
}

const p1 = { step: 1, text: "to r1" };
run.equal(await ack(A, "bcast", R, p1), "sent", "bcast ack");
await expectMsgs("bcast r1", { A: [p1], B: [p1], C: [] });

const p2 = { step: 2, text: "others in r1" };
run.equal(await ack(A, "bcast-others", R, p2), "sent", "bcast-others ack");
await expectMsgs("bcast-others r1", { A: [p1], B: [p1, p2], C: [] });

run.equal(await ack(A, "gather", R), [2, 2], "gather replies");
run.equal([A.asks, B.asks, C.asks], [1, 1, 0], "ask events seen by A, B, C");

run.equal(await ack(B, "leave", R), "left", "B leave ack");
const p3 = { step: 3, text: "after leave" };
run.equal(await ack(A, "bcast", R, p3), "sent", "bcast after leave ack");
await expectMsgs("bcast after leave", { A: [p1, p3], B: [p1, p2], C: [] });

run.count("asks", A.asks + B.asks + C.asks);
for (const c of [A, B, C]) await run.assertTransport(c.s, c.s.auth.name);
run.finish();
