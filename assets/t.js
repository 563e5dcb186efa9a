/* sparsam tracker. No cookies (except sparsam.optOut()), no storage, no fingerprinting. */
((w, d, n, h, s) => {
  const site = s && s.dataset.site
  if (!site) return
  const api = new URL(s.src).origin + '/api/event'
  const dl = /\.(__EXT__)$/i
  // The site's DNT/GPC settings from the collector's config (1: DNT, 2: GPC).
  const f = __SITES__[site] | 0
  const has = (a) => s.hasAttribute(a)
  const off = () => /(^|;\s*)sparsam_optout=1/.test(d.cookie) ||
    ((f & 2 || has('data-honour-gpc')) && n.globalPrivacyControl) ||
    ((f & 1 || has('data-honour-dnt')) && n.doNotTrack == '1')
  const now = () => performance.now()
  let pv, url, hints, ms, since, last
  const send = (o) => {
    if (off()) return
    o.site = site
    o.url = url || location.href
    if (pv) o.pv = pv
    if (hints) o.hints = hints
    n.sendBeacon(api, JSON.stringify(o))
  }
  const engaged = () => Math.round(ms + (since ? now() - since : 0))
  // Hidden then pagehide would report the same figure twice: skip repeats.
  const ping = (e = engaged()) => pv && e != last && send({ kind: 'ping', engaged_ms: (last = e) })
  const view = () => {
    const ref = url || d.referrer
    url = location.href
    ms = last = 0
    since = d.visibilityState == 'visible' ? now() : 0
    // A page view not sent (opted out) gets no id, so it never gets pings.
    pv = !off() && Array.from(crypto.getRandomValues(new Uint32Array(2)), (x) => x.toString(36)).join('')
    if (pv) send({ kind: 'pageview', ref, title: d.title, plugins: n.pdfViewerEnabled ? ['pdf'] : [] })
  }
  const nav = () => {
    if (location.href != url) {
      ping()
      view()
    }
  }
  const push = h.pushState
  h.pushState = function () {
    push.apply(this, arguments)
    nav()
  }
  w.addEventListener('popstate', nav)
  d.addEventListener('visibilitychange', () => {
    if (d.visibilityState == 'hidden') {
      ms = engaged()
      since = 0
      ping()
    } else since = now()
  })
  w.addEventListener('pagehide', () => ping())
  setInterval(() => since && ping(), 6e4)
  const event = (event, props, revenue) => send({ kind: 'event', event, props, revenue })
  d.addEventListener('click', (e) => {
    const c = (q) => e.target.closest && e.target.closest(q), a = c('a[href]'), t = c('[data-sparsam-event]')
    if (a && /^https?:$/.test(a.protocol) && (a.host != location.host || dl.test(a.pathname))) {
      send({ target: a.href })
    }
    if (t) event(t.dataset.sparsamEvent, JSON.parse(t.dataset.sparsamProps || '{}'))
  }, true)
  w.sparsam = {
    search: (search, results) => send({ kind: 'search', search, results }),
    event,
    optOut: () => (d.cookie = 'sparsam_optout=1; path=/; max-age=34560000; SameSite=Lax'),
    optIn: () => (d.cookie = 'sparsam_optout=; path=/; max-age=0; SameSite=Lax'),
  }
  const ua = n.userAgentData
  ;(ua ? ua.getHighEntropyValues(['model', 'platformVersion', 'fullVersionList']) : Promise.resolve())
    .then((v) => (hints = v), () => 0)
    .then(view)
})(window, document, navigator, history, document.currentScript)
