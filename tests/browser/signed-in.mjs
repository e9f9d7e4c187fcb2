// signed-in: `tether serve --jwt-secret` (tests/chat_browser.rs gives the
// token in TETHER_TEST_TOKEN, for sub "alice", name "Alice Liddell"). A page
// opened at URL#token=JWT connects as the token's user: what it sends shows
// the token's name whatever the name field says, the token leaves the
// address bar, and a reload stays signed in; a page without a token is
// refused and says why.
import { Run, parseArgs } from "./lib.mjs";

const opts = parseArgs("signed-in");
const run = new Run(opts);
const [url] = opts.urls;
const token = process.env.TETHER_TEST_TOKEN;
if (!token) await run.finish("TETHER_TEST_TOKEN is not set");

const alice = await run.user("alice");
if (!(await alice.open(`${url}#token=${token}`))) await run.finish("the signed-in page did not connect");
run.equal(await alice.page.evaluate(() => location.hash), "", "the token left the address bar");
await alice.setName("Mallory");
await alice.send("hello as alice");
await alice.waitConfirmedText("hello as alice", "alice sent");
const first = (await alice.list()).find((m) => m.text === "hello as alice");
run.equal(first?.who, "Alice Liddell", "the message shows the token's name, not the name field's");

await alice.page.reload({ waitUntil: "load" });
await alice.watchStatus();
await alice.waitStatus("connected", "signed in again after a reload");
await alice.send("again after a reload");
await alice.waitConfirmedText("again after a reload", "alice sent after the reload");

const anonymous = await run.user("anonymous");
await anonymous.page.goto(url, { waitUntil: "load" });
await anonymous.watchStatus();
await anonymous.waitStatus("refused", "a page without a token is refused");
const said = await anonymous.page.evaluate(() => document.getElementById("status").textContent);
run.check(/needs a token/.test(said), "the refused page says a token is needed", "…needs a token…", said);

const shown = (await alice.list()).filter((m) => m.offset !== null);
run.extra.messages = shown.map((m) => [m.offset, m.text, m.id]);
run.equal(shown.map((m) => m.text), ["hello as alice", "again after a reload"], "the page shows what it sent, once each");
await run.finish();
