// Dark mode: two people, one whose system prefers a dark colour scheme and
// one a light one (emulated prefers-color-scheme). They chat; the dark page
// must really be dark and the light one light, and on both the contrast
// ratio (WCAG 2) of every text the page shows against the background it is
// drawn on is at least 4.5:1: message texts on odd and even rows, names,
// marks, a pending message, the inputs, the Send button, who is online,
// the status bar online and offline. The ratios are printed.
import { Run, parseArgs, checkHistories } from "./lib.mjs";

const opts = parseArgs("dark-mode");
const run = new Run(opts);
const [url] = opts.urls;
const MIN = 4.5;

const dark = await run.user("Dark", { colorScheme: "dark" });
const light = await run.user("Light", { colorScheme: "light" });
const users = [dark, light];
for (const u of users) await u.open(url);
await dark.setName("Dana");
await light.setName("Lee");

const expected = [];
for (let i = 1; i <= 3; i++) {
  for (const u of users) {
    const text = `${u.label} says hello ${i}`;
    await u.send(text);
    expected.push(text);
    for (const v of users) await v.waitConfirmedText(text, `${v.label} shows`);
  }
}

// Every text of the page with its colour and the colour of what is behind it
// (the first ancestor with a background, translucent ones composited).
function contrasts(page) {
  return page.evaluate(() => {
    const parse = (c) => {
      const m = /rgba?\(([^)]+)\)/.exec(c);
      if (!m) return null;
      const [r, g, b, a = 1] = m[1].split(/[ ,/]+/).filter(Boolean).map(Number);
      return [r, g, b, a];
    };
    const over = (top, bottom) => {
      const a = top[3];
      return [0, 1, 2].map((i) => top[i] * a + bottom[i] * (1 - a)).concat(1);
    };
    const background = (el) => {
      const layers = [];
      for (let e = el; e; e = e.parentElement) {
        const c = parse(getComputedStyle(e).backgroundColor);
        if (c && c[3] > 0) {
          layers.push(c);
          if (c[3] >= 1) break;
        }
      }
      let base = [255, 255, 255, 1]; // the canvas, if nothing is opaque
      if (layers.length && layers[layers.length - 1][3] >= 1) base = layers.pop();
      for (const l of layers.reverse()) base = over(l, base);
      return base;
    };
    const lum = ([r, g, b]) => {
      const ch = (v) => {
        v /= 255;
        return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
      };
      return 0.2126 * ch(r) + 0.7152 * ch(g) + 0.0722 * ch(b);
    };
    const ratio = (fg, bg) => {
      const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
      return (a + 0.05) / (b + 0.05);
    };
    const out = [];
    const add = (what, el, color) => {
      // Only what is drawn: shown, and (but for the inputs) with some text.
      if (!el || el.offsetParent === null) return;
      if (!["INPUT", "BUTTON"].includes(el.tagName) && !el.textContent.trim()) return;
      const bg = background(el);
      let fg = parse(color ?? getComputedStyle(el).color);
      if (fg[3] < 1) fg = over(fg, bg);
      out.push({ what, ratio: Math.round(ratio(fg, bg) * 100) / 100, fg: fg.slice(0, 3), bg: bg.slice(0, 3) });
    };
    const lis = [...document.querySelectorAll("#messages > li")];
    lis.slice(0, 2).forEach((li, i) => {
      add(`message text (row ${i + 1})`, li.querySelector(".text") ?? li);
      add(`name (row ${i + 1})`, li.querySelector(".who"));
      add(`mark (row ${i + 1})`, li.querySelector(".mark"));
      add(`time (row ${i + 1})`, li.querySelector(".time"));
    });
    const pending = document.querySelector("#messages > li.pending");
    add("pending message", pending?.querySelector(".text") ?? pending);
    add("pending mark", pending?.querySelector(".mark"));
    const input = document.getElementById("input");
    add("message input", input);
    add("message input placeholder", input, getComputedStyle(input, "::placeholder").color);
    add("name input", document.getElementById("name"));
    add("Send button", document.querySelector("#form > button"));
    add(`status bar (${document.getElementById("status").dataset.state})`, document.getElementById("status"));
    add("who is online", document.getElementById("presence"));
    add("the room shown", document.querySelector('#rooms .room[aria-current="true"]'));
    add("room name input", document.getElementById("room-name"));
    add("room name placeholder", document.getElementById("room-name"), getComputedStyle(document.getElementById("room-name"), "::placeholder").color);
    add("Join button", document.querySelector("#join > button"));
    add("older messages note", document.getElementById("older").textContent ? document.getElementById("older") : null);
    return { body: background(document.body).slice(0, 3), bodyLum: lum(background(document.body)), items: out };
  });
}

run.extra.contrast = {};
for (const u of users) {
  const online = await contrasts(u.page);
  await u.setOffline(true);
  await u.waitNotConnected(`${u.label} goes offline`);
  const text = `${u.label} typed this offline`;
  await u.send(text);
  expected.push(text);
  await u.waitPending(1, `${u.label} offline`);
  const offline = await contrasts(u.page);
  const items = online.items.concat(offline.items.filter((x) => /pending|status/.test(x.what)));
  if (u === dark) run.check(online.bodyLum < 0.05, "the dark page's background is dark", "luminance < 0.05", online);
  else run.check(online.bodyLum > 0.8, "the light page's background is light", "luminance > 0.8", online);
  for (const x of items) run.check(x.ratio >= MIN, `${u.label}: ${x.what}: contrast ${x.ratio}:1 >= ${MIN}:1`, `>= ${MIN}`, x);
  run.check(items.some((x) => x.what.startsWith("message text")), `${u.label}: message texts measured`, "some", items);
  run.extra.contrast[u.label] = Object.fromEntries(items.map((x) => [x.what, x.ratio]));
  await u.setOffline(false);
  await u.waitStatus("connected", `${u.label} back online`);
  for (const v of users) await v.waitConfirmedText(text, `${v.label} shows`);
}
run.log(`contrast ratios: ${JSON.stringify(run.extra.contrast)}`);
for (const u of users) await u.waitSettled(expected.length, `${u.label} at the end`);
run.extra.messages = await checkHistories(run, users, expected);
await run.finish();
