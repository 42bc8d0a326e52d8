"use strict";
// Legacy interop client: the real socket.io-client 2.5.0 (Engine.IO v3, Socket.IO protocol v4),
// pinned in package.json under the alias socket.io-client-v2 (install with `make deps`), for a
// server that accepts 2.x clients (siobridge with allow_eio3, Node's with allowEIO3).
//
//   node client2.js URL SCENARIO [ARG...]
//
// It runs one scenario against the server at URL, prints one JSON object per line on stdout for
// each observation, and exits 0 after a last {"step":"done"} when every check passed, or
// non-zero with a message on stderr on the first failure or after a 20s overall timeout.
// Binary values are printed as {"$bin": "<hex>"}, and objects with their keys sorted (canon),
// as client.js does.
//
// The server side of each scenario is the same as for client.js: see v2reference.js, the Node
// server these scenarios were checked against (interop_v2ref_test.go runs them there).
//
// In 2.x, socket.id is the Engine.IO session id for "/" and "/chat#<session id>" for another
// namespace: every connect line prints it, with the session id, for the test to compare with
// what the server saw.

const io = require("socket.io-client-v2");
const {
  OVERALL_TIMEOUT_MS,
  STEP_TIMEOUT_MS,
  NESTED,
  TRICKY,
  QUESTION,
  BUF1,
  ALL256,
  nestedBin,
  toArrayBuffer,
  out,
  run,
  expect,
  canon,
  expectCanon,
  binTypes,
  withTimeout,
  waitEvent,
  emitAck,
  transportOpts,
} = require("./common.js");

const [url, scenario, ...args] = process.argv.slice(2);
// fail is set by run, below, before any scenario starts.
let fail;

// connect opens a socket on its own Engine.IO connection; an unexpected disconnect fails the
// run unless the socket's `expectClose` is set.
function connect(nsp, opts) {
  const socket = io(url + nsp, { forceNew: true, reconnection: false, ...opts });
  socket.expectClose = false;
  socket.on("disconnect", (reason) => {
    if (!socket.expectClose) fail(`${nsp} socket: unexpected disconnect: ${reason}`);
  });
  return socket;
}

// connected resolves on the socket's connect. In 2.x a failed handshake is "connect_error" (with
// an Error) and a refused namespace is "error" (with the server's message).
function connected(socket, what = "connect") {
  return withTimeout(
    new Promise((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("connect_error", (err) => reject(new Error(`connect_error: ${err && err.message}`)));
      socket.once("error", (err) => reject(new Error(`error: ${JSON.stringify(err)}`)));
    }),
    what,
  );
}

// engineID is the Engine.IO session id under the socket.
const engineID = (socket) => socket.io.engine.id;

// connectLine is what every scenario prints once connected.
function connectLine(socket, step = "connect") {
  return { step, id: socket.id, engine: engineID(socket), transport: socket.io.engine.transport.name };
}

// close disconnects the sockets and waits until their Engine.IO connections have closed.
async function close(...sockets) {
  const closes = sockets.map((s) => {
    s.expectClose = true;
    const engine = s.io.engine;
    const p = engine && engine.readyState !== "closed" ? waitEvent(engine, "close", "engine close") : null;
    s.close();
    return p;
  });
  await Promise.all(closes.filter(Boolean));
}

// recordEvents calls fn with the name and arguments of every event the server sends the socket
// (2.x has no onAny).
function recordEvents(socket, fn) {
  const onevent = socket.onevent;
  socket.onevent = function (packet) {
    const [event, ...a] = packet.data || [];
    fn(event, a);
    onevent.call(this, packet);
  };
}

const scenarios = {
  // core MODE: MODE is the transport setup (default: polling upgraded to websocket; websocket;
  // polling). JSON, binary and acks both ways, on "/".
  async core(mode) {
    const socket = connect("/", transportOpts(mode));
    const engine = socket.io.engine;
    const upgraded = new Promise((resolve) => engine.once("upgrade", (t) => resolve(t.name)));
    socket.on("question", (q, b, cb) => {
      try {
        expect(q === QUESTION, `question: got ${JSON.stringify(q)}`);
        expect(Buffer.isBuffer(b), `question binary arrived as ${binTypes([b])}`);
        expectCanon(b, Buffer.from([6, 7]), "question binary");
        expect(typeof cb === "function", "question has no ack callback");
      } catch (e) {
        fail(e.message);
      }
      cb({ answer: 42, q }, Buffer.from([4, 2]));
    });

    await connected(socket);
    expect(socket.id === engineID(socket), `socket.id ${socket.id} is not the Engine.IO session id ${engineID(socket)}`);
    out(connectLine(socket));

    const jsonArgs = [NESTED, TRICKY, 42];
    const gotJSON = waitEvent(socket, "json");
    socket.emit("json", ...jsonArgs);
    const j = await gotJSON;
    expectCanon(j, jsonArgs, "json from server");
    out({ step: "json", value: j });

    if (mode === "default") {
      const name = await withTimeout(upgraded, "the upgrade event");
      expect(name === "websocket", `upgraded to ${name}`);
      out({ step: "upgrade", transport: socket.io.engine.transport.name });
    }

    // Binary both ways: a Buffer, an ArrayBuffer, and Buffers nested in an object.
    const gotBin = waitEvent(socket, "bin");
    socket.emit("bin", BUF1, toArrayBuffer(ALL256), nestedBin());
    const b = await gotBin;
    expectCanon(b, [BUF1, nestedBin(), ALL256], "bin from server");
    const types = binTypes(b);
    expect(types.length === 5 && types.every((t) => t === "Buffer"), `server binaries arrived as ${types}`);
    out({ step: "bin", value: canon(b), types });

    // Client-to-server ack with a binary argument.
    const ack = await emitAck(socket, "ack", NESTED, BUF1);
    expectCanon(ack, ["ok", NESTED, Buffer.from([1, 2, 3])], "ack");
    expect(Buffer.isBuffer(ack[2]), `ack binary arrived as ${binTypes([ack[2]])}`);
    out({ step: "ack", value: canon(ack) });

    // The arguments come back as sent.
    const echoArgs = [{ x: Buffer.from([9, 9]), y: [TRICKY, null] }, "s", toArrayBuffer(BUF1)];
    const echo = await emitAck(socket, "echo", ...echoArgs);
    expectCanon(echo, echoArgs, "echo");
    out({ step: "echo", value: canon(echo) });

    // Server-to-client ack: the server asks "question", the handler above answers, the server
    // tells what it got.
    const answered = waitEvent(socket, "answered");
    socket.emit("ask");
    const a = await answered;
    expectCanon(a, [{ answer: 42, q: QUESTION }, Buffer.from([4, 2])], "answered");
    out({ step: "answered", value: canon(a) });

    out({ step: "final", transport: socket.io.engine.transport.name });
    await close(socket);
  },

  // namespace [MODE]: "/chat" with the query token=abc, which a 2.x client sends in the CONNECT
  // packet (40/chat?token=abc,); the server sees it as the auth payload. whoami acks what the
  // server saw.
  async namespace(mode) {
    const socket = connect("/chat", { ...transportOpts(mode), query: { token: "abc" } });
    await connected(socket, "connect to /chat");
    const want = "/chat#" + engineID(socket);
    expect(socket.id === want, `socket.id ${socket.id}, want ${want}`);
    out(connectLine(socket));
    const [who] = await emitAck(socket, "whoami");
    expect(who && who.nsp === "/chat" && who.id === socket.id, `whoami: ${JSON.stringify(who)}`);
    expect(who.auth && who.auth.token === "abc", `the server saw the auth ${JSON.stringify(who.auth)}, want token abc`);
    out({ step: "whoami", value: canon(who) });
    const echo = await emitAck(socket, "echo", "in /chat", Buffer.from([7]));
    expectCanon(echo, ["in /chat", Buffer.from([7])], "echo in /chat");
    out({ step: "echo", value: canon(echo) });
    await close(socket);
  },

  // refused: "/chat" with a bad token. A 2.x client gets the refusal as an "error" event with
  // the server's message, and never connects.
  async refused() {
    const socket = connect("/chat", { query: { token: "bad" } });
    const err = await withTimeout(
      new Promise((resolve) => {
        socket.once("connect", () => fail("connected with the bad token"));
        socket.once("connect_error", (e) => fail(`connect_error: ${e && e.message}`));
        socket.once("error", resolve);
      }),
      "the error event",
    );
    expect(!socket.connected, "connected after the error");
    out({ step: "refused", error: canon(err), connected: socket.connected });
    await close(socket);
  },

  // heartbeat INTERVAL TIMEOUT: the server's pingInterval and pingTimeout in ms. The 2.x client
  // pings the server every pingInterval; the connection must stay up over three intervals,
  // with every ping answered.
  async heartbeat(interval, timeout) {
    const socket = connect("/", {});
    let pings = 0;
    let pongs = 0;
    let third;
    const thirdPong = new Promise((resolve) => (third = resolve));
    socket.on("ping", () => pings++);
    socket.on("pong", () => {
      if (++pongs >= 3) third();
    });
    await connected(socket);
    const engine = socket.io.engine;
    expect(
      engine.pingInterval === Number(interval) && engine.pingTimeout === Number(timeout),
      `the server's heartbeat is ${engine.pingInterval}/${engine.pingTimeout}ms, want ${interval}/${timeout}`,
    );
    out(connectLine(socket));
    const start = Date.now();
    await withTimeout(thirdPong, "the third pong", 10 * Number(interval) + STEP_TIMEOUT_MS);
    // Past a whole heartbeat window after the third ping: the server would have closed a
    // session whose pings it did not count.
    const window = Number(interval) + Number(timeout);
    await withTimeout(
      new Promise((resolve) => socket.once("pong", resolve)),
      "one more pong",
      window + STEP_TIMEOUT_MS,
    );
    const elapsed = Date.now() - start;
    expect(socket.connected, "disconnected");
    expect(elapsed >= 3 * Number(interval), `4 pongs within ${elapsed}ms, less than three intervals`);
    out({ step: "heartbeat", pings, pongs, connected: socket.connected, elapsedAtLeast: 3 * Number(interval), transport: engine.transport.name });
    await close(socket);
  },

  // chat [NSP] [MODE]: a puppet for chats with other clients (client.js has the same
  // scenario). It connects and prints its connect line; then, for every "say" the server sends
  // it (EVENT, ARGS...), it emits EVENT with ARGS and an ack, and prints
  // {"step":"ack","event":EVENT,"value":[...]}; it prints every other event it gets as
  // {"step":"event","event":...,"args":[...]}, and on "marker" it prints them all
  // ({"step":"events","id":...,"events":[{"event","args"}...]}) and ends. NSP "/chat" connects
  // with the token abc.
  async chat(nsp = "/", mode) {
    const opts = transportOpts(mode);
    if (nsp !== "/") opts.query = { token: "abc" };
    const socket = connect(nsp, opts);
    const events = [];
    let pending = Promise.resolve();
    const marker = new Promise((resolve) => {
      recordEvents(socket, (event, a) => {
        if (event === "say") {
          const [name, ...rest] = a;
          pending = pending.then(async () => {
            const value = await emitAck(socket, name, ...rest);
            out({ step: "ack", event: name, value: canon(value) });
          });
          pending.catch((e) => fail(e.message));
          return;
        }
        if (event === "marker") return resolve();
        events.push({ event, args: canon(a) });
        out({ step: "event", event, args: canon(a) });
      });
    });
    await connected(socket);
    out(connectLine(socket));
    await withTimeout(marker, "marker", OVERALL_TIMEOUT_MS);
    await pending;
    out({ step: "events", id: socket.id, events });
    await close(socket);
  },
};

fail = run("client2.js", [scenario, ...args], async () => {
  if (!url || !scenarios[scenario]) {
    throw new Error(`usage: node client2.js URL SCENARIO [ARG...]; scenarios: ${Object.keys(scenarios).join(", ")}`);
  }
  await scenarios[scenario](...args);
});
