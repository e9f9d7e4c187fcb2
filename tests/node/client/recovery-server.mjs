// A Node `socket.io` 4.8.1 server with connectionStateRecovery on, for the
// Rust client's tests (crates/tether-client/tests/node_recovery.rs).
// Usage: node client/recovery-server.mjs PORT   (from tests/node; prints "listening <port>")
//
// Namespace "/":
// - on connection: emit "welcome" {id, recovered} (stored, so with an offset)
// - join(room, ack) -> ack("joined")
// - publish(room, payload, ack): io.to(room).emit("msg", payload), then ack("sent")
// - drop-transport: socket.conn.close()
// - late(key, delayMs, ack): counts the tries of `key`; the first try is acked
//   after delayMs (late), the next ones at once; ack({key, try})
// - tries(key, ack) -> ack(number of tries of key received)
// - order(ack) -> ack([keys of "late" in order of their first try])
import { createServer } from "node:http";
import { Server } from "socket.io";

const port = Number(process.argv.at(-1));
if (!Number.isInteger(port) || port < 0 || process.argv.length < 3) {
  console.error("usage: node client/recovery-server.mjs PORT");
  process.exit(2);
}

const httpServer = createServer();
const io = new Server(httpServer, {
  path: "/socket.io/",
  pingInterval: 1000,
  pingTimeout: 2000,
  connectionStateRecovery: { maxDisconnectionDuration: 60000, skipMiddlewares: true },
});

const tries = new Map();
const order = [];

io.on("connection", (socket) => {
  socket.emit("welcome", { id: socket.id, recovered: socket.recovered });
  socket.on("join", (room, ack) => { socket.join(room); ack("joined"); });
  socket.on("publish", (room, payload, ack) => { io.to(room).emit("msg", payload); ack("sent"); });
  socket.on("drop-transport", () => socket.conn.close());
  socket.on("late", (key, delayMs, ack) => {
    const n = (tries.get(key) ?? 0) + 1;
    tries.set(key, n);
    if (n === 1) {
      order.push(key);
      setTimeout(() => ack({ key, try: n }), delayMs);
    } else {
      ack({ key, try: n });
    }
  });
  socket.on("tries", (key, ack) => ack(tries.get(key) ?? 0));
  socket.on("order", (ack) => ack(order));
});

httpServer.on("error", (e) => { console.error(`recovery-server: ${e.message}`); process.exit(1); });
httpServer.listen(port, "127.0.0.1", () => console.log(`listening ${httpServer.address().port}`));
for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, () => { io.close(); process.exit(0); });
}
