-- wrk script for benches/load.sh: a realistic ingest mix against sparsam.
--
-- Environment (set by run_phase in benches/lib.sh):
--   LOAD_MODE      "ingest" (the mix below) or "health" (GET /healthz)
--   LOAD_UA_FILE   one user agent per line (benches/data/user-agents.txt)
--   LOAD_DELAY_MS  pause per connection between requests (0 = max rate)
--   LOAD_RESULT    file that done() writes its figures to
--
-- Mix: 60 % pixel GETs, 25 % script beacons (sparsam's JSON format, 1-3
-- events per post), 15 % Matomo bulk posts (2-5 tracking requests each,
-- idsite 1, with the person-identifying parameters a Matomo tracker sends,
-- which sparsam discards); 5,000 distinct paths on three hostnames picked with a
-- Zipf-like skew; 1 page in 20 is a site-search results page, 1 hit in 25
-- a PDF download; referrers from search, social, other sites or none;
-- X-Forwarded-For varies over ~57,000 addresses (223 × 256; the server trusts
-- 127.0.0.1 as a proxy for this run only).

local mode = os.getenv("LOAD_MODE") or "ingest"
local delay_ms = tonumber(os.getenv("LOAD_DELAY_MS") or "0") or 0
local result_file = os.getenv("LOAD_RESULT") or "/dev/stdout"

local uas = {}
local hosts = { "www.example.org", "blog.example.org", "shop.example.org" }
local refs = {
  "", "", "", "https://www.google.de/", "https://www.bing.com/search?q=x",
  "https://duckduckgo.com/", "https://t.co/abc", "https://www.facebook.com/",
  "https://news.ycombinator.com/item?id=1", "https://www.heise.de/news/x.html",
}
local sections = { "produkte", "blog", "hilfe", "ueber-uns", "presse", "jobs", "kontakt", "docs" }

local function urlencode(s)
  return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

-- Zipf-like rank in 1..n: small ranks much more likely.
local function zipf(n)
  local u = math.random()
  return math.floor(n ^ (u * u)) -- skewed towards 1
end

local function page_url()
  local host = hosts[math.random(#hosts)]
  local rank = zipf(5000)
  local sec = sections[(rank % #sections) + 1]
  local u = "https://" .. host .. "/" .. sec .. "/seite-" .. rank
  local r = math.random(100)
  if r <= 5 then
    u = "https://" .. host .. "/suche?q=begriff" .. math.random(300) .. "&sessionid=" .. math.random(1e6)
  elseif r <= 15 then
    u = u .. "?utm_source=newsletter&utm_medium=email&token=" .. math.random(1e6)
  end
  return u
end

local function pixel_path()
  local q = "site=load&url=" .. urlencode(page_url()) .. "&title=" .. urlencode("Seite " .. math.random(5000))
  local ref = refs[math.random(#refs)]
  if ref ~= "" then q = q .. "&ref=" .. urlencode(ref) end
  if math.random(25) == 1 then
    q = q .. "&kind=download&target=" .. urlencode("https://www.example.org/files/bericht-" .. math.random(200) .. ".pdf")
  end
  return "/p.gif?" .. q
end

local function beacon_event()
  local ref = refs[math.random(#refs)]
  local e = '{"site":"load","kind":"pageview","url":"' .. page_url() .. '","title":"Seite ' .. math.random(5000)
    .. '","pv":"pv' .. math.random(1e9) .. '","plugins":["pdf"]'
  if ref ~= "" then e = e .. ',"ref":"' .. ref .. '"' end
  return e .. "}"
end

local function beacon_body()
  local n = math.random(3)
  if n == 1 then return beacon_event() end
  local parts = {}
  for i = 1, n do parts[i] = beacon_event() end
  return "[" .. table.concat(parts, ",") .. "]"
end

local function matomo_request()
  local q = "?idsite=1&rec=1&url=" .. urlencode(page_url()) .. "&action_name=" .. urlencode("Seite " .. math.random(5000))
    .. "&pv_id=" .. string.format("%06x", math.random(0, 0xffffff)) .. "&_id=" .. string.format("%016x", math.random(1e12))
    .. "&h=" .. math.random(0, 23) .. "&m=" .. math.random(0, 59) .. "&s=" .. math.random(0, 59) .. "&pdf=1&res=1920x1080"
  local ref = refs[math.random(#refs)]
  if ref ~= "" then q = q .. "&urlref=" .. urlencode(ref) end
  if math.random(25) == 1 then
    q = q .. "&download=" .. urlencode("https://www.example.org/files/bericht-" .. math.random(200) .. ".pdf")
  end
  return '"' .. q .. '"'
end

local function matomo_bulk_body()
  local parts = {}
  for i = 1, math.random(2, 5) do parts[i] = matomo_request() end
  return '{"requests":[' .. table.concat(parts, ",") .. ']}'
end

function init(args)
  math.randomseed(os.time() + (tonumber(tostring({}):match("0x(%x+)"), 16) or 0) % 100000)
  local f = io.open(os.getenv("LOAD_UA_FILE") or "", "r")
  if f then
    for line in f:lines() do
      if line ~= "" then uas[#uas + 1] = line end
    end
    f:close()
  end
  if #uas == 0 then
    uas[1] = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
  end
end

function delay()
  return delay_ms
end

function request()
  if mode == "health" then
    return wrk.format("GET", "/healthz")
  end
  local headers = {
    ["User-Agent"] = uas[math.random(#uas)],
    ["X-Forwarded-For"] = math.random(1, 223) .. "." .. math.random(0, 255) .. ".1.1",
  }
  local pick = math.random(100)
  if pick <= 60 then
    return wrk.format("GET", pixel_path(), headers)
  end
  if pick <= 85 then
    headers["Content-Type"] = "text/plain"
    return wrk.format("POST", "/api/event", headers, beacon_body())
  end
  headers["Content-Type"] = "application/json"
  return wrk.format("POST", "/matomo.php", headers, matomo_bulk_body())
end

function done(summary, latency, requests)
  local f = io.open(result_file, "w")
  local e = summary.errors
  f:write(string.format("requests %d\n", summary.requests))
  f:write(string.format("duration_us %d\n", summary.duration))
  f:write(string.format("errors_connect %d\nerrors_read %d\nerrors_write %d\nerrors_status %d\nerrors_timeout %d\n",
    e.connect, e.read, e.write, e.status, e.timeout))
  f:write(string.format("p50_us %d\np99_us %d\np999_us %d\nmax_us %d\n",
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max))
  f:close()
end
