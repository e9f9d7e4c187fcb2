// drive: a known amount of traffic for the /metrics check (tests/cli.rs).
// One official client sends 5 "chat message" (content, clientOffset, ack),
// one after the other, then retries the clientOffset of message 3 once:
// 6 events in, 6 acks, exactly 1 duplicate. It also waits for the 5
// broadcasts, so every message has been fanned out when it exits.
//
//   node chat/drive.mjs --url http://127.0.0.1:PORT --transport websocket
import { parseArgs, Run, until, mustConnect } from "./common.mjs";

const opts = parseArgs("chat-drive", { transport: "websocket", timeout: 20000 });
const run = new Run(opts);

const socket = run.connect("/", { forceNew: true });
const heard = [];
socket.on("chat message", (msg, serverOffset) => heard.push({ msg, serverOffset }));
await mustConnect(run, socket, "connect");

const seqs = [];
for (let i = 1; i <= 5; i++) {
  const reply = await run.ack(socket, `message ${i}`, "chat message", `drive ${i}`, `drive-${i}`);
  run.check(Number.isInteger(reply?.seq) && reply.duplicate === false, `message ${i}: stored once`, "{seq, duplicate: false}", reply);
  seqs.push(reply?.seq);
}
const retry = await run.ack(socket, "retry of message 3", "chat message", "drive 3", "drive-3");
run.equal(retry, { seq: seqs[2], duplicate: true }, "retry of message 3: acked as a duplicate of the first try");

run.check(await until(() => heard.length >= 5, 10000), "the 5 broadcasts arrive", 5, heard.length);
run.equal(heard.map((h) => h.msg), [1, 2, 3, 4, 5].map((i) => `drive ${i}`), "broadcasts: each message once, in order");
run.equal(heard.map((h) => h.serverOffset), seqs, "broadcasts carry the acked positions");

Object.assign(run.counts, { sent: 6, acked: 6, duplicates: 1, heard: heard.length, seqs });
run.finish();
