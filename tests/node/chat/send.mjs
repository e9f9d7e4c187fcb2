// send: one official client sends --count "chat message" (content
// `message <i>`, clientOffset `send-<i>`, ack), at most --window in flight,
// and checks every ack ({seq, duplicate: false}, positions in sending order)
// and that it heard every broadcast once, in order.
//
// With --hold 1 it then prints `READY sigterm` on stdout and waits (bounded by
// --timeout) until the server closes the connection (tests/cli.rs stops the
// server with SIGTERM), reporting the disconnect reason in the verdict.
//
//   node chat/send.mjs --url http://127.0.0.1:PORT --transport websocket [--count 200] [--window 16] [--hold 0|1]
import { parseArgs, Run, until, mustConnect, checkExact, checkIncreasing } from "./common.mjs";

const opts = parseArgs("chat-send", { transport: "websocket", count: 200, window: 16, hold: 0, timeout: 60000 });
const run = new Run(opts);
const N = opts.count;

const socket = run.connect("/", { forceNew: true });
const heard = [];
const heardOffsets = [];
socket.on("chat message", (msg, serverOffset) => { heard.push(msg); heardOffsets.push(serverOffset); });
let closed = null;
socket.on("disconnect", (reason) => { closed = reason; });
await mustConnect(run, socket, "connect");

const acks = new Array(N);
let next = 0;
const lane = async () => {
  while (next < N) {
    const i = ++next;
    acks[i - 1] = await run.ack(socket, `message ${i}`, "chat message", `message ${i}`, `send-${i}`);
  }
};
await Promise.all(Array.from({ length: Math.min(opts.window, N) }, lane));
const seqs = acks.map((a) => a?.seq);
const wanted = Array.from({ length: N }, (_, k) => `message ${k + 1}`);
run.equal(acks.filter((a) => a?.duplicate !== false || !Number.isInteger(a?.seq)).length, 0, "every ack is {seq, duplicate: false}");
checkIncreasing(run, "acked positions (sending order)", seqs);
run.check(await until(() => heard.length >= N, 10000), `hears the ${N} broadcasts`, N, heard.length);
checkExact(run, "broadcasts", heard, wanted);
run.equal(heardOffsets, seqs, "broadcasts carry the acked positions");

if (opts.hold) {
  process.stdout.write("READY sigterm\n");
  run.check(await until(() => closed !== null, opts.timeout - 5000), "the server closes the connection");
}
Object.assign(run.counts, { sent: N, acked: acks.filter(Boolean).length, heard: heard.length, first: seqs[0], last: seqs[N - 1], closed });
run.finish();
