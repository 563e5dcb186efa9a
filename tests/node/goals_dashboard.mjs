// The dashboard's goals table and funnel chart in headless Chromium
// (playwright-core with the system browser), checked against the API:
// unfiltered, then after a click on a list row that filters every panel;
// the funnel CSV download equals the API's CSV. Started by
// tests/goals.rs with SPARSAM_BASE, SPARSAM_TOKEN and SPARSAM_SHOT.
// Prints one JSON report as the last line; exits non-zero on the first
// failed check.
import { chromium } from "playwright-core";
import { readFileSync } from "node:fs";

const BASE = process.env.SPARSAM_BASE;
const TOKEN = process.env.SPARSAM_TOKEN;
const SHOT = process.env.SPARSAM_SHOT;
const report = { checks: 0 };
const same = (a, b, what) => {
  report.checks++;
  if (JSON.stringify(a) !== JSON.stringify(b)) throw new Error(what + ": shown " + JSON.stringify(a) + ", API " + JSON.stringify(b));
};

async function api(path, filter, extra) {
  const p = new URLSearchParams(Object.assign({ period: "today" }, extra || {}));
  if (filter) p.append("filter", filter);
  const res = await fetch(BASE + "/api/v1/sites/demo" + path + "?" + p, { headers: { Authorization: "Bearer " + TOKEN } });
  if (!res.ok) throw new Error(path + ": " + res.status);
  return extra && extra.format === "csv" ? res.text() : res.json();
}

// What the panels show: goal rows and funnel steps.
const shown = (page) => page.evaluate(() => ({
  goals: [...document.querySelectorAll("#goals tr[data-goal]")].map((tr) =>
    [tr.dataset.goal, Number(tr.querySelector(".conversions").dataset.value), tr.cells[0].textContent]),
  steps: [...document.querySelectorAll("#funnel .step")].map((s) =>
    [s.querySelector(".step-name").textContent, Number(s.dataset.visits), Number(s.dataset.dropoff)]),
}));
const expected = (goals, funnel) => ({
  goals: goals.rows.map((r) => [r.goal, r.conversions, r.goal]),
  steps: funnel.steps.map((s, i) => [(i + 1) + ". " + s.step, s.visits, s.dropoff]),
});

async function main() {
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", args: ["--no-sandbox", "--disable-gpu"] });
  try {
    const ctx = await browser.newContext({ acceptDownloads: true, locale: "en-GB", viewport: { width: 1280, height: 1400 } });
    const page = await ctx.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    await page.goto(BASE + "/dashboard");
    await page.fill("#token", TOKEN);
    await page.keyboard.press("Enter");
    await page.waitForSelector("#goals tr[data-goal]");
    await page.waitForFunction(() => document.body.dataset.loading === "0");
    same(await page.isVisible("#funnel-card"), true, "funnel panel shown");
    same(await shown(page), expected(await api("/goals"), await api("/funnel", null, { name: "Sign-up flow" })), "unfiltered");
    report.unfiltered = await shown(page);
    if (SHOT) await page.screenshot({ path: SHOT, fullPage: true });

    // a click on the browsers list filters every panel
    await page.click('.list[data-dim="browser"] tr[data-value="Firefox"] button');
    await page.waitForSelector('#chips .chip[data-dim="browser"]');
    await page.waitForFunction(() => document.body.dataset.loading === "0");
    same(await shown(page), expected(await api("/goals", "browser==Firefox"),
      await api("/funnel", "browser==Firefox", { name: "Sign-up flow" })), "filtered by browser");
    report.filtered = await shown(page);

    const [dl] = await Promise.all([page.waitForEvent("download"), page.click("#funnel-csv")]);
    same(readFileSync(await dl.path(), "utf8"),
      await api("/funnel", "browser==Firefox", { name: "Sign-up flow", format: "csv" }), "funnel CSV");
    same(dl.suggestedFilename(), "demo-funnel.csv", "CSV file name");
    same(errors, [], "page errors");
  } finally {
    await browser.close();
  }
  report.ok = true;
  console.log(JSON.stringify(report));
}

main().catch((e) => {
  console.log(JSON.stringify({ ok: false, error: String(e && e.message || e), ...report }));
  process.exit(1);
});
