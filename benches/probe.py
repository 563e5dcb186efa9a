#!/usr/bin/env python3
"""Latency probe for benches/sweep_load.sh: THREADS threads, each on its own
keep-alive connection, send pixel hits back to back for SECONDS seconds and
write one line per hit, `start_ms latency_ms status`, to OUT. The start is
wall-clock time (ms since the epoch), so hits can be matched to the window
of a sweep from its audit record.

Usage: probe.py HOST:PORT SECONDS THREADS OUT
"""
import http.client
import sys
import threading
import time
import urllib.parse

addr, seconds, threads, out = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
host, port = addr.rsplit(":", 1)
UA = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
lines = []
lock = threading.Lock()


def run(n):
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    end = time.time() + seconds
    i = 0
    mine = []
    while time.time() < end:
        i += 1
        url = urllib.parse.quote(f"https://www.example.org/probe/{n}/{i % 500}", safe="")
        path = f"/p.gif?site=load&url={url}"
        start = time.time()
        try:
            conn.request("GET", path, headers={"User-Agent": UA, "X-Forwarded-For": f"10.{n}.{i % 256}.1"})
            r = conn.getresponse()
            r.read()
            status = r.status
        except OSError:
            conn.close()
            conn = http.client.HTTPConnection(host, int(port), timeout=10)
            status = 0
        mine.append(f"{start * 1000:.1f} {(time.time() - start) * 1000:.2f} {status}\n")
    with lock:
        lines.extend(mine)


ts = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
for t in ts:
    t.start()
for t in ts:
    t.join()
with open(out, "w") as f:
    f.writelines(lines)
