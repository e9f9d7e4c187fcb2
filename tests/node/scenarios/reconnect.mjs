// reconnect: "drop-transport" makes the server close the Engine.IO transport;
// the client sees "transport close", reconnects by itself, gets a new welcome
// and echo-with-ack works again. Repeated 3 times => exactly 4 connects.
import { parseArgs, Run, once } from "../lib.mjs";

const opts = parseArgs("reconnect", { count: 3 });
const run = new Run(opts);

const socket = run.connect("/", {
  reconnection: true, reconnectionDelay: 100, reconnectionDelayMax: 100, auth: { token: "r" },
});
let connects = 0, disconnects = 0, welcomes = 0;
const reasons = [], ids = [];
socket.on("connect", () => { connects++; });
socket.on("disconnect", (reason) => { disconnects++; reasons.push(reason); });

async function session(k) {
  const [w] = await once(socket, "welcome");
  welcomes++;
  ids.push(socket.id);
  run.equal(w, { id: socket.id, nsp: "/", auth: { token: "r" } }, `session ${k}: welcome payload`);
  run.equal(await run.ack(socket, `session ${k}: echo`, "echo", { k }), { k }, `session ${k}: echo ack`);
  await run.assertTransport(socket, `session ${k}`);
}

await session(0);
for (let k = 1; k <= opts.count; k++) {
  const gone = once(socket, "disconnect");
  const back = session(k); // listen for the next welcome before it can arrive
  socket.emit("drop-transport");
  const [reason] = await gone;
  run.equal(reason, "transport close", `drop ${k}: disconnect reason`);
  await back;
}
run.equal(connects, opts.count + 1, "connect events");
run.equal(disconnects, opts.count, "disconnect events");
run.equal(reasons, Array(opts.count).fill("transport close"), "disconnect reasons");
run.equal(new Set(ids).size, ids.length, "a new socket id for every session");
Object.assign(run.counts, { connects, disconnects, welcomes });
run.finish();
