// Custom events from the tracker in Debian's Chromium (playwright-core):
// a page served from loopback (`localhost`) loads t.js from the collector
// (`127.0.0.1`, cross-origin), calls sparsam.event() for a declared and an
// undeclared event and clicks an element with data-sparsam-event. Prints
// one JSON object with the collector's answers; the Rust test checks what
// was stored.
// Usage: node events.js http://127.0.0.1:COLLECTOR_PORT
'use strict'
const http = require('http')
const { execFileSync } = require('child_process')
const { chromium } = require('playwright-core')

const collector = process.argv[2]
const page = `<!doctype html><html><head><meta charset="utf-8"><title>Pricing</title>
<script defer src="${collector}/t.js" data-site="demo"></script></head><body>
<button id="signup" data-sparsam-event="signup" data-sparsam-props='{"plan":"pro"}'>Sign up</button>
</body></html>`

async function main() {
  const server = http.createServer((req, res) =>
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' }).end(page))
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const origin = `http://localhost:${server.address().port}`
  const executablePath = process.env.CHROMIUM || '/usr/bin/chromium'
  const major = (execFileSync(executablePath, ['--version']).toString().match(/(\d+)\./) || [0, '120'])[1]
  // Headless Chromium names itself a bot; browse as the desktop browser.
  const userAgent = `Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/${major}.0.0.0 Safari/537.36`
  const browser = await chromium.launch({
    executablePath,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--user-agent=' + userAgent],
  })
  const report = { answers: [] }
  try {
    const tab = await browser.newPage()
    const isEvent = (r) => r.url() === collector + '/api/event' && r.method() === 'POST'
    const body = (r) => JSON.parse(r.postData() || '{}')
    const answered = (pred) =>
      tab.waitForResponse((r) => isEvent(r.request()) && pred(body(r.request())), { timeout: 15000 })
    let next = answered((b) => b.kind === 'pageview')
    await tab.goto(origin + '/pricing')
    await next
    for (const [name, props, revenue] of [
      ['newsletter', { topic: 'library news' }, undefined],
      ['undeclared-in-browser-4714', { x: 'y' }, undefined],
    ]) {
      next = answered((b) => b.event === name)
      await tab.evaluate(([n, p, r]) => window.sparsam.event(n, p, r), [name, props, revenue])
      const res = await next
      report.answers.push({ event: name, status: res.status(), sent: body(res.request()) })
    }
    next = answered((b) => b.event === 'signup')
    await tab.click('#signup')
    const res = await next
    report.answers.push({ event: 'signup', status: res.status(), sent: body(res.request()) })
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
