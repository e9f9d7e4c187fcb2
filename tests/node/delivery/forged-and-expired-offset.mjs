// forged-and-expired-offset (server with --window-ms W, script --window W,
// default 300): a session presented with a forged offset ("t.nope.5", then
// "t.<real epoch>.999999999") or after its recovery window is NOT recovered:
// socket.recovered === false, a new id, no room, and none of the msgs
// published while it was away (no partial replay). Its new session works:
// after joining again, a new msg arrives (exactly that one). A control case
// (reconnecting at once with the real offset) is recovered, so the refusals
// are not a broken recovery. The Tether report from the CONNECT reply (seen on
// the wire) is shown in the output, not checked.
import {
  parseArgs, Run, once, sleep, client, must, mustConnect, Inbox, waitLength, publish, probe, checkExact,
  offsetEpoch, until, welcomes,
} from "./common.mjs";

const opts = parseArgs("forged-and-expired-offset", { window: 300 });
const run = new Run(opts);
const reports = {};

const b = client(run, "/");
await mustConnect(run, b, "B connects");

// A fresh client in room `room` that got 3 msgs; drops its transport.
async function droppedClient(label, room) {
  const a = client(run, "/", { reconnection: false });
  const inbox = new Inbox(a);
  const hello = welcomes(a);
  a.io.on("packet", (p) => { if (p.type === 0 && p.data?.recovery) reports[label] = p.data.recovery; });
  await mustConnect(run, a, `${label}: connects`);
  await run.ack(a, `${label}: join`, "join", room);
  const got = await publish(run, b, room, `${label}-before`, 3);
  run.check(await waitLength(inbox, 3), `${label}: gets 3 msgs`, 3, inbox.length);
  checkExact(run, `${label}: msgs before the drop`, inbox.items, got);
  const id = a.id;
  const gone = once(a, "disconnect", 10000);
  a.emit("drop-transport");
  await must(run, gone, `${label}: dropped`);
  return { a, inbox, hello, id };
}

// Reconnects `a` and checks it got a new session and nothing of `room`'s past.
async function refused(label, room, { a, inbox, hello, id }) {
  const away = await publish(run, b, room, `${label}-away`, 5);
  const from = inbox.length;
  a.connect();
  await mustConnect(run, a, `${label}: reconnects`);
  run.equal(a.recovered, false, `${label}: socket.recovered`);
  run.check(a.id !== id, `${label}: a new socket id`, `not ${id}`, a.id);
  run.check(await until(() => hello.length >= 2, 5000), `${label}: a welcome for the new session`, 2, hello.length);
  run.equal(hello[1]?.recovered, false, `${label}: welcome.recovered`);
  run.equal(hello[1]?.rooms, [a.id], `${label}: the new session is in no room but its own`);
  await run.ack(a, `${label}: join again`, "join", room);
  const p = await probe(run, b, room, inbox, `${label}-new`);
  checkExact(run, `${label}: msgs of the new session (none of the ${away.length} published while away)`, inbox.items.slice(from), [p]);
  run.count("refused");
}

// Control: reconnecting at once with the real offset recovers.
{
  const c = await droppedClient("control", "f0");
  const away = await publish(run, b, "f0", "control-away", 2);
  c.a.connect();
  await mustConnect(run, c.a, "control: reconnects");
  run.equal(c.a.recovered, true, `control: recovered within the ${opts.window} ms window`);
  run.check(await waitLength(c.inbox, 5), "control: gets the 2 msgs it missed", 5, c.inbox.length);
  checkExact(run, "control: missed msgs", c.inbox.items.slice(3), away);
}

// Forged epoch.
{
  const c = await droppedClient("forged-epoch", "f1");
  c.a._lastOffset = "t.nope.5";
  await refused("forged-epoch", "f1", c);
}

// Real epoch, position never issued.
{
  const c = await droppedClient("forged-seq", "f2");
  const epoch = offsetEpoch(c.a._lastOffset);
  run.check(epoch !== null, "forged-seq: the client holds a Tether offset", "t.<epoch>.<seq>", c.a._lastOffset);
  c.a._lastOffset = `t.${epoch}.999999999`;
  await refused("forged-seq", "f2", c);
}

// Expired: the real offset, presented after the window.
{
  const c = await droppedClient("expired", "f3");
  await sleep(2 * opts.window + 200); // let the recovery window pass (time, not an event)
  await refused("expired", "f3", c);
}

// An offset that is not a string: a bad request (CONNECT_ERROR), not "no offset".
{
  const c = await droppedClient("offset-not-a-string", "f4");
  c.a._lastOffset = 42;
  const error = once(c.a, "connect_error", 10000);
  c.a.connect();
  const [e] = await must(run, error, "offset-not-a-string: refused");
  run.equal(e.message, "bad request: `offset` must be a string", "offset-not-a-string: the CONNECT_ERROR message");
  run.equal(c.a.connected, false, "offset-not-a-string: not connected");
}

Object.assign(run.counts, { window: opts.window, reports });
run.finish();
