// The benchmark contract (shared notes 1.2) on the Node `socket.io` 4.8.1
// server, the baseline Tether's bench_server is compared with:
//   node bench/node-bench-server.mjs [--durable] PORT
// --durable turns Socket.IO's own connection state recovery on (in memory).
import { createRequire } from "node:module";
import { createServer } from "node:http";
const require = createRequire(new URL("../tests/node/package.json", import.meta.url));
const { Server } = require("socket.io");

const args = process.argv.slice(2);
const port = Number(args[args.length - 1]);
const durable = args.includes("--durable");
const http = createServer();
const io = new Server(http, {
  transports: ["websocket"],
  ...(durable ? { connectionStateRecovery: { maxDisconnectionDuration: 120000 } } : {}),
});
io.on("connection", (socket) => {
  socket.on("echo", (...a) => {
    const ack = typeof a[a.length - 1] === "function" ? a.pop() : null;
    if (ack) ack(...a); else socket.emit("echo", ...a);
  });
  socket.on("join", (room, ack) => { socket.join(room); if (typeof ack === "function") ack(); });
  socket.on("bcast", (room, payload, ack) => { io.to(room).emit("msg", payload); if (typeof ack === "function") ack(); });
  // Node has no store: "store" is the broadcast with an ack it offers (in
  // memory), the baseline of the durable ingest figure.
  socket.on("store", (room, payload, ack) => { io.to(room).emit("msg", payload); if (typeof ack === "function") ack({}); });
});
http.listen(port, "127.0.0.1", () => console.log(`listening ${http.address().port}`));
