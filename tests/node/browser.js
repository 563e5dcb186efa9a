// Drives Debian's Chromium (playwright-core, no bundled browser) through the
// demo site with sparsam's tracker and Plausible's tracker. The demo site is
// the one the collector itself serves (`[demo]`), opened as `localhost`,
// while the collector is addressed as `127.0.0.1`: cross-origin, as in
// production. Prints one JSON object with what the pages saw; the Rust test
// checks what was stored.
// Usage: node browser.js http://127.0.0.1:COLLECTOR_PORT http://localhost:DEMO_PORT
'use strict'
const fs = require('fs')
const http = require('http')
const os = require('os')
const path = require('path')
const { execFileSync } = require('child_process')
const { chromium } = require('playwright-core')

const collector = process.argv[2]
const site = process.argv[3]
const plausibleJs = path.join(__dirname, 'node_modules', '@plausible-analytics', 'tracker', 'plausible.js')

const isEvent = (r) => r.url() === collector + '/api/event' && r.method() === 'POST'
const isPixel = (r) => r.url().startsWith(collector + '/p.gif')
const body = (r) => {
  try {
    return JSON.parse(r.postData() || 'null')
  } catch (_) {
    return null
  }
}

// A page of another configured site (`nogpc`: honours neither DNT nor
// GPC), served from loopback like the demo site (a page the browser's
// router made up would count as public, and Chromium then refuses its
// requests to loopback addresses).
const otherSitePage = `<!doctype html><html><head><meta charset="utf-8"><title>Other site</title>
<script defer src="${collector}/t.js" data-site="nogpc"></script></head><body><p>Another site.</p></body></html>`
function serveOtherSite() {
  const server = http.createServer((req, res) =>
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' }).end(otherSitePage))
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)))
}

// Chromium's client-hint metadata for an Android phone, set over CDP: on
// Linux headless Chromium reports an empty platformVersion and no model.
const phone = (major, full) => ({
  userAgent: `Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/${major}.0.0.0 Mobile Safari/537.36`,
  userAgentMetadata: {
    brands: [{ brand: 'Chromium', version: major }, { brand: 'Google Chrome', version: major }, { brand: 'Not-A.Brand', version: '99' }],
    fullVersionList: [{ brand: 'Chromium', version: full }, { brand: 'Google Chrome', version: full }, { brand: 'Not-A.Brand', version: '99.0.0.0' }],
    platform: 'Android',
    platformVersion: '14.0.0',
    architecture: '',
    model: 'Pixel 8',
    mobile: true,
  },
})

// What the pages saw; printed on success, and on failure as far as it got.
const report = {}

async function main() {
  // Headless Chromium calls itself "HeadlessChrome", which the collector
  // rightly drops as a bot; browse as the desktop Chromium it is. The flag
  // (not a per-page override) also covers beacons sent while a page unloads.
  const executablePath = process.env.CHROMIUM || '/usr/bin/chromium'
  const major = (execFileSync(executablePath, ['--version']).toString().match(/(\d+)\./) || [0, '120'])[1]
  const userAgent = `Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/${major}.0.0.0 Safari/537.36`
  const launchArgs = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--user-agent=' + userAgent]
  const browser = await chromium.launch({ executablePath, args: launchArgs })
  report.site = site
  const sent = []
  try {
    const context = await browser.newContext({ acceptDownloads: false })
    // Plausible's npm tracker is not part of the repository's demo site.
    await context.route((u) => u.href === site + '/vendor/plausible.js', (r) => r.fulfill({ path: plausibleJs, contentType: 'text/javascript' }))
    // Outbound links lead here; nothing leaves the machine.
    await context.route('https://elsewhere.example/**', (r) => r.fulfill({ body: 'elsewhere', contentType: 'text/plain' }))
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

    // 4b. Links added after load: a download and an outbound link.
    pv = answered((b) => b.kind === 'pageview' && b.url.includes('list=late'))
    await page.goto(site + '/app.html?list=late')
    await pv
    await page.evaluate(() => {
      for (const [id, href] of [['late-pdf', 'files/benutzungsordnung.pdf'], ['late-out', 'https://elsewhere.example/news']]) {
        const a = document.createElement('a')
        a.id = id
        a.href = href
        a.textContent = id
        // Stay on the page: only the tracker's reaction to the click matters.
        a.addEventListener('click', (e) => e.preventDefault())
        document.body.append(a)
      }
    })
    let late = answered((b) => b.target && b.target.endsWith('.pdf'))
    await page.click('#late-pdf')
    await late
    late = answered((b) => b.target && b.target.startsWith('https://elsewhere.example/'))
    await page.click('#late-out')
    await late

    // 4c. Client hints: model and OS version that only hints can supply,
    // from getHighEntropyValues in the script and from Sec-CH-UA-* headers
    // on a pixel hit (the demo pages send Accept-CH and delegate the hints
    // to the collector with Permissions-Policy).
    {
      const hp = await context.newPage()
      hp.on('request', (r) => isEvent(r) && sent.push({ at: Date.now(), page: hp.url(), body: body(r) }))
      const cdp = await context.newCDPSession(hp)
      const full = (await browser.version()).split('.').length === 4 ? await browser.version() : major + '.0.0.0'
      await cdp.send('Network.setUserAgentOverride', phone(major, full))
      await cdp.send('Emulation.setUserAgentOverride', phone(major, full))
      const hpv = hp.waitForResponse((r) => isEvent(r.request()) && (body(r.request()) || {}).kind === 'pageview', { timeout: 15000 })
      await hp.goto(site + '/app.html?list=hints')
      const hint = body((await hpv).request())
      report.hints_sent = hint.hints || null
      report.hints_full_version = full
      const pix = hp.waitForRequest(isPixel, { timeout: 15000 })
      await hp.goto(site + '/pixel.html')
      const pixReq = await pix
      report.pixel_headers = await pixReq.allHeaders()
      report.pixel_status = (await pixReq.response()).status()
      await hp.close()
    }

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

    // 7. Plausible's npm tracker on the same site: page view, the
    // engagement report it sends when the window loses focus (engaged
    // milliseconds `e` since the page view, scroll depth `sd`), download.
    // Headless Chromium keeps every page focused, so the page is told it
    // lost focus the way a real switch to another window tells it:
    // document.hasFocus() turns false and a blur event fires.
    pv = answered((b) => b.n === 'pageview')
    await page.goto(site + '/plausible.html')
    report.plausible_pv_status = (await pv).status()
    await page.waitForTimeout(1500)
    const engagement = answered((b) => b.n === 'engagement')
    await page.evaluate(() => {
      document.hasFocus = () => false
      window.dispatchEvent(new Event('blur'))
    })
    const engaged = await engagement
    report.plausible_engagement = body(engaged.request())
    report.plausible_engagement_status = engaged.status()
    const pdl = requested((b) => b.n === 'File Download')
    await page.click('#rules').catch(() => {})
    await pdl

    // Last: a page view whose answer proves earlier beacons had their turn.
    pv = answered((b) => b.kind === 'pageview' && b.url.endsWith('/index.html'))
    await page.goto(site + '/index.html')
    await pv
    report.user_agent = await page.evaluate(() => navigator.userAgent)
    report.chromium_version = await browser.version()

    // 8. The collector's opt-out: its own page, visited and submitted in
    // this browser, sets its cookie; then nothing from any page is stored
    // (script beacons and the pixel are answered as usual). Two cases:
    // (a) pages on the collector's own site (127.0.0.1, another port):
    //     the cookie is first-party there, so it travels even though this
    //     Chromium blocks third-party cookies by default;
    // (b) pages on another site (localhost), in a profile that allows
    //     third-party cookies: only a SameSite=None; Secure cookie travels.
    const optOutAt = async (pg, ctx, pagesAt, label) => {
      await pg.goto(collector + '/optout?lang=en')
      await Promise.all([pg.waitForNavigation(), pg.click('button[type=submit]')])
      const out = {
        state: await pg.getAttribute('#state', 'data-opted-out', { timeout: 5000 }).catch(async () => 'missing: ' + (await pg.content())),
        cookies: (await ctx.cookies(collector)).map((c) => ({
          name: c.name, sameSite: c.sameSite, secure: c.secure, httpOnly: c.httpOnly, expires: c.expires,
        })),
      }
      const answeredOn = (pred) =>
        pg.waitForResponse((r) => isEvent(r.request()) && pred(body(r.request()) || {}), { timeout: 15000 })
      let a = answeredOn((b) => b.kind === 'pageview' && b.url.includes('collector+optout'))
      await pg.goto(pagesAt + '/search.html?q=collector+optout+' + label)
      out.pv_status = (await a).status()
      a = answeredOn((b) => b.kind === 'search')
      await pg.evaluate((l) => window.sparsam.search('collector optout call ' + l, 1), label)
      out.search_status = (await a).status()
      const px = pg.waitForResponse((r) => isPixel(r.request()), { timeout: 15000 })
      await pg.goto(pagesAt + '/pixel.html')
      out.pixel_status = (await px).status()
      return out
    }
    report.collector_optout = {}
    report.collector_optout.same_site = await optOutAt(page, context, site.replace('localhost', '127.0.0.1'), 'same-site')
    report.sent = sent.map((s) => s.body)
    {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sparsam-profile-'))
      try {
        fs.mkdirSync(path.join(dir, 'Default'))
        // "Allow third-party cookies", as in a default Chrome profile.
        fs.writeFileSync(path.join(dir, 'Default', 'Preferences'),
          JSON.stringify({ profile: { cookie_controls_mode: 0, block_third_party_cookies: false } }))
        const persistent = await chromium.launchPersistentContext(dir, { executablePath, args: launchArgs })
        try {
          const pg = persistent.pages()[0] || (await persistent.newPage())
          report.collector_optout.cross_site = await optOutAt(pg, persistent, site, 'cross-site')
        } finally {
          await persistent.close()
        }
      } finally {
        fs.rmSync(dir, { recursive: true, force: true })
      }
    }

    // 9. DNT / GPC as the collector's config says per site (`demo` honours
    // both, `nogpc` neither), in fresh contexts whose navigator reports
    // the signal. Chromium sends no Sec-GPC header, so whatever the
    // script sent would be stored.
    report.signals = {}
    const otherServer = await serveOtherSite()
    const other = `http://localhost:${otherServer.address().port}`
    report.other_site = other
    for (const signal of ['dnt', 'gpc']) {
      const ctx = await browser.newContext()
      await ctx.addInitScript((s) => {
        if (s === 'dnt') Object.defineProperty(Navigator.prototype, 'doNotTrack', { get: () => '1' })
        else Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', { get: () => true })
      }, signal)
      const p = await ctx.newPage()
      const seen = []
      p.on('request', (r) => isEvent(r) && seen.push(body(r)))
      await p.goto(site + '/search.html?q=' + signal + '+honoured')
      await p.waitForLoadState('load')
      // The script decides after client hints resolve: give it time.
      await p.waitForTimeout(1500)
      await p.evaluate(() => window.sparsam && window.sparsam.search('signal call', 1))
      const demoSent = seen.splice(0)
      const answer = p.waitForResponse((r) => isEvent(r.request()) && (body(r.request()) || {}).kind === 'pageview', { timeout: 15000 })
      await p.goto(other + '/other-site.html?list=' + signal)
      const otherStatus = (await answer).status()
      report.signals[signal] = {
        demo_sent: demoSent,
        navigator: await p.evaluate(() => ({ dnt: navigator.doNotTrack, gpc: navigator.globalPrivacyControl === true })),
        other_status: otherStatus,
      }
      await ctx.close()
    }
    otherServer.close()
  } finally {
    await browser.close()
  }
  console.log(JSON.stringify(report))
}

main().catch((e) => {
  console.error('report so far:', JSON.stringify(report))
  console.error(e)
  process.exit(1)
})
