// admin-ui: the official Socket.IO Admin UI (npm @socket.io/admin-ui, its
// files unchanged, served by `tether serve --admin-user U --admin-password P`
// at /admin/) in headless Chromium, used as an operator would:
//   1. two chat clients (the official socket.io-client bundle the server
//      serves, in a page of their own) connect and join rooms blue and green;
//   2. the operator opens /admin/, types the server URL, the user and a wrong
//      password: the form says "Invalid credentials"; then the right one;
//   3. the Sockets page lists both chat clients; the Rooms page shows
//      room:blue and room:green;
//   4. the operator clicks the disconnect button of the first client: that
//      client is disconnected ("io server disconnect"), the details the UI
//      opens say so, and the Sockets page lists one client instead of two.
// The UI's web fonts and icons come from public CDNs: those requests are
// refused here (only loopback traffic), the UI works without them.
//
//   ADMIN_USER=U ADMIN_PASSWORD=P node admin-ui.mjs http://127.0.0.1:PORT/ [--timeout MS] [--screenshot PATH]
import { parseArgs, Run, WAIT_MS } from "./lib.mjs";

const opts = parseArgs("admin-ui");
const run = new Run(opts);
const base = opts.urls[0].replace(/\/+$/, "");
const user = process.env.ADMIN_USER ?? "";
const password = process.env.ADMIN_PASSWORD ?? "";

// 1. Two chat clients in a page of their own.
const chat = await run.user("chat");
await chat.page.goto(base + "/healthz");
await chat.page.addScriptTag({ url: base + "/socket.io/socket.io.js" });
const ids = await chat.page.evaluate(
  async ([rooms, waitMs]) => {
    window.reasons = {};
    const connect = (room) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no connection within ${waitMs} ms`)), waitMs);
        const s = io(location.origin, { forceNew: true, transports: ["websocket"], reconnection: false });
        s.on("connect", () => {
          const id = s.id;
          s.on("disconnect", (reason) => (window.reasons[id] = reason));
          s.emit("join room", room, () => {
            clearTimeout(timer);
            resolve(id);
          });
        });
        s.on("connect_error", (e) => reject(new Error(e.message)));
      });
    const out = [];
    for (const room of rooms) out.push(await connect(room));
    return out;
  },
  [["blue", "green"], WAIT_MS],
);
run.equal(ids.length, 2, "two chat clients connected");

// 2. The operator logs in.
const admin = await run.user("admin", { viewport: { width: 1400, height: 900 } });
await admin.context.route(/^https?:\/\/(?!127\.0\.0\.1[:/])/, (route) => route.abort());
const page = admin.page;
await page.goto(base + "/admin/", { waitUntil: "load" });
await page.getByLabel("Server URL").fill(base);
await page.getByLabel("Username").fill(user);
await page.getByLabel("Password").fill(password + "-wrong");
await page.getByRole("button", { name: "Connect" }).click();
const refused = await page.getByText("Invalid credentials").waitFor().then(() => true, () => false);
run.check(refused, "a wrong password: the form says Invalid credentials");
await page.getByLabel("Password").fill(password);
await page.getByRole("button", { name: "Connect" }).click();
const loggedIn = await page.getByRole("button", { name: "Connect" }).waitFor({ state: "hidden" }).then(() => true, () => false);
run.check(loggedIn, "the right password: the connection form closes");

// 3. The sockets and their rooms.
await page.evaluate(() => (location.hash = "#/sockets/"));
const row = (id) => page.locator("tbody tr", { hasText: id });
for (const id of ids) {
  const shown = await row(id).first().waitFor().then(() => true, () => false);
  run.check(shown, `the Sockets page lists ${id}`);
}
run.equal(await page.locator("tbody tr", { hasText: ids[0] }).count() + (await row(ids[1]).count()), 2, "two chat client rows");
await page.evaluate(() => (location.hash = "#/rooms/"));
for (const room of ["room:blue", "room:green"]) {
  const shown = await page.getByText(room, { exact: true }).first().waitFor().then(() => true, () => false);
  run.check(shown, `the Rooms page shows ${room}`);
}

// 4. Disconnect the first client from the Sockets page.
await page.evaluate(() => (location.hash = "#/sockets/"));
await row(ids[0]).first().waitFor();
await row(ids[0]).first().locator("button").last().click();
// The click reaches the row too, which opens the socket's details (the UI
// does so): they say it is disconnected. Back to the list.
const told = await page.getByText("disconnected", { exact: true }).first().waitFor().then(() => true, () => false);
run.check(told, "the socket's details say disconnected");
await page.evaluate(() => (location.hash = "#/sockets/"));
await row(ids[1]).first().waitFor();
const gone = await row(ids[0]).first().waitFor({ state: "detached" }).then(() => true, () => false);
run.check(gone, "the disconnected client leaves the Sockets page");
const reason = await chat.page
  .waitForFunction((id) => window.reasons[id], ids[0], { timeout: WAIT_MS })
  .then((h) => h.jsonValue(), () => null);
run.equal(reason, "io server disconnect", "the first client is disconnected by the server");
run.equal(await row(ids[1]).count(), 1, "the second client is still listed");
run.equal(await chat.page.evaluate((id) => window.reasons[id] ?? null, ids[1]), null, "the second client stays connected");
if (opts.screenshot) {
  await page.screenshot({ path: opts.screenshot });
  console.log(`SCREENSHOT ${opts.screenshot}`);
}
run.counts.sockets_listed_before = 2;
run.counts.sockets_listed_after = await page.locator("tbody tr", { hasText: ids[1] }).count();
await run.finish();
