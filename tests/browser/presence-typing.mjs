// Who is online and who is typing (on one node, or A and B on two nodes of
// a cluster when given two URLs). A and B open the page and give names:
// both pages say "2 online: Ana, Ben". A types: B's page says "Ana is
// typing…", A's own says nothing. B goes offline; A's page emits typing
// events and sends a message meanwhile; B comes back: it gets the message
// (stored, caught up) but no typing event (volatile: not replayed). B leaves:
// A's page says "1 online: Ana". The harness then checks that the store holds
// only the chat messages (typing and presence never stored).
import { Run, parseArgs, checkHistories } from "./lib.mjs";

const opts = parseArgs("presence-typing");
const run = new Run(opts);
// With two URLs (two nodes of one cluster), A is on the first, B on the second.
const [url, urlB = url] = opts.urls;
run.extra.nodes = new Set(opts.urls).size;

const a = await run.user("A");
const b = await run.user("B");
await a.open(url);
await a.setName("Ana");
await b.open(urlB);
await b.setName("Ben");

const presenceIs = (u, text) =>
  u.waitFor((t) => document.getElementById("presence").textContent === t, text, `${u.label}'s page says ${JSON.stringify(text)}`);
for (const u of [a, b]) await presenceIs(u, "2 online: Ana, Ben");

// Typing, as a person types.
await b.page.evaluate(() => {
  window.__typing = [];
  socket.on("typing", (t) => window.__typing.push(t));
});
await a.page.evaluate(() => {
  window.__typing = [];
  socket.on("typing", (t) => window.__typing.push(t));
});
await a.page.locator("#input").pressSequentially("hello the", { delay: 30 });
await b.waitFor(() => document.getElementById("typing").textContent === "Ana is typing…", null, "B's page says Ana is typing");
const seenByB = await b.page.evaluate(() => window.__typing);
run.check(seenByB.length >= 1 && seenByB.every((t) => t.name === "Ana" && t.room === "general"), "B got typing events naming Ana, in #general", ">= 1 from Ana", seenByB);
run.equal(await a.page.evaluate(() => [document.getElementById("typing").textContent, window.__typing.length]), ["", 0], "A is not told of its own typing");
await b.waitFor(() => document.getElementById("typing").textContent === "", null, "B's typing line clears once Ana stops", 10_000);
await a.page.locator("#input").fill("");

// Typing is said in its room only: A types in #dev, B looks at #general.
await a.page.locator("#room-name").fill("dev");
await a.page.locator("#room-name").press("Enter");
await a.waitFor(() => document.querySelector('#rooms .room[aria-current="true"]')?.dataset.room === "dev", null, "A in #dev");
await b.page.evaluate(() => (window.__typing = []));
await a.page.waitForTimeout(2100); // past the page's 2 s between typing events
await a.page.locator("#input").pressSequentially("in dev", { delay: 30 });
await b.waitFor(() => window.__typing.some((t) => t.room === "dev"), null, "B gets A's typing in #dev");
run.equal(await b.page.evaluate(() => document.getElementById("typing").textContent), "", "B, in #general, is not told someone types in #dev");
await a.page.locator("#input").fill("");
await a.page.locator('#rooms .room[data-room="general"]').click();

// B away: typing events are not kept for it, messages are.
await b.setOffline(true);
await b.waitNotConnected("B goes offline");
await a.page.evaluate(() => {
  for (let i = 0; i < 3; i++) socket.volatile.emit("typing", {});
});
await a.send("A wrote this while B was away");
await a.waitSettled(1, "A sent");
await b.page.evaluate(() => (window.__typing = []));
await b.setOffline(false);
await b.waitStatus("connected", "B back online");
await b.waitSettled(1, "B caught up");
await b.waitFor(() => document.getElementById("presence").textContent.startsWith("2 online"), null, "B's page says who is online again");
// Any replayed event would come with the catch-up, before or with the
// presence announcement awaited above.
const replayed = await b.page.evaluate(() => ({ events: window.__typing, line: document.getElementById("typing").textContent }));
run.equal(replayed, { events: [], line: "" }, "no typing event replayed to B after it came back");

const expected = ["A wrote this while B was away"];
run.extra.messages = await checkHistories(run, [a, b], expected);

// B leaves.
await b.page.goto("about:blank");
await presenceIs(a, "1 online: Ana");
run.extra.presence_after_b_left = await a.page.evaluate(() => document.getElementById("presence").textContent);
await run.finish();
