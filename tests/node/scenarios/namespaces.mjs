// namespaces: "/" and "/custom" multiplexed over one Manager, "/admin" with a
// middleware (rejected, then accepted after fixing auth), a dynamic namespace
// "/dyn-42", and an unknown namespace "/nope".
import { parseArgs, Run, once } from "../lib.mjs";

const opts = parseArgs("namespaces");
const run = new Run(opts);

async function welcomed(socket, nsp, auth, label) {
  const [w] = await once(socket, "welcome");
  run.count("welcomes");
  run.equal(w, { id: socket.id, nsp, auth }, `${label}: welcome payload`);
}

async function echoes(socket, label) {
  const reply = await run.ack(socket, `${label}: echo`, "echo", { from: label });
  run.equal(reply, { from: label }, `${label}: echo ack`);
  const back = once(socket, "echo");
  socket.emit("echo", label, 7);
  run.equal(await back, [label, 7], `${label}: echo event`);
  run.count("echoes");
}

async function rejected(socket, message, data, label) {
  const [err] = await once(socket, "connect_error");
  run.count("connectErrors");
  run.equal(err?.message, message, `${label}: connect_error message`);
  run.equal(err?.data, data, `${label}: connect_error data`);
  run.equal(socket.connected, false, `${label}: not connected`);
}

const main = run.connect("/", { auth: { token: "t1" } });
const custom = run.connect("/custom", { auth: { token: "c1" } });
run.check(main.io === custom.io, "/ and /custom share one Manager", true, false);
const mgr = main.io;

await Promise.all([welcomed(main, "/", { token: "t1" }, "/"), welcomed(custom, "/custom", { token: "c1" }, "/custom")]);
const engineId = mgr.engine.id;
run.check(main.id !== custom.id, "distinct socket ids per namespace", "different", [main.id, custom.id]);
await Promise.all([echoes(main, "/"), echoes(custom, "/custom")]);

// "/admin": wrong token -> middleware error; then fix auth and retry on the same socket.
// (Manager#socket() auto-connects; calling connect() again would send a second CONNECT.)
const admin = mgr.socket("/admin", { auth: { token: "wrong" } });
await rejected(admin, "unauthorized", { code: 401 }, "/admin wrong token");
admin.auth = { token: "secret" };
admin.connect();
await welcomed(admin, "/admin", { token: "secret" }, "/admin secret");
run.equal(admin.connected, true, "/admin connected");

const dyn = mgr.socket("/dyn-42", { auth: {} });
await welcomed(dyn, "/dyn-42", {}, "/dyn-42");
await echoes(dyn, "/dyn-42");

const nope = mgr.socket("/nope");
await rejected(nope, "Invalid namespace", undefined, "/nope");

// Namespace errors must not hurt the others: same engine session, "/" still works.
run.equal(mgr.engine.id, engineId, "engine session unchanged (no reconnection)");
run.equal([main.connected, custom.connected, admin.connected, dyn.connected], [true, true, true, true], "sockets still connected");
await echoes(main, "/ (after errors)");
run.sockets.push(admin, dyn, nope);
await run.assertTransport(main);
run.finish();
