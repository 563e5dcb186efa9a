// Embeds the collector's opt-out page in an iframe on a page of another
// origin (http://localhost/privacy, served by request interception) and
// submits the form inside the frame in headless Chromium, as a visitor on
// a site's privacy page would. Prints one JSON line: the status of the
// form's POST, the Origin header the browser sent with it, and the state
// the page in the frame shows afterwards.
// A page served by interception has no address, so Chromium counts it as
// public and would refuse its frame to load from a loopback collector
// (local network access checks); those checks are switched off here, as
// they do not apply to a public site embedding a public collector.
// Usage: node optout_iframe.js http://127.0.0.1:PORT
'use strict'
const { chromium } = require('playwright-core')

const collector = process.argv[2]

async function main() {
  const executablePath = process.env.CHROMIUM || '/usr/bin/chromium'
  const browser = await chromium.launch({
    executablePath,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-features=LocalNetworkAccessChecks,PrivateNetworkAccessSendPreflights,' +
        'PrivateNetworkAccessRespectPreflightResults,BlockInsecurePrivateNetworkRequests'],
  })
  try {
    const page = await browser.newPage()
    await page.route('http://localhost/privacy', (route) =>
      route.fulfill({
        contentType: 'text/html; charset=utf-8',
        body: `<!doctype html><title>Privacy</title><h1>Privacy</h1><iframe id="optout" src="${collector}/optout?lang=en" width="600" height="400"></iframe>`,
      }),
    )
    await page.goto('http://localhost/privacy')
    const frame = await (await page.waitForSelector('#optout')).contentFrame()
    await frame.waitForSelector('button[type=submit]', { timeout: 15000 })
    const posted = page.waitForResponse(
      (r) => r.request().method() === 'POST' && r.url().startsWith(collector + '/optout'),
      { timeout: 15000 },
    )
    await frame.click('button[type=submit]')
    const res = await posted
    const origin = await res.request().headerValue('origin')
    const shown = page.frames().find((f) => f.url().startsWith(collector + '/optout'))
    await shown.waitForSelector('#state', { timeout: 5000 }).catch(() => null)
    const state = await shown.getAttribute('#state', 'data-opted-out').catch(() => 'missing')
    console.log(JSON.stringify({ status: res.status(), origin, state }))
  } finally {
    await browser.close()
  }
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
