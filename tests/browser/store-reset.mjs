// e. store-reset: A and B chat; then the harness kills the server, deletes
// its store and starts it again on the same port with an empty store (a new
// life: positions start over at 1, a new epoch). The pages reconnect by
// themselves with their old offset and epoch; B types after the reset. Both
// pages must show B's new messages (their positions are below the pages' old
// offset) and nothing of the old life: the page starts over when messages of
// a new epoch arrive, and the server sends the new life from its start.
//
// Talks to the harness on stdio: prints `READY reset` (the harness answers
// `KILLED`, then `RESTARTED` once the new server answers /healthz).
import { Run, parseArgs, checkHistories } from "./lib.mjs";

const opts = parseArgs("store-reset");
const run = new Run(opts);
const [url] = opts.urls;
const BEFORE = 4; // rounds of A then B before the reset
const AFTER = 3; // messages B types after it

const a = await run.user("A");
const b = await run.user("B");
await a.open(url);
await b.open(url);

for (let i = 1; i <= BEFORE && !run.failures.length; i++) {
  for (const [from, to] of [
    [a, b],
    [b, a],
  ]) {
    const text = `${from.label} before the reset ${i}`;
    await from.send(text);
    if (!(await from.waitConfirmedText(text, `${from.label} sent`))) break;
    if (!(await to.waitConfirmedText(text, `${to.label} received`))) break;
  }
}
run.counts.A_shown_before = (await a.list()).length;

console.log("READY reset");
run.check((await run.line("KILLED", 30_000)) !== null, "the harness killed the server (KILLED on stdin)");
run.check((await run.line("RESTARTED", 60_000)) !== null, "the harness restarted it on an empty store (RESTARTED on stdin)");
await a.waitStatus("connected", "A reconnected after the reset");
await b.waitStatus("connected", "B reconnected after the reset");

const after = [];
for (let i = 1; i <= AFTER; i++) {
  const text = `B after the reset ${i}`;
  after.push(text);
  await b.send(text);
  await b.waitConfirmedText(text, "B sent after the reset");
}
await a.waitSettled(AFTER, "A at the end");
await b.waitSettled(AFTER, "B at the end");
run.extra.messages = await checkHistories(run, [a, b], after);
run.equal(run.extra.messages.map(([offset]) => offset), [1, 2, 3], "positions of the new life, from 1");
await run.finish();
