// Rooms: #general is the tutorial's stream (ul#messages); A creates #dev
// by name (typed as "Dev"), B joins it and gets its history; each room shows
// only its own messages; a room you are not looking at counts its unread
// messages, and looking at it clears the count; B offline while A writes in
// both rooms catches up on each; B reloads: its rooms are still there, each
// with its history. A bad room name is refused. The harness then checks that
// the whole-namespace stream (`tether history`) holds exactly #general's.
import { Run, parseArgs, checkHistories } from "./lib.mjs";

const opts = parseArgs("rooms");
const run = new Run(opts);
const [url] = opts.urls;

const a = await run.user("A");
const b = await run.user("B");
for (const u of [a, b]) await u.open(url);
await a.setName("Ana");
await b.setName("Ben");

const roomList = (u, room) =>
  u.page.evaluate(
    (room) =>
      [...document.querySelectorAll(`ul.list[data-room="${room}"] > li`)].map((li) => ({
        text: li.querySelector(".text")?.textContent ?? null,
        offset: li.dataset.offset === undefined ? null : Number(li.dataset.offset),
        state: li.dataset.state ?? null,
      })),
    room,
  );
const texts = async (u, room) => (await roomList(u, room)).map((m) => m.text);
const waitRoom = (u, room, expected, what) =>
  u.waitFor(
    ({ room, expected }) => {
      const lis = [...document.querySelectorAll(`ul.list[data-room="${room}"] > li`)];
      return JSON.stringify(lis.map((li) => li.querySelector(".text")?.textContent)) === JSON.stringify(expected) && lis.every((li) => li.dataset.offset);
    },
    { room, expected },
    `${u.label}: #${room} shows ${JSON.stringify(expected)}`,
  );
const current = (u) => u.page.evaluate(() => document.querySelector('#rooms .room[aria-current="true"]')?.dataset.room ?? null);
const unread = (u, room) => u.page.evaluate((room) => document.querySelector(`#rooms .room[data-room="${room}"] .unread`)?.textContent ?? null, room);
async function join(u, typed) {
  await u.page.locator("#room-name").fill(typed);
  await u.page.locator("#room-name").press("Enter");
}
const open = (u, room) => u.page.locator(`#rooms .room[data-room="${room}"]`).click();

const general = [];
const dev = [];
async function say(u, room, text) {
  await u.send(text);
  (room === "general" ? general : dev).push(text);
}

await say(a, "general", "general 1");
for (const u of [a, b]) await waitRoom(u, "general", general, "after general 1");
run.equal(await current(a), "general", "A starts in #general");

// A creates #dev by name.
await join(a, "Dev");
await a.waitFor(() => document.querySelector('#rooms .room[aria-current="true"]')?.dataset.room === "dev", null, "A is in #dev");
run.equal(await a.page.evaluate(() => document.getElementById("input").placeholder), "message #dev", "the input says which room it writes to");
await say(a, "dev", "dev 1");
await waitRoom(a, "dev", dev, "A after dev 1");
run.equal(await texts(b, "general"), general, "B's #general does not show #dev's message");
run.equal(await b.page.evaluate(() => !!document.querySelector('#rooms .room[data-room="dev"]')), false, "B is not in #dev");

// B joins it and gets its history.
await join(b, "#dev");
await waitRoom(b, "dev", dev, "B joined #dev: its history");
await say(b, "dev", "dev 2");
for (const u of [a, b]) await waitRoom(u, "dev", dev, "after dev 2");

// Unread counts.
await open(b, "general");
await say(a, "dev", "dev 3");
await waitRoom(b, "dev", dev, "B (looking at #general) got dev 3");
run.equal(await unread(b, "dev"), "1", "B's #dev says 1 unread");
await open(a, "general");
await say(a, "general", "general 2");
for (const u of [a, b]) await waitRoom(u, "general", general, "after general 2");
run.equal(await unread(b, "dev"), "1", "still 1 unread in B's #dev");
run.equal(await unread(b, "general"), "", "nothing unread in the room B looks at");
await open(b, "dev");
run.equal(await unread(b, "dev"), "", "looking at #dev clears its count");
run.equal(await current(b), "dev", "B is in #dev");

// Per-room catch-up.
await b.setOffline(true);
await b.waitNotConnected("B goes offline");
await open(a, "dev");
await say(a, "dev", "dev 4");
await open(a, "general");
await say(a, "general", "general 3");
await waitRoom(a, "dev", dev, "A after dev 4");
await waitRoom(a, "general", general, "A after general 3");
await b.setOffline(false);
await b.waitStatus("connected", "B back online");
await waitRoom(b, "dev", dev, "B caught up on #dev");
await waitRoom(b, "general", general, "B caught up on #general");
run.equal(await unread(b, "general"), "1", "B (in #dev) has 1 unread in #general after catching up");

// A bad name is refused.
await join(b, "no spaces allowed!");
run.equal(await b.page.evaluate(() => [...document.querySelectorAll("#rooms .room")].map((x) => x.dataset.room)), ["general", "dev"], "a bad room name is refused");

// B reloads: its rooms and their histories are back.
await b.page.reload({ waitUntil: "load" });
await b.waitStatus("connected", "B after reload");
run.equal(await current(b), "dev", "B is back in #dev after reloading");
await waitRoom(b, "dev", dev, "B's #dev after reload");
await waitRoom(b, "general", general, "B's #general after reload");

for (const u of [a, b]) {
  const d = await roomList(u, "dev");
  run.check(d.every((m, i) => Number.isInteger(m.offset) && (i === 0 || m.offset > d[i - 1].offset)), `${u.label}: #dev in increasing positions`, "increasing", d);
}
run.extra.rooms = { general, dev };
run.extra.messages = await checkHistories(run, [a, b], general);
await run.finish();
