// Drives the sparsam dashboard in headless Chromium (playwright-core with
// the system browser) and checks it against the API. Started by
// tests/dashboard_browser.rs with SPARSAM_BASE, SPARSAM_TOKEN, SPARSAM_SHOT.
// Exits non-zero with a message on the first failed check.
import { chromium } from "playwright-core";
import { readFileSync } from "node:fs";

const BASE = process.env.SPARSAM_BASE;
const TOKEN = process.env.SPARSAM_TOKEN;
const SHOT = process.env.SPARSAM_SHOT;
const HOSTILE = "<img src=x onerror=alert(1)>";
const DIMS = ["page", "entry_page", "exit_page", "title", "referrer", "referrer_type", "search_engine",
  "utm_source", "utm_medium", "utm_campaign", "download", "outbound", "search_term", "device_type",
  "brand", "model", "os", "os_version", "browser", "browser_version", "engine", "plugin",
  "search_no_results"];

function check(cond, msg) {
  if (!cond) throw new Error("check failed: " + msg);
}
async function api(path, filters = []) {
  const u = new URL("/api/v1/sites/demo" + path, BASE);
  if (!u.searchParams.has("period") && !path.startsWith("/realtime")) u.searchParams.set("period", "today");
  for (const f of filters) u.searchParams.append("filter", f);
  const r = await fetch(u, { headers: { Authorization: "Bearer " + TOKEN } });
  check(r.ok, `${u} answered ${r.status}`);
  return r.json();
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const report = { dialogs: [], pageErrors: [], consoleErrors: [] };
try {
  const ctx = await browser.newContext({ acceptDownloads: true, locale: "en-US", viewport: { width: 1280, height: 900 } });
  const page = await ctx.newPage();
  page.on("dialog", (d) => { report.dialogs.push(d.message()); d.dismiss().catch(() => {}); });
  page.on("pageerror", (e) => report.pageErrors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error") report.consoleErrors.push(m.text()); });

  const res = await page.goto(BASE + "/dashboard");
  const h = res.headers();
  check(h["content-security-policy"]?.includes("script-src 'self'"), "CSP header: " + h["content-security-policy"]);
  check(h["x-frame-options"] === "DENY", "X-Frame-Options");

  // wrong token first: an error, no dashboard
  await page.fill("#token", "wrong-token-000000000000");
  await page.click("#signin-form button[type=submit]");
  await page.waitForFunction(() => document.getElementById("signin-error").textContent.length > 0);
  check(await page.isHidden("#app"), "dashboard hidden after a bad token");

  await page.fill("#token", TOKEN);
  await page.keyboard.press("Enter");
  const settled = () => page.waitForFunction(() => document.body.dataset.loading === "0");
  await settled();
  // the refused token above logged a 401; later errors count
  report.consoleErrors.length = 0;

  async function compareAll(filters, label) {
    const sum = await api("/summary?compare=previous", filters);
    for (const k of ["visits", "visitors", "pageviews", "downloads", "searches", "outbound", "bounce_rate"]) {
      const shown = await page.getAttribute(`[data-metric="${k}"] .value`, "data-value");
      check(Number(shown) === sum[k], `${label}: summary ${k} shows ${shown}, API says ${sum[k]}`);
    }
    const ts = await api("/timeseries", filters);
    const v = ts.buckets.reduce((a, b) => a + b.visits, 0);
    const pv = ts.buckets.reduce((a, b) => a + b.pageviews, 0);
    check(Number(await page.getAttribute("#chart", "data-visits")) === v, `${label}: chart visits`);
    check(Number(await page.getAttribute("#chart", "data-pageviews")) === pv, `${label}: chart page views`);
    for (const d of DIMS) {
      const b = await api(`/breakdown/${d}?limit=10`, filters);
      const rows = await page.$$eval(`.list[data-dim="${d}"] tr[data-value]`, (trs) =>
        trs.map((tr) => [tr.dataset.value, Number(tr.querySelector("[data-count]").dataset.count)]));
      const want = b.rows.map((r) => [r.value, r[b.metric]]);
      check(JSON.stringify(rows) === JSON.stringify(want), `${label}: list ${d} shows ${JSON.stringify(rows)}, API ${JSON.stringify(want)}`);
    }
    const rt = await api("/realtime", filters);
    check(Number(await page.getAttribute("#rt-visitors", "data-value")) === rt.visitors, `${label}: realtime visitors`);
    check(Number(await page.getAttribute("#rt-pageviews", "data-value")) === rt.pageviews, `${label}: realtime page views`);
    return sum;
  }

  const all = await compareAll([], "unfiltered");
  check(all.pageviews > 0, "seeded data visible");

  // hostile values are shown as text
  const titles = await page.$$eval('.list[data-dim="title"] .rowbtn', (b) => b.map((x) => x.textContent));
  check(titles.includes(HOSTILE), "hostile title shown literally: " + JSON.stringify(titles));
  const terms = await page.$$eval('.list[data-dim="search_term"] .rowbtn', (b) => b.map((x) => x.textContent));
  check(terms.includes(HOSTILE), "hostile search term shown literally");
  check((await page.$$("#lists img, #lists script")).length === 0, "no element made from visitor data");

  // CSV download of a list
  const [dl] = await Promise.all([
    page.waitForEvent("download"),
    page.click('.list[data-dim="title"] button.csv'),
  ]);
  const csv = readFileSync(await dl.path(), "utf8");
  check(csv.startsWith("title,pageviews,visits,events,share"), "CSV header: " + csv.slice(0, 80));
  check(csv.includes("'=cmd"), "CSV neutralises formulas");
  check(dl.suggestedFilename() === "demo-title.csv", "CSV file name " + dl.suggestedFilename());
  report.csvLines = csv.trim().split(/\r?\n/).length;

  // filter by clicking a row: every panel narrows
  await page.click('.list[data-dim="browser"] tr[data-value="Firefox"] .rowbtn');
  await page.waitForSelector('#chips .chip[data-dim="browser"]');
  await settled();
  const fx = await compareAll(["browser==Firefox"], "filtered");
  check(fx.pageviews < all.pageviews && fx.visitors < all.visitors, "filter narrows the summary");
  const rtv = Number(await page.getAttribute("#rt-visitors", "data-value"));
  check(rtv === 1, "filter narrows realtime, shows " + rtv);
  const dt = await page.$$eval('.list[data-dim="device_type"] tr[data-value]', (t) => t.map((x) => x.dataset.value));
  check(!dt.includes("smartphone"), "filter narrows the device list: " + dt);
  report.filtered = { pageviews: fx.pageviews, visits: fx.visits };

  await page.screenshot({ path: SHOT, fullPage: true });

  // remove the chip by keyboard
  await page.focus("#chips .chip");
  await page.keyboard.press("Enter");
  await settled();
  check((await page.$$("#chips .chip")).length === 0, "chip removed");
  await compareAll([], "after removing the filter");

  // German
  await page.click("#lang-toggle");
  check((await page.textContent('[data-metric="visits"] .label')) === "Besuche", "German labels");
  await settled();
  await page.screenshot({ path: SHOT.replace(/\.png$/, "-de.png"), fullPage: false });

  // period and interval pickers
  await page.selectOption("#period", "7d");
  await settled();
  await page.selectOption("#interval", "day");
  await settled();
  const days = await page.$$eval("#chart circle.pt-visits", (c) => c.length);
  check(days === 7, "7 daily points, got " + days);
  const week = await api("/summary?period=7d");
  check(Number(await page.getAttribute('[data-metric="pageviews"] .value', "data-value")) === week.pageviews, "7-day summary");

  // phone-sized screen: no horizontal scrolling
  await page.setViewportSize({ width: 375, height: 800 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 0, "no horizontal overflow on a phone, overflow " + overflow);
  await page.screenshot({ path: SHOT.replace(/\.png$/, "-phone.png"), fullPage: false });

  check(report.dialogs.length === 0, "dialogs fired: " + report.dialogs);
  check(report.pageErrors.length === 0, "page errors: " + report.pageErrors);
  check(report.consoleErrors.length === 0, "console errors (CSP violations?): " + report.consoleErrors);
  console.log(JSON.stringify({ ok: true, ...report }));
} catch (e) {
  console.log(JSON.stringify({ ok: false, error: String(e.message || e), ...report }));
  process.exitCode = 1;
} finally {
  await browser.close();
}
