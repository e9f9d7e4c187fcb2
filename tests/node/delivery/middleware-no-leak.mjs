// middleware-no-leak (server with --no-skip-middlewares): on "/guarded" (auth
// token must be "ok"), A connects with token ok and joins "g", the server
// drops its transport, N (10) msgs are published to "g", then A reconnects
// with its session but token "bad": it must get a connect_error and ZERO msgs,
// neither as events nor on the wire (EVENT packets the client would only
// buffer). A control client C (token ok) in "g" must get the N msgs, which
// proves they reach "/guarded" at all.
import {
  parseArgs, Run, once, client, must, mustConnect, Inbox, waitLength, publish, checkExact, until,
} from "./common.mjs";

const opts = parseArgs("middleware-no-leak", { count: 10 });
const run = new Run(opts);
const NSP = "/guarded";

// Every EVENT packet (type 2, or 5 binary) for `nsp` but "welcome" that
// reaches the socket's Manager, whether the socket emits it or not.
function wireEvents(socket, nsp) {
  const list = [];
  socket.io.on("packet", (p) => {
    if ((p.type === 2 || p.type === 5) && p.nsp === nsp && p.data?.[0] !== "welcome") list.push(p.data);
  });
  return list;
}

const c = client(run, NSP, { auth: { token: "ok" } });
const inboxC = new Inbox(c);
await mustConnect(run, c, "control C connects with token ok");
await run.ack(c, "C join g", "join", "g");

const a = client(run, NSP, { reconnection: false, auth: { token: "ok" } });
const inboxA = new Inbox(a);
const wire = wireEvents(a, NSP);
await mustConnect(run, a, "A connects with token ok");
await run.ack(a, "A join g", "join", "g");
const session = { pid: a._pid, offset: a._lastOffset };

const gone = once(a, "disconnect", 10000);
a.emit("drop-transport");
await must(run, gone, "A dropped");
const sent = await publish(run, c, "g", "gap", opts.count);
run.check(await waitLength(inboxC, opts.count), `control: C (token ok, in "g" of ${NSP}) gets the ${opts.count} msgs`, opts.count, inboxC.length);
checkExact(run, "control C's msgs", inboxC.items, sent);

// Reconnect with the session but a bad token.
a.auth = { token: "bad" };
const refused = once(a, "connect_error", 10000);
let connects = 0;
a.on("connect", () => connects++);
a.connect();
const [err] = await must(run, refused, "A's reconnection with token bad is refused");
run.equal(err?.message, "unauthorized", "connect_error message");
run.equal(a._pid, session.pid, "A presented its session (pid kept)");
// A later msg to "g": whatever the server would leak to A has been sent by
// the time the control gets this one.
const [p] = await publish(run, c, "g", "after", 1);
run.check(await until(() => inboxC.items.some((m) => m.payload?.tag === "after"), 10000), "control C gets the later msg", true, false);
run.equal(connects, 0, "A never connected with token bad");
run.equal(inboxA.length, 0, "A's msg events (before and after)");
run.equal(wire.length, 0, "EVENT packets for A on the wire after the refusal");

Object.assign(run.counts, { published: sent.length + 1, controlReceived: inboxC.length, leakedEvents: inboxA.length, leakedOnWire: wire.length, laterSeq: p.seq });
run.finish();
