// binary: Buffers of several sizes and a mixed payload must come back
// byte-identical, both through an ack and through a plain "echo" event.
import { parseArgs, Run, once, waitForCount, sleep, asBuffer, bytes } from "../lib.mjs";

const opts = parseArgs("binary");
const run = new Run(opts);

const SIZES = [0, 1, 1000, 100000];
const socket = run.connect("/");
await once(socket, "welcome");

function checkBuf(got, want, what) {
  const b = asBuffer(got);
  if (!run.check(b !== null, `${what}: is binary`, "Buffer", got)) return;
  run.check(b.equals(want), `${what}: bytes (len ${want.length})`, want, b);
}

// The mixed payload: { a: Buffer, b: [Buffer, "str"] }.
const mixed = () => ({ a: bytes(10, 2), b: [bytes(300, 3), "str"] });
function checkMixed(got, what) {
  const want = mixed();
  if (!run.check(got && typeof got === "object" && Array.isArray(got.b), `${what}: shape`, "{a, b: [Buffer, 'str']}", got)) return;
  run.equal(Object.keys(got).sort(), ["a", "b"], `${what}: keys`);
  checkBuf(got.a, want.a, `${what}.a`);
  run.equal(got.b.length, 2, `${what}.b length`);
  checkBuf(got.b[0], want.b[0], `${what}.b[0]`);
  run.equal(got.b[1], "str", `${what}.b[1]`);
}

// 1. With ack (also a second non-binary arg to check placeholder ordering).
for (const n of SIZES) {
  const reply = await run.ackAll(socket, `ack size ${n}`, "echo", bytes(n, n), "after");
  run.count("ackSent");
  run.count("ackReceived");
  run.equal(reply.length, 2, `ack size ${n}: arg count`);
  checkBuf(reply[0], bytes(n, n), `ack size ${n}`);
  run.equal(reply[1], "after", `ack size ${n}: trailing string arg`);
}
run.count("ackSent");
checkMixed(await run.ack(socket, "ack mixed", "echo", mixed()), "ack mixed");
run.count("ackReceived");

// 2. Without ack: the server emits "echo" back; expect exactly one reply each, in order.
const got = [];
socket.on("echo", (...args) => got.push(args));
for (const n of SIZES) socket.emit("echo", bytes(n, n + 1));
socket.emit("echo", mixed(), bytes(5, 9));
const expected = SIZES.length + 1;
await waitForCount(got, expected);
await sleep(300);
run.count("eventSent", expected);
run.count("eventReceived", got.length);
if (run.equal(got.length, expected, "number of echo events")) {
  SIZES.forEach((n, k) => {
    run.equal(got[k].length, 1, `event size ${n}: arg count`);
    checkBuf(got[k][0], bytes(n, n + 1), `event size ${n}`);
  });
  const last = got[SIZES.length];
  run.equal(last.length, 2, "event mixed: arg count");
  checkMixed(last[0], "event mixed");
  checkBuf(last[1], bytes(5, 9), "event mixed: 2nd arg");
}
await run.assertTransport(socket);
run.finish();
