// concurrent-restore: one session presented by several connections.
// Phase 1: A (joined "c", 10 msgs) is connected and answering pings when A2, a
// new Manager holding A's pid and offset (a copied or stolen private id),
// connects. A keeps its session and stays online: A2 gets a new session
// (recovered false, another id, a recovery report "session in use") and none
// of A's room traffic; A gets every later msg exactly once.
// Phase 2: A3 and A4 present A's session at the same moment: both get new
// sessions the same way, A is untouched.
// Phase 3 (WebSocket only: a transport that dies unseen needs a socket to
// stop reading): A's TCP socket stops reading, so A answers no ping; A5
// presents A's session and takes it over once the server found A's
// transport dead (a ping unanswered within the bound): recovered, A's id,
// exactly the msgs A missed, then live ones.
import {
  parseArgs, Run, once, until, client, resume, sessionOf, mustConnect, Inbox, waitLength,
  publish, probe, checkExact, sleep,
} from "./common.mjs";

const opts = parseArgs("concurrent-restore");
const run = new Run(opts);
const noRetry = { reconnection: false };

// Tracks a socket's fate: connects, disconnect reasons, connect errors.
function watch(socket, label) {
  const st = { label, socket, inbox: new Inbox(socket), connects: 0, reasons: [], errors: [] };
  socket.on("connect", () => st.connects++);
  socket.on("disconnect", (r) => st.reasons.push(r));
  socket.on("connect_error", (e) => st.errors.push(e.message));
  return st;
}

const b = client(run, "/");
await mustConnect(run, b, "B connects");
const a = client(run, "/", noRetry);
const A = watch(a, "A");
await mustConnect(run, a, "A connects");
await run.ack(a, "A join c", "join", "c");
const first = await publish(run, b, "c", "first", 10);
run.check(await waitLength(A.inbox, 10), "A gets the first 10 msgs", 10, A.inbox.length);
const session = sessionOf(a);

// Phase 1: A2 presents A's live session.
const a2 = resume(run, session, "/", noRetry);
const A2 = watch(a2, "A2");
a2.connect();
await mustConnect(run, a2, "A2 connects");
run.equal(a2.recovered, false, "A2 is not recovered (A's session is in use)");
run.check(a2.id !== session.id, "A2 gets another socket id", `not ${session.id}`, a2.id);
run.equal(a.connected, true, "A is still connected");
const live1 = await publish(run, b, "c", "live1", 10);
run.check(await waitLength(A.inbox, 20), "A gets the 10 later msgs", 20, A.inbox.length);
const p1 = await probe(run, b, "c", A.inbox, "probe1");
checkExact(run, "A's msgs", A.inbox.items, [...first, ...live1, p1]);
run.equal(A2.inbox.length, 0, "A2 gets none of A's room traffic");

// Phase 2: two more connections present A's session at the same time.
const a3 = resume(run, sessionOf(a), "/", noRetry);
const a4 = resume(run, sessionOf(a), "/", noRetry);
const A3 = watch(a3, "A3");
const A4 = watch(a4, "A4");
a3.connect();
a4.connect();
const settled = await until(() => A3.connects > 0 && A4.connects > 0, 15000);
run.check(settled, "A3 and A4 both connect", "connected", { A3: A3.errors, A4: A4.errors });
run.equal([a3.recovered, a4.recovered], [false, false], "A3 and A4 are not recovered");
const live2 = await publish(run, b, "c", "live2", 10);
run.check(await waitLength(A.inbox, 31), "A gets the next 10 msgs", 31, A.inbox.length);
checkExact(run, "A's msgs after phase 2", A.inbox.items.slice(21), live2);
run.equal([A2, A3, A4].map((st) => st.inbox.length), [0, 0, 0], "A2, A3 and A4 get none of A's room traffic");
run.equal(A.reasons, [], "A was never disconnected");

let takeover = null;
if (opts.transport === "websocket") {
  // Phase 3: A's transport dies unseen (its socket stops reading).
  const before = sessionOf(a);
  a.io.engine.transport.ws._socket.pause();
  const missed = await publish(run, b, "c", "missed", 5);
  const started = performance.now();
  const a5 = resume(run, before, "/", noRetry);
  const A5 = watch(a5, "A5");
  a5.connect();
  await mustConnect(run, a5, "A5 connects", 20000);
  takeover = { ms: performance.now() - started };
  run.equal(a5.recovered, true, "A5 takes over A's dead session");
  run.equal(a5.id, session.id, "A5 has A's socket id");
  const live3 = await publish(run, b, "c", "live3", 5);
  run.check(await waitLength(A5.inbox, 10), "A5 gets the 5 missed + 5 live", 10, A5.inbox.length);
  checkExact(run, "A5's msgs", A5.inbox.items, [...missed, ...live3]);
  a.close();
  await sleep(10);
}

Object.assign(run.counts, {
  takeover,
  fates: Object.fromEntries([A, A2, A3, A4].map((st) => [st.label, { connects: st.connects, reasons: st.reasons, errors: st.errors, msgs: st.inbox.length }])),
});
run.finish();
