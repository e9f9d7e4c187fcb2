// Phone widths: the page on a 320 px and a 390 px wide phone (mobile
// emulation, touch). Each sends a message with the Send button (tapped), one
// long word and a long link; then goes offline (the longest status text).
// Measured from the element boxes: the Send button and the inputs lie fully
// inside the viewport, the message input is usable, no message runs past
// the edge (long words wrap), and nothing scrolls sideways (scrollWidth).
import { Run, parseArgs, checkHistories } from "./lib.mjs";

const opts = parseArgs("phone");
const run = new Run(opts);
const [url] = opts.urls;
const WIDTHS = [320, 390];

const users = [];
for (const width of WIDTHS) {
  const u = await run.user(`P${width}`, {
    viewport: { width, height: 640 },
    isMobile: true,
    hasTouch: true,
    deviceScaleFactor: 2,
  });
  users.push(u);
  await u.open(url);
}

function measure(page) {
  return page.evaluate(() => {
    const box = (el) => {
      const r = el.getBoundingClientRect();
      return { left: Math.round(r.left), right: Math.round(r.right), top: Math.round(r.top), bottom: Math.round(r.bottom), width: Math.round(r.width) };
    };
    const log = document.getElementById("log");
    const status = document.getElementById("status");
    window.scrollTo(1000, 0);
    log.scrollLeft = 1000;
    return {
      vw: document.documentElement.clientWidth,
      vh: window.innerHeight,
      docScrollWidth: document.documentElement.scrollWidth,
      bodyScrollWidth: document.body.scrollWidth,
      scrollX: window.scrollX,
      logScrollLeft: log.scrollLeft,
      logScrollWidth: log.scrollWidth,
      logClientWidth: log.clientWidth,
      presence: box(document.getElementById("presence")),
      join: box(document.querySelector("#join > button")),
      roomName: box(document.getElementById("room-name")),
      presenceText: document.getElementById("presence").textContent,
      statusScrollWidth: status.scrollWidth,
      statusClientWidth: status.clientWidth,
      send: box(document.querySelector("#form > button")),
      input: box(document.getElementById("input")),
      name: box(document.getElementById("name")),
      lis: [...document.querySelectorAll("#messages > li")].map((li) => ({
        ...box(li),
        scrollWidth: li.scrollWidth,
        clientWidth: li.clientWidth,
      })),
    };
  });
}

function checkLayout(u, m, when) {
  const at = `${u.label} ${when}`;
  run.check(m.docScrollWidth <= m.vw && m.bodyScrollWidth <= m.vw, `${at}: the page is no wider than the screen`, `<= ${m.vw}`, [m.docScrollWidth, m.bodyScrollWidth]);
  run.equal(m.scrollX, 0, `${at}: the page does not scroll sideways`);
  run.equal(m.logScrollLeft, 0, `${at}: the list does not scroll sideways`);
  run.check(m.logScrollWidth <= m.logClientWidth, `${at}: the list is no wider than its box`, `<= ${m.logClientWidth}`, m.logScrollWidth);
  run.check(m.statusScrollWidth <= m.statusClientWidth, `${at}: the status text fits`, `<= ${m.statusClientWidth}`, m.statusScrollWidth);
  for (const [name, b] of [["Send button", m.send], ["message input", m.input], ["name input", m.name], ["Join button", m.join], ["room name input", m.roomName]]) {
    run.check(b.left >= 0 && b.right <= m.vw && b.top >= 0 && b.bottom <= m.vh, `${at}: the ${name} lies fully inside the ${m.vw}x${m.vh} viewport`, "inside", b);
  }
  if (m.presenceText) run.check(m.presence.left >= 0 && m.presence.right <= m.vw, `${at}: who is online fits the width`, "inside", m.presence);
  run.check(m.input.width >= 120, `${at}: the message input is at least 120 px wide`, ">= 120", m.input.width);
  run.check(
    m.lis.every((b) => b.left >= 0 && b.right <= m.vw && b.scrollWidth <= b.clientWidth),
    `${at}: every message fits the width (long words wrap)`,
    "inside",
    m.lis,
  );
}

const longWord = "Pneumonoultramicroscopicsilicovolcanoconiosis".repeat(4);
const longLink = "https://example.org/" + "a-very-long-path-segment/".repeat(8) + "?q=" + "x".repeat(60);
const expected = [];
run.extra.layout = {};
for (const u of users) {
  await u.setName(`Phone ${u.label}`);
  const short = `Hello from ${u.label}`;
  await u.page.locator("#input").fill(short);
  await u.page.locator("#form > button").tap();
  await u.page.waitForFunction(() => document.getElementById("input").value === "");
  u.typed.push(short);
  await u.send(`${u.label} ${longWord}`);
  await u.send(`${u.label} ${longLink}`);
  expected.push(...u.typed);
  for (const v of users) await v.waitSettled(expected.length, `${v.label} after ${u.label} sent`);
}
for (const u of users) {
  const m = await measure(u.page);
  checkLayout(u, m, "online");
  run.extra.layout[u.label] = { vw: m.vw, send: m.send, input: m.input, name: m.name, docScrollWidth: m.docScrollWidth };
  await u.setOffline(true);
  await u.waitNotConnected(`${u.label} goes offline`);
  checkLayout(u, await measure(u.page), "offline");
  await u.setOffline(false);
  await u.waitStatus("connected", `${u.label} back online`);
}
run.log(`layout: ${JSON.stringify(run.extra.layout)}`);
run.extra.messages = await checkHistories(run, users, expected);
await run.finish();
