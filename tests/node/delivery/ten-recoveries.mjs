// ten-recoveries: A joins "t", gets 5 live msgs, then N (10) times: the server
// drops A's transport, B publishes 10 msgs as soon as A is gone, A reconnects
// by itself (delay 50 ms). Every reconnection is recovered with the same id,
// and A gets every msg exactly once, in order.
import {
  parseArgs, Run, once, client, must, mustConnect, Inbox, waitLength, publish, probe, checkExact,
} from "./common.mjs";

const opts = parseArgs("ten-recoveries", { count: 10 });
const run = new Run(opts);
const PER_ROUND = 10;

const a = client(run, "/", { reconnection: true, reconnectionDelay: 50, reconnectionDelayMax: 50, randomizationFactor: 0 });
const b = client(run, "/");
const inbox = new Inbox(a);
await mustConnect(run, a, "A connects");
await mustConnect(run, b, "B connects");
await run.ack(a, "A join t", "join", "t");
const expected = await publish(run, b, "t", "live", 5);
run.check(await waitLength(inbox, 5), "A gets the 5 live msgs", 5, inbox.length);
const id = a.id;

let recovered = 0;
const reasons = [];
for (let k = 1; k <= opts.count; k++) {
  const gone = once(a, "disconnect", 10000);
  const back = once(a, "connect", 15000);
  a.emit("drop-transport");
  const [reason] = await must(run, gone, `round ${k}: A dropped`);
  reasons.push(reason);
  expected.push(...await publish(run, b, "t", `round${k}`, PER_ROUND));
  await must(run, back, `round ${k}: A reconnects by itself`);
  if (run.check(a.recovered === true, `round ${k}: socket.recovered`, true, a.recovered)) recovered++;
  run.equal(a.id, id, `round ${k}: same socket id`);
  run.check(await waitLength(inbox, expected.length), `round ${k}: A has every msg so far`, expected.length, inbox.length);
}
expected.push(await probe(run, b, "t", inbox, "probe"));
checkExact(run, "A's msgs over all rounds", inbox.items, expected);
run.equal(reasons, Array(opts.count).fill("transport close"), "disconnect reasons");

Object.assign(run.counts, { rounds: opts.count, recovered, published: expected.length, received: inbox.length });
run.finish();
