#!/usr/bin/env python3
"""A minimal siobridge webhook handler on Python's standard library.

siobridge POSTs one JSON webhook per connect, event and disconnect (docs/webhooks.md);
this handler checks the signature and answers with actions:

  connect     -> {"data": {"name": "guest"}, "join": ["lobby"]}
  event chat  -> ack "ok", and send the chat to the lobby except the sender
  disconnect  -> {}

A delivery siobridge sends again (a retry after a timeout) is handled once: the body's
signed "id" is the key, and a delivery seen before gets the reply it got the first time.

With webhook.batch_max above 1, siobridge POSTs event webhooks in batches
(X-Siobridge-Type: batch): the body is a JSON array of event webhooks, signed as a whole,
and the reply is a JSON array of their replies in the same order. Each event in it is
handled once by its own "id", as above.

Run it with the secret siobridge signs with (webhook.secret), then point siobridge's
webhook.url at it:

  SIOBRIDGE_WEBHOOK_SECRET=change-me PORT=3000 python3 handler.py
"""

import hashlib
import hmac
import json
import os
import sys
import threading
import time
from collections import OrderedDict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECRET = os.environ.get("SIOBRIDGE_WEBHOOK_SECRET", "").encode()
PORT = int(os.environ.get("PORT", "3000"))
TOLERANCE = 300  # seconds a signature's timestamp may be away from our clock
MAX_BODY = 1 << 20
SEEN_MAX = 10000  # replies kept to answer repeated deliveries; a real app keeps them in its database

seen = OrderedDict()  # delivery id -> the reply it got, oldest first
seen_lock = threading.Lock()


def verify(header: str | None, body: bytes) -> bool:
    """Checks X-Siobridge-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">.
    A missing (None) or garbled header is False, never an exception (a 500 is retried)."""
    parts = dict(p.split("=", 1) for p in (header or "").split(",") if "=" in p)
    t, sig = parts.get("t", ""), parts.get("v1", "")
    # ASCII digits only ("²".isdigit() is true), few enough for a float.
    if not (t.isascii() and t.isdigit() and len(t) <= 12):
        return False
    # An old timestamp is a replay of a captured request.
    if abs(time.time() - int(t)) > TOLERANCE:
        return False
    expected = hmac.new(SECRET, t.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), sig.encode())  # constant time


def actions(hook: dict) -> dict:
    """The reply to one webhook: what siobridge should do with the socket."""
    if hook["type"] == "connect":
        # Admit the client (a 4xx reply would refuse it), name it and put it in the lobby.
        return {"data": {"name": "guest"}, "join": ["lobby"]}
    if hook["type"] == "event" and hook.get("event") == "chat":
        # Answer the client's ack callback and pass the chat on to the lobby, sender aside.
        return {
            "ack": ["ok"],
            "emit": [{"event": "chat", "args": hook["args"], "to": ["lobby"], "except": [hook["socket"]["id"]]}],
        }
    return {}  # disconnect, other events: nothing to do


def handle_once(delivery: str, hook: dict) -> dict:
    """actions(hook), or the reply this delivery got before: siobridge may send a webhook
    again when an answer did not reach it, and the app must not act twice."""
    with seen_lock:  # held while acting, so that a retry racing the first attempt waits
        if delivery in seen:
            print("duplicate delivery", delivery, flush=True)
            return seen[delivery]
        reply = actions(hook)
        seen[delivery] = reply
        while len(seen) > SEEN_MAX:
            seen.popitem(last=False)
        return reply


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            return self.answer(413, {"error": "body too large"})
        body = self.rfile.read(length)  # the raw bytes: the signature covers them exactly
        if not verify(self.headers.get("X-Siobridge-Signature", ""), body):
            return self.answer(401, {"error": "bad signature"})
        try:
            hook = json.loads(body)
        except ValueError:
            hook = None
        # A batch of event webhooks: a JSON array, answered by an array in the same order.
        batch = self.headers.get("X-Siobridge-Type") == "batch"
        hooks = hook if batch else [hook]
        if not isinstance(hooks, list) or not all(isinstance(h, dict) for h in hooks):
            return self.answer(400, {"error": "body is not a JSON " + ("array of objects" if batch else "object")})
        # The id in the signed body, not the X-Siobridge-Delivery header: a captured
        # webhook sent again under a new header still carries its own id.
        if not all(isinstance(h.get("id"), str) and h["id"] for h in hooks):
            return self.answer(400, {"error": "body has no delivery id"})
        replies = [handle_once(h["id"], h) for h in hooks]
        self.answer(200, replies if batch else replies[0])

    def answer(self, status: int, reply: dict | list):
        data = json.dumps(reply).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def main():
    if not SECRET:
        sys.exit("handler.py: set SIOBRIDGE_WEBHOOK_SECRET to siobridge's webhook.secret")
    server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
    print("listening on", server.server_address[1], flush=True)  # PORT=0 picks a free port
    server.serve_forever()


if __name__ == "__main__":
    main()
