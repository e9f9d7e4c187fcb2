// mid-stream: the chat tutorial's client keeps sending while the server is
// stopped with SIGTERM and started again on the same port and store
// (tests/cli.rs). The client reconnects by itself (tutorial defaults) and its
// retry queue (retries: 3, ackTimeout: 10000) sends again what was not acked.
//
// It queues --count messages `message <i>` at once (the queue sends one at a
// time), prints `READY sigterm` once it has heard --at of them back, then
// waits until it has heard all of them: each exactly once, in order, then a
// probe as the next and last message. Reports whether the reconnection
// recovered the session.
//
//   node chat/mid-stream.mjs --url http://127.0.0.1:PORT --transport websocket [--count 300] [--at 100]
import { parseArgs, Run, until, tutorialClient, mustConnect, waitLength, checkExact, checkIncreasing } from "./common.mjs";

const opts = parseArgs("chat-mid-stream", { transport: "websocket", count: 300, at: 100, timeout: 90000 });
const run = new Run(opts);
const N = opts.count;
const wanted = Array.from({ length: N }, (_, k) => `message ${k + 1}`);

const a = tutorialClient(run);
let connects = 0, disconnects = 0, recovered = null;
a.socket.on("connect", () => { connects++; if (connects > 1) recovered = a.socket.recovered; });
a.socket.on("disconnect", () => { disconnects++; });
await mustConnect(run, a.socket, "connect");
for (const m of wanted) a.send(m);

run.check(await until(() => a.messages.length >= opts.at, 30000), `hears ${opts.at} before the restart`, opts.at, a.messages.length);
process.stdout.write("READY sigterm\n");
run.check(await until(() => disconnects > 0, 20000), "the server closes the connection");
run.check(await until(() => connects > 1, 30000), "reconnects to the new server");
// Stalls only while the client waits for an ack timeout (10 s) to retry.
run.check(await waitLength(a.messages, N, 25000), `hears all ${N}`, N, a.messages.length);
a.send("probe mid-stream");
run.check(await until(() => a.messages.includes("probe mid-stream"), 15000), "the probe comes back");
checkExact(run, "heard", a.messages, [...wanted, "probe mid-stream"]);
checkIncreasing(run, "heard", a.offsets);

Object.assign(run.counts, { sent: N, heard: a.messages.length, connects, recovered, last: a.offsets[N - 1] });
run.finish();
