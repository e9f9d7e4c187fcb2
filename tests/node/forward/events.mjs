// forward/events: client events forwarded to a backend, with the official
// socket.io-client (tests/forward.rs in crates/tether-server drives it
// against `tether serve --forward-url URL` and a backend of its own).
//
// `--sockets N` clients connect (auth.token `--token` when given), all at
// once; each sends `order` events, one at a time, for every id of `--ids`
// (a JSON list; with several sockets the id is `<socket>-<id>`), as
// `emit("order", {n}, id, ack)`, and sends it again with the same id while
// the ack is an error with `retry: true` or does not come (at most 10
// times): what a client does for at-least-once delivery (with `--retries
// N`, the official client's own `retries`, `--ackTimeout` apart, instead:
// they resend only when no ack came). `results` lists
// per id the error acks, the final ack and the attempts. With `--extra`, the
// first client also sends a `note` without an ack request and a `chat
// message` (handled by the server, not forwarded), whose ack is checked.
//
//   node forward/events.mjs --url URL --ids '["m-0","m-1"]' [--sockets N] [--token T] [--extra 1]
import { parseArgs, Run, io, until } from "../lib.mjs";

const opts = parseArgs("forward-events", { transport: "websocket", ids: "[]", sockets: 1, token: "", extra: 0, ackTimeout: 5000, retries: 0 });
const run = new Run(opts);
const base = opts.url.replace(/\/+$/, "");
const ids = JSON.parse(opts.ids);

const clients = [];
for (let s = 0; s < opts.sockets; s++) {
  const auth = opts.token ? { token: opts.token } : {};
  // With --retries, the official client's own retries (ackTimeout, then
  // the same packet again with a new ack id).
  const native = opts.retries > 0 ? { retries: opts.retries, ackTimeout: opts.ackTimeout } : {};
  const socket = io(base, { ...run.socketOptions(), auth, forceNew: true, ...native });
  socket.on("connect_error", (e) => console.error(`note: connect_error: ${e.message}`));
  run.sockets.push(socket);
  clients.push(socket);
}
if (!(await until(() => clients.every((c) => c.connected), 10000))) {
  run.finish("not every client connected within 10 s");
  await new Promise(() => {});
}

const results = {};
async function send(socket, id, n) {
  const result = { attempts: 0, errors: [], ack: null, noAnswer: 0 };
  results[id] = result;
  if (opts.retries > 0) {
    // One call: the client resends by itself until an ack comes.
    try {
      result.ack = await socket.emitWithAck("order", { n }, id);
    } catch (e) {
      result.errors.push({ error: e.message });
    }
    return;
  }
  while (result.attempts < 10) {
    result.attempts++;
    let reply;
    try {
      reply = await socket.timeout(opts.ackTimeout).emitWithAck("order", { n }, id);
    } catch {
      result.noAnswer++;
      continue;
    }
    if (reply && typeof reply === "object" && "error" in reply) {
      result.errors.push(reply);
      if (reply.retry) continue;
      return;
    }
    result.ack = reply;
    return;
  }
}

await Promise.all(clients.map(async (socket, s) => {
  for (const [n, id] of ids.entries()) {
    await send(socket, opts.sockets > 1 ? `${s}-${id}` : id, n);
  }
}));

if (opts.extra) {
  const [first] = clients;
  first.emit("note", "fire and forget");
  const stored = await run.ack(first, "chat message", "chat message", "not forwarded", "chat-1");
  run.check(stored && typeof stored.seq === "number" && !stored.error, "the chat message is stored by the server", "{seq}", stored);
}
run.counts.results = results;
run.finish();
