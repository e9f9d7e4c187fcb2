// events: welcome (nsp + auth echoed), then N "echo" emits without ack,
// expecting exactly N "echo" events back, in order, no duplicates.
import { parseArgs, Run, once, waitForCount, sleep } from "../lib.mjs";

const opts = parseArgs("events", { count: 1000 });
const run = new Run(opts);
const N = opts.count;

const auth = { token: "t1" };
const socket = run.connect("/", { auth });
const [welcome] = await once(socket, "welcome");
run.equal(welcome, { id: socket.id, nsp: "/", auth }, "welcome payload");

const got = [];
socket.on("echo", (...args) => got.push(args));
for (let i = 0; i < N; i++) socket.emit("echo", { i, s: "x" + i });

await waitForCount(got, N);
await sleep(300); // catch duplicates / extras arriving late
run.count("sent", N);
run.count("received", got.length);
run.equal(got.length, N, "number of echo events");
let bad = 0;
for (let i = 0; i < Math.min(N, got.length) && bad < 5; i++) {
  if (!run.equal(got[i], [{ i, s: "x" + i }], `echo #${i} (order/payload)`)) bad++;
}
await run.assertTransport(socket);
run.finish();
