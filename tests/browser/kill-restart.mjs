// d. kill-restart: A and B chat; then A keeps typing while the harness
// kill -9's the server and starts it again on the same store file and the
// same port; the pages reconnect by themselves. B answers after the restart.
// Both pages end with the same complete history: every typed message once,
// in the order of the server's positions, each person's messages in the
// order they were typed.
//
// Talks to the harness on stdio: prints `READY kill` (the harness kills the
// server with SIGKILL and answers `KILLED`), keeps typing, and waits for
// `RESTARTED` (the server answers /healthz again on the same port).
import { Run, parseArgs, checkHistories } from "./lib.mjs";

const opts = parseArgs("kill-restart");
const run = new Run(opts);
const [url] = opts.urls;
const WARMUP = 5; // rounds of A then B before the kill
const BURST = 40; // messages A types around the kill
const KILL_AFTER = 10; // of them, typed before asking for the kill
const TYPE_EVERY_MS = 50;
const AFTER = 5; // messages B types after the restart

const a = await run.user("A");
const b = await run.user("B");
await a.open(url);
await b.open(url);

for (let i = 1; i <= WARMUP && !run.failures.length; i++) {
  for (const [from, to] of [
    [a, b],
    [b, a],
  ]) {
    const text = `${from.label} before the crash ${i}`;
    await from.send(text);
    if (!(await from.waitConfirmedText(text, `${from.label} sent`))) break;
    if (!(await to.waitConfirmedText(text, `${to.label} received`))) break;
  }
}

// A keeps typing, one message every TYPE_EVERY_MS, while the server dies.
let killed = false;
let typedAfterKill = 0;
let typedWhileDown = 0; // typed while A's page was not connected
let maxPending = 0;
let killAnswer = null;
for (let i = 1; i <= BURST; i++) {
  await a.send(`A keeps typing ${String(i).padStart(2, "0")}`);
  if (killed) {
    typedAfterKill++;
    if ((await a.status()) !== "connected") typedWhileDown++;
    maxPending = Math.max(maxPending, (await a.list()).filter((m) => m.pending).length);
  }
  if (i === KILL_AFTER) {
    console.log("READY kill");
    killAnswer = run.line("KILLED", 30_000).then((l) => {
      killed = l !== null;
      return l;
    });
  }
  await new Promise((r) => setTimeout(r, TYPE_EVERY_MS));
}
run.check((await killAnswer) !== null, "the harness killed the server (KILLED on stdin)");
run.counts.A_typed_after_kill = typedAfterKill;
run.counts.A_typed_while_disconnected = typedWhileDown;
run.counts.A_max_pending_after_kill = maxPending;
run.check(typedWhileDown > 0, "A kept typing while its page was disconnected", "> 0", typedWhileDown);
run.check((await run.line("RESTARTED", 60_000)) !== null, "the harness restarted the server (RESTARTED on stdin)");
run.counts.A_pending_when_typing_ended = (await a.list()).filter((m) => m.pending).length;

for (let i = 1; i <= AFTER; i++) await b.send(`B after the restart ${i}`);

const total = 2 * WARMUP + BURST + AFTER;
run.counts.typed = a.typed.length + b.typed.length;
await a.waitSettled(total, "A at the end");
await b.waitSettled(total, "B at the end");
run.extra.messages = await checkHistories(run, [a, b], null);
const texts = run.extra.messages.map(([, text]) => text);
run.equal([...texts].sort(), [...a.typed, ...b.typed].sort(), "every typed message shown once");
for (const u of [a, b]) {
  const own = new Set(u.typed);
  run.equal(texts.filter((t) => own.has(t)), u.typed, `${u.label}'s messages in the order ${u.label} typed them`);
}
run.equal(run.extra.messages.length, total, `${total} messages in the history`);
for (const u of [a, b]) {
  const states = await u.states();
  run.extra[`${u.label}_states`] = states;
  const lost = states.findIndex((s) => s !== "connected" && s !== "connecting");
  run.check(
    lost > 0 && states.slice(lost).includes("connected"),
    `${u.label} saw the connection drop and came back by itself`,
    "connected, reconnecting…, connected",
    states,
  );
}
await run.finish();
