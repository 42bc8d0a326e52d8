"""Interop client for siobridge's Go tests (socketio/interop_test.go), using python-socketio.

    /usr/bin/python3 client.py URL SCENARIO [ARG]

Run it with Debian's /usr/bin/python3, which has python3-socketio (5.7.x), python3-engineio,
python3-websocket and python3-requests (`make deps` installs them): a `python3` found on PATH may
be another interpreter without them.

It runs one scenario against the Go server at URL, prints one JSON object per line on stdout for
each observation (the Go test asserts on them), and exits 0 when every check passed, or non-zero
with a message on stderr on the first failure or after a 20s overall timeout. Binary values are
printed as {"$bin": "<hex>"}. The server side of each scenario lives in interop_test.go; the
shared constants below must match the Go ones.
"""

import json
import os
import sys
import threading
import traceback

import socketio
import websocket

OVERALL_TIMEOUT = 20.0
STEP_TIMEOUT = 10.0

# Shared with interop_test.go and client.js.
NESTED = {"a": [1, 2, {"b": "é☃😀"}], "n": None, "t": True, "f": 1.5}
TRICKY = "é☃😀 \"quoted\" back\\slash\nnew\tline\u0000nul\u2028ls\u2029ps </script>"
QUESTION = "6×7?"
BUF1 = bytes([0, 1, 2, 127, 128, 254, 255])
ALL256 = bytes(range(256))


def nested_bin():
    return {"label": "nested", "inner": {"buf": "héllo".encode()}, "list": [1, bytes([42]), b""]}


URL = sys.argv[1] if len(sys.argv) > 1 else ""
SCENARIO = sys.argv[2] if len(sys.argv) > 2 else ""
ARG = sys.argv[3] if len(sys.argv) > 3 else None

_out_lock = threading.Lock()


def out(obj):
    with _out_lock:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()


def fail(msg):
    # os._exit: python-engineio's threads are not daemons and would keep the process alive.
    with _out_lock:
        sys.stdout.flush()
        sys.stderr.write("client.py %s %s: FAIL: %s\n" % (SCENARIO, ARG or "", msg))
        sys.stderr.flush()
        os._exit(1)


class Failure(Exception):
    pass


def expect(cond, msg):
    if not cond:
        raise Failure(msg)


def canon(v):
    """Binary as {"$bin": hex}, tuples as lists, so values compare and print alike."""
    if isinstance(v, (bytes, bytearray)):
        return {"$bin": bytes(v).hex()}
    if isinstance(v, (list, tuple)):
        return [canon(x) for x in v]
    if isinstance(v, dict):
        return {k: canon(x) for k, x in v.items()}
    return v


def expect_canon(got, want, what):
    g, w = canon(got), canon(want)
    expect(g == w and json.dumps(g, sort_keys=True) == json.dumps(w, sort_keys=True),
           "%s: got %s, want %s" % (what, json.dumps(g), json.dumps(w)))


def bin_types(v, acc=None):
    acc = [] if acc is None else acc
    if isinstance(v, (bytes, bytearray)):
        acc.append(type(v).__name__)
    elif isinstance(v, (list, tuple)):
        for x in v:
            bin_types(x, acc)
    elif isinstance(v, dict):
        for k in sorted(v):
            bin_types(v[k], acc)
    return acc


class Inbox:
    """Events received by handlers (on python-socketio's threads), awaited by the main thread."""

    def __init__(self):
        self._cond = threading.Condition()
        self._items = []

    def put(self, name, args):
        with self._cond:
            self._items.append((name, list(args)))
            self._cond.notify_all()

    def get(self, name, timeout=STEP_TIMEOUT):
        with self._cond:
            def find():
                for i, (n, _) in enumerate(self._items):
                    if n == name:
                        return i
                return None
            if not self._cond.wait_for(lambda: find() is not None, timeout):
                raise Failure("timed out after %ss waiting for %r" % (timeout, name))
            return self._items.pop(find())[1]


def call(sio, event, *args, namespace=None):
    """sio.call with the ack's arguments as a list, however many there are."""
    r = sio.call(event, data=tuple(args), namespace=namespace, timeout=STEP_TIMEOUT)
    if r is None:
        return []
    return list(r) if isinstance(r, tuple) else [r]


def transports(mode):
    if mode in ("polling", "websocket"):
        return [mode]
    if mode in (None, "default"):
        return None
    raise Failure("unknown transport mode %r" % mode)


def client():
    return socketio.Client(reconnection=False)


def _is_disconnect(encoded):
    """Whether an Engine.IO message (or polling payload) carries a Socket.IO DISCONNECT."""
    if isinstance(encoded, (bytes, bytearray)):
        return False
    return any(p.startswith("41") for p in encoded.split("\x1e"))


def _watch_disconnect(sio):
    """Returns an Event set once the DISCONNECT packet that sio.disconnect() queues has reached
    the server ahead of the transport's end.

    python-socketio 5.7's disconnect() queues DISCONNECT and CLOSE, sets the state to
    "disconnecting" and, over WebSocket, sends the close frame at once, while python-engineio's
    writer thread sends the queue: the DISCONNECT frame may go out before the close frame or
    after it (when the server ignores it). Over polling the writer gives up without sending
    when it is still in an earlier POST (a PONG) as the state changes. So whether the server
    sees the DISCONNECT is a race inside the client, which this records: a DISCONNECT POST the
    server answered with 2xx, or a DISCONNECT frame written to the WebSocket before any close
    frame. It hooks websocket-client's _send, which send_frame calls under the socket's write
    lock, so what it records is the order on the wire."""
    sent = threading.Event()
    eio = sio.eio
    if eio.current_transport == "websocket":
        ws = eio.ws
        frame = threading.local()  # what the calling thread's send is writing
        closed = [False]  # a close frame went out
        ws_send, ws_raw_send = ws.send, ws._send

        def send(payload, opcode=websocket.ABNF.OPCODE_TEXT):
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                frame.kind = "close"
            elif opcode == websocket.ABNF.OPCODE_TEXT and _is_disconnect(payload):
                frame.kind = "disconnect"
            else:
                frame.kind = "other"
            try:
                return ws_send(payload, opcode)
            finally:
                frame.kind = None

        def raw_send(data):
            # The first write of a frame: later ones (a partial write's rest) find kind None.
            kind, frame.kind = getattr(frame, "kind", None), None
            if kind == "close":
                closed[0] = True
            elif kind == "disconnect" and not closed[0]:
                sent.set()
            return ws_raw_send(data)

        ws.send, ws._send = send, raw_send
    else:
        send_request = eio._send_request

        def request(method, url, headers=None, body=None, timeout=None):
            r = send_request(method, url, headers=headers, body=body, timeout=timeout)
            if (method == "POST" and body is not None and _is_disconnect(body)
                    and r is not None and not isinstance(r, str) and 200 <= r.status_code < 300):
                sent.set()
            return r

        eio._send_request = request
    return sent


def disconnect(*clients):
    """Disconnects and waits for python-engineio's writer thread to end, so that whatever it
    sends is sent before the process exits. Returns, per client, whether its DISCONNECT packet
    reached the server (see _watch_disconnect)."""
    sent = []
    for sio in clients:
        writer = sio.eio.write_loop_task
        watch = _watch_disconnect(sio)
        sio.disconnect()
        if writer is not None:
            writer.join(STEP_TIMEOUT)
        sent.append(watch.is_set())
    return sent


def scenario_core(mode):
    sio = client()
    inbox = Inbox()
    closing = threading.Event()

    @sio.on("json")
    def on_json(*args):
        inbox.put("json", args)

    @sio.on("bin")
    def on_bin(*args):
        inbox.put("bin", args)

    @sio.on("answered")
    def on_answered(*args):
        inbox.put("answered", args)

    @sio.on("question")
    def on_question(q, b):
        try:
            expect(q == QUESTION, "question: got %r" % (q,))
            expect(isinstance(b, bytes) and b == bytes([6, 7]), "question binary: got %r" % (b,))
        except Failure as e:
            fail(str(e))
        # A tuple is sent as several ack arguments; bytes make it a BINARY_ACK.
        return {"answer": 42, "q": q}, bytes([4, 2])

    @sio.on("disconnect")
    def on_disconnect():
        if not closing.is_set():
            fail("unexpected disconnect")

    sio.connect(URL, transports=transports(mode), wait_timeout=STEP_TIMEOUT)
    out({"step": "connect", "id": sio.get_sid(), "transport": sio.transport()})

    json_args = (NESTED, TRICKY, 42)
    sio.emit("json", data=json_args)
    j = inbox.get("json")
    expect_canon(j, list(json_args), "json from server")
    out({"step": "json", "value": j})

    sio.emit("bin", data=(BUF1, ALL256, nested_bin()))
    b = inbox.get("bin")
    expect_canon(b, [BUF1, nested_bin(), ALL256], "bin from server")
    types = bin_types(b)
    expect(types == ["bytes"] * 5, "server binaries arrived as %s" % types)
    out({"step": "bin", "value": canon(b), "types": types})

    ack = call(sio, "ack", NESTED, BUF1)
    expect_canon(ack, ["ok", NESTED, bytes([1, 2, 3])], "ack")
    expect(isinstance(ack[2], bytes), "ack binary arrived as %s" % type(ack[2]).__name__)
    out({"step": "ack", "value": canon(ack)})

    echo_args = [{"x": bytes([9, 9]), "y": [TRICKY, None]}, "s", BUF1]
    echo = call(sio, "echo", *echo_args)
    expect_canon(echo, echo_args, "echo")
    out({"step": "echo", "value": canon(echo)})

    sio.emit("ask")
    a = inbox.get("answered")
    expect_canon(a, [{"answer": 42, "q": QUESTION}, bytes([4, 2])], "answered")
    out({"step": "answered", "value": canon(a)})

    out({"step": "final", "transport": sio.transport()})
    closing.set()
    sent = disconnect(sio)
    out({"step": "disconnected", "sent_disconnect": sent[0]})


def scenario_namespaces(_):
    sio = client()
    inbox = Inbox()

    @sio.on("welcome", namespace="/custom")
    def on_welcome(*args):
        inbox.put("welcome", args)

    sio.connect(URL, namespaces=["/custom"], wait_timeout=STEP_TIMEOUT)
    sid = sio.get_sid("/custom")
    expect(sid, "no sid for /custom")
    w = inbox.get("welcome")
    expect_canon(w, ["/custom", sid], "welcome")
    out({"step": "custom-connect", "id": sid, "welcome": w, "transport": sio.transport()})

    hello = call(sio, "hello", "from custom", namespace="/custom")
    expect_canon(hello, ["hi", "/custom", "from custom"], "hello ack")
    out({"step": "hello", "value": hello})

    nope = client()
    errors = []

    @nope.on("connect_error", namespace="/nope")
    def on_nope_error(*args):
        errors.append(list(args))

    try:
        nope.connect(URL, namespaces=["/nope"])
    except socketio.exceptions.ConnectionError as e:
        expect(errors, "no connect_error for /nope")
        expect(errors[0] == [{"message": "Invalid namespace"}], "/nope connect_error: %r" % (errors[0],))
        out({"step": "nope", "exception": str(e), "error": errors[0]})
    else:
        fail("connected to /nope")

    again = call(sio, "hello", "again", namespace="/custom")
    expect_canon(again, ["hi", "/custom", "again"], "hello ack after /nope")
    out({"step": "hello-again", "value": again})
    disconnect(sio)


def scenario_auth(_):
    good = client()
    good.connect(URL, auth={"token": "good"}, wait_timeout=STEP_TIMEOUT)
    who = call(good, "whoami")
    out({"step": "good", "id": good.get_sid(), "whoami": canon(who)})

    bad = client()
    errors = []

    @bad.on("connect_error")
    def on_error(*args):
        errors.append(list(args))

    try:
        bad.connect(URL, auth={"token": "bad"})
    except socketio.exceptions.ConnectionError as e:
        # python-socketio 5.7 raises a generic "One or more namespaces failed to connect"; the
        # server's message and data reach the connect_error handler.
        expect(errors, "no connect_error")
        err = errors[0]
        expect(err == [{"message": "not allowed", "data": {"code": 42}}], "connect_error: %r" % (err,))
        out({"step": "bad", "exception": str(e), "exceptionType": type(e).__name__, "error": err})
    else:
        fail("connected with the bad token")
    disconnect(good)


def scenario_rooms(_):
    names = ["a", "b", "c"]
    clients = {}
    markers = {}
    for name in names:
        sio = client()
        events = []
        marker = threading.Event()
        clients[name] = (sio, events)
        markers[name] = marker

        def make_handler(sio, events, marker):
            def on_any(event, *args):
                events.append({"event": event, "args": canon(list(args))})
                if event == "roomMsg":
                    sio.emit("gotRoom")
                if event == "marker":
                    marker.set()
            return on_any

        sio.on("*", make_handler(sio, events, marker))
        sio.connect(URL, auth={"name": name}, wait_timeout=STEP_TIMEOUT)
    for name in ("a", "b"):
        r = call(clients[name][0], "join", "r")
        expect_canon(r, ["joined", "r"], "join ack of %s" % name)
    out({"step": "ready"})
    for name in names:
        expect(markers[name].wait(STEP_TIMEOUT), "no marker at %s" % name)
    for name in names:
        sio, events = clients[name]
        out({"step": "events", "client": name, "id": sio.get_sid(), "events": events})
    for name in ("a", "b"):
        evs = [e["event"] for e in clients[name][1]]
        expect(evs == ["roomMsg", "marker"], "%s got %s" % (name, evs))
    evs = [e["event"] for e in clients["c"][1]]
    expect(evs == ["marker"], "c (not in r) got %s" % evs)
    disconnect(*(clients[name][0] for name in names))


SCENARIOS = {
    "core": scenario_core,
    "namespaces": scenario_namespaces,
    "auth": scenario_auth,
    "rooms": scenario_rooms,
}


def main():
    watchdog = threading.Timer(OVERALL_TIMEOUT, fail, args=("overall timeout of %ss" % OVERALL_TIMEOUT,))
    watchdog.daemon = True
    watchdog.start()
    if not URL or SCENARIO not in SCENARIOS:
        fail("usage: client.py URL SCENARIO [ARG]; scenarios: %s" % ", ".join(SCENARIOS))
    try:
        SCENARIOS[SCENARIO](ARG)
    except Exception:  # noqa: BLE001 -- any failure ends the run with its trace
        fail(traceback.format_exc())
    out({"step": "done"})
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
