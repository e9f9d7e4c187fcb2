// after-reset: the Socket.IO chat tutorial's own client holding a
// serverOffset from another life of the store (it was reset: positions start
// over) against `tether serve` (tests/health.rs). Its offset is beyond the
// store's last position: it must get every message of this life, in order,
// then live ones (before: none of the first `offset` new positions).
//
//   node chat/after-reset.mjs --url http://127.0.0.1:PORT --transport websocket --offset 50 --expect 3
import { parseArgs, Run, tutorialClient, mustConnect, waitLength } from "./common.mjs";

const opts = parseArgs("chat-after-reset", { transport: "websocket", offset: 50, expect: 3, timeout: 30000 });
const run = new Run(opts);
const c = tutorialClient(run, { serverOffset: opts.offset });
await mustConnect(run, c.socket, "connects with a serverOffset of another life");
run.check(await waitLength(c.messages, opts.expect), `gets the ${opts.expect} messages of this life`, opts.expect, c.messages.length);
c.send("after the reset");
run.check(await waitLength(c.messages, opts.expect + 1), "gets its own message, live", opts.expect + 1, c.messages.length);
run.equal(c.offsets, Array.from({ length: opts.expect + 1 }, (_, i) => i + 1), "serverOffsets of this life, from 1");
run.equal(c.messages[opts.expect], "after the reset", "its own message last");
Object.assign(run.counts, { received: c.messages.length });
run.finish();
