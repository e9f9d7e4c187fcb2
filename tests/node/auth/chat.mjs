// auth/chat: authenticated users of the chat, with the official
// socket.io-client (tests/auth.rs in crates/tether-server drives it against
// `tether serve --jwt-secret S` or `--jwt-public-key FILE`).
//
// 1. `--token` connects (auth.token, and a forged auth.name) and sends a
//    message with a forged name argument; `--token2` (a token without a
//    `name` claim) sends one without a name. The `chat message` broadcasts'
//    meta (`{ id, name, user }`) are reported in `metas`, as received by the
//    first client.
// 2. Each of `--bad` (a JSON list of {label, token}; token null: none sent)
//    connects with auth.serverOffset 0 (so it would get every stored message
//    first if it got in): its CONNECT_ERROR (message, data) and every EVENT
//    packet its connection received before it are in `refusals`.
// 3. With `--expired`: a client with `--token` connects, gets the stored
//    messages, loses its transport, a message is sent while it is away, and
//    it comes back (recovering its session) with the expired token instead:
//    `recovery` holds its CONNECT_ERROR and the EVENT packets after the cut;
//    with `--other` (another user's valid token) it tries that too (`other`:
//    its CONNECT_ERROR); then it comes back with `--token`: `recovered`, and
//    `missed`, what it got then.
//
//   node auth/chat.mjs --url URL --token T --token2 T2 --bad '[{"label":"x","token":null}]' [--expired T3 [--other T4]]
import { parseArgs, Run, io, until, sleep } from "../lib.mjs";

const opts = parseArgs("auth-chat", { transport: "websocket", token: "", token2: "", bad: "[]", expired: "", other: "" });
const run = new Run(opts);
const base = opts.url.replace(/\/+$/, "");

// A client whose raw packets are recorded: `packets` are [type, data] of
// everything its manager decoded (2: EVENT, 4: CONNECT_ERROR).
function client(auth, extra = {}) {
  const socket = io(base, { ...run.socketOptions(), auth, forceNew: true, ...extra });
  run.sockets.push(socket);
  const packets = [];
  socket.io.on("packet", (p) => packets.push([p.type, p.data]));
  const errors = [];
  socket.on("connect_error", (e) => errors.push({ message: e.message, data: e.data ?? null }));
  const messages = [];
  socket.on("chat message", (content, serverOffset, meta) => messages.push({ content, serverOffset, meta }));
  return { socket, packets, errors, messages };
}

// Waits for the connection, or a new CONNECT_ERROR (then the run fails).
async function connected(c, label) {
  const before = c.errors.length;
  if (!(await until(() => c.socket.connected || c.errors.length > before, 10000)) || !c.socket.connected) {
    run.finish(`${label}: not connected: ${JSON.stringify(c.errors)}`);
    await new Promise(() => {});
  }
}

// 1. Names come from the tokens.
const alice = client({ token: opts.token, serverOffset: 0, name: "Mallory" });
await connected(alice, "--token");
const bob = client({ token: opts.token2, serverOffset: 0 });
await connected(bob, "--token2");
const a = await run.ack(alice.socket, "alice's message", "chat message", "hello from alice", "alice-1", "Mallory");
run.check(a && !a.error, "alice's message is stored", "an ack without error", a);
const b = await run.ack(bob.socket, "bob's message", "chat message", "hello from bob", "bob-1");
run.check(b && !b.error, "bob's message is stored", "an ack without error", b);
run.check(await until(() => alice.messages.length >= 2, 5000), "both messages reach alice", 2, alice.messages.length);
const metas = alice.messages.map((m) => ({ content: m.content, ...m.meta }));

// 2. Refusals, and nothing before them.
const refusals = [];
for (const { label, token } of JSON.parse(opts.bad)) {
  const auth = token === null ? { serverOffset: 0 } : { token, serverOffset: 0 };
  const c = client(auth);
  const answered = await until(() => c.errors.length > 0 || c.socket.connected, 10000);
  run.check(answered && !c.socket.connected, `${label}: refused`, "connect_error", c.socket.connected ? "connected" : "nothing");
  refusals.push({
    label,
    error: c.errors[0] ?? null,
    events: c.packets.filter(([type]) => type === 2 || type === 5),
    messages: c.messages.length,
  });
  c.socket.disconnect();
}

// 3. A recovery with an expired token recovers nothing.
let recovery = null;
if (opts.expired) {
  const c = client({ token: opts.token, serverOffset: 0 }, { reconnection: false });
  await connected(c, "recovering client");
  run.check(await until(() => c.messages.length >= 2, 5000), "the recovering client gets the stored messages", 2, c.messages.length);
  await sleep(50);
  const cut = c.packets.length;
  c.socket.io.engine.close();
  await until(() => !c.socket.connected, 5000);
  const w = await run.ack(alice.socket, "the message while away", "chat message", "while away", "alice-2");
  run.check(w && !w.error, "the message while away is stored", "an ack without error", w);
  c.socket.auth = { ...c.socket.auth, token: opts.expired };
  c.socket.connect();
  const answered = await until(() => c.errors.length > 0 || c.socket.connected, 10000);
  run.check(answered && !c.socket.connected, "the recovery with an expired token is refused", "connect_error",
    c.socket.connected ? "connected" : "nothing");
  // Another user's valid token does not take the session over either.
  let other = null;
  if (opts.other) {
    c.socket.auth = { ...c.socket.auth, token: opts.other };
    c.socket.connect();
    const refused = await until(() => c.errors.length > 1 || c.socket.connected, 10000);
    run.check(refused && !c.socket.connected, "the recovery with another user's token is refused", "connect_error",
      c.socket.connected ? "connected" : "nothing");
    other = c.errors[1] ?? null;
  }
  // A quiet moment: whatever the server would wrongly replay comes now.
  await sleep(300);
  const events = c.packets.slice(cut).filter(([type]) => type === 2 || type === 5);
  // The owner's valid token recovers the session and what it missed.
  c.socket.auth = { ...c.socket.auth, token: opts.token };
  c.socket.connect();
  await connected(c, "the recovery with a valid token");
  run.check(await until(() => c.messages.some((m) => m.content === "while away"), 5000),
    "the valid recovery gets the message sent while away");
  recovery = {
    error: c.errors[0] ?? null,
    other,
    events,
    recovered: c.socket.recovered,
    missed: c.messages.slice(2).map((m) => m.content),
  };
}

Object.assign(run.counts, { metas, refusals, recovery });
run.finish();
