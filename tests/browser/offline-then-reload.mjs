// c. offline-then-reload: A goes offline and types 20 messages (shown
// pending, kept in the page's localStorage outbox); A's page is reloaded
// while still offline, so only localStorage has them. Back online, all 20
// arrive exactly once on A and on B, in order, and none stays pending.
//
// A reload while offline needs the page from somewhere: a browser without the
// network has no copy of it (the page has no service worker), so the test
// keeps the copies fetched while online and serves them for that one reload
// (playwright's page.route). Such a page counts as not coming from the local
// network for Chromium's Local Network Access checks, which then refuse its
// WebSocket to 127.0.0.1: after that reload the client stays on HTTP
// long-polling (recorded as a_transport_after_reload).
import { Run, parseArgs, checkHistories } from "./lib.mjs";

const opts = parseArgs("offline-then-reload");
const run = new Run(opts);
const [url] = opts.urls;
const COUNT = 20;

const a = await run.user("A");
const b = await run.user("B");
await a.open(url);
await b.open(url);

// The page and the client bundle, as fetched while online.
const copies = new Map();
for (const p of ["/", "/socket.io/socket.io.js"]) {
  const res = await a.context.request.get(new URL(p, url).href);
  run.equal(res.status(), 200, `GET ${p} answers 200`);
  copies.set(p, { status: res.status(), headers: res.headers(), body: await res.body() });
}

await a.setOffline(true);
await a.waitNotConnected("A goes offline");
const expected = [];
for (let i = 1; i <= COUNT; i++) {
  const text = `A offline note ${String(i).padStart(2, "0")}`;
  await a.send(text);
  expected.push(text);
}
run.counts.typed = a.typed.length;
await a.waitPending(COUNT, "A while offline");
const before = await a.list();
run.counts.A_pending_before_reload = before.filter((m) => m.pending).length;
run.equal(before.map((m) => [m.text, m.pending]), expected.map((t) => [t, true]), "A shows the 20 as pending, in order");
const outbox = await a.outbox();
run.counts.A_outbox_before_reload = outbox?.length ?? -1;
run.equal((outbox ?? []).map((m) => m.content), expected, "A's outbox in localStorage holds the 20, in order");
run.equal((await b.list()).length, 0, "B has nothing yet");

// Reload while offline: the in-memory page is gone, only localStorage is left.
await a.page.route(
  (u) => u.origin === new URL(url).origin && copies.has(u.pathname),
  (route) => route.fulfill(copies.get(new URL(route.request().url()).pathname)),
);
await a.page.reload({ waitUntil: "load" });
await a.page.unrouteAll();
await a.watchStatus();
run.check(
  (await a.page.evaluate(() => navigator.onLine)) === false,
  "A is still offline after the reload",
);
await a.waitPending(COUNT, "A after the reload, still offline");
const afterReload = await a.list();
run.counts.A_pending_after_reload = afterReload.filter((m) => m.pending).length;
run.equal(
  afterReload.map((m) => [m.text, m.pending]),
  expected.map((t) => [t, true]),
  "after the reload A shows the 20 from localStorage as pending, in order",
);
run.equal((await b.list()).length, 0, "B still has nothing while A is offline");

await a.setOffline(false);
await a.waitStatus("connected", "A reconnects by itself");
await a.waitSettled(COUNT, "A back online");
await b.waitSettled(COUNT, "B");
run.extra.messages = await checkHistories(run, [a, b], expected);
run.equal(run.extra.messages.length, COUNT, `${COUNT} messages in the history`);
run.equal(await a.outbox(), [], "A's outbox is empty at the end");
run.extra.a_transport_after_reload = await a.page.evaluate(() => {
  try {
    return socket.io.engine.transport.name;
  } catch {
    return null;
  }
});

// And a fresh load (online) shows the same history from the server's store.
await a.page.reload({ waitUntil: "load" });
await a.watchStatus();
await a.waitStatus("connected", "A reloaded online");
await a.waitSettled(COUNT, "A reloaded online");
const reloaded = await a.list();
run.counts.A_shown_after_online_reload = reloaded.length;
run.equal(
  reloaded.map((m) => [m.offset, m.text, m.id]),
  run.extra.messages,
  "a fresh load of A shows the same history from the store",
);
await run.finish();
