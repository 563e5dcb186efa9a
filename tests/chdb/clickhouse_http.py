#!/usr/bin/env python3
"""The part of ClickHouse's HTTP interface that sparsam uses, served by chDB
(the current ClickHouse engine, in-process, from PyPI), so that the real
ClickHouse backend of sparsam -- its HTTP client, schema migrations, writer
and report reads, unchanged -- can be pointed at a current ClickHouse
without a server installed. tests/clickhouse.rs starts it on a loopback
port and compares every report with the embedded store's.

What it does, as ClickHouse does it:
- POST: the statement is the body; or, with data to insert, the `query`
  URL parameter followed by a newline and the body.
- GET /ping answers "Ok."; GET with `query` runs it.
- Every other URL parameter is a setting for this one statement (SET before,
  the previous value restored after), so an unknown or removed setting is
  refused just as a current server refuses it.
- Answers come in TabSeparated unless the statement names a FORMAT.
- A refused statement answers 500 with ClickHouse's own message
  ("Code: 62. DB::Exception: ...") and the X-ClickHouse-Exception-Code
  header.
- Basic authentication is accepted and not checked (loopback, tests only).

One chDB session (on disk, under --path) serves every connection, one
statement at a time. Every statement is appended to --log (one JSON object
per line: the statement, cut at 4000 characters, and its milliseconds) so a test can show which statements ran on the current engine.

Usage: clickhouse_http.py --path DIR --port-file FILE [--log FILE]
It binds 127.0.0.1 on a free port and writes the port into --port-file
once it answers.
"""

import argparse
import json
import os
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import chdb
import chdb.session

SESSION_LOCK = threading.Lock()
SESSION = None
LOG = None


def setting_literal(value):
    """A setting's value as SQL: numbers as they are, anything else quoted."""
    if re.fullmatch(r"-?[0-9]+(\.[0-9]+)?", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def setting_name(name):
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"Code: 115. DB::Exception: Unknown setting '{name}'. (UNKNOWN_SETTING)")
    return name


def run(sql, settings):
    """Runs one statement with its settings; returns the answer's bytes."""
    with SESSION_LOCK:
        started = time.monotonic()
        previous = []
        try:
            for name, value in settings:
                name = setting_name(name)
                old = SESSION.query(
                    f"SELECT value FROM system.settings WHERE name = '{name}'",
                    "TabSeparatedRaw",
                ).bytes().decode()
                SESSION.query(f"SET {name} = {setting_literal(value)}")
                previous.append((name, old.rstrip("\n")))
            answer = SESSION.query(sql, "TabSeparated")
            return answer.bytes()
        finally:
            for name, old in reversed(previous):
                SESSION.query(f"SET {name} = {setting_literal(old)}")
            if LOG is not None:
                elapsed_ms = round((time.monotonic() - started) * 1000, 1)
                LOG.write(json.dumps({"ms": elapsed_ms, "sql": sql[:4000]}) + "\n")
                LOG.flush()


def error_code(message):
    match = re.match(r"Code: ([0-9]+)", message)
    return match.group(1) if match else "1001"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # headers and body go out in two writes; without TCP_NODELAY the second
    # waits for the client's delayed ACK (some 40 ms a statement)
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def answer(self, status, body, code=None):
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        if code is not None:
            self.send_header("X-ClickHouse-Exception-Code", code)
        self.end_headers()
        self.wfile.write(body)

    def handle_statement(self, body):
        url = urlsplit(self.path)
        params = parse_qsl(url.query, keep_blank_values=True)
        query = "".join(v for k, v in params if k == "query")
        settings = [(k, v) for k, v in params if k not in ("query", "user", "password")]
        if query and body:
            sql = query + "\n" + body.decode()
        else:
            sql = query or body.decode()
        if not sql.strip():
            self.answer(400, b"Code: 62. DB::Exception: Empty query. (SYNTAX_ERROR)\n", "62")
            return
        try:
            result = run(sql, settings)
        except Exception as e:  # chdb raises ChdbError / RuntimeError with ClickHouse's text
            message = str(e).strip()
            self.answer(500, (message + "\n").encode(), error_code(message))
            return
        self.answer(200, result)

    def do_GET(self):
        if urlsplit(self.path).path == "/ping":
            self.answer(200, b"Ok.\n")
            return
        self.handle_statement(b"")

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.handle_statement(self.rfile.read(length))


def main():
    global SESSION, LOG
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--path", required=True, help="chDB data directory")
    parser.add_argument("--port-file", required=True, help="written with the port once serving")
    parser.add_argument("--log", help="append every statement here")
    args = parser.parse_args()
    SESSION = chdb.session.Session(args.path)
    if args.log:
        LOG = open(args.log, "a", encoding="utf-8")
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.replace(args.port_file + ".tmp", args.port_file)
    print(
        f"chDB {chdb.__version__} (ClickHouse {chdb.engine_version}) on 127.0.0.1:{server.server_address[1]}",
        file=sys.stderr,
        flush=True,
    )
    server.serve_forever()


if __name__ == "__main__":
    main()
