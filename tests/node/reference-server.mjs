// Reference implementation of the interop contract with the official Node
// `socket.io` server. Usage: node reference-server.mjs [--parser msgpack] PORT
// Prints "listening <port>" on stdout once ready.
import { createServer } from "node:http";
import { Server } from "socket.io";
import msgpackParser from "socket.io-msgpack-parser";

const args = process.argv.slice(2);
const port = Number(args.at(-1));
if (!Number.isInteger(port) || port < 0 || args.length === 0) {
  console.error("usage: node reference-server.mjs [--parser msgpack] PORT");
  process.exit(2);
}
const msgpack = args.includes("--parser") && args[args.indexOf("--parser") + 1] === "msgpack";

const httpServer = createServer();
const io = new Server(httpServer, {
  path: "/socket.io/",
  pingInterval: 1000,
  pingTimeout: 2000,
  maxHttpBufferSize: 10e6,
  ...(msgpack ? { parser: msgpackParser } : {}),
});

const welcome = (socket) =>
  socket.emit("welcome", { id: socket.id, nsp: socket.nsp.name, auth: socket.handshake.auth });

// "echo": ack with the same args if an ack is requested, else emit them back.
const onEcho = (socket) =>
  socket.on("echo", (...args) => {
    if (typeof args.at(-1) === "function") {
      const ack = args.pop();
      ack(...args);
    } else {
      socket.emit("echo", ...args);
    }
  });

io.of("/").on("connection", (socket) => {
  welcome(socket);
  onEcho(socket);
  socket.on("server-ack", (n, ack) => {
    socket.timeout(5000).emit("ask", n, (err, reply) => ack(err ? { error: "timeout" } : reply));
  });
  socket.on("join", (room, ack) => { socket.join(room); ack("joined"); });
  socket.on("leave", (room, ack) => { socket.leave(room); ack("left"); });
  socket.on("bcast", (room, payload, ack) => { io.to(room).emit("msg", payload); ack("sent"); });
  socket.on("bcast-others", (room, payload, ack) => { socket.to(room).emit("msg", payload); ack("sent"); });
  socket.on("gather", (room, ack) => {
    io.to(room).timeout(2000).emit("ask", 1, (err, replies) =>
      ack(err ? { error: err.message } : replies.sort()));
  });
  socket.on("disconnect-me", () => socket.disconnect());
  socket.on("drop-transport", () => socket.conn.close());
});

io.of("/custom").on("connection", (socket) => { welcome(socket); onEcho(socket); });

const admin = io.of("/admin");
admin.use((socket, next) => {
  if (socket.handshake.auth?.token !== "secret") {
    const err = new Error("unauthorized");
    err.data = { code: 401 };
    return next(err);
  }
  next();
});
admin.on("connection", (socket) => welcome(socket));

io.of(/^\/dyn-\d+$/).on("connection", (socket) => { welcome(socket); onEcho(socket); });

httpServer.on("error", (e) => { console.error(`reference-server: ${e.message}`); process.exit(1); });
httpServer.listen(port, "127.0.0.1", () => console.log(`listening ${httpServer.address().port}`));

for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, () => { io.close(); process.exit(0); });
}
