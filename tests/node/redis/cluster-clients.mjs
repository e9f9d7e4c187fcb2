// A fleet of official socket.io-client clients driven by tests/cluster_nodes.rs:
// `--per-node N` clients on each node of `--nodes URL,URL,...` (named A0, A1,
// B0, ... by node letter and index), WebSocket only, each a Manager of its own.
//
// It reports on stdout, one JSON object per line:
//   {"kind":"connect","client":"A0","id":"<socket id>"}
//   {"kind":"event","client":"A0","event":"news","args":[...]}   (any event)
//   {"kind":"disconnect","client":"A0","reason":"io server disconnect"}
//   {"kind":"done","client":"A0","cmd":"join","reply":[...]}   (a command's ack)
//   {"kind":"ready"}                                             (all connected)
// An "ask" event with an ack request is acknowledged with the client's name,
// unless the client is in `--silent A0,B1` (then it never answers).
//
// Commands on stdin, one per line: `join CLIENT ROOM`, `set-data CLIENT JSON`,
// `quit`. The harness waits for each command's "done" line.
//
// node redis/cluster-clients.mjs --nodes URL,URL,URL --per-node 2 [--silent A0,C1]
import { createInterface } from "node:readline";
import { io } from "../lib.mjs";

const opts = { nodes: "", "per-node": "2", silent: "" };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) {
  const key = argv[i].replace(/^--/, "");
  if (!(key in opts) || argv[i + 1] === undefined) {
    console.error(`cluster-clients: bad argument ${argv[i]}`);
    process.exit(2);
  }
  opts[key] = argv[i + 1];
}
const urls = opts.nodes.split(",").filter(Boolean);
const perNode = Number(opts["per-node"]);
const silent = new Set(opts.silent.split(",").filter(Boolean));
const say = (o) => process.stdout.write(JSON.stringify(o) + "\n");

const clients = new Map();
let pending = 0;
urls.forEach((url, n) => {
  for (let i = 0; i < perNode; i++) {
    const name = `${String.fromCharCode(65 + n)}${i}`;
    const socket = io(url, {
      forceNew: true,
      transports: ["websocket"],
      reconnectionDelay: 200,
      reconnectionDelayMax: 500,
      auth: { name },
    });
    let first = true;
    pending++;
    socket.on("connect", () => {
      say({ kind: "connect", client: name, id: socket.id });
      if (first) {
        first = false;
        if (--pending === 0) say({ kind: "ready" });
      }
    });
    socket.on("disconnect", (reason) => say({ kind: "disconnect", client: name, reason }));
    socket.onAny((event, ...args) => {
      const ack = typeof args[args.length - 1] === "function" ? args.pop() : null;
      say({ kind: "event", client: name, event, args });
      if (ack && event === "ask" && !silent.has(name)) ack(name);
    });
    clients.set(name, socket);
  }
});

const lines = createInterface({ input: process.stdin });
lines.on("line", (line) => {
  const [cmd, name, ...rest] = line.trim().split(" ");
  if (cmd === "quit") {
    for (const socket of clients.values()) socket.close();
    process.exit(0);
  }
  const socket = clients.get(name);
  if (!socket) {
    console.error(`cluster-clients: unknown client in \`${line}\``);
    process.exit(3);
  }
  const arg = rest.join(" ");
  const value = cmd === "set-data" ? JSON.parse(arg) : arg;
  socket.timeout(10000).emit(cmd, value, (err, reply) => {
    if (err) {
      console.error(`cluster-clients: \`${line}\` got no ack: ${err.message}`);
      process.exit(4);
    }
    say({ kind: "done", client: name, cmd, reply });
  });
});
lines.on("close", () => process.exit(0));
