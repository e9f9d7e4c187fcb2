// What each message says about itself, and the status bar's words.
// - author and time: every message shows its author's name and a time (a
//   <time> whose datetime is within this run);
// - yours look different: on each page the viewer's own messages (and only
//   those) are marked "mine" and drawn differently from the others';
// - pending, then sent: A offline types a message: it shows a "pending"
//   badge (not grey italics); back online it turns "sent", and by then the
//   outbox no longer holds it (the server acknowledged or broadcast it);
// - the length limit: the input's maxlength is the server's limit (the
//   server stores a message of that length and refuses one more character),
//   typing stops there and the counter says so;
// - plain words: "connected", "offline: messages will be sent when you are
//   back", and "reconnecting" while the harness kills and restarts the
//   server (`READY kill`), then "connected" again, nothing else.
import { Run, parseArgs, checkHistories, WAIT_MS } from "./lib.mjs";

const opts = parseArgs("message-details");
const run = new Run(opts);
const [url] = opts.urls;
const OFFLINE = "offline: messages will be sent when you are back";
const started = Date.now();

const a = await run.user("A");
const b = await run.user("B");
for (const u of [a, b]) {
  await u.open(url);
  // Every status text and every state a message li goes through, by client id.
  await u.page.evaluate(() => {
    const status = document.getElementById("status");
    window.__texts = [status.textContent];
    new MutationObserver(() => {
      if (window.__texts[window.__texts.length - 1] !== status.textContent) window.__texts.push(status.textContent);
    }).observe(status, { childList: true, characterData: true, subtree: true });
    window.__states = {};
    const note = (li) => {
      const id = li.dataset.id;
      if (!id || !li.dataset.state) return;
      const seq = (window.__states[id] ??= []);
      const inOutbox = JSON.parse(localStorage.getItem("tether.outbox") || "[]").some((m) => m.id === id);
      const last = seq[seq.length - 1];
      if (!last || last.state !== li.dataset.state) seq.push({ state: li.dataset.state, mark: li.querySelector(".mark")?.textContent ?? "", inOutbox });
    };
    // New li (childList) and state changes of shown ones (attributes).
    new MutationObserver((records) => {
      for (const r of records) {
        if (r.type === "attributes" && r.target.parentElement?.id === "messages") note(r.target);
        if (r.target.id === "messages") for (const n of r.addedNodes) if (n.nodeType === 1) note(n);
      }
    }).observe(document.getElementById("messages"), { childList: true, attributes: true, attributeFilter: ["data-state"], subtree: true });
  });
}
run.equal(await a.page.evaluate(() => document.getElementById("status").textContent), "connected", "A's status says connected");
await a.setName("Ana");
await b.setName("Ben");

const expected = [];
for (let i = 1; i <= 2; i++) {
  for (const u of [a, b]) {
    const text = `${u.label} line ${i}`;
    await u.send(text);
    expected.push(text);
    for (const v of [a, b]) await v.waitConfirmedText(text, `${v.label} shows`);
  }
}

// Author, time, yours.
const names = { A: "Ana", B: "Ben" };
for (const u of [a, b]) {
  const list = await u.list();
  run.equal(list.map((m) => m.who), list.map((m) => names[m.text.split(" ")[0]]), `${u.label}: each message shows its author`);
  run.check(
    list.every((m) => m.time && Date.parse(m.time) >= started - 60_000 && Date.parse(m.time) <= Date.now() + 60_000),
    `${u.label}: each message shows when it was sent (a <time> within this run)`,
    "datetimes within the run",
    list.map((m) => m.time),
  );
  const shownTimes = await u.page.evaluate(() => [...document.querySelectorAll("#messages > li time.time")].map((t) => t.textContent));
  run.check(shownTimes.length === list.length && shownTimes.every((t) => /\d{1,2}[:.]\d{2}/.test(t)), `${u.label}: the time is shown as hours and minutes`, "HH:MM", shownTimes);
  run.equal(list.map((m) => m.mine), list.map((m) => m.text.startsWith(u.label + " ")), `${u.label}: exactly its own messages are marked as its own`);
  const looks = await u.page.evaluate(() => {
    const style = (li) => {
      const s = getComputedStyle(li);
      return [s.backgroundColor, s.marginLeft, s.borderRightWidth, s.borderRightColor].join(" ");
    };
    const lis = [...document.querySelectorAll("#messages > li")];
    return { mine: [...new Set(lis.filter((l) => l.classList.contains("mine")).map(style))], others: [...new Set(lis.filter((l) => !l.classList.contains("mine")).map(style))] };
  });
  run.check(looks.mine.every((s) => !looks.others.includes(s)), `${u.label}: its own messages look different from the others'`, "different styles", looks);
}

// Pending, then sent.
await a.setOffline(true);
await a.waitNotConnected("A goes offline");
run.equal(await a.page.evaluate(() => document.getElementById("status").textContent), OFFLINE, "A's status says offline in plain words");
const offlineText = "A typed this in a tunnel";
await a.send(offlineText);
expected.push(offlineText);
await a.waitPending(1, "A offline");
const pendingLook = await a.page.evaluate(() => {
  const li = document.querySelector("#messages > li.pending");
  const mark = li.querySelector(".mark");
  const s = getComputedStyle(li.querySelector(".text"));
  const other = getComputedStyle(document.querySelector("#messages > li.mine:not(.pending) .text"));
  return {
    state: li.dataset.state,
    mark: mark.textContent,
    markBackground: getComputedStyle(mark).backgroundColor,
    liBackground: getComputedStyle(li).backgroundColor,
    fontStyle: s.fontStyle,
    color: s.color,
    sentColor: other.color,
    borderRightStyle: getComputedStyle(li).borderRightStyle,
  };
});
run.extra.pending_look = pendingLook;
run.equal(pendingLook.state, "pending", "the message typed offline is pending");
run.equal(pendingLook.mark, "pending", "its badge says pending");
run.check(pendingLook.markBackground !== pendingLook.liBackground && pendingLook.markBackground !== "rgba(0, 0, 0, 0)", "the pending badge stands out (its own background)", "a background", pendingLook);
run.equal(pendingLook.fontStyle, "normal", "a pending message is not in italics");
run.equal(pendingLook.color, pendingLook.sentColor, "a pending message's text is not greyed out");
await a.setOffline(false);
await a.waitStatus("connected", "A reconnects by itself");
run.equal(await a.page.evaluate(() => document.getElementById("status").textContent), "connected", "A's status says connected (not 'recovered')");
await a.waitSettled(expected.length, "A after coming back");
const transitions = await a.page.evaluate(() => window.__states);
const id = (await a.list()).find((m) => m.text === offlineText)?.id;
const seq = transitions[id] ?? [];
run.extra.offline_message_states = seq;
run.equal(seq.map((x) => x.state), ["pending", "sent"], "the offline message went pending, then sent");
run.equal(seq.map((x) => x.mark), ["pending", "\u2713 sent"], "its badge said pending, then sent");
run.equal(seq.map((x) => x.inOutbox), [true, false], "sent shows only once the outbox let it go (acknowledged)");

// The length limit.
const limit = await a.page.evaluate(async () => {
  const input = document.getElementById("input");
  const ask = (n, id) => socket.timeout(20000).emitWithAck("chat message", "y".repeat(n), id, "Ana");
  return { maxLength: input.maxLength, atLimit: await ask(input.maxLength, "limit-at"), over: await ask(input.maxLength + 1, "limit-over") };
});
run.extra.limit = { maxLength: limit.maxLength, atLimit: limit.atLimit, over: limit.over };
run.equal(limit.maxLength, 4000, "the input's maxlength is 4000");
run.check(limit.atLimit && typeof limit.atLimit.seq === "number", "the server stores a message of maxlength characters", "{seq}", limit.atLimit);
run.equal(limit.over, { error: "message too long" }, "the server refuses one more character");
expected.push("y".repeat(4000));
const input = a.page.locator("#input");
await input.fill("z".repeat(3995));
await input.pressSequentially("0123456789");
const typed = await a.page.evaluate(() => ({ n: document.getElementById("input").value.length, count: document.getElementById("count").textContent }));
run.equal(typed, { n: 4000, count: "4000 / 4000" }, "typing stops at the limit and the counter says so");
await input.fill("");
run.equal(await a.page.evaluate(() => document.getElementById("count").textContent), "", "the counter goes once the text is short");

// Reconnecting: the harness kills the server and starts it again.
console.log("READY kill");
run.check((await run.line("KILLED", WAIT_MS)) !== null, "the harness killed the server");
await a.waitFor(() => window.__texts.includes("reconnecting"), null, "A's status says reconnecting");
run.check((await run.line("RESTARTED", WAIT_MS * 2)) !== null, "the harness restarted the server");
await a.waitStatus("connected", "A reconnects to the restarted server");
const last = "A after the restart";
await a.send(last);
expected.push(last);
for (const u of [a, b]) await u.waitSettled(expected.length, `${u.label} at the end`);
const texts = await a.page.evaluate(() => window.__texts);
run.extra.status_texts = texts;
run.check(texts.every((t) => ["connecting", "connected", "reconnecting", OFFLINE].includes(t)), "the status bar says only plain words", "connected/offline/reconnecting", texts);
run.check(texts.includes("reconnecting") && texts.includes(OFFLINE), "it said reconnecting and offline", "both", texts);
run.extra.messages = await checkHistories(run, [a, b], expected);
await run.finish();
