// server-offset-catch-up (the chat tutorial's path, no recovery): P sends 30
// "chat message" (acked {seq}); a NEW client C (no pid) connects with
// auth {serverOffset: <seq acked for message 10>} and must get messages 11..30
// exactly once, in order, then live ones (31..35).
import {
  parseArgs, Run, until, client, mustConnect, Inbox, waitLength, checkExact, welcomes,
} from "./common.mjs";

const opts = parseArgs("server-offset-catch-up", { count: 30 });
const run = new Run(opts);
const N = opts.count;
const FROM = 10; // C has seen messages 1..FROM

const p = client(run, "/");
await mustConnect(run, p, "P connects");
const sent = [];
async function send(n) {
  const reply = await run.ack(p, `chat message ${n}`, "chat message", `message ${n}`, `${p.id}-${n}`);
  run.check(Number.isInteger(reply?.seq) && reply.duplicate === false, `message ${n}: stored`, "{seq, duplicate: false}", reply);
  sent.push({ key: `message ${n}`, seq: reply?.seq });
}
for (let n = 1; n <= N; n++) await send(n);

const c = client(run, "/", { auth: { serverOffset: sent[FROM - 1].seq } });
const hello = welcomes(c);
const inbox = new Inbox(c, "chat message");
await mustConnect(run, c, "C connects with serverOffset");
run.equal(c.recovered, false, "C is a new session (not recovered)");
run.check(await waitLength(inbox, N - FROM), `C catches up ${N - FROM} messages`, N - FROM, inbox.length);
for (let n = N + 1; n <= N + 5; n++) await send(n);
run.check(await waitLength(inbox, N - FROM + 5), "C gets the live messages", N - FROM + 5, inbox.length);
checkExact(run, "C's messages", inbox.items, sent.slice(FROM));
run.check(await until(() => hello.length >= 1, 5000), "C gets a welcome", 1, hello.length);
run.equal(hello[0]?.recovered, false, "welcome.recovered");

Object.assign(run.counts, { published: sent.length, serverOffset: sent[FROM - 1].seq, caughtUp: N - FROM, received: inbox.length });
run.finish();
