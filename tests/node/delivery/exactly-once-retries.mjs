// exactly-once-retries (server with --slow-ms 1500): the official client's
// retry queue (`retries: 5, ackTimeout: 500`) sends N (20) "chat message"
// (content, clientOffset `${id}-${i}`), the chat tutorial's way. The handler is
// slower than ackTimeout, so the client sends tries again; the server stores
// each clientOffset once (publish_once). Checked: every message was tried more
// than once, every message's ack callback got the server's answer (not an
// error), on the wire every try got an ACK naming the same position, exactly
// one of them not a duplicate; "count" (the whole-namespace stream) is N; a
// listener (and the sender) got each chat message exactly once, in order.
// When a message's callback fails, the run stops there (the rest would take
// (retries+1) x ackTimeout each) and prints that message's wire timeline.
import {
  parseArgs, Run, until, client, mustConnect, Inbox, waitLength, checkExact, sleep,
} from "./common.mjs";

const opts = parseArgs("exactly-once-retries", { count: 20, retries: 5, retryAckTimeout: 500, timeout: 180000 });
const run = new Run(opts);
const N = opts.count;
const t0 = performance.now();
const now = () => Math.round(performance.now() - t0);

const listener = client(run, "/");
const heard = new Inbox(listener, "chat message");
await mustConnect(run, listener, "listener connects");
const sender = client(run, "/", { retries: opts.retries, ackTimeout: opts.retryAckTimeout });
const echoed = new Inbox(sender, "chat message");
await mustConnect(run, sender, "sender connects");

// Wire view of the sender: every try it sends, every ACK the server sends back
// (late ones included: the client drops those silently).
const tries = new Map(); // clientOffset -> [{id, at}]
const wireAcks = new Map(); // clientOffset -> [{id, at, reply}]
const offsetOfId = new Map();
const sendPacket = sender.packet.bind(sender);
sender.packet = (packet) => {
  if (packet.type === 2 && packet.data?.[0] === "chat message") {
    const off = packet.data[2];
    if (!tries.has(off)) tries.set(off, []);
    tries.get(off).push({ id: packet.id, at: now() });
    offsetOfId.set(packet.id, off);
  }
  return sendPacket(packet);
};
sender.io.on("packet", (p) => {
  if (p.type === 3 && p.nsp === "/" && offsetOfId.has(p.id)) {
    const off = offsetOfId.get(p.id);
    if (!wireAcks.has(off)) wireAcks.set(off, []);
    // The client's own onack may already have unshifted a null (error-first
    // callback) into this very packet's data: take the reply object.
    const reply = (p.data ?? []).find((x) => x && typeof x === "object");
    wireAcks.get(off).push({ id: p.id, at: now(), reply });
  }
});

const offsets = Array.from({ length: N }, (_, i) => `${sender.id}-${i}`);
const results = new Array(N);
let answered = 0, failed = 0;
offsets.forEach((off, i) => {
  sender.emit("chat message", `message ${i}`, off, (err, reply) => {
    results[i] = err ? { error: err.message, at: now() } : { reply, at: now() };
    answered++;
    if (err) failed++;
  });
});
const limit = N * (opts.retries + 1) * opts.retryAckTimeout + 30000;
await until(() => answered === N || failed > 0, limit);

if (failed > 0) {
  const i = results.findIndex((r) => r?.error);
  const off = offsets[i];
  // Let the server's late ACKs of that message's tries come in (bounded).
  await until(() => (wireAcks.get(off)?.length ?? 0) >= (tries.get(off)?.length ?? 0), 15000);
  run.check(false, `message ${i}: the ack callback got the server's answer`, "{seq, duplicate}", {
    callback: results[i],
    tries: tries.get(off),
    serverAcks: wireAcks.get(off) ?? [],
    note: `no try was acked within ackTimeout ${opts.retryAckTimeout} ms, so the official client gave up after ${opts.retries + 1} tries`,
  });
  const count = await run.ack(listener, "count", "count");
  Object.assign(run.counts, { messages: N, answered, failed, firstFailed: i, heard: heard.length, count, stoppedEarly: true });
  run.finish();
  await new Promise(() => {});
}
run.equal(answered, N, "every message answered");

// Every callback got {seq, duplicate}; each message was retried.
for (let i = 0; i < N; i++) {
  const r = results[i];
  run.check(r && !r.error && Number.isInteger(r.reply?.seq), `message ${i}: ack callback carries the position`, "{seq, duplicate}", r);
  run.check((tries.get(offsets[i])?.length ?? 0) >= 2, `message ${i}: retried (the handler is slower than ackTimeout)`, ">= 2 tries", tries.get(offsets[i])?.length ?? 0);
}
// Wire: every try acked once, all with the same position, one not a duplicate.
const totalTries = [...tries.values()].reduce((n, l) => n + l.length, 0);
const wireCount = () => [...wireAcks.values()].reduce((n, l) => n + l.length, 0);
let last = -1, since = performance.now();
while (wireCount() < totalTries && performance.now() - since < 10000) {
  if (wireCount() !== last) { last = wireCount(); since = performance.now(); }
  await sleep(20);
}
run.equal(wireCount(), totalTries, "the server acked every try (late ones included)");
for (let i = 0; i < N; i++) {
  const acks = wireAcks.get(offsets[i]) ?? [];
  const seqs = new Set(acks.map((a) => a.reply?.seq));
  run.check(seqs.size === 1 && seqs.has(results[i]?.reply?.seq), `message ${i}: every try acked with the same position`, results[i]?.reply?.seq, [...seqs]);
  run.equal(acks.filter((a) => a.reply?.duplicate === false).length, 1, `message ${i}: exactly one try stored it`);
  run.equal(new Set(acks.map((a) => a.id)).size, acks.length, `message ${i}: one ACK per try`);
}

run.equal(await run.ack(listener, "count", "count"), N, "count of the whole-namespace stream");
const expected = results.map((r, i) => ({ key: `message ${i}`, seq: r?.reply?.seq }));
run.check(await waitLength(heard, N), `the listener hears ${N} chat messages`, N, heard.length);
run.check(await waitLength(echoed, N), `the sender hears ${N} chat messages`, N, echoed.length);
// Later duplicates would come before a later message: send one more.
const extra = await run.ack(listener, "extra chat message", "chat message", "extra", `${listener.id}-extra`);
expected.push({ key: "extra", seq: extra?.seq });
run.check(await until(() => heard.items.some((m) => m.payload === "extra"), 10000), "the listener hears the extra message");
run.check(await until(() => echoed.items.some((m) => m.payload === "extra"), 10000), "the sender hears the extra message");
checkExact(run, "listener's chat messages", heard.items, expected);
checkExact(run, "sender's chat messages", echoed.items, expected);

Object.assign(run.counts, {
  messages: N, tries: totalTries, serverAcks: wireCount(), heard: heard.length, echoed: echoed.length,
  duplicatesAcked: [...wireAcks.values()].flat().filter((a) => a.reply?.duplicate === true).length,
  ms: now(),
});
run.finish();
