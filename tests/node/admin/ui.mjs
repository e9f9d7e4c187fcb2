// admin/ui: the server side of the Socket.IO Admin UI (namespace /admin),
// driven with the official socket.io-client as the UI (npm
// @socket.io/admin-ui 0.5) drives it. crates/tether-server/tests/admin.rs
// runs it against `tether serve --admin-user U --admin-password P`.
//
// --mode full:
//   1. a wrong password gets CONNECT_ERROR "invalid credentials" (what the
//      UI tests to say so);
//   2. a chat client connects and joins room "blue" ("join room");
//   3. the right password gets `session`, `config` (the actions in
//      supportedFeatures) and `all_sockets` listing the chat client with
//      its rooms (its own id, "room:blue"), and a `server_stats` with the
//      namespaces and Tether's delivery figures;
//   4. a second chat client connecting is told (`socket_connected`), its
//      join too (`room_joined`);
//   5. the session id logs in again without the password;
//   6. `join` makes the first client join "room:red" (room_joined), `leave`
//      takes it out (room_left); `_disconnect` (filter: its id) disconnects
//      it: the client sees "io server disconnect" and the UI
//      `socket_disconnected`; the next server_stats counts one chat socket less.
// --mode read-only: the right password logs in, supportedFeatures is empty,
//   and `_disconnect` is refused (ack {error: "read-only"}): the chat client
//   stays connected (it answers a request after the refusal).
// --mode off: /admin is an unknown namespace ("Invalid namespace").
// --mode cluster --url2 URL2 (a second node of the same cluster): a chat
//   client on node 2 is in the `all_sockets` of the UI on node 1, with its
//   rooms; both nodes send `server_stats` (two serverIds); `_disconnect` from
//   node 1 disconnects the client on node 2.
//
//   node admin/ui.mjs --url URL --user U --password P --mode full|read-only|off
import { parseArgs, Run, io, until } from "../lib.mjs";

const opts = parseArgs("admin-ui", { transport: "websocket", user: "", password: "", mode: "full", url2: "" });
const run = new Run(opts);
const base = opts.url.replace(/\/+$/, "");
const WAIT = 10000;

// An admin client as the UI makes it (forceNew, no reconnection), recording
// every event it gets.
function admin(auth) {
  const socket = io(base + "/admin", { ...run.socketOptions(), forceNew: true, auth });
  run.sockets.push(socket);
  const events = [];
  socket.onAny((event, ...args) => events.push({ event, args }));
  const errors = [];
  socket.on("connect_error", (e) => errors.push(e.message));
  return { socket, events, errors, of: (name) => events.filter((e) => e.event === name) };
}

function chat(url = base) {
  const socket = io(url, { ...run.socketOptions(), forceNew: true, auth: { serverOffset: 0 } });
  run.sockets.push(socket);
  const disconnects = [];
  socket.on("disconnect", (reason) => disconnects.push(reason));
  return { socket, disconnects };
}

async function connected(c, label) {
  if (!(await until(() => c.socket.connected || c.errors?.length > 0, WAIT)) || !c.socket.connected) {
    run.finish(`${label}: not connected: ${JSON.stringify(c.errors ?? [])}`);
    await new Promise(() => {});
  }
}

async function refusedWith(c, label) {
  const answered = await until(() => c.errors.length > 0 || c.socket.connected, WAIT);
  run.check(answered && !c.socket.connected, `${label}: refused`, "connect_error", c.socket.connected ? "connected" : "nothing");
  return c.errors[0];
}

if (opts.mode === "cluster") {
  const far = chat(opts.url2.replace(/\/+$/, ""));
  await connected(far, "chat client on node 2");
  const farId = far.socket.id;
  await run.ack(far.socket, "join room", "join room", "blue");
  const a = admin({ username: opts.user, password: opts.password });
  await connected(a, "admin on node 1");
  run.check(await until(() => a.of("all_sockets").length > 0, WAIT), "all_sockets arrives", "all_sockets", a.events.map((e) => e.event));
  const listed = a.of("all_sockets")[0].args[0].find((s) => s.id === farId);
  run.equal([...(listed?.rooms ?? [])].sort(), [farId, "room:blue"].sort(), "node 2's client, with its rooms, in node 1's all_sockets");
  const servers = () => new Set(a.of("server_stats").map((e) => e.args[0].serverId));
  run.check(await until(() => servers().size >= 2, WAIT), "server_stats from both nodes", 2, [...servers()]);
  const r = await run.ack(a.socket, "_disconnect", "_disconnect", "/", false, farId);
  run.equal(r, { ok: 1 }, "_disconnect from node 1: one socket");
  run.check(await until(() => far.disconnects.length > 0, WAIT), "node 2's client is disconnected", "io server disconnect", far.disconnects);
  run.equal(far.disconnects[0], "io server disconnect", "its disconnect reason");
  run.check(await until(() => a.of("socket_disconnected").some((e) => e.args[1] === farId), WAIT), "node 2 tells node 1's UI", "socket_disconnected", a.of("socket_disconnected"));
  run.finish();
} else if (opts.mode === "off") {
  const a = admin({ username: opts.user, password: opts.password });
  run.equal(await refusedWith(a, "/admin without the settings"), "Invalid namespace", "/admin is an unknown namespace");
  run.finish();
} else if (opts.mode === "read-only") {
  const c = chat();
  await connected(c, "chat client");
  const a = admin({ username: opts.user, password: opts.password });
  await connected(a, "admin");
  run.check(await until(() => a.of("config").length > 0, WAIT), "config arrives", "config", a.events.map((e) => e.event));
  run.equal(a.of("config")[0]?.args[0], { supportedFeatures: [] }, "read-only: no action is supported");
  const answer = await run.ack(a.socket, "_disconnect", "_disconnect", "/", false, c.socket.id);
  run.equal(answer, { error: "read-only" }, "read-only: _disconnect is refused");
  const limits = await run.ack(c.socket, "chat limits", "chat limits");
  run.check(limits !== undefined && c.socket.connected, "the chat client is still connected after the refusal", true, c.disconnects);
  run.finish();
} else {
  // 1. A wrong password.
  const bad = admin({ username: opts.user, password: opts.password + "x" });
  run.equal(await refusedWith(bad, "wrong password"), "invalid credentials", "a wrong password: invalid credentials");
  const nobody = admin({ username: opts.user + "x", password: opts.password });
  run.equal(await refusedWith(nobody, "wrong user"), "invalid credentials", "a wrong user: invalid credentials");
  bad.socket.disconnect();
  nobody.socket.disconnect();

  // 2. A chat client in room blue.
  const alice = chat();
  await connected(alice, "alice");
  const aliceId = alice.socket.id;
  const joined = await run.ack(alice.socket, "join room", "join room", "blue");
  run.equal(joined, { room: "blue" }, "alice joins blue");

  // 3. The right password.
  const a = admin({ username: opts.user, password: opts.password });
  await connected(a, "admin");
  run.check(await until(() => a.of("all_sockets").length > 0 && a.of("server_stats").length > 0, WAIT),
    "session, config, all_sockets and server_stats arrive", ["session", "config", "all_sockets", "server_stats"], a.events.map((e) => e.event));
  const session = a.of("session")[0]?.args[0];
  run.check(typeof session === "string" && session.length >= 16, "a session id", "a string", session);
  const features = a.of("config")[0]?.args[0]?.supportedFeatures ?? [];
  for (const f of ["EMIT", "JOIN", "LEAVE", "DISCONNECT"]) run.check(features.includes(f), `feature ${f}`, f, features);
  run.check(!features.includes("ALL_EVENTS") && !features.includes("AGGREGATED_EVENTS"), "no feature left out is claimed", "no ALL_EVENTS", features);
  const listed = a.of("all_sockets")[0].args[0];
  const mine = listed.find((s) => s.id === alice.socket.id);
  run.check(mine, "all_sockets lists alice", alice.socket.id, listed.map((s) => s.id));
  run.equal(mine?.nsp, "/", "alice's namespace");
  run.equal([...(mine?.rooms ?? [])].sort(), [alice.socket.id, "room:blue"].sort(), "alice's rooms");
  run.equal(mine?.transport, "websocket", "alice's transport");
  run.check(typeof mine?.handshake?.issued === "number" && mine?.handshake?.auth === undefined && mine?.handshake?.address === "127.0.0.1",
    "alice's handshake: issued, address, no auth", "issued + address", mine?.handshake);
  run.check(listed.some((s) => s.nsp === "/admin" && s.id === a.socket.id), "all_sockets lists the admin socket too", a.socket.id, listed.map((s) => s.nsp));
  const stats = a.of("server_stats")[0].args[0];
  run.check(typeof stats.serverId === "string" && stats.pid > 0 && stats.uptime >= 0 && stats.clientsCount >= 2, "server_stats: id, pid, uptime, clients", "fields", stats);
  run.check(stats.namespaces.some((n) => n.name === "/" && n.socketsCount === 1), "server_stats: one socket in /", 1, stats.namespaces);
  run.check(stats.tether && "lastPosition" in stats.tether && "recoveries" in stats.tether && "replayedEvents" in stats.tether,
    "server_stats: Tether's delivery figures", "tether", stats.tether);

  // 4. Bob connects and joins green: told live.
  const bob = chat();
  await connected(bob, "bob");
  run.check(await until(() => a.of("socket_connected").some((e) => e.args[0].id === bob.socket.id), WAIT), "socket_connected for bob", bob.socket.id, a.of("socket_connected"));
  await run.ack(bob.socket, "join room", "join room", "green");
  const roomJoined = (room, id) => a.of("room_joined").some((e) => e.args[0] === "/" && e.args[1] === room && e.args[2] === id);
  run.check(await until(() => roomJoined("room:green", bob.socket.id), WAIT), "room_joined for bob in green", ["/", "room:green", bob.socket.id], a.of("room_joined"));

  // 5. The session id logs in again.
  const again = admin({ sessionId: session });
  await connected(again, "admin with the session id");
  run.check(await until(() => again.of("all_sockets").length > 0, WAIT), "all_sockets with the session id", "all_sockets", again.events.map((e) => e.event));
  run.equal(again.of("session").length, 0, "no new session for a session login");
  again.socket.disconnect();

  // 6. The actions.
  let r = await run.ack(a.socket, "join", "join", "/", "room:red", alice.socket.id);
  run.equal(r, { ok: 1 }, "join: one socket");
  run.check(await until(() => roomJoined("room:red", alice.socket.id), WAIT), "room_joined for alice in red", "room_joined", a.of("room_joined"));
  r = await run.ack(a.socket, "leave", "leave", "/", "room:red", alice.socket.id);
  run.equal(r, { ok: 1 }, "leave: one socket");
  run.check(await until(() => a.of("room_left").some((e) => e.args[1] === "room:red" && e.args[2] === alice.socket.id), WAIT), "room_left for alice", "room_left", a.of("room_left"));
  const counts = (n) => (e) => e.args[0].namespaces.some((ns) => ns.name === "/" && ns.socketsCount === n);
  run.check(await until(() => counts(2)(a.of("server_stats").at(-1)), WAIT), "server_stats: two chat sockets", 2, a.of("server_stats").at(-1)?.args[0]?.namespaces);
  const statsBefore = a.of("server_stats").length;
  r = await run.ack(a.socket, "_disconnect", "_disconnect", "/", false, alice.socket.id);
  run.equal(r, { ok: 1 }, "_disconnect: one socket");
  run.check(await until(() => alice.disconnects.length > 0, WAIT), "alice is disconnected", "io server disconnect", alice.disconnects);
  run.equal(alice.disconnects[0], "io server disconnect", "alice's disconnect reason");
  run.check(await until(() => a.of("socket_disconnected").some((e) => e.args[1] === aliceId), WAIT), "socket_disconnected for alice", "socket_disconnected", a.of("socket_disconnected"));
  const oneLeft = () => a.of("server_stats").slice(statsBefore).some(counts(1));
  run.check(await until(oneLeft, WAIT), "a later server_stats counts one chat socket (bob)", 1, a.of("server_stats").at(-1)?.args[0]?.namespaces);
  run.count("sockets_listed", listed.length);
  run.finish();
}
