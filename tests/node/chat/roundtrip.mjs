// roundtrip: the official client sends 3 "chat message" (content,
// clientOffset, ack) and checks the acks, the broadcasts and the transport.
// tests/cli.rs runs it over https:// and wss:// against `tether serve
// --tls-cert --tls-key` with a self-signed certificate (trusted here through
// --ca), tests/nginx.rs through nginx.
//
//   node chat/roundtrip.mjs --url http://127.0.0.1:PORT --transport upgrade
//   node chat/roundtrip.mjs --url https://127.0.0.1:PORT --transport upgrade --ca cert.pem
import { readFileSync } from "node:fs";
import { parseArgs, Run, until, mustConnect } from "./common.mjs";

const opts = parseArgs("chat-roundtrip", { transport: "upgrade", ca: "", timeout: 20000 });
const run = new Run(opts);
const extra = { forceNew: true };
if (opts.ca) {
  run.check(opts.url.startsWith("https://"), "with --ca the URL is https", "https://...", opts.url);
  // The CA alone: the certificate is checked against it (and its name, 127.0.0.1).
  extra.ca = readFileSync(opts.ca);
}
const socket = run.connect("/", extra);
const heard = [];
socket.on("chat message", (msg, serverOffset) => heard.push({ msg, serverOffset }));
await mustConnect(run, socket, "connect");
await run.assertTransport(socket);

const seqs = [];
for (let i = 1; i <= 3; i++) {
  const reply = await run.ack(socket, `message ${i}`, "chat message", `roundtrip ${i}`, `${socket.id}-${i}`);
  run.check(Number.isInteger(reply?.seq) && reply.duplicate === false, `message ${i}: stored once`, "{seq, duplicate: false}", reply);
  seqs.push(reply?.seq);
}
run.check(await until(() => heard.length >= 3, 10000), "the 3 broadcasts arrive", 3, heard.length);
run.equal(heard.map((h) => h.msg), ["roundtrip 1", "roundtrip 2", "roundtrip 3"], "broadcasts: each message once, in order");
run.equal(heard.map((h) => h.serverOffset), seqs, "broadcasts carry the acked positions");

Object.assign(run.counts, { transport: socket.io.engine.transport.name, acked: seqs.length, heard: heard.length });
run.finish();
