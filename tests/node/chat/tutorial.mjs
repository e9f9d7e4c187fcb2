// tutorial: the Socket.IO chat tutorial's own client logic (final step:
// connection state recovery, server delivery, client offsets with retries)
// against `tether serve` (tests/cli.rs).
//
// A and B (serverOffset 0) send 50 messages each, interleaved, with the
// tutorial's `socket.emit("chat message", msg, clientOffset)`; both must end
// with the same 100 messages, in the same order, each once, each sender's in
// its sending order. Then C connects with serverOffset 0 (gets all 100 in that
// order) and D with the serverOffset of message 60 (gets exactly 61..100).
// A final probe from A reaches all four: nothing else arrived before it.
//
//   node chat/tutorial.mjs --url http://127.0.0.1:PORT --transport websocket|polling [--count 50]
import { parseArgs, Run, until, tutorialClient, mustConnect, waitLength, checkExact, checkIncreasing } from "./common.mjs";

const opts = parseArgs("chat-tutorial", { count: 50, timeout: 60000 });
const run = new Run(opts);
const N = opts.count;
const FROM = Math.floor((N * 2 * 3) / 5); // message 60 of 100

const a = tutorialClient(run);
const b = tutorialClient(run);
await mustConnect(run, a.socket, "A connects");
await mustConnect(run, b.socket, "B connects");

const fromA = [], fromB = [];
for (let i = 1; i <= N; i++) {
  fromA.push(`A says ${i}`);
  a.send(`A says ${i}`);
  fromB.push(`B says ${i}`);
  b.send(`B says ${i}`);
}
run.check(await waitLength(a.messages, 2 * N), `A gets ${2 * N} messages`, 2 * N, a.messages.length);
run.check(await waitLength(b.messages, 2 * N), `B gets ${2 * N} messages`, 2 * N, b.messages.length);

const all = a.messages.slice(0, 2 * N);
const offsets = a.offsets.slice(0, 2 * N);
run.equal(b.messages.slice(0, 2 * N), all, "A and B: same messages in the same order");
run.equal(b.offsets.slice(0, 2 * N), offsets, "A and B: same serverOffsets");
checkIncreasing(run, "A", offsets);
checkExact(run, "A's own messages within the conversation", all.filter((m) => m.startsWith("A ")), fromA);
checkExact(run, "B's own messages within the conversation", all.filter((m) => m.startsWith("B ")), fromB);
run.equal(new Set(all).size, 2 * N, "each of the messages once");

const c = tutorialClient(run, { serverOffset: 0 });
const d = tutorialClient(run, { serverOffset: offsets[FROM - 1] });
await mustConnect(run, c.socket, "C connects (serverOffset 0)");
await mustConnect(run, d.socket, `D connects (serverOffset of message ${FROM})`);
run.check(await waitLength(c.messages, 2 * N), `C catches up ${2 * N}`, 2 * N, c.messages.length);
run.check(await waitLength(d.messages, 2 * N - FROM), `D catches up ${2 * N - FROM}`, 2 * N - FROM, d.messages.length);

// The probe: anything else a client would get arrives before it.
a.send("probe");
for (const [name, cl] of [["A", a], ["B", b], ["C", c], ["D", d]]) {
  run.check(await until(() => cl.messages.includes("probe"), 10000), `${name} gets the probe`);
}
checkExact(run, "A", a.messages, [...all, "probe"]);
checkExact(run, "B", b.messages, [...all, "probe"]);
checkExact(run, "C (serverOffset 0)", c.messages, [...all, "probe"]);
checkExact(run, `D (serverOffset of message ${FROM})`, d.messages, [...all.slice(FROM), "probe"]);
run.equal(c.offsets.slice(0, 2 * N), offsets, "C: the same serverOffsets");
run.equal(d.offsets.slice(0, 2 * N - FROM), offsets.slice(FROM), "D: the same serverOffsets");

Object.assign(run.counts, {
  exchanged: all.length, a: a.messages.length, b: b.messages.length,
  c: c.messages.length, d: d.messages.length, dFrom: offsets[FROM - 1],
});
run.finish();
