// a. two-pages: two people chat, alternating 10 messages each typed in the
// form; each waits for the other's message before answering. Both pages end
// with the same 20 li in the same order, none pending.
import { Run, parseArgs, checkHistories } from "./lib.mjs";

const opts = parseArgs("two-pages");
const run = new Run(opts);
const [url] = opts.urls;
const ROUNDS = 10;

const a = await run.user("A");
const b = await run.user("B");
await a.open(url);
await b.open(url);

const expected = [];
for (let i = 1; i <= ROUNDS; i++) {
  for (const [from, to] of [
    [a, b],
    [b, a],
  ]) {
    const text = `${from.label} says ${i}`;
    await from.send(text, { keyboard: true });
    expected.push(text);
    // The sender sees it acknowledged, the other sees it arrive; then the other answers.
    if (!(await from.waitConfirmedText(text, `${from.label} sent`))) break;
    if (!(await to.waitConfirmedText(text, `${to.label} received`))) break;
  }
  if (run.failures.length) break;
}
run.counts.typed = a.typed.length + b.typed.length;
await a.waitSettled(expected.length, "A at the end");
await b.waitSettled(expected.length, "B at the end");
run.extra.messages = await checkHistories(run, [a, b], expected);
run.equal(run.extra.messages.length, 2 * ROUNDS, "20 messages in the history");
await run.finish();
