// Browser test of the ops page (/ui/): Debian's chromium, headless, driven by
// playwright-core. It starts its own arbiter on a fresh database, opens a case
// over HTTP, loads the page with a senior agent's key and checks what an
// operator sees: the case, its state, its timeline with the hash chain, the
// decision rules and the queues. A screenshot goes to build/ui-screenshot.png.
//
// Environment: ARBITER_BIN (default build/arbiter), ARBITER_ADMIN_URL (default:
// `deploy/local/pgctl.sh admin-url`), CHROMIUM (default /usr/bin/chromium).
// Prints "N passed, N failed" last; exits 1 on any failure.

import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import http_ from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { chromium } from "playwright-core";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, "..", "..");
const BIN = process.env.ARBITER_BIN || path.join(REPO, "build", "arbiter");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const POLICY = path.join(REPO, "deploy", "policy", "default.json"); // deadlines in days: nothing expires
const SCREENSHOT = path.join(REPO, "build", "ui-screenshot.png");  // -zh-CN.png for Chinese
const OVERALL_MS = 100000;

// The page in each language: what an operator reads there. Codes (states,
// kinds, rule ids, actions) are the same in both.
const LANGS = ["en", "zh-CN"];
const EXPECT = {
  "en": {
    enterKey: "enter an API key", updated: "updated", none: /none/, partial: "(1234, 2 shown)",
    timeLeft: /^in \d+(\.\d+)? (s|min|h)$/, found: / cases?$/, zeroFound: /^0 cases$/,
    intact: "chain intact", rehashed: /re-hashed by the server/, broken: "chain broken",
    withheld: /not sent the digests/,
    brokenAt2: (t) => /event 2/.test(t) && !/intact/.test(t),
    edited: "chain broken at event 2: hash does not match the event's content",
    firstResponse: /^in (3\.\d|4\.0) h$/, queuesHeading: "Queues", byKind: "by kind",
    han: false, deadTitle: "Webhook dead letters", deadNote: /^dead letters: 1 \(in \d+ subscriptions\)$/,
  },
  "zh-CN": {
    enterKey: "请输入 API 密钥", updated: "已更新", none: /无/, partial: "(1234，显示 2 条)",
    timeLeft: /^剩余 \d+(\.\d+)? (秒|分钟|小时)$/, found: /个案件$/, zeroFound: /^0 个案件$/,
    intact: "哈希链完整", rehashed: /由服务器于 .* 重新计算/, broken: "哈希链在事件",
    withheld: /店铺密钥不接收摘要/,
    brokenAt2: (t) => /事件 2/.test(t) && !/完整/.test(t),
    // the server's verdict is quoted as it gives it
    edited: "哈希链在事件 2 处断裂：hash does not match the event's content",
    firstResponse: /^剩余 (3\.\d|4\.0) 小时$/, queuesHeading: "队列", byKind: "按类型",
    han: true, deadTitle: "Webhook 死信", deadNote: /^死信：1 条（\d+ 个订阅）$/,
  },
};
const HAN = /[\u4e00-\u9fff]/;

let passed = 0;
let failed = 0;
const cleanups = [];

function log(msg) { process.stdout.write(msg + "\n"); }

async function check(name, fn) {
  try {
    await fn();
    passed++;
    log(`ok   ${name}`);
    return true;
  } catch (e) {
    failed++;
    log(`FAIL ${name}\n     ${String(e && e.stack || e).split("\n").slice(0, 6).join("\n     ")}`);
    return false;
  }
}

function assert(cond, msg) { if (!cond) throw new Error(msg); }

// ---------------------------------------------------------------- database
function adminUrl() {
  if (process.env.ARBITER_ADMIN_URL) return process.env.ARBITER_ADMIN_URL;
  const cp = spawnSync("bash", [path.join(REPO, "deploy", "local", "pgctl.sh"), "admin-url"],
    { encoding: "utf8" });
  if (cp.status !== 0) throw new Error(`pgctl.sh admin-url failed: ${cp.stderr}`);
  return cp.stdout.trim();
}

// Replace dbname/user in a libpq key=value string or a postgres:// URI.
function conninfoWith(url, changes) {
  if (/^postgres(ql)?:\/\//.test(url)) {
    const u = new URL(url);
    if (changes.dbname) { u.pathname = "/" + encodeURIComponent(changes.dbname); u.searchParams.delete("dbname"); }
    if (changes.user) { u.username = encodeURIComponent(changes.user); u.password = ""; u.searchParams.delete("user"); }
    return u.toString();
  }
  const parts = url.trim().split(/\s+/).filter((p) => {
    const k = p.split("=")[0];
    return !(k in changes);
  });
  for (const [k, v] of Object.entries(changes)) parts.push(`${k}=${v}`);
  return parts.join(" ");
}

function psql(url, sql) {
  const cp = spawnSync("psql", ["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql],
    { encoding: "utf8", env: { ...process.env, PGCONNECT_TIMEOUT: "10" } });
  if (cp.status !== 0) throw new Error(`psql failed on ${sql}: ${cp.stderr}`);
  return cp.stdout;
}

function arbiter(args, dbUrl) {
  const cp = spawnSync(BIN, args, {
    encoding: "utf8",
    env: { ...process.env, ARBITER_DATABASE_URL: dbUrl, ARBITER_POLICY: POLICY, ARBITER_LOG_LEVEL: "warn" },
  });
  if (cp.status !== 0) throw new Error(`arbiter ${args.join(" ")} failed (${cp.status}): ${cp.stdout}${cp.stderr}`);
  return cp.stdout;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => resolve(p)); });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------- HTTP
async function http(base, method, p, { key, body, headers } = {}) {
  const h = { Accept: "application/json, application/problem+json", ...(headers || {}) };
  if (key) h.Authorization = "Bearer " + key;
  if (body !== undefined) h["Content-Type"] = "application/json";
  const r = await fetch(base + p, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: r.status, headers: r.headers, json, text };
}

function iso(msAgo) { return new Date(Date.now() - msAgo).toISOString().replace(/\.\d+Z$/, ".000Z"); }

function complaintBody(shop, description) {
  const day = 86400000;
  return {
    kind: "complaint",
    reason: "poor_service",
    description,
    complaint: { category: "service_quality", public_exposure: true },
    order: {
      id: "ord-" + randomBytes(4).toString("hex"),
      shop_id: shop,
      buyer_id: "buyer-" + randomBytes(4).toString("hex"),
      sku: "KETTLE-1L-WHITE",
      category: "kitchen",
      price_cents: 10000,
      shipping_fee_cents: 800,
      free_shipping: false,
      paid_at: iso(4 * day),
      promised_ship_by: iso(2 * day),
      shipped_at: iso(3 * day),
      delivered_at: iso(1 * day),
    },
    evidence: [{ kind: "photo", url: "https://img.example.com/ev/1.jpg" }],
  };
}

// ---------------------------------------------------------------- main
async function main() {
  const admin = adminUrl();
  const dbName = "arbiter_ui_" + randomBytes(5).toString("hex");
  const dbUrl = conninfoWith(admin, { dbname: dbName, user: "arbiter" });

  // as make run sets it up: arbiter_owner owns and migrates, arbiter owns nothing
  for (const role of ["arbiter", "arbiter_owner"])
    psql(admin, `DO $$BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '${role}') ` +
      `THEN CREATE ROLE ${role} LOGIN; END IF; END$$;`);
  psql(admin, `CREATE DATABASE "${dbName}" OWNER arbiter_owner;`);
  cleanups.push(() => psql(admin, `DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE);`));

  arbiter(["migrate", "--grant", "arbiter"], conninfoWith(admin, { dbname: dbName, user: "arbiter_owner" }));
  const frontend = arbiter(["keys", "create", "--role", "frontend", "--name", "ui-frontend"], dbUrl).trim().split("\n").pop();
  const agent = arbiter(["keys", "create", "--role", "agent", "--name", "ui-senior", "--senior"], dbUrl).trim().split("\n").pop();
  assert(/^ak_[0-9a-f]{12}_[0-9a-f]{48}$/.test(frontend) && /^ak_[0-9a-f]{12}_[0-9a-f]{48}$/.test(agent),
    "keys create did not print keys");

  // a webhook receiver: answers hook.status, records every request
  const hook = { status: 500, hits: [] };
  const receiver = http_.createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      hook.hits.push({ id: req.headers["webhook-id"], status: hook.status });
      res.writeHead(hook.status, { "Content-Length": "2" });
      res.end("ok");
    });
  });
  await new Promise((resolve) => receiver.listen(0, "127.0.0.1", resolve));
  cleanups.push(() => new Promise((resolve) => receiver.close(() => resolve())));
  receiver.unref();
  const hookUrl = `http://127.0.0.1:${receiver.address().port}/hook`;

  // the server
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const logPath = path.join(os.tmpdir(), `arbiter-ui-${port}.log`);
  const logFd = fs.openSync(logPath, "w");
  const srv = spawn(BIN, ["serve"], {
    stdio: ["ignore", logFd, logFd],
    env: { ...process.env, ARBITER_LISTEN: `127.0.0.1:${port}`, ARBITER_DATABASE_URL: dbUrl,
           ARBITER_POLICY: POLICY, ARBITER_LOG_LEVEL: "warn",
           // the receiver above, and the retry schedule's 3 days in 3 s
           ARBITER_WEBHOOK_ALLOW_HOSTS: "127.0.0.1", ARBITER_WEBHOOK_RETRY_SCALE: "0.00001" },
  });
  let srvExit = null;
  srv.on("exit", (code, sig) => { srvExit = { code, sig }; });
  cleanups.push(async () => {
    if (srvExit) return;
    srv.kill("SIGTERM");
    for (let i = 0; i < 100 && !srvExit; i++) await sleep(100);
    if (!srvExit) srv.kill("SIGKILL");
  });
  for (let i = 0; ; i++) {
    if (srvExit) throw new Error(`arbiter exited during start-up: ${fs.readFileSync(logPath, "utf8")}`);
    try { if ((await http(base, "GET", "/healthz")).status === 200) break; } catch { /* not yet */ }
    if (i > 200) throw new Error("arbiter did not become healthy");
    await sleep(100);
  }

  // the case: a major complaint (public exposure), acknowledged by the senior agent
  const shop = "shop-ui-" + randomBytes(3).toString("hex");
  const evil = 'Rude agent <img src=x id="xss-probe" onerror="window.__xss=1"> & <b>bold</b>';
  let caseId, caseState;
  const firstBody = complaintBody(shop, evil);
  await check("POST /v1/cases opens a major complaint", async () => {
    const r = await http(base, "POST", "/v1/cases", { key: frontend, body: firstBody });
    assert(r.status === 201, `expected 201, got ${r.status} ${r.text}`);
    assert(r.json.decision.severity === "major", `severity ${r.json.decision.severity}`);
    caseId = r.json.id;
    const a = await http(base, "POST", `/v1/cases/${caseId}/actions`, {
      key: agent, headers: { "If-Match": r.headers.get("etag") },
      body: { action: "acknowledge", message: "on it" },
    });
    assert(a.status === 200, `acknowledge: ${a.status} ${a.text}`);
    caseState = a.json.state;
    assert(caseState === "acknowledged", `state after acknowledge: ${caseState}`);
  });
  // a second case for the tamper check below
  let otherId;
  await check("POST /v1/cases opens a second case", async () => {
    const r = await http(base, "POST", "/v1/cases", { key: frontend, body: complaintBody(shop, "Second complaint.") });
    assert(r.status === 201, `expected 201, got ${r.status} ${r.text}`);
    otherId = r.json.id;
    const a = await http(base, "POST", `/v1/cases/${otherId}/actions`, {
      key: agent, headers: { "If-Match": r.headers.get("etag") }, body: { action: "note", text: "called the buyer" },
    });
    assert(a.status === 200, `note: ${a.status} ${a.text}`);
  });
  if (!caseId) return;

  // the browser, once per language: the page picks its language from the
  // browser's (the Accept-Language it sends), asks the API for the same, and
  // the checks expect that language's texts (X)
  for (const [li, L] of LANGS.entries()) {
    const X = EXPECT[L];
    const last = li === LANGS.length - 1;
    log(`---- ops page in ${L}`);
    // the browser
    const profile = fs.mkdtempSync(path.join(os.tmpdir(), "arbiter-ui-chromium-"));
    cleanups.push(() => fs.rmSync(profile, { recursive: true, force: true }));
    const ctx = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync"],
      viewport: { width: 1400, height: 1000 },
      locale: L,   // navigator.languages and the browser's Accept-Language
      timeout: 20000,
    });
    cleanups.push(() => ctx.close());
    const page = ctx.pages()[0] || await ctx.newPage();
    page.setDefaultTimeout(8000);
    const pageErrors = [];
    const consoleErrors = [];
    page.on("pageerror", (e) => pageErrors.push(String(e)));
    page.on("console", (m) => {
      if (m.type() === "error") consoleErrors.push({ text: m.text(), url: (m.location() || {}).url || "" });
    });
    const requests = [];
    page.on("request", (r) => requests.push(r.url()));

    await check("GET /ui/ serves the page with its CSP", async () => {
      const resp = await page.goto(base + "/ui/", { waitUntil: "load" });
      assert(resp.status() === 200, `status ${resp.status()}`);
      const csp = resp.headers()["content-security-policy"] || "";
      assert(csp.includes("default-src 'self'"), `CSP: ${csp}`);
      assert(await page.title() === "arbiter ops", `title ${await page.title()}`);
      await page.getByTestId("status").filter({ hasText: X.enterKey }).waitFor();
    });

    await check("the key is taken, kept in sessionStorage and sent as a bearer token", async () => {
      const statsReq = page.waitForRequest((r) => r.url().endsWith("/v1/stats"));
      await page.getByTestId("api-key").fill(agent);
      await page.getByTestId("key-save").click();
      const req = await statsReq;
      assert(req.headers()["authorization"] === "Bearer " + agent, "no bearer header on /v1/stats");
      const stored = await page.evaluate(() => sessionStorage.getItem("arbiter.apiKey"));
      assert(stored === agent, "key not in sessionStorage");
      await page.getByTestId("status").filter({ hasText: X.updated }).waitFor();
    });

    await check("live counts come from /v1/stats", async () => {
      await page.getByTestId("stat-total").filter({ hasText: /^2$/ }).waitFor();
      const kinds = await page.getByTestId("by-kind").innerText();
      assert(/complaint\s+2/.test(kinds), `by kind: ${kinds}`);
      const states = await page.getByTestId("by-state").innerText();
      assert(/acknowledged\s+1/.test(states) && /awaiting_agent\s+1/.test(states), `by state: ${states}`);
    });

    await check("the major_complaints queue lists both cases with links", async () => {
      const q = page.getByTestId("queue-major_complaints");
      await q.locator(`a[data-case-id="${caseId}"]`).waitFor();
      await q.locator(`a[data-case-id="${otherId}"]`).waitFor();
      // the count is the stats' whole-queue count, not the page's length
      await page.getByTestId("queue-count-major_complaints").filter({ hasText: /^\(2\)$/ }).waitFor();
      const rows = await q.locator("tbody tr").count();
      assert(rows === 2, `rows ${rows}`);
      const ia = await page.getByTestId("queue-in_arbitration").innerText();
      assert(X.none.test(ia), `in_arbitration should be empty: ${ia}`);
    });

    await check("queue sizes come from /v1/stats, not from the page of items", async () => {
      const counted = [];
      await page.route("**/v1/stats", async (route) => {
        const resp = await route.fetch();
        const body = await resp.json();
        body.queues.major_complaints = 1234;
        counted.push(route.request().url());
        await route.fulfill({ response: resp, json: body });
      });
      await page.getByTestId("shop-filter").dispatchEvent("change");  // reloads the stats
      await page.getByTestId("queue-count-major_complaints").filter({ hasText: X.partial }).waitFor();
      await page.unroute("**/v1/stats");
      assert(counted.length > 0, "no stats request");
      await page.getByTestId("shop-filter").dispatchEvent("change");
      await page.getByTestId("queue-count-major_complaints").filter({ hasText: /^\(2\)$/ }).waitFor();
    });

    await check("the trend chart draws the hours of /v1/stats", async () => {
      const trend = page.getByTestId("trend");
      await trend.locator("rect.opened").first().waitFor({ state: "attached" });
      assert(await trend.locator("rect.opened").count() === 24, "24 hourly bars of opened cases");
      assert(await trend.locator("rect.refunds").count() === 24, "24 hourly bars of refunds");
      assert(await trend.getAttribute("data-opened-total") === "2", `opened ${await trend.getAttribute("data-opened-total")}`);
      assert(await trend.getAttribute("data-refunds-total") === "0", "refunds");
    });

    await check("breached and overdue deadlines are listed (none here), near ones show time left", async () => {
      await page.getByTestId("queue-count-overdue").filter({ hasText: /^\(0\)$/ }).waitFor();
      await page.getByTestId("queue-count-breached").filter({ hasText: /^\(0\)$/ }).waitFor();
      assert(X.none.test(await page.getByTestId("queue-overdue").innerText()), "overdue should be empty");
      assert(X.none.test(await page.getByTestId("queue-breached").innerText()), "breached should be empty");
      const near = page.getByTestId("queue-near_deadline");
      await near.locator(`a[data-case-id="${otherId}"]`).waitFor();
      // the second case's 4 h first response (the first was acknowledged)
      const left = await near.locator("[data-time-left]").first().getAttribute("data-time-left");
      assert(X.timeLeft.test(left), `time left ${left}`);
    });

    await check("the SLA panel reads the pending-deadline gauge /metrics exports", async () => {
      await page.getByTestId("sla-pending").waitFor();
      const pending = await page.getByTestId("sla-pending").innerText();
      assert(/^\d+$/.test(pending), `pending ${pending}`);
    });

    await check("the calendar's days left, and a warning within 60 days of its end, as /metrics says", async () => {
      const text = (await http(base, "GET", "/metrics", { headers: { Accept: "text/plain" } })).text;
      const m = /^arbiter_calendar_remaining_seconds (-?\d+)$/m.exec(text);
      assert(m, "no arbiter_calendar_remaining_seconds in /metrics");
      const days = Math.floor(Number(m[1]) / 86400);
      await page.getByTestId("calendar-days").waitFor();
      const shown = await page.getByTestId("calendar-days").innerText();
      assert(shown === String(Math.max(days, 0)), `days shown ${shown}, /metrics ${days}`);
      const warn = page.getByTestId("calendar-warning");
      if (days < 60) {
        await warn.waitFor();
        const w = await warn.innerText();
        assert(days < 0 || w.includes(String(days)), `warning: ${w}`);
        assert(/PUT \/v1\/calendars/.test(w), `warning names no remedy: ${w}`);
      } else {
        assert(await warn.isHidden(), "a warning with more than 60 days left");
      }
    });

    await check("every metric the page reads is one /metrics exports", async () => {
      const src = (await http(base, "GET", "/ui/")).text;
      const wanted = [...new Set(src.match(/\barbiter_[a-z0-9_]+/g) || [])];
      assert(wanted.length >= 4, `the page names only ${wanted.join(", ")}`);
      const text = (await http(base, "GET", "/metrics", { headers: { Accept: "text/plain" } })).text;
      const have = new Set();  // families (# TYPE) and series (histograms' _count, _sum, _bucket)
      for (const line of text.split("\n")) {
        const t = /^# TYPE (\S+)/.exec(line);
        if (t) { have.add(t[1]); continue; }
        const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(line);
        if (m) have.add(m[1]);
      }
      const missing = wanted.filter((n) => !have.has(n));
      assert(missing.length === 0, `the page reads metrics /metrics does not export: ${missing.join(", ")}`);
    });

    await check("find by order id, buyer and SKU uses the list's filters", async () => {
      const find = async (by, q) => {
        await page.getByTestId("find-by").selectOption(by);
        await page.getByTestId("find-q").fill(q);
        const resp = page.waitForResponse((r) => r.url().includes("/v1/cases?" + by + "="));
        await page.getByTestId("find-go").click();
        await resp;
        await page.getByTestId("find-note").filter({ hasText: X.found }).waitFor();
        return page.getByTestId("find-results");
      };
      let t = await find("order_id", firstBody.order.id);
      await t.locator(`a[data-case-id="${caseId}"]`).waitFor();
      assert(await t.locator("tbody tr").count() === 1, "one case by order id");
      t = await find("buyer_id", firstBody.order.buyer_id);
      await t.locator(`a[data-case-id="${caseId}"]`).waitFor();
      assert(await t.locator("tbody tr").count() === 1, "one case by buyer");
      t = await find("sku", "KETTLE-1L-WHITE");
      await t.locator(`a[data-case-id="${otherId}"]`).waitFor();
      await t.locator(`a[data-case-id="${caseId}"]`).waitFor();
      assert(await t.locator("tbody tr").count() === 2, "both cases by SKU");
      t = await find("sku", "NO-SUCH-SKU");
      await page.getByTestId("find-note").filter({ hasText: X.zeroFound }).waitFor();
      await page.getByTestId("find-by").selectOption("id");
      await page.getByTestId("find-q").fill(otherId);
      await page.getByTestId("find-go").click();
      await page.getByTestId("case-id-value").filter({ hasText: otherId }).waitFor();
    });

    await check("opening the case shows its id, state, timeline, chain and rules", async () => {
      await page.getByTestId("case-id").fill(caseId);
      await page.getByTestId("case-open").click();
      await page.getByTestId("case-id-value").filter({ hasText: caseId }).waitFor();
      const st = await page.getByTestId("case-state").innerText();
      assert(st === caseState, `state shown ${st}, expected ${caseState}`);
      const tl = page.getByTestId("timeline");
      await tl.locator('tr[data-action="open"]').waitFor();
      await tl.locator('tr[data-action="acknowledge"]').waitFor();
      const openRow = await tl.locator('tr[data-action="open"]').innerText();
      assert(/frontend/.test(openRow) && /∅ → awaiting_agent/.test(openRow), `open row: ${openRow}`);
      const ackRow = await tl.locator('tr[data-action="acknowledge"]').innerText();
      assert(/agent/.test(ackRow) && /awaiting_agent → acknowledged/.test(ackRow), `ack row: ${ackRow}`);
      const chain = page.getByTestId("chain-status");
      await chain.filter({ hasText: X.intact }).waitFor();
      assert(X.rehashed.test(await chain.innerText()), `chain: ${await chain.innerText()}`);

      const rules = await page.getByTestId("rules").innerText();
      assert(/R-COMPLAINT-SEVERITY\s+fired/.test(rules), `rules: ${rules.slice(0, 300)}`);
      assert(await page.getByTestId("case-severity").innerText() === "major / service_quality", "severity");
    });

    await check(`the page and the API's texts are in ${L}`, async () => {
      assert(await page.evaluate(() => document.documentElement.lang) === L, "html lang");
      assert(await page.getByTestId("lang").inputValue() === L, "the toggle shows the language");
      assert((await page.locator("#queues h2").innerText()) === X.queuesHeading, "queues heading");
      assert((await page.locator("#counts h3").first().innerText()) === X.byKind, "by kind heading");
      const req = requests.length;  // every API call asks for the page's language
      const caseReq = page.waitForRequest((r) => r.url().includes(`/v1/cases/${caseId}/events`));
      await page.getByTestId("case-open").click();
      const sent = (await caseReq).headers()["accept-language"];
      assert(sent === L, `Accept-Language sent ${sent}`);
      assert(requests.length > req, "no request");
      await page.getByTestId("timeline").locator('tr[data-action="open"]').waitFor();
      const rules = await page.getByTestId("rules").innerText();
      const openRow = await page.getByTestId("timeline").locator('tr[data-action="open"]').innerText();
      assert(HAN.test(rules) === X.han && HAN.test(openRow) === X.han, `rules ${rules.slice(0, 200)} / ${openRow}`);
      assert(/R-COMPLAINT-SEVERITY/.test(rules), "rule ids stay");
    });

    if (L === "en") await check("the toggle switches the page to zh-CN and back, and remembers", async () => {
      await page.getByTestId("lang").selectOption("zh-CN");
      await page.locator("#queues h2").filter({ hasText: "队列" }).waitFor();
      await page.getByTestId("status").filter({ hasText: "已更新" }).waitFor();
      await page.getByTestId("queue-count-major_complaints").filter({ hasText: /^\(2\)$/ }).waitFor();
      assert(await page.evaluate(() => localStorage.getItem("arbiter.lang")) === "zh-CN", "not remembered");
      await page.getByTestId("lang").selectOption("en");
      await page.locator("#queues h2").filter({ hasText: "Queues" }).waitFor();
      await page.getByTestId("status").filter({ hasText: "updated" }).waitFor();
    });

    await check("data is inserted as text, never as HTML", async () => {
      const d = await page.getByTestId("case-description").innerText();
      assert(d === evil, `description shown as ${JSON.stringify(d)}`);
      assert(await page.locator("#xss-probe").count() === 0, "an <img> from the data was parsed");
      assert(await page.evaluate(() => window.__xss === undefined), "the onerror handler ran");
    });

    await check("a queue link opens that case", async () => {
      await page.getByTestId("queue-major_complaints").locator(`a[data-case-id="${otherId}"]`).click();
      await page.getByTestId("case-id-value").filter({ hasText: otherId }).waitFor();
      await page.getByTestId("timeline").locator('tr[data-action="note"]').waitFor();
      await page.getByTestId("chain-status").filter({ hasText: X.intact }).waitFor();
      // a major complaint's first response: 4 hours from its opening
      const lefts = await page.getByTestId("case-deadlines").locator("[data-time-left]").allInnerTexts();
      assert(lefts.length === 1 && X.firstResponse.test(lefts[0]), `time left: ${lefts.join(", ")}`);
      // back to the first case for the screenshot
      await page.getByTestId("case-id").fill(caseId);
      await page.getByTestId("case-open").click();
      await page.getByTestId("case-id-value").filter({ hasText: caseId }).waitFor();
      await page.getByTestId("timeline").locator('tr[data-action="acknowledge"]').waitFor();
    });

    await check("the page loads nothing from elsewhere and raises no errors", async () => {
      const foreign = requests.filter((u) => !u.startsWith(base + "/"));
      assert(foreign.length === 0, `foreign requests: ${foreign.join(", ")}`);
      assert(pageErrors.length === 0, `page errors: ${pageErrors.join("; ")}`);
      // /metrics may be closed or missing on a build (the page tolerates that), and
      // the browser asks for /favicon.ico by itself; nothing else may fail
      const other = consoleErrors.filter((e) => !e.url.endsWith("/metrics") && !e.url.endsWith("/favicon.ico"));
      assert(other.length === 0, `console errors: ${other.map((e) => e.text + " " + e.url).join("; ")}`);
    });

    await check("a webhook dead letter is listed, replayed from the page, and leaves the list", async () => {
      hook.status = 500;
      const wshop = "shop-wh-" + randomBytes(3).toString("hex");
      const sub = await http(base, "POST", "/v1/webhooks",
        { key: frontend, body: { url: hookUrl, shop_id: wshop, event_types: ["case.*"] } });
      assert(sub.status === 201, `subscribe: ${sub.status} ${sub.text}`);
      // a ping rather than a case event: the cases the other checks count stay two
      const ping = await http(base, "POST", `/v1/webhooks/${sub.json.id}/ping`, { key: frontend });
      assert(ping.status === 202, `ping: ${ping.status} ${ping.text}`);
      let dead = null;
      for (let i = 0; i < 150 && !dead; i++) {
        const r = await http(base, "GET", `/v1/webhooks/${sub.json.id}/deliveries?state=dead`, { key: frontend });
        dead = (r.json.items || [])[0] || null;
        if (!dead) await sleep(100);
      }
      assert(dead && dead.attempts === 10, `no dead letter: ${JSON.stringify(dead)}`);
      assert((await page.locator("#dead-letters h2").innerText()) === X.deadTitle, "dead letters heading");
      await page.getByTestId("api-key").fill(frontend);
      await page.getByTestId("key-save").click();
      await page.getByTestId("dead-show").click();
      const row = page.getByTestId("dead-table").locator(`tr[data-delivery-id="${dead.id}"]`);
      await row.waitFor();
      const text = await row.innerText();
      for (const want of [hookUrl, dead.webhook_id, "webhook.ping", "10", "500", dead.last_error, dead.finished_at])
        assert(text.includes(want), `row lacks ${want}: ${text}`);
      const note = await page.getByTestId("dead-note").innerText();
      assert(X.deadNote.test(note), `note: ${note}`);
      // the receiver is fixed: the page's button replays it through the API
      hook.status = 204;
      const replayed = page.waitForResponse((r) => r.url().endsWith(`/deliveries/${dead.id}/replay`));
      await row.getByTestId("dead-replay").click();
      assert((await replayed).status() === 202, "replay not accepted");
      await row.waitFor({ state: "detached" });
      for (let i = 0; i < 150 && !hook.hits.some((x) => x.id === dead.webhook_id && x.status === 204); i++)
        await sleep(100);
      assert(hook.hits.some((x) => x.id === dead.webhook_id && x.status === 204), "the replay never arrived");
      await page.getByTestId("api-key").fill(agent);
      await page.getByTestId("key-save").click();
    });

    await check(`screenshot saved to build/ui-screenshot${L === "en" ? "" : "-" + L}.png`, async () => {
      fs.mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
      const shot = L === "en" ? SCREENSHOT : SCREENSHOT.replace(/\.png$/, `-${L}.png`);
      await page.screenshot({ path: shot, fullPage: true });
      const st = fs.statSync(shot);
      assert(st.size > 10000, `screenshot is only ${st.size} bytes`);
    });

    await check("a broken hash chain is reported", async () => {
      await page.route(`**/v1/cases/${otherId}/events`, async (route) => {
        const resp = await route.fetch();
        const body = await resp.json();
        body.items[1].prev_hash = "f".repeat(64);
        await route.fulfill({ response: resp, json: body });
      });
      await page.getByTestId("case-id").fill(otherId);
      await page.getByTestId("case-open").click();
      await page.getByTestId("case-id-value").filter({ hasText: otherId }).waitFor();
      await page.getByTestId("chain-status").filter({ hasText: X.broken }).waitFor();
      const t = await page.getByTestId("chain-status").innerText();
      assert(X.brokenAt2(t), `chain status: ${t}`);
      await page.unroute(`**/v1/cases/${otherId}/events`);
    });

    if (last) await check("an event row edited in the database shows the chain broken", async () => {
      // as the superuser, past the append-only trigger: the second event's data changes,
      // its prev_hash and hash stay, so only re-hashing the row can tell
      psql(conninfoWith(admin, { dbname: dbName }),
        "SET session_replication_role = replica; " +
        `UPDATE case_events SET data = data || '{"text": "edited later"}' WHERE case_id = '${otherId}' AND seq = 2;`);
      await page.getByTestId("case-id").fill(caseId);
      await page.getByTestId("case-open").click();
      await page.getByTestId("case-id-value").filter({ hasText: caseId }).waitFor();
      await page.getByTestId("chain-status").filter({ hasText: X.intact }).waitFor();
      await page.getByTestId("case-id").fill(otherId);
      await page.getByTestId("case-open").click();
      await page.getByTestId("case-id-value").filter({ hasText: otherId }).waitFor();
      await page.getByTestId("chain-status").filter({ hasText: X.broken }).waitFor();
      const t = await page.getByTestId("chain-status").innerText();
      assert(t === X.edited, `chain status: ${t}`);
      assert(await page.getByTestId("chain-status").getAttribute("class") === "bad", "not shown as bad");
    });

    if (last) await check("a backtest shows as a table and a chart of refunds per day, current vs draft", async () => {
      const adminKey = arbiter(["keys", "create", "--role", "admin", "--name", "ui-admin"], dbUrl).trim().split("\n").pop();
      const policy = (await http(base, "GET", "/v1/policy", { key: adminKey })).json;
      async function backtest(draft) {
        const r = await http(base, "POST", "/v1/policy/backtests", { key: adminKey, body: { policy: draft } });
        assert(r.status === 202, `backtest: ${r.status} ${r.text}`);
        for (let i = 0; i < 100; i++) {
          const g = await http(base, "GET", `/v1/policy/backtests/${r.json.id}`, { key: adminKey });
          if (g.json.state !== "running") { assert(g.json.state === "done", g.text); return g.json; }
          await sleep(100);
        }
        throw new Error("backtest did not finish");
      }
      const same = await backtest(policy);
      const usd = await backtest({ ...policy, version: "2099.1-ui-usd", currency: "USD" });
      await page.getByTestId("api-key").fill(adminKey);
      await page.getByTestId("key-save").click();
      await page.getByTestId("backtest-id").fill(same.id);
      await page.getByTestId("backtest-load").click();
      await page.getByTestId("backtest-status").filter({ hasText: "done" }).waitFor();
      assert(await page.getByTestId("backtest-replayed").innerText() === "2", "replayed");
      assert(await page.getByTestId("backtest-unchanged").innerText() === "2", "unchanged");
      const chart = page.getByTestId("backtest-chart");
      const days = same.report.per_day.days;
      assert(await chart.locator("rect.current").count() === days.length, "one current bar per day");
      assert(await chart.locator("rect.draft").count() === days.length, "one draft bar per day");
      const cur = days.reduce((a, d) => a + d.refund_cents.before, 0);
      const dr = days.reduce((a, d) => a + d.refund_cents.after, 0);
      assert(await chart.getAttribute("data-current-total") === String(cur), "current total");
      assert(await chart.getAttribute("data-draft-total") === String(dr), "draft total");
      await page.getByTestId("backtest-id").fill(usd.id);
      await page.getByTestId("backtest-load").click();
      await page.getByTestId("backtest-status").filter({ hasText: "2099.1-ui-usd" }).waitFor();
      assert(await page.getByTestId("backtest-errors-count").innerText() === "2", "errors count");
      const errs = await page.getByTestId("backtest-errors").innerText();
      assert(/policy-refused/.test(errs) && /\/currency/.test(errs), `errors table: ${errs}`);
      await page.getByTestId("backtest-id").fill("bt_" + "0".repeat(20));
      await page.getByTestId("backtest-load").click();
      await page.getByTestId("backtest-error").filter({ hasText: "404" }).waitFor();
    });

    await check("a shop's seller, sent no digests, reads the server's verdict on the chain", async () => {
      const seller = arbiter(["keys", "create", "--role", "seller", "--shop", shop, "--name", "ui-seller"],
                             dbUrl).trim().split("\n").pop();
      await page.getByTestId("api-key").fill(seller);
      await page.getByTestId("key-save").click();
      // caseId: the last language's run edits otherId's second event
      await page.getByTestId("case-id").fill(caseId);
      await page.getByTestId("case-open").click();
      await page.getByTestId("case-id-value").filter({ hasText: caseId }).waitFor();
      const chain = page.getByTestId("chain-status");
      await chain.filter({ hasText: X.withheld }).waitFor();
      assert(await chain.getAttribute("class") !== "bad", `shown as bad: ${await chain.innerText()}`);
    });

    await check("a bad key shows the API's 401 instead of data", async () => {
      await page.getByTestId("api-key").fill("ak_000000000000_" + "0".repeat(48));
      await page.getByTestId("key-save").click();
      await page.locator("#counts-error").filter({ hasText: "401" }).waitFor();
    });
  }
}

const guard = setTimeout(() => {
  log("FAIL overall time limit exceeded");
  failed++;
  finish().then(() => process.exit(1));
}, OVERALL_MS);

let finished = false;
async function finish() {
  if (finished) return;
  finished = true;
  for (const c of cleanups.reverse()) { // last made, first undone
    try { await c(); } catch (e) { log(`cleanup: ${e}`); }
  }
}

main()
  .catch((e) => { failed++; log(`FAIL setup\n     ${e && e.stack || e}`); })
  .then(finish)
  .then(() => {
    clearTimeout(guard);
    log(`${passed} passed, ${failed} failed`);
    process.exit(failed ? 1 : 0);
  });
