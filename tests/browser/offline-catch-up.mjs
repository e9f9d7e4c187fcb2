// b. offline-catch-up: A goes offline (the browser's network switch), B sends
// 50 messages; A sees none of them while offline, comes back online and then
// shows all 50, each once, in order, the same as B.
import { Run, parseArgs, checkHistories } from "./lib.mjs";

const opts = parseArgs("offline-catch-up");
const run = new Run(opts);
const [url] = opts.urls;
const COUNT = 50;

const a = await run.user("A");
const b = await run.user("B");
await a.open(url);
await b.open(url);

await a.setOffline(true);
await a.waitNotConnected("A goes offline");
run.equal(await a.status(), "offline", "A's status says offline");

const expected = [];
for (let i = 1; i <= COUNT; i++) {
  const text = `B message ${String(i).padStart(2, "0")} while A is away`;
  await b.send(text);
  expected.push(text);
}
run.counts.typed = b.typed.length;
await b.waitSettled(COUNT, "B after sending");
const whileOffline = await a.list();
run.counts.A_shown_while_offline = whileOffline.length;
run.equal(whileOffline.length, 0, "A shows nothing while offline");

await a.setOffline(false);
await a.waitStatus("connected", "A reconnects by itself");
await a.waitSettled(COUNT, "A after coming back");
run.extra.messages = await checkHistories(run, [a, b], expected);
run.equal(run.extra.messages.length, COUNT, `${COUNT} messages in the history`);
run.extra.a_states = await a.states();
await run.finish();
