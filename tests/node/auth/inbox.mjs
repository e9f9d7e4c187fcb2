// auth/inbox: the per-user inbox reaches the sockets of the token's `sub`,
// with the official socket.io-client (tests/auth.rs in crates/tether-server
// drives the phases against one `tether serve --jwt-secret S --api-key K`).
//
// An inbox entry arrives as `EVENT(event, ...args, position)` with an ack
// request: the client acknowledges it by calling the callback (the last
// handler argument). Phases (`--phase`):
// - `first`: `--token` (sub alice) and `--token2` (sub bob) connect; an entry
//   for alice is pushed over the HTTP API (`--key`): alice gets it and does
//   NOT acknowledge it; then one for bob, which bob gets with nothing before
//   it (anything of alice's would have been queued on his connection first).
// - `again`: alice connects anew: the unacknowledged entry comes again (same
//   position); she acknowledges it this time.
// - `after`: alice connects anew once her ack is stored and another entry
//   was pushed (`--expect EVENT`): the first inbox entry she gets is that one.
// `inbox` of the verdict lists what each user got: [event, ...args].
//
//   node auth/inbox.mjs --url URL --phase first|again|after --token T [--token2 T2 --key K] [--expect dm2]
import { parseArgs, Run, io, until } from "../lib.mjs";

const opts = parseArgs("auth-inbox", { transport: "websocket", phase: "", token: "", token2: "", key: "", expect: "" });
const run = new Run(opts);
const base = opts.url.replace(/\/+$/, "");

const push = async (user, body) => {
  const res = await fetch(`${base}/api/v1/inbox/${encodeURIComponent(user)}`, {
    method: "POST",
    headers: { authorization: `Bearer ${opts.key}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
};

// A client recording every event with its ack callback (the server asks for
// one on inbox entries); it acknowledges only when told.
function client(token) {
  const socket = io(base, { ...run.socketOptions(), auth: { token }, forceNew: true });
  run.sockets.push(socket);
  const got = [];
  socket.onAny((event, ...args) => {
    // The chat's own volatile news (who is online, who types) is not inbox.
    if (event === "presence" || event === "typing") return;
    const ack = typeof args.at(-1) === "function" ? args.pop() : null;
    got.push({ event, args, ack });
  });
  socket.on("connect_error", (e) => console.error(`note: connect_error: ${e.message}`));
  return { socket, got };
}

async function connected(c, label) {
  if (!(await until(() => c.socket.connected, 10000))) {
    run.finish(`${label}: not connected`);
    await new Promise(() => {});
  }
}

const shown = (c) => c.got.map(({ event, args, ack }) => [event, ...args, ack ? "ack requested" : "no ack"]);
const inbox = {};

if (opts.phase === "first") {
  const alice = client(opts.token);
  const bob = client(opts.token2);
  await connected(alice, "alice");
  await connected(bob, "bob");
  const dm = await push("alice", { event: "dm", args: ["for alice"] });
  run.equal(dm.status, 200, "the entry for alice is stored");
  run.check(await until(() => alice.got.length >= 1, 5000), "alice gets her entry live");
  const sentinel = await push("bob", { event: "dm", args: ["for bob"] });
  run.equal(sentinel.status, 200, "the entry for bob is stored");
  run.check(await until(() => bob.got.length >= 1, 5000), "bob gets his entry live");
  Object.assign(inbox, { alice: shown(alice), bob: shown(bob) });
  run.counts.position = dm.body.position;
} else if (opts.phase === "again") {
  const alice = client(opts.token);
  await connected(alice, "alice");
  run.check(await until(() => alice.got.length >= 1, 5000), "alice gets her unacknowledged entry again");
  inbox.alice = shown(alice);
  const [first] = alice.got;
  if (first?.ack) {
    first.ack();
    // The ack is queued before the DISCONNECT the run's end sends.
  }
} else if (opts.phase === "after") {
  const alice = client(opts.token);
  await connected(alice, "alice");
  run.check(await until(() => alice.got.some((g) => g.event === opts.expect), 5000),
    `alice gets the entry pushed after her ack (${opts.expect})`);
  inbox.alice = shown(alice);
} else {
  run.finish(`unknown --phase ${opts.phase}`);
}
run.counts.inbox = inbox;
run.finish();
