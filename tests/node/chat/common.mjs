// Shared helpers for the chat app scripts (tests/cli.rs drives them against
// `tether serve`). Built on ../lib.mjs: same conventions (one JSON verdict
// line last on stdout, failed checks on stderr, exit 0 iff all passed).
import { io, until } from "../lib.mjs";

export { parseArgs, Run, until, sleep } from "../lib.mjs";

// The chat tutorial's client (https://socket.io/docs/v4/tutorial/step-9 and
// before: connection state recovery, server delivery, client delivery), on
// its own Manager with the run's transport. `messages` holds what the page
// would show; `offsets[i]` is the serverOffset that came with `messages[i]`
// (bookkeeping for the checks, not in the tutorial).
export function tutorialClient(run, { serverOffset = 0, url = run.opts.url } = {}) {
  let counter = 0;
  const socket = io(url, {
    auth: {
      serverOffset,
    },
    // enable retries
    ackTimeout: 10000,
    retries: 3,
    // not in the tutorial: the run's transport, and never share a Manager
    transports: run.socketOptions().transports,
    forceNew: true,
  });
  const messages = [];
  const offsets = [];
  socket.on("chat message", (msg, serverOffset) => {
    messages.push(msg);
    offsets.push(serverOffset);
    socket.auth.serverOffset = serverOffset;
  });
  // The tutorial's form submit handler.
  const send = (msg) => {
    // compute a unique offset
    const clientOffset = `${socket.id}-${counter++}`;
    socket.emit("chat message", msg, clientOffset);
  };
  let notes = 0;
  socket.on("connect_error", (e) => notes++ < 3 && console.error(`note: connect_error: ${e.message}`));
  run.sockets.push(socket);
  return { socket, messages, offsets, send };
}

// Resolves when the socket is connected; a failure or ms without a
// connection ends the run with `label`.
export async function mustConnect(run, socket, label, ms = 10000) {
  if (!(await until(() => socket.connected, ms))) {
    run.finish(`${label}: not connected within ${ms} ms`);
    await new Promise(() => {});
  }
}

// Waits (bounded: gives up after stallMs without progress) until list has n items.
export async function waitLength(list, n, stallMs = 10000) {
  let last = -1, since = performance.now();
  while (list.length < n) {
    if (list.length !== last) { last = list.length; since = performance.now(); }
    else if (performance.now() - since > stallMs) break;
    await new Promise((r) => setTimeout(r, 10));
  }
  return list.length >= n;
}

// Checks that `got` is exactly `want` (same items, once each, same order),
// reporting a summary rather than two huge lists.
export function checkExact(run, label, got, want) {
  const counts = new Map();
  for (const m of got) counts.set(m, (counts.get(m) ?? 0) + 1);
  const wanted = new Set(want);
  let firstDiff = -1;
  for (let i = 0; i < Math.max(got.length, want.length); i++) {
    if (got[i] !== want[i]) { firstDiff = i; break; }
  }
  const ok = firstDiff === -1;
  return run.check(ok, `${label}: exactly the ${want.length} expected messages, once each, in order`,
    `${want.length} messages`, ok ? null : {
      received: got.length,
      duplicates: [...counts].filter(([, c]) => c > 1).map(([m, c]) => `${m} x${c}`).slice(0, 5),
      missing: want.filter((m) => !counts.has(m)).slice(0, 5),
      unexpected: [...counts.keys()].filter((m) => !wanted.has(m)).slice(0, 5),
      firstDifferenceAt: firstDiff,
      expectedThere: want.slice(firstDiff, firstDiff + 3),
      gotThere: got.slice(firstDiff, firstDiff + 3),
    });
}

// Checks that serverOffsets are integers, strictly increasing.
export function checkIncreasing(run, label, offsets) {
  const bad = offsets.findIndex((o, i) => !Number.isInteger(o) || (i > 0 && o <= offsets[i - 1]));
  return run.check(bad === -1, `${label}: serverOffsets are increasing integers`, "increasing integers",
    bad === -1 ? null : { at: bad, around: offsets.slice(Math.max(0, bad - 2), bad + 2) });
}
