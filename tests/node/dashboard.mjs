// Drives the sparsam dashboard in headless Chromium (playwright-core with
// the system browser) and checks what it shows against the API. Started by
// tests/dashboard_browser.rs with SPARSAM_BASE, SPARSAM_TOKEN (the demo
// site's token), SPARSAM_ADMIN, SPARSAM_SHOT (screenshot path) and
// SPARSAM_PAYLOADS (JSON list of hostile strings seeded into the data).
//
// Numbers are compared as text: the API's numbers are formatted here the
// way the dashboard promises to show them (docs/dashboard.md) and must
// equal the visible text, so a panel that shows the wrong figure, a
// figure formatted wrongly or nothing at all fails.
//
// Prints one JSON report as the last line; exits non-zero with a message
// on the first failed check.
import { chromium } from "playwright-core";
import { readFileSync } from "node:fs";

const BASE = process.env.SPARSAM_BASE;
const TOKEN = process.env.SPARSAM_TOKEN;
const ADMIN = process.env.SPARSAM_ADMIN;
const SHOT = process.env.SPARSAM_SHOT;
const PAYLOADS = JSON.parse(process.env.SPARSAM_PAYLOADS || "[]");
const DIMS = ["page", "entry_page", "exit_page", "title", "referrer", "referrer_type", "search_engine",
  "utm_source", "utm_medium", "utm_campaign", "download", "outbound", "search_term", "device_type",
  "brand", "model", "os", "os_version", "browser", "browser_version", "engine", "plugin",
  "search_no_results"];
const METRICS = ["visits", "visitors", "pageviews", "views_per_visit", "bounce_rate",
  "avg_dwell_seconds", "downloads", "searches", "outbound"];
const LABELS = {
  en: { visits: "Visits", pageviews: "Page views", previous: "previous period", no_data: "No data",
    year: "same period last year", points: "pp",
    bounce_rate: "Bounce rate", avg_dwell_seconds: "Avg. time on site", views_per_visit: "Views per visit" },
  de: { visits: "Besuche", pageviews: "Seitenaufrufe", previous: "Vorperiode", no_data: "Keine Daten",
    year: "Vorjahreszeitraum", points: "Pp.",
    bounce_rate: "Absprungrate", avg_dwell_seconds: "Ø Verweildauer", views_per_visit: "Seiten pro Besuch" },
};
// Lists of the site's URLs, shown as paths (docs/dashboard.md).
const PATH_DIMS = ["page", "entry_page", "exit_page", "download"];
// A long page path sent today (SPARSAM_LONG_URL): cut on screen, whole on hover.
const LONG_URL = process.env.SPARSAM_LONG_URL;

const report = { dialogs: [], pageErrors: [], consoleErrors: [], textChecks: 0, contrastPairs: 0,
  contrastMin: null, hostileSeen: [], shots: [] };

function check(cond, msg) {
  if (!cond) throw new Error("check failed: " + msg);
}
function same(shown, want, what) {
  report.textChecks++;
  check(shown === want, `${what}: the page shows ${JSON.stringify(shown)}, the API says ${JSON.stringify(want)}`);
}

// ---- the dashboard's number formats, as documented
function num(lang, n, digits = 0) {
  return new Intl.NumberFormat(lang, { maximumFractionDigits: digits, minimumFractionDigits: digits }).format(n);
}
function metricText(lang, k, v) {
  if (k === "bounce_rate") return num(lang, v * 100, 1) + " %";
  if (k === "views_per_visit") return num(lang, v, 2);
  if (k === "avg_dwell_seconds") {
    const s = Math.round(v);
    return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
  }
  return num(lang, v);
}
// Change against the compared period as documented: relative, whole
// percent, signed; the bounce rate in percentage points; "–" without a
// base.
function changeText(lang, k, now, before) {
  if (k === "bounce_rate") {
    return new Intl.NumberFormat(lang, { maximumFractionDigits: 1, minimumFractionDigits: 1, signDisplay: "exceptZero" })
      .format((now - before) * 100) + " " + LABELS[lang].points;
  }
  if (!before) return "–";
  return new Intl.NumberFormat(lang, { style: "percent", maximumFractionDigits: 0, signDisplay: "exceptZero" })
    .format((now - before) / before);
}
// A URL as the lists show it: path and query (escapes decoded), with the
// host only when the site has several hosts or the URL is elsewhere.
function shownUrl(value, hosts) {
  const m = /^https?:\/\/([^/?#]*)(.*)$/i.exec(value);
  if (!m) return value;
  let rest = m[2] || "/";
  try { rest = decodeURI(rest); } catch (_) { /* as stored */ }
  const bare = m[1].replace(/:\d+$/, "").toLowerCase();
  return hosts.length === 1 && hosts[0] === bare ? rest : m[1] + rest;
}
let HOSTS = {};
const shown = (view, d, value) => PATH_DIMS.includes(d) ? shownUrl(value, HOSTS[view.site]) : value;
function bucketLabel(start, interval) {
  const d = start.slice(0, 10), h = start.slice(11, 13);
  if (interval === "hour") return h + ":00";
  if (interval === "month") return d.slice(0, 7);
  return d.slice(5).replace("-", ".");
}

// ---- API
async function apiRaw(site, path, view, extra = {}) {
  const u = new URL(`/api/v1/sites/${site}${path}`, BASE);
  if (!path.startsWith("/realtime")) u.searchParams.set("period", view.period);
  for (const f of view.filters) u.searchParams.append("filter", f);
  for (const [k, v] of Object.entries(extra)) u.searchParams.set(k, v);
  const r = await fetch(u, { headers: { Authorization: "Bearer " + ADMIN } });
  check(r.ok, `${u} answered ${r.status}`);
  return r;
}
const api = async (...a) => (await apiRaw(...a)).json();

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});

async function newPage(options = {}) {
  const ctx = await browser.newContext({ acceptDownloads: true, locale: "en-US",
    viewport: { width: 1280, height: 900 }, ...options });
  const page = await ctx.newPage();
  page.on("dialog", (d) => { report.dialogs.push(d.message()); d.dismiss().catch(() => {}); });
  page.on("pageerror", (e) => report.pageErrors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error") report.consoleErrors.push(m.text()); });
  return page;
}
const settled = (page) => page.waitForFunction(() => document.body.dataset.loading === "0");

async function signIn(page, token) {
  await page.fill("#token", token);
  await page.keyboard.press("Enter");
  await page.waitForSelector("#app:not([hidden])");
  await settled(page);
}

// Every panel's visible text against the API for `view`
// ({site, period, interval, filters, lang}). Returns the API answers.
async function compareAll(page, view, label) {
  const L = LABELS[view.lang];
  const mode = view.compare || "previous";
  const sum = await api(view.site, "/summary", view, { compare: mode });
  for (const k of METRICS) {
    const box = `[data-metric="${k}"]`;
    same(await page.textContent(`${box} .value`), metricText(view.lang, k, sum[k]), `${label}: ${k}`);
    same(await page.textContent(`${box} .delta .before`), `${L[mode]}: ${metricText(view.lang, k, sum.compare[k])}`,
      `${label}: ${mode} ${k}`);
    same(await page.textContent(`${box} .delta .change`), changeText(view.lang, k, sum[k], sum.compare[k]),
      `${label}: change of ${k}`);
  }
  for (const k of ["bounce_rate", "avg_dwell_seconds", "views_per_visit"]) {
    same(await page.textContent(`[data-metric="${k}"] .label`), L[k], `${label}: label of ${k}`);
  }

  const ts = await api(view.site, "/timeseries", view,
    { compare: mode, ...(view.interval ? { interval: view.interval } : {}) });
  for (const k of ["visits", "pageviews"]) {
    const shown = await page.$$eval(`#chart circle.pt-${k} title`, (t) => t.map((x) => x.textContent));
    const want = ts.buckets.map((b) => `${bucketLabel(b.start, ts.interval)}: ${num(view.lang, b[k])} ${L[k]}`);
    same(shown.length, want.length, `${label}: chart points of ${k}`);
    same(JSON.stringify(shown), JSON.stringify(want), `${label}: chart ${k}`);
    // the compared period: a second line, one point per current bucket
    const before = await page.$$eval(`#chart circle.pt-before-${k} title`, (t) => t.map((x) => x.textContent));
    const wantBefore = ts.compare.buckets.map((b) =>
      `${L[mode]}, ${bucketLabel(b.start, ts.interval)}: ${num(view.lang, b[k])} ${L[k]}`);
    same(JSON.stringify(before), JSON.stringify(wantBefore), `${label}: chart ${k}, ${mode}`);
    same(await page.$$eval(`#chart polyline.before-${k}`, (l) => l.length), 1, `${label}: ${mode} line of ${k}`);
  }

  const lists = {};
  for (const d of DIMS) {
    const b = await api(view.site, `/breakdown/${d}`, view, { limit: "10" });
    lists[d] = b;
    const rows = await page.$$eval(`.list[data-dim="${d}"] tr`, (trs) => trs.map((tr) =>
      [...tr.querySelectorAll("td")].map((td) => td.textContent)));
    const want = b.rows.length === 0 ? [[L.no_data]] : b.rows.map((r) =>
      [shown(view, d, r.value), num(view.lang, r[b.metric]), num(view.lang, r.share * 100, 0) + " %"]);
    same(JSON.stringify(rows), JSON.stringify(want), `${label}: list ${d}`);
    // the full value on hover, whatever the row shows
    const titles = await page.$$eval(`.list[data-dim="${d}"] .rowbtn`, (bs) => bs.map((x) => x.title));
    same(JSON.stringify(titles), JSON.stringify(b.rows.map((r) => r.value)), `${label}: titles of list ${d}`);
    report.textChecks += b.rows.length * 3;
  }

  const rt = await api(view.site, "/realtime", view);
  same(await page.textContent("#rt-visitors"), num(view.lang, rt.visitors), `${label}: realtime visitors`);
  same(await page.textContent("#rt-pageviews"), num(view.lang, rt.pageviews), `${label}: realtime page views`);
  return { sum, ts, lists, rt, view };
}

// Hostile strings: nothing ran, nothing was parsed into elements, and every
// payload the API lists appears as literal text.
async function checkHostile(page, answers, label) {
  const flag = await page.evaluate(() => window.__sparsamPwned);
  check(flag === undefined, `${label}: a payload ran (window.__sparsamPwned = ${flag})`);
  check(report.dialogs.length === 0, `${label}: dialogs opened: ${report.dialogs}`);
  const made = await page.$$eval("#lists img, #lists script, #lists svg, #lists details, #lists iframe, #summary *:not(div), #chips *:not(button)",
    (els) => els.map((e) => e.outerHTML));
  check(made.length === 0, `${label}: elements made from visitor data: ${made}`);
  for (const [d, b] of Object.entries(answers.lists)) {
    for (const r of b.rows) {
      // payloads as sent, or percent-encoded inside a stored URL
      if (!PAYLOADS.some((p) => r.value.includes(p)) && !/%3C(img|script|details)/i.test(r.value)) continue;
      const onPage = await page.$$eval(`.list[data-dim="${d}"] .rowbtn`, (bs) => bs.map((x) => [x.textContent, x.title]));
      const text = shown(answers.view, d, r.value);
      check(onPage.some(([t, title]) => t === text && title === r.value),
        `${label}: hostile ${d} value ${JSON.stringify(r.value)} not shown literally: ${JSON.stringify(onPage)}`);
      if (!report.hostileSeen.includes(d)) report.hostileSeen.push(d);
    }
  }
}

// WCAG contrast of every visible text node's colour against the colour
// actually behind it (ancestors' backgrounds blended), from computed styles.
async function checkContrast(page, label) {
  const res = await page.evaluate(() => {
    const parse = (c) => {
      const m = c.match(/rgba?\(([^)]+)\)/);
      if (!m) return null;
      const p = m[1].split(/[\s,/]+/).filter(Boolean).map(Number);
      return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 };
    };
    const blend = (top, bottom) => ({
      r: top.r * top.a + bottom.r * (1 - top.a), g: top.g * top.a + bottom.g * (1 - top.a),
      b: top.b * top.a + bottom.b * (1 - top.a), a: 1,
    });
    const lum = ({ r, g, b }) => {
      const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
      return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
    };
    const background = (el) => {
      const layers = [];
      for (let e = el; e; e = e.parentElement) {
        const c = parse(getComputedStyle(e).backgroundColor);
        if (c && c.a > 0) { layers.push(c); if (c.a >= 1) break; }
      }
      let bg = { r: 255, g: 255, b: 255, a: 1 };
      for (const l of layers.reverse()) bg = blend(l, bg);
      return bg;
    };
    const out = [];
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    const seen = new Set();
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      const el = n.parentElement;
      if (!el || seen.has(el) || !n.textContent.trim()) continue;
      seen.add(el);
      if (el.closest("[hidden], title, script, style, option")) continue;
      const rect = el.getBoundingClientRect();
      const cs = getComputedStyle(el);
      if (rect.width === 0 || rect.height === 0 || cs.visibility === "hidden") continue;
      const svgText = el instanceof SVGElement;
      const fgRaw = parse(svgText ? cs.fill : cs.color);
      if (!fgRaw) continue;
      const bg = background(el);
      const fg = blend(fgRaw, bg);
      const [hi, lo] = [lum(fg), lum(bg)].sort((a, b) => b - a);
      const ratio = (hi + 0.05) / (lo + 0.05);
      out.push({ text: n.textContent.trim().slice(0, 40), tag: el.tagName.toLowerCase(),
        cls: el.getAttribute("class") || "", fg: svgText ? cs.fill : cs.color, ratio });
    }
    return out;
  });
  check(res.length > 0, `${label}: no text found for the contrast check`);
  const bad = res.filter((r) => r.ratio < 4.5);
  check(bad.length === 0, `${label}: text below 4.5:1 contrast: ${JSON.stringify(bad.slice(0, 10))}`);
  report.contrastPairs += res.length;
  const min = Math.min(...res.map((r) => r.ratio));
  report.contrastMin = report.contrastMin === null ? min : Math.min(report.contrastMin, min);
}

const view = { site: "demo", period: "today", interval: "", filters: [], lang: "en" };
try {
  const siteList = await (await fetch(new URL("/api/v1/sites", BASE), { headers: { Authorization: "Bearer " + ADMIN } })).json();
  HOSTS = Object.fromEntries(siteList.sites.map((x) => [x.id, x.hostnames]));
  check(HOSTS.demo.length === 1 && HOSTS.other.length === 2, "one host on demo, two on other: " + JSON.stringify(HOSTS));
  // ================= with the CSP switched off: escaping alone must hold,
  // so a payload inserted as HTML would run and set the flag
  const bare = await newPage({ bypassCSP: true });
  await bare.goto(BASE + "/dashboard");
  await signIn(bare, ADMIN);
  await checkHostile(bare, await compareAll(bare, view, "no CSP, today"), "no CSP, today");
  await bare.selectOption("#period", "7d");
  await settled(bare);
  await checkHostile(bare, await compareAll(bare, { ...view, period: "7d" }, "no CSP, 7 days"), "no CSP, 7 days");

  await bare.context().close();

  // ================= with the Content-Security-Policy in force
  const page = await newPage();
  const res = await page.goto(BASE + "/dashboard");
  const h = res.headers();
  check(h["content-security-policy"]?.includes("script-src 'self'"), "CSP header: " + h["content-security-policy"]);
  check(h["x-frame-options"] === "DENY", "X-Frame-Options");

  // a wrong token: an error, no dashboard
  await page.fill("#token", "wrong-token-000000000000");
  await page.click("#signin-form button[type=submit]");
  await page.waitForFunction(() => document.getElementById("signin-error").textContent.length > 0);
  check(await page.isHidden("#app"), "dashboard hidden after a bad token");
  await checkContrast(page, "sign-in page with an error");

  // the demo site's token sees one site
  await signIn(page, TOKEN);
  const options = await page.$$eval("#site option", (o) => o.map((x) => x.value));
  same(JSON.stringify(options), JSON.stringify(["demo"]), "site picker for the demo token");
  await page.click("#sign-out");
  await page.waitForSelector("#signin:not([hidden])");

  // the admin token sees both sites
  await signIn(page, ADMIN);
  // the refused token above logged a 401; later errors count
  report.consoleErrors.length = 0;
  const sites = await page.$$eval("#site option", (o) => o.map((x) => [x.value, x.textContent]));
  same(JSON.stringify(sites), JSON.stringify([["demo", "Demo site (demo)"], ["other", "Other site (other)"]]),
    "site picker for the admin token");

  const all = await compareAll(page, view, "demo, today");
  check(all.sum.pageviews > 0 && all.sum.compare.pageviews > 0, "today and yesterday both hold data");
  check(METRICS.filter((k) => all.sum[k] !== all.sum.compare[k]).length >= 5,
    "today and yesterday differ, so a swapped panel would show: " + JSON.stringify(all.sum));
  await checkHostile(page, all, "today");
  await checkContrast(page, "dashboard, English");

  // CSV download of a list: the file is the API's CSV for the same view
  const [dl] = await Promise.all([
    page.waitForEvent("download"),
    page.click('.list[data-dim="title"] button.csv'),
  ]);
  const csv = readFileSync(await dl.path(), "utf8");
  same(dl.suggestedFilename(), "demo-title.csv", "CSV file name");
  const apiCsv = await (await apiRaw("demo", "/breakdown/title", view, { limit: "1000", format: "csv" })).text();
  same(csv, apiCsv, "downloaded CSV");
  check(csv.startsWith("title,pageviews,visits,events,share\r\n"), "CSV header: " + csv.slice(0, 60));
  const csvRows = csv.trim().split("\r\n").length - 1;
  const titles = await api("demo", "/breakdown/title", view, { limit: "1000" });
  same(csvRows, titles.rows.length, "CSV rows");
  check(!/(^|,)[=+\-@]/m.test(csv), "CSV cells starting with = + - @ are neutralised");
  report.csvLines = csvRows + 1;

  // filter by clicking a row: a chip, and every panel narrows
  await page.click('.list[data-dim="browser"] tr[data-value="Firefox"] .rowbtn');
  await page.waitForSelector('#chips .chip[data-dim="browser"]');
  await settled(page);
  same(await page.textContent('#chips .chip[data-dim="browser"]'), "Browsers = Firefox", "chip text");
  const fview = { ...view, filters: ["browser==Firefox"] };
  const fx = await compareAll(page, fview, "filtered by Firefox");
  check(fx.sum.pageviews < all.sum.pageviews && fx.sum.visitors < all.sum.visitors &&
    fx.sum.visits < all.sum.visits, "filter narrows the summary");
  const chartTotal = (a) => a.ts.buckets.reduce((s, b) => s + b.visits + b.pageviews, 0);
  check(chartTotal(fx) < chartTotal(all), "filter narrows the chart");
  check(fx.rt.visitors < all.rt.visitors && fx.rt.pageviews < all.rt.pageviews, "filter narrows realtime");
  let narrower = 0;
  for (const d of DIMS) {
    check(fx.lists[d].total <= all.lists[d].total, `filter cannot widen list ${d}`);
    if (fx.lists[d].total < all.lists[d].total) narrower++;
  }
  check(narrower >= 15, `filter narrows most lists (${narrower} of ${DIMS.length})`);
  const browsers = await page.$$eval('.list[data-dim="browser"] .rowbtn', (b) => b.map((x) => x.textContent));
  same(JSON.stringify(browsers), JSON.stringify(["Firefox"]), "browser list under the filter");
  report.filtered = { pageviews: fx.sum.pageviews, visits: fx.sum.visits, narrowerLists: narrower };

  // a filter on a hostile value: the chip shows it literally, nothing runs
  await page.click("#chips .chip");
  await settled(page);
  const hostileTerm = all.lists.search_term.rows.map((r) => r.value).find((v) => PAYLOADS.includes(v));
  check(hostileTerm, "a hostile search term is listed today");
  const termButtons = await page.$$('.list[data-dim="search_term"] .rowbtn');
  for (const b of termButtons) {
    if ((await b.textContent()) === hostileTerm) { await b.click(); break; }
  }
  await page.waitForSelector('#chips .chip[data-dim="search_term"]');
  await settled(page);
  same(await page.textContent('#chips .chip[data-dim="search_term"]'), "Site search terms = " + hostileTerm,
    "chip with a hostile value");
  const hview = { ...view, filters: ["search_term==" + hostileTerm] };
  await checkHostile(page, await compareAll(page, hview, "filtered by a hostile term"), "hostile filter");

  // remove the chip by keyboard
  await page.focus("#chips .chip");
  await page.keyboard.press("Enter");
  await settled(page);
  check((await page.$$("#chips .chip")).length === 0, "chip removed");
  await compareAll(page, view, "after removing the filter");

  // one site's pages read as paths; a long one is cut to one line with
  // "…" and carries its whole URL for hovering
  const demoPages = await page.$$eval('.list[data-dim="page"] .rowbtn .label', (b) => b.map((x) => x.textContent));
  check(demoPages.length > 0 && demoPages.every((p) => p.startsWith("/")), "the demo site's pages as paths: " + demoPages);
  const long = await page.$$eval('.list[data-dim="page"] .rowbtn', (bs, url) => bs.filter((b) => b.title === url).map((b) => {
    const l = b.querySelector(".label");
    const cs = getComputedStyle(l);
    return { text: l.textContent, scroll: l.scrollWidth, client: l.clientWidth, height: l.getBoundingClientRect().height,
      line: parseFloat(cs.lineHeight) || parseFloat(cs.fontSize) * 1.6, overflow: cs.textOverflow };
  }), LONG_URL);
  check(long.length === 1, "the long page is listed once with its full URL as title: " + JSON.stringify(long));
  check(long[0].text === shownUrl(LONG_URL, HOSTS.demo), "the long page shows its path: " + long[0].text);
  check(long[0].scroll > long[0].client && long[0].overflow === "ellipsis", "the long path is cut with …: " + JSON.stringify(long[0]));
  check(long[0].height <= long[0].line * 1.5, "the long path keeps to one line: " + JSON.stringify(long[0]));
  report.longPathCut = long[0];

  await page.screenshot({ path: SHOT, fullPage: true });
  report.shots.push(SHOT);

  // the other site: different data, every panel follows
  await page.selectOption("#site", "other");
  await settled(page);
  const oview = { ...view, site: "other", period: "7d" };
  await page.selectOption("#period", "7d");
  await settled(page);
  const other = await compareAll(page, oview, "other site, 7 days");
  const demo7 = await api("demo", "/summary", { ...view, period: "7d" });
  check(other.sum.pageviews > 0 && other.sum.pageviews !== demo7.pageviews, "the other site has its own data");
  const otherPages = await page.$$eval('.list[data-dim="page"] .rowbtn', (b) => b.map((x) => x.textContent));
  // two hosts on this site: each page with its host, no scheme
  check(otherPages.length > 0 && otherPages.every((p) => p.startsWith("other.example/")),
    "the other site's pages: " + otherPages);

  // back to demo over 7 days by day: past hostile referrers and titles
  await page.selectOption("#site", "demo");
  await settled(page);
  await page.selectOption("#interval", "day");
  await settled(page);
  const week = await compareAll(page, { ...view, period: "7d", interval: "day" }, "demo, 7 days by day");
  same(await page.$$eval("#chart circle.pt-visits", (c) => c.length), 7, "7 daily points");
  await checkHostile(page, week, "7 days");

  // the same days a year earlier, chosen on the page: every panel follows
  await page.selectOption("#compare", "year");
  await settled(page);
  const yearView = { ...view, period: "7d", interval: "day", compare: "year" };
  const yearly = await compareAll(page, yearView, "demo, 7 days against last year");
  const lastYear = await api("demo", "/summary", yearView, { compare: "year" });
  check(lastYear.compare.from < week.sum.compare.from, "a year earlier is before the previous period");
  same(await page.textContent('.legend-before'), "same period last year", "legend of the second line");
  check(yearly.sum.compare.pageviews === 0 && yearly.ts.compare.buckets.length === 7,
    "no data a year ago, seven compared buckets");
  await page.selectOption("#compare", "previous");
  await settled(page);

  // German: labels and number formats follow
  await page.click("#lang-toggle");
  await settled(page);
  same(await page.textContent('[data-metric="visits"] .label'), "Besuche", "German label");
  await compareAll(page, { ...view, period: "7d", interval: "day", lang: "de" }, "German, 7 days");
  await checkContrast(page, "dashboard, German");
  const de = SHOT.replace(/\.png$/, "-de.png");
  await page.screenshot({ path: de, fullPage: false });
  report.shots.push(de);

  // phone-sized screen: no horizontal scrolling
  await page.setViewportSize({ width: 375, height: 800 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 0, "no horizontal overflow on a phone, overflow " + overflow);
  await checkContrast(page, "dashboard on a phone");
  const phone = SHOT.replace(/\.png$/, "-phone.png");
  await page.screenshot({ path: phone, fullPage: false });
  report.shots.push(phone);

  check(report.pageErrors.length === 0, "page errors: " + report.pageErrors);
  check(report.consoleErrors.length === 0, "console errors (CSP violations?): " + report.consoleErrors);

  check(report.dialogs.length === 0, "dialogs fired: " + report.dialogs);
  console.log(JSON.stringify({ ok: true, ...report }));
} catch (e) {
  console.log(JSON.stringify({ ok: false, error: String(e.message || e), ...report }));
  process.exitCode = 1;
} finally {
  await browser.close();
}
