// Drives Debian's Chromium (playwright-core, no bundled browser) through the
// demo site with sparsam's tracker and Plausible's tracker. The demo site is
// served on a loopback port of its own (`localhost`), the collector runs on
// another (`127.0.0.1`): cross-origin, as in production. Prints one JSON
// object with what the page saw; the Rust test checks what was stored.
// Usage: node browser.js http://127.0.0.1:COLLECTOR_PORT
'use strict'
const fs = require('fs')
const http = require('http')
const path = require('path')
const { execFileSync } = require('child_process')
const { chromium } = require('playwright-core')

const collector = process.argv[2]
const demo = path.join(__dirname, '..', '..', 'demo')
const plausibleJs = path.join(__dirname, 'node_modules', '@plausible-analytics', 'tracker', 'plausible.js')
const types = { '.html': 'text/html; charset=utf-8', '.css': 'text/css', '.js': 'text/javascript', '.pdf': 'application/pdf' }

// Static server for demo/: the pages name the collector as
// http://127.0.0.1:8080; it is rewritten to the one under test.
function serve() {
  const server = http.createServer((req, res) => {
    const p = decodeURIComponent(new URL(req.url, 'http://x').pathname)
    const file = p === '/vendor/plausible.js' ? plausibleJs : path.join(demo, p === '/' ? 'index.html' : p)
    if (!file.startsWith(demo) && file !== plausibleJs) return res.writeHead(403).end()
    fs.readFile(file, (err, data) => {
      if (err) return res.writeHead(404).end('not found')
      const type = types[path.extname(file)] || 'application/octet-stream'
      if (type.startsWith('text/html')) data = Buffer.from(data.toString().replaceAll('http://127.0.0.1:8080', collector))
      res.writeHead(200, { 'Content-Type': type, 'Cache-Control': 'no-store' }).end(data)
    })
  })
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)))
}

const isEvent = (r) => r.url() === collector + '/api/event' && r.method() === 'POST'
const body = (r) => {
  try {
    return JSON.parse(r.postData() || 'null')
  } catch (_) {
    return null
  }
}

async function main() {
  const server = await serve()
  const site = `http://localhost:${server.address().port}`
  // Headless Chromium calls itself "HeadlessChrome", which the collector
  // rightly drops as a bot; browse as the desktop Chromium it is. The flag
  // (not a per-page override) also covers beacons sent while a page unloads.
  const executablePath = process.env.CHROMIUM || '/usr/bin/chromium'
  const major = (execFileSync(executablePath, ['--version']).toString().match(/(\d+)\./) || [0, '120'])[1]
  const userAgent = `Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/${major}.0.0.0 Safari/537.36`
  const browser = await chromium.launch({
    executablePath,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--user-agent=' + userAgent],
  })
  const report = { site }
  const sent = []
  try {
    const context = await browser.newContext({ acceptDownloads: false })
    const page = await context.newPage()
    page.on('request', (r) => isEvent(r) && sent.push({ at: Date.now(), page: page.url(), body: body(r) }))
    if (process.env.DEBUG) {
      page.on('console', (m) => console.error('console:', m.text()))
      page.on('pageerror', (e) => console.error('pageerror:', e))
      page.on('request', (r) => console.error('request:', r.method(), r.url(), r.postData()))
      page.on('response', (r) => console.error('response:', r.status(), r.url()))
      page.on('requestfailed', (r) => console.error('failed:', r.url(), r.failure()))
    }
    // Waits until the collector answered an event matching `pred`.
    // Beacons sent just before a navigation may be reported as aborted
    // even though they arrive: for those, wait for the request only.
    const requested = (pred) => page.waitForRequest((r) => isEvent(r) && pred(body(r) || {}), { timeout: 15000 })
    const answered = (pred) =>
      page.waitForResponse((r) => isEvent(r.request()) && pred(body(r.request()) || {}), { timeout: 15000 })

    // 1. Landing page, stay, then follow a link: page view, dwell, referrer.
    let pv = answered((b) => b.kind === 'pageview')
    await page.goto(site + '/index.html')
    const first = await pv
    // Visible time is counted from when the page sent its page view.
    const shownAt = first.request().timing().startTime || sent.find((x) => x.body && x.body.kind === 'pageview').at
    report.index_pv = body(first.request()).pv
    report.index_status = first.status()
    await page.waitForTimeout(3000)
    // The ping is sent while the page unloads; the Rust test finds it in
    // the store (responses to unload beacons are not reported here).
    pv = answered((b) => b.kind === 'pageview' && b.url.includes('opening-hours'))
    const clickAt = Date.now()
    await page.click('#hours')
    await pv
    // The landing page stayed visible until it was unloaded, which the new
    // page's navigation timing records (same origin).
    const unloadAt = await page.evaluate(() => {
      const nav = performance.getEntriesByType('navigation')[0]
      return nav && nav.unloadEventStart > 0 ? performance.timeOrigin + nav.unloadEventStart : 0
    })
    report.index_visible_ms = Math.round((unloadAt || clickAt) - shownAt)
    report.index_click_ms = Math.round(clickAt - shownAt)

    // 2. PDF link: a download event (the PDF then opens or downloads).
    const dl = requested((b) => b.target && b.target.endsWith('.pdf'))
    await page.click('#rules').catch(() => {})
    await dl

    // 3. Site search through the form, then an explicit search call.
    pv = answered((b) => b.kind === 'pageview' && b.url.includes('q='))
    await page.goto(site + '/search.html')
    await page.fill('#q', 'opening hours')
    await page.click('#go')
    await pv
    const explicit = answered((b) => b.kind === 'search')
    await page.evaluate(() => window.sparsam.search('large print', 2))
    await explicit

    // 4. Single-page app: pushState and popstate are page views.
    pv = answered((b) => b.kind === 'pageview' && b.url.endsWith('app.html'))
    await page.goto(site + '/app.html')
    await pv
    pv = answered((b) => b.kind === 'pageview' && b.url.includes('list=fiction'))
    await page.click('#fiction')
    await pv
    pv = answered((b) => b.kind === 'pageview' && b.url.endsWith('app.html'))
    await page.goBack()
    await pv

    // 5. Nothing stored on the device by tracking.
    report.storage = await page.evaluate(() => ({
      cookie: document.cookie,
      local: localStorage.length,
      session: sessionStorage.length,
    }))
    report.browser_cookies = (await context.cookies()).length

    // 6. Opt-out on the site's own domain: nothing leaves the page.
    pv = answered((b) => b.kind === 'pageview' && b.url.includes('privacy'))
    await page.goto(site + '/privacy.html')
    await pv
    await page.click('#optout')
    report.optout_cookie = await page.evaluate(() => document.cookie)
    const before = sent.length
    await page.goto(site + '/opening-hours.html?after=optout')
    await page.goto(site + '/search.html?q=not+counted')
    await page.evaluate(() => window.sparsam.search('not counted either', 1))
    report.sent_while_opted_out = sent.slice(before).map((s) => s.body)
    await page.evaluate(() => window.sparsam.optIn())
    report.cookie_after_optin = await page.evaluate(() => document.cookie)

    // 7. Plausible's npm tracker on the same site: page view and download.
    pv = answered((b) => b.n === 'pageview')
    await page.goto(site + '/plausible.html')
    report.plausible_pv_status = (await pv).status()
    const pdl = requested((b) => b.n === 'File Download')
    await page.click('#rules').catch(() => {})
    await pdl

    // Last: a page view whose answer proves earlier beacons had their turn.
    pv = answered((b) => b.kind === 'pageview' && b.url.endsWith('/index.html'))
    await page.goto(site + '/index.html')
    await pv
    report.user_agent = await page.evaluate(() => navigator.userAgent)
    report.sent = sent.map((s) => s.body)
  } finally {
    await browser.close()
    server.close()
  }
  console.log(JSON.stringify(report))
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
