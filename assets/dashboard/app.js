// sparsam dashboard: talks to /api/v1 with a bearer token held in memory
// (and, only when the operator asks, in sessionStorage). Every string that
// came from a visitor is inserted with textContent, never as HTML.
"use strict";

(function () {
  const I18N = {
    en: {
      lang_toggle: "Deutsch", sign_out: "Sign out", signin_title: "Sign in",
      token_label: "Access token", remember: "Remember in this browser tab",
      signin_button: "Sign in", site: "Site", period: "Period", p_today: "Today",
      p_yesterday: "Yesterday", p_7d: "Last 7 days", p_30d: "Last 30 days",
      p_90d: "Last 90 days", p_month: "This month", p_year: "This year",
      p_custom: "Custom range", interval: "Interval", i_auto: "Automatic", i_hour: "Hours",
      i_day: "Days", i_week: "Weeks", i_month: "Months", from: "From", to: "To", apply: "Apply",
      realtime: "Last 30 minutes", visitors: "visitors", pageviews: "page views",
      chart_title: "Visits and page views", csv: "CSV", no_data: "No data",
      remove_filter: "Remove filter", bad_token: "This token was not accepted.",
      load_failed: "Loading failed: ",
      m_visits: "Visits", m_visitors: "Visitors", m_pageviews: "Page views",
      m_views_per_visit: "Views per visit", m_bounce_rate: "Bounce rate",
      m_avg_dwell_seconds: "Avg. time on site", m_downloads: "Downloads",
      m_searches: "Searches", m_outbound: "Outbound clicks", previous: "previous period",
      year_before: "same period last year", compare: "Compare with", c_previous: "Previous period",
      c_year: "Same period last year", c_none: "No comparison", points: "pp",
      d_page: "Pages", d_title: "Page titles", d_entry_page: "Entry pages",
      d_exit_page: "Exit pages", d_referrer: "Referrers", d_referrer_type: "Channels",
      d_search_engine: "Search engines", d_utm_source: "Campaign sources",
      d_utm_medium: "Campaign media", d_utm_campaign: "Campaigns",
      d_download: "Downloads", d_outbound: "Outbound links", d_search_term: "Site search terms",
      d_device_type: "Device types", d_brand: "Brands", d_model: "Models", d_os: "Operating systems",
      d_os_version: "OS versions", d_browser: "Browsers", d_browser_version: "Browser versions",
      d_engine: "Engines", d_plugin: "Plugins", d_search_no_results: "Searches without results",
      metric_pageviews: "Views", metric_visits: "Visits", metric_events: "Events",
      goals_title: "Goals", funnel_title: "Funnel", g_goal: "Goal", g_conversions: "Conversions",
      g_visitors: "Visitors", g_rate: "Conversion rate", g_revenue: "Revenue",
      f_visits: "visits", f_dropoff: "dropped off",
    },
    de: {
      lang_toggle: "English", sign_out: "Abmelden", signin_title: "Anmelden",
      token_label: "Zugangs-Token", remember: "In diesem Browser-Tab merken",
      signin_button: "Anmelden", site: "Website", period: "Zeitraum", p_today: "Heute",
      p_yesterday: "Gestern", p_7d: "Letzte 7 Tage", p_30d: "Letzte 30 Tage",
      p_90d: "Letzte 90 Tage", p_month: "Dieser Monat", p_year: "Dieses Jahr",
      p_custom: "Eigener Zeitraum", interval: "Intervall", i_auto: "Automatisch", i_hour: "Stunden",
      i_day: "Tage", i_week: "Wochen", i_month: "Monate", from: "Von", to: "Bis", apply: "Anwenden",
      realtime: "Letzte 30 Minuten", visitors: "Besucher", pageviews: "Seitenaufrufe",
      chart_title: "Besuche und Seitenaufrufe", csv: "CSV", no_data: "Keine Daten",
      remove_filter: "Filter entfernen", bad_token: "Dieses Token wurde nicht akzeptiert.",
      load_failed: "Laden fehlgeschlagen: ",
      m_visits: "Besuche", m_visitors: "Besucher", m_pageviews: "Seitenaufrufe",
      m_views_per_visit: "Seiten pro Besuch", m_bounce_rate: "Absprungrate",
      m_avg_dwell_seconds: "Ø Verweildauer", m_downloads: "Downloads",
      m_searches: "Suchen", m_outbound: "Ausgehende Klicks", previous: "Vorperiode",
      year_before: "Vorjahreszeitraum", compare: "Vergleich mit", c_previous: "Vorperiode",
      c_year: "Vorjahreszeitraum", c_none: "Kein Vergleich", points: "Pp.",
      d_page: "Seiten", d_title: "Seitentitel", d_entry_page: "Einstiegsseiten",
      d_exit_page: "Ausstiegsseiten", d_referrer: "Verweise", d_referrer_type: "Kanäle",
      d_search_engine: "Suchmaschinen", d_utm_source: "Kampagnenquellen",
      d_utm_medium: "Kampagnenmedien", d_utm_campaign: "Kampagnen",
      d_download: "Downloads", d_outbound: "Ausgehende Links", d_search_term: "Suchbegriffe",
      d_device_type: "Gerätetypen", d_brand: "Marken", d_model: "Modelle", d_os: "Betriebssysteme",
      d_os_version: "BS-Versionen", d_browser: "Browser", d_browser_version: "Browser-Versionen",
      d_engine: "Engines", d_plugin: "Plugins", d_search_no_results: "Suchen ohne Treffer",
      metric_pageviews: "Aufrufe", metric_visits: "Besuche", metric_events: "Ereignisse",
      goals_title: "Ziele", funnel_title: "Trichter", g_goal: "Ziel", g_conversions: "Conversions",
      g_visitors: "Besucher", g_rate: "Conversion-Rate", g_revenue: "Umsatz",
      f_visits: "Besuche", f_dropoff: "abgesprungen",
    },
  };
  const DIMENSIONS = [
    "page", "entry_page", "exit_page", "title", "referrer", "referrer_type", "search_engine",
    "utm_source", "utm_medium", "utm_campaign", "download", "outbound", "search_term",
    "device_type", "brand", "model", "os", "os_version", "browser", "browser_version",
    "engine", "plugin", "search_no_results",
  ];
  // Lists of URLs on the site, read as paths like a report, not a log.
  const PATH_DIMS = ["page", "entry_page", "exit_page", "download"];
  const METRICS = ["visits", "visitors", "pageviews", "views_per_visit", "bounce_rate",
    "avg_dwell_seconds", "downloads", "searches", "outbound"];
  const STORE_KEY = "sparsam.token";

  const state = {
    token: null,
    lang: (navigator.language || "en").toLowerCase().startsWith("de") ? "de" : "en",
    sites: [],
    filters: [],
    generation: 0,
  };

  const $ = (id) => document.getElementById(id);
  const t = (k) => (I18N[state.lang] && I18N[state.lang][k]) || I18N.en[k] || k;
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  };

  function applyLang() {
    document.documentElement.lang = state.lang;
    document.querySelectorAll("[data-i18n]").forEach((n) => {
      n.textContent = t(n.getAttribute("data-i18n"));
    });
  }

  function fmt(n, digits) {
    return new Intl.NumberFormat(state.lang, {
      maximumFractionDigits: digits || 0, minimumFractionDigits: digits || 0,
    }).format(n);
  }
  function fmtMetric(k, v) {
    if (k === "bounce_rate") return fmt(v * 100, 1) + " %";
    if (k === "views_per_visit") return fmt(v, 2);
    if (k === "avg_dwell_seconds") {
      const s = Math.round(v);
      return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
    }
    return fmt(v);
  }

  // ---- API
  function query(extra) {
    const p = new URLSearchParams();
    const period = $("period").value;
    if (period === "custom") {
      if ($("from").value) p.set("from", $("from").value);
      if ($("to").value) p.set("to", $("to").value);
    } else {
      p.set("period", period);
    }
    state.filters.forEach((f) => p.append("filter", f.dim + f.op + f.value));
    Object.entries(extra || {}).forEach(([k, v]) => p.set(k, v));
    return p;
  }
  async function api(path, params, accept) {
    const url = "/api/v1" + path + (params ? "?" + params.toString() : "");
    const res = await fetch(url, {
      headers: { Authorization: "Bearer " + state.token, Accept: accept || "application/json" },
      cache: "no-store", credentials: "omit",
    });
    if (!res.ok) {
      let msg = res.status + "";
      try { msg = (await res.json()).error || msg; } catch (_) { /* not JSON */ }
      const err = new Error(msg);
      err.status = res.status;
      throw err;
    }
    return accept === "text/csv" ? res.blob() : res.json();
  }
  const sitePath = () => "/sites/" + encodeURIComponent($("site").value);

  // ---- sign in
  async function signIn(token, remember) {
    state.token = token;
    try {
      const data = await api("/sites");
      state.sites = data.sites;
    } catch (e) {
      state.token = null;
      sessionStorage.removeItem(STORE_KEY);
      $("signin-error").textContent = e.status === 401 ? t("bad_token") : t("load_failed") + e.message;
      return;
    }
    if (remember) sessionStorage.setItem(STORE_KEY, token);
    const sel = $("site");
    sel.replaceChildren();
    state.sites.forEach((s) => {
      const o = el("option", null, s.name ? s.name + " (" + s.id + ")" : s.id);
      o.value = s.id;
      sel.appendChild(o);
    });
    $("signin").hidden = true;
    $("app").hidden = false;
    $("sign-out").hidden = false;
    buildLists();
    refresh();
  }
  function signOut() {
    state.token = null;
    sessionStorage.removeItem(STORE_KEY);
    $("token").value = "";
    $("app").hidden = true;
    $("sign-out").hidden = true;
    $("signin").hidden = false;
    $("token").focus();
  }

  // ---- panels
  function renderSummary(s) {
    const box = $("summary");
    box.replaceChildren();
    METRICS.forEach((k) => {
      const m = el("div", "metric");
      m.dataset.metric = k;
      m.appendChild(el("div", "label", t("m_" + k)));
      const v = el("div", "value", fmtMetric(k, s[k]));
      v.dataset.value = String(s[k]);
      m.appendChild(v);
      if (s.compare) {
        const d = el("div", "delta");
        d.appendChild(el("div", "change " + direction(k, s[k], s.compare[k]), changeText(k, s[k], s.compare[k])));
        d.appendChild(el("div", "before", compareName() + ": " + fmtMetric(k, s.compare[k])));
        m.appendChild(d);
      }
      box.appendChild(m);
    });
  }

  // The comparison asked for; its name in the summary and the chart.
  const compareMode = () => $("compare").value;
  const compareName = () => t(compareMode() === "year" ? "year_before" : "previous");
  // Change against the compared period: relative for counts and averages,
  // in percentage points for the bounce rate (a rate of a rate misleads);
  // "–" when the compared period has nothing to relate to.
  function changeText(k, now, before) {
    if (k === "bounce_rate") {
      const pp = new Intl.NumberFormat(state.lang, { maximumFractionDigits: 1, minimumFractionDigits: 1,
        signDisplay: "exceptZero" }).format((now - before) * 100);
      return pp + " " + t("points");
    }
    if (!before) return "–";
    return new Intl.NumberFormat(state.lang, { style: "percent", maximumFractionDigits: 0,
      signDisplay: "exceptZero" }).format((now - before) / before);
  }
  // "up", "down" or "flat"; for the bounce rate fewer is better.
  function direction(k, now, before) {
    if (now === before || (!before && k !== "bounce_rate")) return "flat";
    const up = now > before;
    return (k === "bounce_rate" ? !up : up) ? "up" : "down";
  }

  const SVG = "http://www.w3.org/2000/svg";
  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVG, tag);
    Object.entries(attrs || {}).forEach(([k, v]) => e.setAttribute(k, String(v)));
    if (text !== undefined) e.textContent = String(text);
    return e;
  }
  function renderChart(ts) {
    const W = 800, H = 260, L = 44, R = 10, T = 10, B = 28;
    const b = ts.buckets;
    const before = ts.compare ? ts.compare.buckets : [];
    const max = Math.max(1, ...b.concat(before).map((x) => Math.max(x.visits, x.pageviews)));
    const step = niceStep(max);
    const top = Math.ceil(max / step) * step;
    const x = (i) => L + (b.length <= 1 ? (W - L - R) / 2 : (i * (W - L - R)) / (b.length - 1));
    const y = (v) => T + (H - T - B) * (1 - v / top);
    const root = svg("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": t("chart_title") });
    for (let v = 0; v <= top; v += step) {
      root.appendChild(svg("line", { class: "grid", x1: L, x2: W - R, y1: y(v), y2: y(v) }));
      root.appendChild(svg("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end" }, fmt(v)));
    }
    root.appendChild(svg("line", { class: "axis", x1: L, x2: W - R, y1: H - B, y2: H - B }));
    const every = Math.max(1, Math.ceil(b.length / 8));
    b.forEach((bk, i) => {
      if (i % every === 0) {
        root.appendChild(svg("text", { x: x(i), y: H - B + 16, "text-anchor": "middle" }, label(bk.start, ts.interval)));
      }
    });
    // The compared period first, so the current lines are drawn on top;
    // bucket i of both series covers the same stretch of its period.
    ["pageviews", "visits"].forEach((k) => {
      if (before.length === 0) return;
      const pts = before.map((bk, i) => x(i).toFixed(1) + "," + y(bk[k]).toFixed(1)).join(" ");
      root.appendChild(svg("polyline", { class: "before before-" + k, points: pts }));
      before.forEach((bk, i) => {
        const c = svg("circle", { class: "pt-before-" + k, cx: x(i), cy: y(bk[k]), r: b.length > 60 ? 1 : 2 });
        c.appendChild(svg("title", {}, compareName() + ", " + label(bk.start, ts.interval) + ": " + fmt(bk[k]) + " " + t("m_" + k)));
        root.appendChild(c);
      });
    });
    ["pageviews", "visits"].forEach((k) => {
      const pts = b.map((bk, i) => x(i).toFixed(1) + "," + y(bk[k]).toFixed(1)).join(" ");
      root.appendChild(svg("polyline", { class: k, points: pts }));
      b.forEach((bk, i) => {
        const c = svg("circle", { class: "pt-" + k, cx: x(i), cy: y(bk[k]), r: b.length > 60 ? 1.5 : 3 });
        c.appendChild(svg("title", {}, label(bk.start, ts.interval) + ": " + fmt(bk[k]) + " " + t("m_" + k)));
        root.appendChild(c);
      });
    });
    const legend = el("div", "legend");
    ["visits", "pageviews"].forEach((k) => {
      const s = el("span");
      s.appendChild(el("span", "sw sw-" + k));
      s.appendChild(document.createTextNode(t("m_" + k)));
      legend.appendChild(s);
    });
    if (before.length > 0) {
      const s = el("span", "legend-before");
      s.appendChild(el("span", "sw sw-before"));
      s.appendChild(document.createTextNode(compareName()));
      legend.appendChild(s);
    }
    const box = $("chart");
    box.replaceChildren(root, legend);
    box.dataset.visits = String(b.reduce((a, x) => a + x.visits, 0));
    box.dataset.pageviews = String(b.reduce((a, x) => a + x.pageviews, 0));
  }
  function niceStep(max) {
    const raw = max / 4;
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    const m = raw / p;
    return Math.max(1, (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p);
  }
  function label(start, interval) {
    // start is RFC 3339 in the site's zone: read the local parts directly.
    const d = start.slice(0, 10), h = start.slice(11, 13);
    if (interval === "hour") return h + ":00";
    if (interval === "month") return d.slice(0, 7);
    return d.slice(5).replace("-", ".");
  }

  function buildLists() {
    const box = $("lists");
    box.replaceChildren();
    DIMENSIONS.forEach((d) => {
      const sec = el("section", "list");
      sec.dataset.dim = d;
      const head = el("div", "list-head");
      const h = el("h2", null, t("d_" + d));
      h.dataset.i18n = "d_" + d;
      head.appendChild(h);
      const b = el("button", "csv", t("csv"));
      b.type = "button";
      b.dataset.i18n = "csv";
      b.setAttribute("aria-label", t("csv") + " " + t("d_" + d));
      b.addEventListener("click", () => downloadCsv(d));
      head.appendChild(b);
      sec.appendChild(head);
      sec.appendChild(el("table"));
      box.appendChild(sec);
    });
  }
  // The site's hostnames as the API gives them (Unicode).
  function siteHosts() {
    const site = state.sites.find((x) => x.id === $("site").value);
    return (site && site.hostnames) || [];
  }
  // A stored URL as a list shows it: its path and query (percent-escapes
  // decoded, except those of URL delimiters), preceded by the host only when the site has
  // several hosts (or a wildcard) or the URL is on a host not the site's.
  // The full value stays in the row's title and filters by it.
  function shortUrl(value) {
    const m = /^https?:\/\/([^/?#]*)(.*)$/i.exec(value);
    if (!m) return value;
    const host = m[1];
    let rest = m[2] || "/";
    try { rest = decodeURI(rest); } catch (_) { /* keep the escapes */ }
    const hosts = siteHosts();
    const bare = host.replace(/:\d+$/, "").toLowerCase();
    const single = hosts.length === 1 && !hosts[0].startsWith("*.") && hosts[0] === bare;
    return single ? rest : host + rest;
  }

  function renderList(d, data) {
    const sec = document.querySelector('.list[data-dim="' + d + '"]');
    if (!sec) return;
    const table = el("table");
    sec.dataset.total = String(data.total);
    if (data.rows.length === 0) {
      const tr = el("tr");
      tr.appendChild(el("td", "empty", t("no_data")));
      table.appendChild(tr);
    }
    data.rows.forEach((r) => {
      const tr = el("tr");
      tr.dataset.value = r.value;
      const td = el("td");
      const btn = el("button", "rowbtn");
      btn.appendChild(el("span", "label", PATH_DIMS.includes(d) ? shortUrl(r.value) : r.value));
      btn.type = "button";
      btn.title = r.value;
      // rows of search_no_results filter by their search term
      btn.addEventListener("click", () => addFilter(d === "search_no_results" ? "search_term" : d, "==", r.value));
      const bar = el("span", "bar");
      bar.style.width = (r.share * 100).toFixed(1) + "%";
      btn.appendChild(bar);
      td.appendChild(btn);
      tr.appendChild(td);
      const n = el("td", "n", fmt(r[data.metric]));
      n.dataset.count = String(r[data.metric]);
      n.title = t("metric_" + data.metric);
      tr.appendChild(n);
      tr.appendChild(el("td", "s", fmt(r.share * 100, 0) + " %"));
      table.appendChild(tr);
    });
    sec.replaceChild(table, sec.querySelector("table"));
  }

  async function downloadCsv(d) {
    await saveCsv("/breakdown/" + d, query({ limit: "1000", format: "csv" }), d);
  }
  async function saveCsv(path, params, name) {
    try {
      const blob = await api(sitePath() + path, params, "text/csv");
      const a = el("a");
      a.href = URL.createObjectURL(blob);
      a.download = $("site").value + "-" + name + ".csv";
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 10000);
    } catch (e) {
      $("status").textContent = t("load_failed") + e.message;
    }
  }

  // ---- filters
  function addFilter(dim, op, value) {
    if (state.filters.some((f) => f.dim === dim && f.op === op && f.value === value)) return;
    state.filters.push({ dim, op, value });
    renderChips();
    refresh();
  }
  function renderChips() {
    const box = $("chips");
    box.replaceChildren();
    state.filters.forEach((f, i) => {
      const c = el("button", "chip", t("d_" + f.dim) + " " + (f.op === "==" ? "=" : f.op) + " " + f.value);
      c.type = "button";
      c.dataset.dim = f.dim;
      c.setAttribute("aria-label", t("remove_filter") + ": " + c.textContent);
      c.addEventListener("click", () => {
        state.filters.splice(i, 1);
        renderChips();
        refresh();
        $("period").focus();
      });
      box.appendChild(c);
    });
  }

  // ---- loading
  async function refresh() {
    if (!state.token || !$("site").value) return;
    const gen = ++state.generation;
    const current = () => gen === state.generation;
    document.body.dataset.loading = "1";
    $("status").textContent = "";
    const jobs = [
      api(sitePath() + "/summary", query({ compare: compareMode() })).then((s) => current() && renderSummary(s)),
      api(sitePath() + "/timeseries", query(Object.assign({ compare: compareMode() },
        $("interval").value ? { interval: $("interval").value } : {}))).then((ts) => current() && renderChart(ts)),
      loadRealtime(),
      loadGoals(current),
    ].concat(DIMENSIONS.map((d) =>
      api(sitePath() + "/breakdown/" + d, query({ limit: "10" })).then((b) => current() && renderList(d, b))));
    try {
      await Promise.all(jobs);
    } catch (e) {
      if (e.status === 401) { signOut(); return; }
      if (current()) $("status").textContent = t("load_failed") + e.message;
    } finally {
      if (current()) document.body.dataset.loading = "0";
    }
  }
  // ---- goals and funnels (declared per site; panels hidden without any)
  const currentSite = () => state.sites.find((x) => x.id === $("site").value) || {};
  async function loadGoals(current) {
    const site = currentSite();
    const goals = site.goals || [], funnels = site.funnels || [];
    $("goals-card").hidden = goals.length === 0;
    $("funnel-card").hidden = funnels.length === 0;
    const sel = $("funnel-name");
    if (sel.dataset.site !== site.id) {
      sel.dataset.site = site.id;
      sel.replaceChildren(...funnels.map((f) => { const o = el("option", null, f); o.value = f; return o; }));
    }
    const jobs = [];
    if (goals.length) jobs.push(api(sitePath() + "/goals", query()).then((g) => current() && renderGoals(g)));
    if (funnels.length && sel.value) {
      jobs.push(api(sitePath() + "/funnel", query({ name: sel.value })).then((f) => current() && renderFunnel(f)));
    }
    await Promise.all(jobs);
  }
  function renderGoals(g) {
    const table = $("goals");
    table.replaceChildren();
    const head = el("tr");
    ["g_goal", "g_conversions", "g_visitors", "g_rate", "g_revenue"].forEach((k) => head.appendChild(el("th", null, t(k))));
    table.appendChild(head);
    g.rows.forEach((r) => {
      const tr = el("tr");
      tr.dataset.goal = r.goal;
      tr.appendChild(el("td", null, r.goal));
      const c = el("td", "conversions", fmt(r.conversions));
      c.dataset.value = String(r.conversions);
      tr.appendChild(c);
      tr.appendChild(el("td", null, fmt(r.visitors)));
      tr.appendChild(el("td", null, fmt(r.conversion_rate * 100, 1) + " %"));
      tr.appendChild(el("td", null, r.revenue === undefined ? "–" : fmt(r.revenue, 2)));
      table.appendChild(tr);
    });
  }
  function renderFunnel(f) {
    const box = $("funnel");
    box.replaceChildren();
    const top = Math.max(1, f.entered);
    f.steps.forEach((s, i) => {
      const row = el("div", "step");
      row.dataset.visits = String(s.visits);
      row.dataset.dropoff = String(s.dropoff);
      const head = el("div", "step-head");
      head.appendChild(el("span", "step-name", (i + 1) + ". " + s.step));
      head.appendChild(el("span", "step-n", fmt(s.visits) + " " + t("f_visits")));
      row.appendChild(head);
      const bar = el("div", "fbar");
      bar.style.width = ((s.visits / top) * 100).toFixed(1) + "%";
      bar.setAttribute("aria-hidden", "true");
      row.appendChild(bar);
      if (i > 0) row.appendChild(el("div", "drop", fmt(s.dropoff) + " " + t("f_dropoff") + " (" + fmt(s.dropoff_rate * 100, 1) + " %)"));
      box.appendChild(row);
    });
  }

  async function loadRealtime() {
    const p = new URLSearchParams();
    state.filters.forEach((f) => p.append("filter", f.dim + f.op + f.value));
    const rt = await api(sitePath() + "/realtime", p);
    $("rt-visitors").textContent = fmt(rt.visitors);
    $("rt-visitors").dataset.value = String(rt.visitors);
    $("rt-pageviews").textContent = fmt(rt.pageviews);
    $("rt-pageviews").dataset.value = String(rt.pageviews);
  }

  // ---- wiring
  document.addEventListener("DOMContentLoaded", () => {
    applyLang();
    $("lang-toggle").addEventListener("click", () => {
      state.lang = state.lang === "de" ? "en" : "de";
      applyLang();
      if (state.token) { renderChips(); refresh(); }
    });
    $("sign-out").addEventListener("click", signOut);
    $("signin-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      $("signin-error").textContent = "";
      signIn($("token").value.trim(), $("remember").checked);
    });
    $("site").addEventListener("change", () => { state.filters = []; renderChips(); refresh(); });
    $("period").addEventListener("change", () => {
      const custom = $("period").value === "custom";
      $("custom-range").hidden = !custom;
      if (!custom) refresh();
    });
    $("interval").addEventListener("change", refresh);
    $("compare").addEventListener("change", refresh);
    $("funnel-name").addEventListener("change", refresh);
    $("goals-csv").addEventListener("click", () => saveCsv("/goals", query({ format: "csv" }), "goals"));
    $("funnel-csv").addEventListener("click", () =>
      saveCsv("/funnel", query({ name: $("funnel-name").value, format: "csv" }), "funnel"));
    $("controls").addEventListener("submit", (ev) => { ev.preventDefault(); refresh(); });
    setInterval(() => { if (state.token && !$("app").hidden) loadRealtime().catch(() => {}); }, 30000);
    const saved = sessionStorage.getItem(STORE_KEY);
    if (saved) signIn(saved, true);
  });
})();
