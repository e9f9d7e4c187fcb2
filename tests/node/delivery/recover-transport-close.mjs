// recover-transport-close: A joins "r" and sets data, gets 5 live msgs, then
// the server closes its transport ("drop-transport"); B publishes N (50) msgs
// to "r" as soon as A is gone while A reconnects by itself (delay 50 ms).
// A must be recovered (socket.recovered, same id, rooms, data) and get the N
// msgs exactly once, in order, after the 5 it had.
import {
  parseArgs, Run, once, until, client, must, mustConnect, welcomes, Inbox, waitLength,
  publish, probe, checkExact, sameSet,
} from "./common.mjs";

const opts = parseArgs("recover-transport-close", { count: 50 });
const run = new Run(opts);

const a = client(run, "/", { reconnection: true, reconnectionDelay: 50, reconnectionDelayMax: 50, randomizationFactor: 0 });
const b = client(run, "/");
const hello = welcomes(a);
const inbox = new Inbox(a);
let connects = 0, disconnects = 0;
a.on("connect", () => connects++);
a.on("disconnect", () => disconnects++);
await mustConnect(run, a, "A connects");
await mustConnect(run, b, "B connects");

const rooms = await run.ack(a, "A join r", "join", "r");
run.check(Array.isArray(rooms) && rooms.includes("r"), "join ack lists r", "[..., 'r']", rooms);
const data = { user: "alice", n: 42, nested: { list: [1, 2, 3] } };
run.equal(await run.ack(a, "A set-data", "set-data", data), "ok", "set-data ack");

const before = await publish(run, b, "r", "live", 5);
run.check(await waitLength(inbox, 5), "A gets the 5 live msgs", 5, inbox.length);
const id = a.id;
const offset = a._lastOffset;
run.equal(offset, inbox.items.at(-1)?.offset, "the client holds the last offset it got");

const gone = once(a, "disconnect", 10000);
const back = once(a, "connect", 15000); // the automatic reconnection
a.emit("drop-transport");
const [reason] = await must(run, gone, "A disconnected by drop-transport");
run.equal(reason, "transport close", "disconnect reason");
const missed = await publish(run, b, "r", "gap", opts.count);
await must(run, back, "A reconnects by itself");

run.equal(a.recovered, true, "socket.recovered after the reconnection");
run.equal(a.id, id, "same socket id after recovery");
run.check(await waitLength(inbox, 5 + opts.count), `A gets the ${opts.count} missed msgs`, 5 + opts.count, inbox.length);
const last = await probe(run, b, "r", inbox, "probe");
checkExact(run, "A's msgs", inbox.items, [...before, ...missed, last]);

// Rooms and data came back with the session.
run.check(await until(() => hello.length >= 2, 5000), "a welcome after the reconnection", 2, hello.length);
const w = hello[1];
run.equal(w?.recovered, true, "welcome.recovered after the reconnection");
run.equal(w?.id, id, "welcome.id after the reconnection");
run.check(sameSet(w?.rooms, rooms), "welcome.rooms after recovery = rooms before", rooms, w?.rooms);
const roomsNow = await run.ack(a, "A leave (nothing)", "leave", "not-a-room");
run.check(sameSet(roomsNow, rooms), "rooms after recovery = rooms before", rooms, roomsNow);
run.equal(await run.ack(a, "A get-data", "get-data"), data, "data after recovery");

run.equal(connects, 2, "connect events");
run.equal(disconnects, 1, "disconnect events");
Object.assign(run.counts, { published: before.length + missed.length + 1, received: inbox.length, missedWhileAway: missed.length, connects });
run.finish();
