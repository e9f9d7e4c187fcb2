// A long history: 5 000 messages are stored (a seeding socket in another
// Chromium), then A opens the page fresh. Printed (not asserted against a
// time): how long until the newest message shows, and the longest main-thread
// block (PerformanceObserver "longtask") meanwhile. Checked: the newest shows,
// the page shows the latest page at once (not all 5 000), scrolling up loads
// the older ones down to the first, each once and in order, and the
// connection stays up. Then A goes offline while 3 000 more are stored, comes
// back and catches up on them: figures printed again, the connection checked,
// and the page ends with all 8 000, the same as the store.
import { Run, parseArgs, checkHistories, WAIT_MS } from "./lib.mjs";

const opts = parseArgs("long-history");
const run = new Run(opts);
const [url] = opts.urls;
const FIRST = 5000;
const MORE = 3000;
const text = (k) => `stored message ${String(k).padStart(5, "0")}`;

// Stores messages k in [from, to) through a socket of the official client,
// 64 emits in flight, each acknowledged.
async function seed(seeder, from, to) {
  const started = performance.now();
  const refused = await seeder.page.evaluate(
    async ({ from, to }) => {
      const s = window.__seedSocket;
      let next = from;
      const refused = [];
      const worker = async () => {
        while (next < to) {
          const k = next++;
          const answer = await s.timeout(60000).emitWithAck("chat message", `stored message ${String(k).padStart(5, "0")}`, `seed-${k}`, "Seeder");
          if (!answer || answer.error) refused.push([k, answer]);
        }
      };
      await Promise.all(Array.from({ length: 64 }, worker));
      return refused;
    },
    { from, to },
  );
  run.equal(refused, [], `seeding ${from}..${to}: every message acknowledged`);
  const ms = Math.round(performance.now() - started);
  run.log(`stored ${to - from} messages in ${ms} ms`);
  return ms;
}

const seeder = await run.user("Seeder");
await seeder.page.goto(url + "healthz");
await seeder.page.addScriptTag({ url: url + "socket.io/socket.io.js" });
await seeder.page.evaluate(
  () =>
    new Promise((resolve, reject) => {
      window.__seedSocket = io({ auth: {} });
      window.__seedSocket.on("connect", resolve);
      window.__seedSocket.on("connect_error", reject);
    }),
);
run.extra.seed_ms = [await seed(seeder, 0, FIRST)];

// Measures in A's page from its first script on: long tasks, and when each
// awaited text is first the last li of #messages.
const a = await run.user("A");
await a.page.addInitScript(() => {
  const perf = (window.__perf = { longtasks: [], seen: {}, awaited: [], observerError: null });
  try {
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) perf.longtasks.push([Math.round(e.startTime), Math.round(e.duration)]);
    }).observe({ type: "longtask", buffered: true });
  } catch (e) {
    perf.observerError = String(e);
  }
  document.addEventListener("DOMContentLoaded", () => {
    const ul = document.getElementById("messages");
    new MutationObserver(() => {
      const last = ul.lastElementChild;
      if (!last) return;
      for (const t of perf.awaited) {
        if (!(t in perf.seen) && last.textContent.includes(t)) perf.seen[t] = performance.now();
      }
    }).observe(ul, { childList: true });
  });
});
await a.page.addInitScript((t) => window.__perf.awaited.push(t), text(FIRST - 1));

const longest = (tasks, from, to = Infinity) =>
  tasks.filter(([start]) => start >= from && start < to).reduce((m, [, d]) => Math.max(m, d), 0);

await a.open(url);
const newest1 = text(FIRST - 1);
await a.waitFor((t) => t in window.__perf.seen, newest1, "A shows the newest message");
const p1 = await a.page.evaluate((t) => ({
  newestAt: window.__perf.seen[t],
  longtasks: window.__perf.longtasks,
  observerError: window.__perf.observerError,
  shown: document.querySelectorAll("#messages > li").length,
  last: document.querySelector("#messages > li:last-child")?.textContent ?? null,
  engine: socket.io.engine.id,
}), newest1);
run.equal(p1.observerError, null, "the longtask observer runs");
const figures = {
  fresh_page: {
    stored: FIRST,
    ms_to_newest: Math.round(p1.newestAt),
    longest_block_ms: longest(p1.longtasks, 0, p1.newestAt + 1),
    shown_at_first: p1.shown,
  },
};
run.check(p1.shown > 0 && p1.shown < FIRST, "A shows the latest page at once, not the whole history", `< ${FIRST}`, p1.shown);
run.check(p1.last?.includes(newest1), "the newest message is the last one shown", newest1, p1.last);

// Scrolling up, as a person would (the wheel over the list), until the page
// says it reached the start.
let wheels = 0;
for (;;) {
  const st = await a.page.evaluate(() => ({
    n: document.querySelectorAll("#messages > li").length,
    older: document.getElementById("older").textContent,
  }));
  if (st.older === "start of the conversation" || wheels > 400) break;
  await a.page.locator("#log").hover();
  await a.page.mouse.wheel(0, -5000);
  wheels++;
  await a.page
    .waitForFunction(
      (n) => document.querySelectorAll("#messages > li").length > n || document.getElementById("older").textContent === "start of the conversation",
      st.n,
      { timeout: 2000 },
    )
    .catch(() => {});
}
run.counts.wheel_turns = wheels;
const afterScroll = await a.list();
run.counts.A_shown_after_scrolling_up = afterScroll.length;
run.equal(afterScroll.length, FIRST, "scrolling up loads every older message");
run.equal(
  afterScroll.map((m) => m.text).sort(),
  Array.from({ length: FIRST }, (_, k) => text(k)),
  "each stored message shown once",
);
const offsets = afterScroll.map((m) => m.offset);
run.check(offsets.every((o, i) => i === 0 || o > offsets[i - 1]), "in increasing positions after scrolling up", "increasing", offsets.slice(0, 20));
const states1 = await a.states();
const engine1 = await a.page.evaluate(() => socket.connected && socket.io.engine.id);
run.equal(states1.slice(states1.indexOf("connected")), ["connected"], "A stays connected while showing the long history");
run.equal(engine1, p1.engine, "A keeps its connection (same Engine.IO session) throughout");
const t1 = await a.page.evaluate(() => performance.now());
figures.fresh_page.longest_block_ms_while_scrolling_up = longest(p1.longtasks.concat(await a.page.evaluate(() => window.__perf.longtasks)), p1.newestAt, t1);

// Catching up on thousands: A offline, 3 000 more stored, A back.
await a.page.evaluate(() => { const el = document.getElementById("log"); el.scrollTop = el.scrollHeight; });
await a.setOffline(true);
await a.waitNotConnected("A goes offline");
run.extra.seed_ms.push(await seed(seeder, FIRST, FIRST + MORE));
const newest2 = text(FIRST + MORE - 1);
const t2 = await a.page.evaluate((t) => {
  window.__perf.awaited.push(t);
  window.__perf.reconnectAt = null;
  socket.once("connect", () => (window.__perf.reconnectAt = performance.now()));
  return performance.now();
}, newest2);
await a.setOffline(false);
await a.waitStatus("connected", "A reconnects by itself");
const engine2 = await a.page.evaluate(() => socket.io.engine.id);
await a.waitFor((t) => t in window.__perf.seen, newest2, "A shows the newest message after catching up", WAIT_MS * 3);
const p2 = await a.page.evaluate((t) => ({
  newestAt: window.__perf.seen[t],
  reconnectAt: window.__perf.reconnectAt,
  longtasks: window.__perf.longtasks,
  recovered: socket.recovered,
}), newest2);
figures.catch_up = {
  missed: MORE,
  recovered: p2.recovered,
  ms_from_connect_to_newest: Math.round(p2.newestAt - p2.reconnectAt),
  longest_block_ms: longest(p2.longtasks, t2, p2.newestAt + 1),
};
const states2 = await a.states();
run.equal(states2.slice(-1), ["connected"], "A is connected after catching up");
run.equal(await a.page.evaluate(() => socket.connected && socket.io.engine.id), engine2, "A keeps its connection while catching up");
run.extra.figures = figures;
console.error(`[long-history] figures: ${JSON.stringify(figures)}`);
console.log(`FIGURES ${JSON.stringify(figures)}`);

run.extra.messages = await checkHistories(run, [a], null);
run.equal(run.extra.messages.length, FIRST + MORE, `${FIRST + MORE} messages in the history`);
await run.finish();
