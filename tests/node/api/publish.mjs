// api/publish: the official socket.io-client receives what a backend
// publishes over Tether's HTTP API (tests/api.rs in crates/tether-server
// drives it against `tether serve --api-key KEY`).
//
// It connects as the chat tutorial's client does (auth.serverOffset 0, so it
// first gets every stored event of the whole namespace), waits for the
// `--expect` events published before it came, then publishes one event
// itself over HTTP (fetch), gets it live, publishes it again with the same
// idempotency key (same position, duplicate true) and checks, after a quiet
// second, that it arrived once. Every event it got is in `received` of the
// verdict line: [event, ...args], the recovery offset last. With `--api URL`
// it publishes through another node of the cluster than the one it listens to.
//
//   node api/publish.mjs --url http://127.0.0.1:PORT --key KEY --expect 2 [--api http://127.0.0.1:PORT2]
import { parseArgs, Run, io, until, sleep } from "../lib.mjs";

const opts = parseArgs("api-publish", { transport: "websocket", key: "", expect: 0, quietMs: 1000, api: "" });
const run = new Run(opts);
const base = opts.url.replace(/\/+$/, "");
const apiBase = (opts.api || opts.url).replace(/\/+$/, "");

const publish = async (body) => {
  const res = await fetch(`${apiBase}/api/v1/publish`, {
    method: "POST",
    headers: { authorization: `Bearer ${opts.key}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
};

const socket = io(base, { ...run.socketOptions(), auth: { serverOffset: 0 }, forceNew: true });
run.sockets.push(socket);
const received = [];
// The chat's own volatile news (who is online, who types) is not what was published.
socket.onAny((event, ...args) => event !== "presence" && event !== "typing" && received.push([event, ...args]));
socket.on("connect_error", (e) => console.error(`note: connect_error: ${e.message}`));

if (!(await until(() => socket.connected, 10000))) {
  run.finish("not connected within 10 s");
  await new Promise(() => {}); // the process is exiting
}
run.check(await until(() => received.length >= opts.expect, 10000),
  `gets the ${opts.expect} events published before it connected`, opts.expect, received.length);

const live = { event: "live", args: ["from a backend", { n: 1 }], idempotency_key: "live-1" };
const first = await publish(live);
run.equal([first.status, first.body.duplicate], [200, false], "a live publish is stored");
const lives = () => received.filter(([event]) => event === "live");
run.check(await until(() => lives().length >= 1, 5000), "the live event arrives");
const again = await publish(live);
run.equal(again, { status: 200, body: { position: first.body.position, duplicate: true } },
  "the same idempotency key again: the first position, duplicate");
await sleep(opts.quietMs);
run.equal(lives().length, 1, "the live event arrived once");
const [got] = lives();
if (got) {
  run.equal(got.slice(0, 3), ["live", "from a backend", { n: 1 }], "the live event's arguments, as sent");
  run.check(typeof got[3] === "string" && got[3].endsWith(`.${first.body.position}`),
    "the live event's recovery offset names its position", `t.<epoch>.${first.body.position}`, got[3]);
}
Object.assign(run.counts, { position: first.body.position, received });
run.finish();
