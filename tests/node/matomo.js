// Sends Matomo tracking requests to sparsam with the `matomo-tracker` npm
// client (single GET requests and one bulk POST), then prints one JSON
// line per response: {"status": 200, "body": "..."}.
// Usage: node matomo.js http://127.0.0.1:PORT
'use strict'
const http = require('http')
const MatomoTracker = require('matomo-tracker')

const base = process.argv[2]
const tracker = new MatomoTracker(1, base + '/matomo.php')
const page = 'http://127.0.0.1/docs/guide.html'
const phone =
  'Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36'

// The client fires requests without a completion callback: wrap its HTTP
// agent to know when every response has arrived.
let pending = 0
let finish
const allDone = new Promise((resolve) => (finish = resolve))
const results = []
tracker.agent = {
  request: http.request,
  get(url, cb) {
    pending++
    return http.get(url, (res) => {
      cb(res)
      const chunks = []
      res.on('data', (c) => chunks.push(c))
      res.on('end', () => {
        results.push({ status: res.statusCode, type: res.headers['content-type'] || '' })
        if (--pending === 0) finish()
      })
    })
  },
}
tracker.on('error', (e) => {
  console.error('tracker error', e)
})

tracker.track({
  url: page + '?utm_source=newsletter&utm_id=utmid77&session=abc123',
  urlref: 'https://www.google.de/search?q=guide',
  action_name: 'Guide',
  pv_id: 'Ab12Cd',
  ua: phone,
  uadata: JSON.stringify({ platform: 'Android', platformVersion: '14.0.0', mobile: true, model: 'Pixel 8' }),
  lang: 'de-DE',
  pdf: 1,
  java: 0,
  res: '412x915',
  _id: 'feedfacefeedface',
  uid: 'alice@example.org',
  cid: 'feedfacefeedface',
  cip: '203.0.113.77',
  _idts: 1700000000,
  _idvc: 4,
  cdt: '2001-02-03 04:05:06',
  h: 4,
  m: 5,
  s: 6,
  dimension1: 'secret-dimension',
  _cvar: JSON.stringify({ 1: ['name', 'secret-cvar'] }),
})
tracker.track({ url: page, download: 'http://127.0.0.1/files/report.pdf;jsessionid=sess0815?token=x', ua: phone })
tracker.track({ url: page, link: 'https://example.net/elsewhere', ua: phone })
tracker.track({ url: 'http://127.0.0.1/search?q=tax+forms', search: 'tax forms', search_count: 3, ua: phone })
tracker.track({ url: page, ping: 1, pv_id: 'Ab12Cd', ua: phone })
tracker.track({ url: page, send_image: 0, ua: phone, action_name: 'No image' })

allDone.then(() => {
  tracker.trackBulk(
    [
      { url: 'http://localhost/bulk/one', action_name: 'Bulk one', ua: phone },
      { url: 'https://not-this-site.example/', action_name: 'Foreign', ua: phone },
      { url: 'http://localhost/bulk/two', action_name: 'Bulk two', ua: phone },
    ],
    (body) => {
      results.sort((a, b) => a.status - b.status)
      for (const r of results) console.log(JSON.stringify(r))
      console.log(JSON.stringify({ bulk: JSON.parse(body) }))
    },
  )
})
