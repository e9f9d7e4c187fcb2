// The chat as a person sees it: two people with names chat, B writes in
// #dev (A, in #general, sees 1 unread there), then A goes offline and types
// one more (pending); a screenshot of A's page is saved
// (--screenshot PATH) and its path printed as `SCREENSHOT PATH`. Back online,
// the pending one is sent; both pages end with the same 5 messages.
import { Run, parseArgs, checkHistories } from "./lib.mjs";
import fs from "node:fs";
import path from "node:path";

const opts = parseArgs("screenshot");
const run = new Run(opts);
const [url] = opts.urls;
const shot = path.resolve(opts.screenshot ?? new URL("../../target/chat-screenshot.png", import.meta.url).pathname);

const a = await run.user("A");
const b = await run.user("B");
await a.open(url);
await b.open(url);
await a.setName("Ana");
await b.setName("Ben");

const lines = [
  [a, "Hi Ben! Is the delivery guarantee real?"],
  [b, "Hi Ana. Every message is stored once, then acked."],
  [a, "And if my train goes into a tunnel?"],
  [b, "Your outbox keeps it until the server says so."],
];
const expected = [];
for (const [from, text] of lines) {
  await from.send(text, { keyboard: true });
  expected.push(text);
  await from.waitConfirmedText(text, `${from.label} sent`);
  for (const u of [a, b]) await u.waitConfirmedText(text, `${u.label} shows`);
}

// A room with an unread message for A (rooms show in the screenshot).
for (const u of [a, b]) {
  await u.page.locator("#room-name").fill("dev");
  await u.page.locator("#room-name").press("Enter");
  await u.waitFor(() => document.querySelector('#rooms .room[aria-current="true"]')?.dataset.room === "dev", null, `${u.label} in #dev`);
}
await a.page.locator('#rooms .room[data-room="general"]').click();
await b.send("Deploy at five?");
await a.waitFor(() => document.querySelector('#rooms .room[data-room="dev"] .unread')?.textContent === "1", null, "A sees 1 unread in #dev");
run.extra.dev_unread_in_screenshot = 1;

await a.setOffline(true);
await a.waitNotConnected("A goes offline");
const pendingText = "Entering the tunnel now…";
await a.send(pendingText, { keyboard: true });
expected.push(pendingText);
await a.waitPending(1, "A offline");
const seen = await a.list();
run.counts.shown_in_screenshot = seen.length;
run.counts.pending_in_screenshot = seen.filter((m) => m.pending).length;
run.equal(
  seen.map((m) => [m.text, m.pending]),
  expected.map((t) => [t, t === pendingText]),
  "A shows 4 sent messages and the last one pending",
);
run.extra.status_in_screenshot = await a.status();
fs.mkdirSync(path.dirname(shot), { recursive: true });
await a.page.screenshot({ path: shot, fullPage: true });
run.check(fs.statSync(shot).size > 0, "screenshot written");
run.extra.screenshot = shot;
console.log(`SCREENSHOT ${shot}`);

await a.setOffline(false);
await a.waitStatus("connected", "A reconnects by itself");
await a.waitSettled(expected.length, "A back online");
await b.waitSettled(expected.length, "B");
run.extra.messages = await checkHistories(run, [a, b], expected);
const names = Object.fromEntries([a, b].map((u) => [u.label, u === a ? "Ana" : "Ben"]));
const whoByText = new Map(lines.map(([u, t]) => [t, names[u.label]]).concat([[pendingText, "Ana"]]));
for (const u of [a, b]) {
  const list = await u.list();
  run.equal(
    list.map((m) => [m.text, m.who]),
    list.map((m) => [m.text, whoByText.get(m.text) ?? null]),
    `${u.label}: each sent message shows the name its author typed`,
  );
}
await run.finish();
