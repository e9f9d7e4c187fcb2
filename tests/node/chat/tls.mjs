// tls: the official client over https:// and wss:// (tests/cli.rs runs it
// against `tether serve --tls-cert --tls-key` with a self-signed
// certificate, trusted here through `ca`). Sends 3 "chat message" (content,
// clientOffset, ack) and checks the acks, the broadcasts and the transport.
//
//   node chat/tls.mjs --url https://127.0.0.1:PORT --transport upgrade --ca cert.pem
import { readFileSync } from "node:fs";
import { parseArgs, Run, until, mustConnect } from "./common.mjs";

const opts = parseArgs("chat-tls", { transport: "upgrade", ca: "", timeout: 20000 });
const run = new Run(opts);
run.check(opts.url.startsWith("https://"), "the URL is https", "https://...", opts.url);

// The CA alone: the certificate is checked against it (and its name, 127.0.0.1).
const socket = run.connect("/", { forceNew: true, ca: readFileSync(opts.ca) });
const heard = [];
socket.on("chat message", (msg, serverOffset) => heard.push({ msg, serverOffset }));
await mustConnect(run, socket, "connect over TLS");
await run.assertTransport(socket);

const seqs = [];
for (let i = 1; i <= 3; i++) {
  const reply = await run.ack(socket, `message ${i}`, "chat message", `tls ${i}`, `${socket.id}-${i}`);
  run.check(Number.isInteger(reply?.seq) && reply.duplicate === false, `message ${i}: stored once`, "{seq, duplicate: false}", reply);
  seqs.push(reply?.seq);
}
run.check(await until(() => heard.length >= 3, 10000), "the 3 broadcasts arrive", 3, heard.length);
run.equal(heard.map((h) => h.msg), ["tls 1", "tls 2", "tls 3"], "broadcasts: each message once, in order");
run.equal(heard.map((h) => h.serverOffset), seqs, "broadcasts carry the acked positions");

Object.assign(run.counts, { transport: socket.io.engine.transport.name, acked: seqs.length, heard: heard.length });
run.finish();
