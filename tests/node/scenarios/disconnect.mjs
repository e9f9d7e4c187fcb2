// disconnect: "disconnect-me" makes the server disconnect the namespace
// socket; the client must see "io server disconnect" and NOT reconnect.
import { parseArgs, Run, once, sleep } from "../lib.mjs";

const opts = parseArgs("disconnect", { wait: 1500 });
const run = new Run(opts);

// Reconnection is enabled on purpose: the client must still not reconnect.
const socket = run.connect("/", { reconnection: true, reconnectionDelay: 100, reconnectionDelayMax: 100 });
let connects = 0, disconnects = 0, reconnectAttempts = 0;
socket.on("connect", () => { connects++; });
socket.on("disconnect", () => { disconnects++; });
socket.io.on("reconnect_attempt", () => { reconnectAttempts++; });
await once(socket, "welcome");
run.equal(await run.ack(socket, "echo", "echo", "ping"), "ping", "echo before disconnect");
await run.assertTransport(socket); // before the engine goes away

const gone = once(socket, "disconnect");
socket.emit("disconnect-me");
const [reason] = await gone;
run.equal(reason, "io server disconnect", "disconnect reason");
run.equal(socket.connected, false, "socket.connected after disconnect");

await sleep(opts.wait);
run.equal(connects, 1, `connect events (no reconnection within ${opts.wait} ms)`);
run.equal(disconnects, 1, "disconnect events");
run.equal(reconnectAttempts, 0, "manager reconnect attempts");
run.equal(socket.connected, false, "socket.connected at the end");
run.equal(socket.active, false, "socket.active at the end (no reconnection scheduled)");
Object.assign(run.counts, { connects, disconnects, reconnectAttempts });
run.finish();
