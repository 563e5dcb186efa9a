#!/usr/bin/env python3
"""Writes the initial seed inputs of the fuzz targets into fuzz/corpus/TARGET/
(from the repository's tests and config, and a sample of the user agents of
the DeviceDetector fixtures in tests/data/device-detector). Run once before the first `cargo fuzz run`;
the committed corpora were grown from these and minimized (docs/fuzzing.md)."""
import glob, gzip, hashlib, json, os, random, re, sys
from urllib.parse import quote

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "fuzz", "corpus")
random.seed(7)

def write(target, items):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    n = 0
    for it in items:
        b = it.encode() if isinstance(it, str) else it
        name = "seed-" + hashlib.sha1(b).hexdigest()[:16]
        with open(os.path.join(d, name), "wb") as f:
            f.write(b)
        n += 1
    print(f"{target}: {n} seeds")

def sources():
    for p in glob.glob(os.path.join(ROOT, "tests", "**", "*.rs"), recursive=True) + \
             glob.glob(os.path.join(ROOT, "src", "**", "*.rs"), recursive=True) + \
             glob.glob(os.path.join(ROOT, "tests", "node", "*.js")):
        yield open(p, encoding="utf-8").read()

ALL = "\n".join(sources())

def uas():
    out = []
    found = []
    for p in sorted(glob.glob(os.path.join(ROOT, "tests", "data", "device-detector", "*.yml.gz"))):
        text = gzip.open(p, "rt", encoding="utf-8").read()
        found += re.findall(r"^  user_agent: '?([^'\n]*)'?$", text, re.M)
    out += random.sample(found, min(120, len(found)))
    out += re.findall(r'"(Mozilla/5\.0[^"]*)"', ALL)
    out = sorted(set(u for u in out if u))
    random.shuffle(out)
    return out[:200]

UAS = uas()
U = "https://example.org/a/b?q=impfung&page=2&session=abc&utm_source=nl&utm_medium=mail#top"
URLS = [U, "http://user:pw@Example.ORG:8080/x/../y/%7Efoo?utm_campaign=a+b&q=%FF",
        "https://www.google.de/search?q=secret", "https://[2001:db8::1]:443/p?page=1",
        "http://xn--mnchen-3ya.de/ü?q=ü", "javascript:alert(1)", "https://t.co/abc",
        "https://example.org/a.pdf", "http://127.0.0.1/", "https://l.facebook.com/l.php?u=x",
        "HTTP://EXAMPLE.org/%2e%2e/a?q=1&q=2", "https://example.org?", "https://example.org/#",
        "https://a.example.org/search?s=tax+forms&utm_source=newsletter&utm_medium=email&utm_campaign=spring"]

# pixel: query, optional Referer on the second line
pix = set(m.split("?", 1)[1] for m in re.findall(r"p\.gif\?[^\"`' )]*", ALL) if "{" not in m)
pix |= {"site=demo&url=" + quote(u, safe="") for u in URLS}
pix |= {"site=demo&kind=download&target=https%3A%2F%2Fx.org%2Fa.pdf\nhttps://x.org/p",
        "site=demo&url=%ZZ%E0%A4&title=%FF%FE\nhttps://example.org/",
        "site=a&site=b&url=x&url=&ref=r&title=T+i&pv=k3j2&search=tax&results=12&engaged_ms=1200&plugins=pdf,java,cookies",
        "site=demo&kind=ping&pv=abc&engaged_ms=4294967295", "site=demo&kind=search&search=%20x%20",
        "=&&&site&url=%", "site=demo\n"}
write("pixel", sorted(pix))

# beacon / plausible: JSON bodies
beacons = [
    '{"site":"demo","kind":"pageview","url":"https://example.org/a","ref":"https://www.google.de/","title":"A","pv":"k3j2h1","engaged_ms":1200,"plugins":["pdf"],"hints":{"model":"Pixel 8"}}',
    '[{"site":"demo","url":"https://example.org/"},{"site":"demo","url":"https://example.org/b","kind":"ping","pv":"p1","engaged_ms":5}]',
    '{"events":[{"site":"demo","url":"https://example.org/","kind":"download","target":"https://example.org/a.pdf"}]}',
    '{"site":"demo","url":"https://example.org/s?q=x","search":"tax forms","results":12,"referrer":"https://t.co/x"}',
    '{"site":"demo","url":"https://example.org/","engaged_ms":-1}', '{"site":"a","url":"x","engaged_ms":1e300}',
    '{"site":"demo","url":"https://example.org/","hints":{"brands":[{"brand":"Not A(Brand","version":"99"},{"brand":"Chromium","version":"124"}],"mobile":true,"platform":"Android","platformVersion":"14.0.0","model":"SM-S918B","fullVersionList":[{"brand":"Chromium","version":"124.0.6367.82"}],"formFactors":["Mobile"],"architecture":"arm","bitness":"64"}}',
    '[]', '{', '{"events":[]}', '{"site":"demo"}', '{"site":"demo","url":"","kind":"nope"}',
    '{"site":"\\ud800","url":"\\u0000"}', '{"site":"demo","url":"https://example.org/","results":4294967296}',
]
plaus = [
    '{"n":"pageview","u":"https://www.example.org/a?q=x","d":"example.org","r":"https://duckduckgo.com/","p":{"author":"alice"},"h":1,"v":36}',
    '{"n":"File Download","u":"https://example.org/","d":"example.org","p":{"url":"https://example.org/a.pdf"}}',
    '{"name":"Outbound Link: Click","url":"https://example.org/","domain":"x.com,other.net","props":"{\\"url\\":\\"https://elsewhere.com/\\"}"}',
    '{"n":"pageview","u":"https://other.net/","d":"renamed.io"}',
    '{"n":"engagement","u":"https://example.org/","d":"example.org","e":5000,"sd":40}',
    '{"n":"Signup","u":"https://example.org/","d":"example.org","p":{"plan":"x"}}',
    '{"n":"pageview","d":"example.org"}', '{"n":5,"u":"https://example.org/"}',
    '{"n":"File Download","u":"https://example.org/","d":"example.org"}',
    '{"n":"pageview","u":"https://EXAMPLE.org/","d":" ,,Example.ORG ,"}',
]
write("beacon", beacons + plaus[:2])
write("plausible", plaus + beacons[:4])

# matomo: parameters and bulk bodies
mat = set(m.split("?", 1)[1] for m in re.findall(r"matomo\.php\?[^\"`' )]*", ALL) if "{" not in m)
mat |= set(re.findall(r'"(\??idsite=[^"]*)"', ALL))
mat = {m.replace("idsite=2", "idsite=7") for m in mat}
mat |= {"?idsite=1&rec=1&url=https%3A%2F%2Fexample.org%2Fa&urlref=https%3A%2F%2Fwww.google.de%2F&action_name=A&pv_id=abc123&pdf=1&java=0&fla=1&_id=1234567890abcdef&uid=alice&cip=1.2.3.4&res=1920x1080&uadata=%7B%22model%22%3A%22Pixel%208%22%7D&ua=Mozilla%2F5.0",
        "idsite=7&rec=1&url=https%3A%2F%2Fother.net%2F&download=https%3A%2F%2Fother.net%2Fa.pdf",
        "idsite=1&rec=1&url=https%3A%2F%2Fexample.org%2Fs&search=tax+forms&search_cat=x&search_count=12",
        "idsite=1&rec=1&ca=1&e_c=Video&e_a=Play&url=x", "idsite=1&rec=1&ping=1&pv_id=abc&url=x",
        "idsite=1&rec=1&url=x&link=https%3A%2F%2Fother.org%2F", "idsite=1&idsite=7&rec=1&url=x",
        ' {"requests": ["?idsite=1&rec=1&url=x", "?idsite=7"], "token_auth": "t"}',
        '{"requests": 5}', '{"requests": ["idsite=1&rec=1&url=https%3A%2F%2Fexample.org%2F&search=q"]}'}
write("matomo", sorted(mat))

# client hints: header lines and JSON
ch = [
    'Sec-CH-UA: "Chromium";v="124", "Google Chrome";v="124", "Not-A.Brand";v="99"\nsec-ch-ua-mobile: ?1\nSEC-CH-UA-PLATFORM: "Android"\nSec-CH-UA-Model: "SM-S918B"\nSec-CH-UA-Form-Factors: "Mobile"',
    'sec-ch-ua-full-version-list: "Microsoft Edge";v="121.0.2277.83", "Chromium";v="121.0.6167.140"\nsec-ch-ua-platform-version: "15.0.0"\nsec-ch-ua-arch: "x86"\nsec-ch-ua-bitness: "64"\nsec-ch-ua-platform: "Windows"',
    'sec-ch-ua: ;;;,,,\nsec-ch-ua-mobile: ?2\nsec-ch-ua-model: "a\\\nsec-ch-ua-form-factor: "Desktop", "XR";x=1',
    beacons[6][beacons[6].index('"hints":') + 8:-1],
    '{"brands":[{"brand":"Not A(Brand","version":"99"},{"brand":"Microsoft Edge","version":"121"}],"mobile":false,"platform":"Windows","platformVersion":"15.0.0","model":"","fullVersionList":[{"brand":"Microsoft Edge","version":"121.0.2277.83"}],"formFactors":["Desktop"],"architecture":"x86","bitness":"64","extra":1}',
    '{}', '[1,2]', '{"arch":"arm","brands":[{"brand":" ","version":"1"}]}',
]
write("client_hints", ch)

# device: user agent, then optional hint header lines
dev = list(UAS)
dev += [UAS[i] + "\n" + ch[i % 2] for i in range(0, 30)]
dev += ['Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36\n' + ch[0],
        "", "curl/8.5.0", "Googlebot/2.1 (+http://www.google.com/bot.html)", "x" * 600]
write("device", dev)

# forwarded: Forwarded line, X-Forwarded-For line
write("forwarded", [
    'for=192.0.2.60;proto=http;by=203.0.113.43\n198.51.100.7, 10.0.0.1',
    'for="[2001:db8:cafe::17]:4711", for=10.1.1.1\n', '\n1.2.3.4:80, [2001:db8::1]:443, 2001:db8::2, unknown',
    'For="_hidden", for=unknown;FOR=::ffff:181.153.77.201\n::ffff:1.2.3.4', '\n10.9.9.9, 10.8.8.8',
    'for=[::1]\n', 'for="\n[', ';;;,,=,\n,,,:', 'for=10.0.0.1, for=10.0.0.2\n10.3.3.3'])

# log lines
logs = re.findall(r'r#"(\S+ - \S+ \[[^"]*"[^\n]*?)"#', ALL)
logs = [l for l in logs if "{" not in l]
base = '181.153.77.201 - frank [10/Oct/2026:13:55:36 +0200] "GET /path?x=1 HTTP/1.1" 200 2326 "https://www.google.com/" "{}"'
logs += [base.format(u.replace('"', '\\"')) for u in UAS[:40]]
logs += ['2001:db8::1 - - [01/Jan/2026:00:00:00 +0000] "GET /a\\"b HTTP/1.1" 304 - "-" "-"',
         '[::ffff:10.1.2.3] - - [29/Feb/2024:23:59:59 -1200] "-" 400 0 "-" "-"\r\n',
         '1.2.3.4 - - [01/Jan/2026:00:00:00 +0000] "GET / HTTP/1.1\\" 200 1',
         '10.0.0.1 - - [31/Dec/9999:23:59:59 +2359] "POST http://proxy.example/x?y HTTP/1.0" 599 12 "\\\\" "\\\\"',
         '1.2.3.4 - - [01/Jan/2026:00:00:00 +0000', "garbage", ""]
write("log_line", logs)

# config: the shipped file and the TOML documents in the tests
confs = [open(os.path.join(ROOT, "config", "sparsam.toml"), encoding="utf-8").read()]
for m in re.findall(r'r#"(\s*\[.*?)"#', ALL, re.S):
    if "=" in m and "{" not in m and len(m) < 3000:
        confs.append(m)
confs += ['[[sites]]\nid = "demo"\nhostnames = ["localhost"]\n',
          '[retention]\nsweep_schedule = "0 0 0 31 2 *"\n[[sites]]\nid = "a"\nhostnames = ["a"]\n',
          '[retention]\nsweep_schedule = "0 0 0 1 1 * 2099"\nraw_days = 4294967295\n[[sites]]\nid = "a"\nhostnames = ["*.a"]\n',
          '[privacy]\nipv4_prefix = 255\n[[sites]]\nid = "a"\nhostnames = ["a"]\n',
          '[server]\ntrusted_proxies = ["10.0.0.0/8", "::1", "1.2.3.4/33"]\nlisten = "[::1]:0"\n[[sites]]\nid = "a"\nhostnames = ["a"]\ntimezone = "Europe/Berlin"\n']
write("config", sorted(set(confs))[:150])

# url: one URL (or hostile string) per input
urls = set(URLS) | set(re.findall(r'"(https?://[^"\s{}]*)"', ALL))
write("url", sorted(urls)[:250])

# pipeline: user agent, then a request
pipe = []
for i, u in enumerate(UAS[:40]):
    req = [sorted(pix)[i % len(pix)], beacons[i % 7], plaus[i % 6], "?" + sorted(mat)[i % len(mat)]][i % 4]
    pipe.append(u + "\n" + req)
pipe += ["Googlebot/2.1\nsite=demo&url=https%3A%2F%2Fexample.org%2F",
         "x\nsite=demo&url=https%3A%2F%2Fwww.example.org%2Fs%3Fq%3Dtax%2Bforms%26utm_source%3Dnl%26sid%3D1&ref=https%3A%2F%2Fwww.google.de%2F%3Fq%3Dx",
         "x\nsite=demo&url=https%3A%2F%2Fexample.org%2F&target=https%3A%2F%2Fexample.org%2Fa.PDF",
         "x\nsite=demo&kind=ping&url=https%3A%2F%2Fexample.org%2F", "x\nsite=other&url=https%3A%2F%2Fexample.org%2F"]
write("pipeline", pipe)
