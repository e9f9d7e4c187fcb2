// catch-up: the chat tutorial's client connects with --serverOffset (0: from
// the start) and must get exactly `<prefix> <i>` for i = --first..--count, once
// each, in order; then it sends a probe with the tutorial's emit and checks
// that the probe is the next and last message it gets (nothing was replayed
// twice, nothing arrived late).
//
// --then names one more message stored after those (another script's probe).
//
//   node chat/catch-up.mjs --url http://127.0.0.1:PORT --transport websocket --count 200 [--first 1] [--prefix message] [--then TEXT] [--serverOffset 0]
import { parseArgs, Run, until, tutorialClient, mustConnect, waitLength, checkExact, checkIncreasing } from "./common.mjs";

const opts = parseArgs("chat-catch-up", { transport: "websocket", count: 200, first: 1, prefix: "message", then: "", serverOffset: 0, timeout: 60000 });
const run = new Run(opts);
const wanted = [];
for (let i = opts.first; i <= opts.count; i++) wanted.push(`${opts.prefix} ${i}`);
if (opts.then) wanted.push(opts.then);

const c = tutorialClient(run, { serverOffset: opts.serverOffset });
await mustConnect(run, c.socket, `connect with serverOffset ${opts.serverOffset}`);
run.check(await waitLength(c.messages, wanted.length), `catches up ${wanted.length}`, wanted.length, c.messages.length);
const probe = `probe ${Date.now()}`;
c.send(probe);
run.check(await until(() => c.messages.includes(probe), 10000), "the probe comes back");
checkExact(run, "caught up", c.messages, [...wanted, probe]);
checkIncreasing(run, "caught up", c.offsets);

Object.assign(run.counts, {
  received: c.messages.length,
  first: c.offsets[0],
  last: c.offsets[wanted.length - 1],
  probe: c.offsets[c.messages.indexOf(probe)],
});
run.finish();
