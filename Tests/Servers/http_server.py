"""A small HTTP server for the tests that answers from a routes file and logs every request.

Usage: python3 http_server.py PORT ROUTES.json LOG.jsonl [HMAC_SECRET]
ROUTES maps "METHOD /path" (or "METHOD /prefix*") to {"status": 200, "body": <json>, "headers": {...}, "delay": seconds,
"hold_until": PATH}; with hold_until, the answer waits until that file exists (at most 60 s);
a list of such answers is used in turn (the last one repeats). Each request is appended to LOG
as one JSON line: method, path, at (seconds since the epoch), headers, body. Prints "ready" once it listens on 127.0.0.1.
With HMAC_SECRET, a request carrying X-Runner-Signature is checked as a receiver would (HMAC-SHA256
of "TIMESTAMP." and the body, constant-time compare, X-Runner-Timestamp within 5 minutes) and
logged with "signature_ok". A body POSTed to a Sentry
envelope endpoint (/api/ID/envelope/) is parsed with Sentry's own SDK and logged as "sentry": the
event items' payloads, or "sentry_error".
"""
import hashlib
import hmac
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

lock = threading.Lock()
served = {}


def main():
    port, routes_path, log_path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    secret = sys.argv[4].encode() if len(sys.argv) > 4 else None

    def checks(path, headers, raw):
        found = {}
        signature = headers.get("X-Runner-Signature")
        if secret is not None and signature is not None:
            timestamp = headers.get("X-Runner-Timestamp") or ""
            expected = "sha256=" + hmac.new(secret, timestamp.encode() + b"." + raw, hashlib.sha256).hexdigest()
            fresh = timestamp.isdigit() and abs(time.time() - int(timestamp)) <= 300
            found["signature_ok"] = fresh and hmac.compare_digest(expected, signature)
        if path.split("?")[0].endswith("/envelope/"):
            try:
                from sentry_sdk.envelope import Envelope
                envelope = Envelope.deserialize(raw)
                found["sentry"] = {
                    "headers": envelope.headers,
                    "events": [item.payload.json for item in envelope.items if item.type == "event"],
                }
            except Exception as error:  # noqa: BLE001 - logged for the test to report
                found["sentry_error"] = repr(error)
        return found

    class Handler(BaseHTTPRequestHandler):
        def answer(self):
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = raw.decode(errors="replace")
            extra = checks(self.path, self.headers, raw)
            route = f"{self.command} {self.path.split('?')[0]}"
            with open(routes_path) as handle:
                routes = json.load(handle)
            with lock:
                with open(log_path, "a") as log:
                    log.write(json.dumps({"method": self.command, "path": self.path, "at": time.time(),
                                          "headers": dict(self.headers), "body": body, **extra}) + "\n")
                answers = routes.get(route)
                if answers is None:  # "GET /users/*" answers every path under /users/
                    matches = [key for key in routes if key.endswith("*") and route.startswith(key[:-1])]
                    answers = routes[max(matches, key=len)] if matches else {"status": 404, "body": {"message": "Not Found"}}
                if isinstance(answers, list):
                    index = served.get(route, 0)
                    served[route] = index + 1
                    answers = answers[min(index, len(answers) - 1)]
            time.sleep(answers.get("delay", 0))
            if answers.get("hold_until"):
                deadline = time.time() + 60
                while not os.path.exists(answers["hold_until"]) and time.time() < deadline:
                    time.sleep(0.02)
            payload = json.dumps(answers.get("body", {})).encode()
            self.send_response(answers.get("status", 200))
            for name, value in answers.get("headers", {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = answer
        do_POST = answer

        def log_message(self, *arguments):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print("ready", flush=True)
    sys.stdin.read()  # runs until the test closes our stdin (or kills us)
    server.shutdown()


if __name__ == "__main__":
    main()
