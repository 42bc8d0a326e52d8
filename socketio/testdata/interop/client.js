"use strict";
// Interop client for siobridge's Go tests (socketio/interop_test.go), using the real
// socket.io-client pinned in package.json (install with `make deps`).
//
//   node client.js URL SCENARIO [ARG]
//
// It runs one scenario against the Go server at URL, prints one JSON object per line on stdout
// for each observation (the Go test asserts on them), and exits 0 when every check passed, or
// non-zero with a message on stderr on the first failure or after a 20s overall timeout.
// Binary values are printed as {"$bin": "<hex>"}, and objects with their keys sorted (canon).
//
// The server side of each scenario (event names, what it answers) lives in interop_test.go; the
// shared constants below must match the Go ones.

const { io } = require("socket.io-client");
const util = require("node:util");
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

const [url, scenario, arg] = process.argv.slice(2);
// fail is set by run, below, before any scenario starts.
let fail;

// connect opens a socket on its own Engine.IO connection; unexpected disconnects and connect
// errors fail the run unless the socket's `expectClose` is set.
function connect(nsp, opts) {
  const socket = io(url + nsp, { forceNew: true, reconnection: false, ...opts });
  socket.expectClose = false;
  socket.on("disconnect", (reason) => {
    if (!socket.expectClose) fail(`${nsp} socket: unexpected disconnect: ${reason}`);
  });
  return socket;
}

function connected(socket, what = "connect") {
  return withTimeout(
    new Promise((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("connect_error", (err) => reject(new Error(`connect_error: ${err.message}`)));
    }),
    what,
  );
}

// close disconnects the sockets and waits until their Engine.IO connections have closed, so what
// they sent last (the DISCONNECT packet) has reached the server.
async function close(...sockets) {
  const closes = sockets.map((s) => {
    s.expectClose = true;
    const engine = s.io.engine;
    const p = engine && engine.readyState !== "closed" ? waitEvent(engine, "close", "engine close") : null;
    s.disconnect();
    return p;
  });
  await Promise.all(closes.filter(Boolean));
}

const scenarios = {
  // core ARG: ARG is the transport setup (polling, websocket, default).
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
    out({ step: "connect", id: socket.id, transport: engine.transport.name });

    // JSON both ways.
    const jsonArgs = [NESTED, TRICKY, 42];
    const gotJSON = waitEvent(socket, "json");
    socket.emit("json", ...jsonArgs);
    out({ step: "sent-json", raw: JSON.stringify(jsonArgs) });
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

    // Client ack answered by e.Ack with a binary argument.
    const ack = await emitAck(socket, "ack", NESTED, BUF1);
    expectCanon(ack, ["ok", NESTED, Buffer.from([1, 2, 3])], "ack");
    expect(Buffer.isBuffer(ack[2]), `ack binary arrived as ${binTypes([ack[2]])}`);
    out({ step: "ack", value: canon(ack) });

    // Client ack answered by e.AckRaw(e.Args): the arguments come back as sent.
    const echoArgs = [{ x: Buffer.from([9, 9]), y: [TRICKY, null] }, "s", toArrayBuffer(BUF1)];
    const echo = await emitAck(socket, "echo", ...echoArgs);
    expectCanon(echo, echoArgs, "echo");
    out({ step: "echo", value: canon(echo) });

    // Server EmitWithAck answered by the "question" handler above; the server then tells what
    // it got.
    const answered = waitEvent(socket, "answered");
    socket.emit("ask");
    const a = await answered;
    expectCanon(a, [{ answer: 42, q: QUESTION }, Buffer.from([4, 2])], "answered");
    out({ step: "answered", value: canon(a) });

    out({ step: "final", transport: socket.io.engine.transport.name });
    await close(socket);
  },

  async namespaces() {
    const custom = connect("/custom", {});
    const welcome = waitEvent(custom, "welcome");
    await connected(custom);
    const w = await welcome;
    expectCanon(w, ["/custom", custom.id], "welcome");
    out({ step: "custom-connect", id: custom.id, welcome: w });

    const hello = await emitAck(custom, "hello", "from custom");
    expectCanon(hello, ["hi", "/custom", "from custom"], "hello ack");
    out({ step: "hello", value: hello });

    // "/nope" on the same Engine.IO connection as "/custom".
    const nope = custom.io.socket("/nope");
    const err = await withTimeout(
      new Promise((resolve) => {
        nope.once("connect", () => fail("connected to /nope"));
        nope.once("connect_error", resolve);
      }),
      "connect_error on /nope",
    );
    expect(err.message === "Invalid namespace", `/nope connect_error message: ${err.message}`);
    out({ step: "nope", message: err.message, data: err.data === undefined ? null : err.data });

    // The other namespace still works on that connection.
    const again = await emitAck(custom, "hello", "again");
    expectCanon(again, ["hi", "/custom", "again"], "hello ack after /nope");
    out({ step: "hello-again", value: again });
    await close(custom);
  },

  async auth() {
    const good = connect("/", { auth: { token: "good" } });
    await connected(good, "connect with the good token");
    const who = await emitAck(good, "whoami");
    out({ step: "good", id: good.id, whoami: canon(who) });

    const bad = connect("/", { auth: { token: "bad" } });
    const err = await withTimeout(
      new Promise((resolve) => {
        bad.once("connect", () => fail("connected with the bad token"));
        bad.once("connect_error", resolve);
      }),
      "connect_error with the bad token",
    );
    expect(err.message === "not allowed", `connect_error message: ${err.message}`);
    expect(util.isDeepStrictEqual(err.data, { code: 42 }), `connect_error data: ${JSON.stringify(err.data)}`);
    expect(!bad.connected, "bad socket connected");
    out({ step: "bad", message: err.message, data: err.data === undefined ? null : err.data });
    await close(good);
  },

  // rooms: a and b join room "r"; the Go test then broadcasts "roomMsg" to "r", waits for the
  // "gotRoom" receipts, and sends "marker" to all; each client lists what it received.
  async rooms() {
    const names = ["a", "b", "c"];
    const clients = {};
    const markers = [];
    for (const name of names) {
      const s = connect("/", { auth: { name } });
      const c = { socket: s, events: [] };
      clients[name] = c;
      s.onAny((event, ...args) => {
        c.events.push({ event, args: canon(args) });
        if (event === "roomMsg") s.emit("gotRoom");
      });
      markers.push(waitEvent(s, "marker", `marker at ${name}`));
    }
    await Promise.all(names.map((n) => connected(clients[n].socket, `connect of ${n}`)));
    for (const n of ["a", "b"]) {
      const r = await emitAck(clients[n].socket, "join", "r");
      expectCanon(r, ["joined", "r"], `join ack of ${n}`);
    }
    out({ step: "ready" });
    await Promise.all(markers);
    for (const n of names) out({ step: "events", client: n, id: clients[n].socket.id, events: clients[n].events });
    for (const n of ["a", "b"]) {
      const evs = clients[n].events.map((e) => e.event);
      expect(util.isDeepStrictEqual(evs, ["roomMsg", "marker"]), `${n} got ${evs}`);
    }
    const evs = clients.c.events.map((e) => e.event);
    expect(util.isDeepStrictEqual(evs, ["marker"]), `c (not in r) got ${evs}`);
    await close(...names.map((n) => clients[n].socket));
  },

  // reconnect: the Go test drops the first connection (closing its Engine.IO session, or
  // s.Disconnect(true)); the client comes back with a new socket.
  async reconnect() {
    const socket = io(url, {
      forceNew: true,
      reconnection: true,
      reconnectionDelay: 100,
      reconnectionDelayMax: 100,
      randomizationFactor: 0,
    });
    let first = null;
    let firstEngine = null;
    const second = new Promise((resolve, reject) => {
      socket.on("connect", () => {
        if (first === null) {
          first = socket.id;
          const engine = socket.io.engine;
          firstEngine = engine.id;
          // Tell the server once the upgrade is over, so that the drop does not race it (that
          // race is dropduringupgrade's).
          const tell = () => {
            out({ step: "first", id: first, engine: firstEngine, transport: engine.transport.name });
            socket.emit("eid", firstEngine);
          };
          if (engine.transport.name === "websocket") tell();
          else withTimeout(waitEvent(engine, "upgrade"), "the first upgrade").then(tell, reject);
        } else {
          resolve();
        }
      });
      socket.on("disconnect", (reason) => {
        if (first === null) return reject(new Error(`disconnect before connect: ${reason}`));
        out({ step: "disconnect", reason, active: socket.active });
        // A server-side disconnect is final for socket.io-client: reconnect by hand, as its docs
        // tell.
        if (reason === "io server disconnect") socket.connect();
      });
    });
    await withTimeout(second, "the reconnection");
    expect(socket.id !== first, `same socket id after reconnecting: ${socket.id}`);
    expect(socket.io.engine.id !== firstEngine, "same Engine.IO session after reconnecting");
    const pong = await emitAck(socket, "ping2", "after reconnect");
    expectCanon(pong, ["pong2", "after reconnect"], "ping2 ack");
    out({ step: "reconnected", id: socket.id, engine: socket.io.engine.id, pong });
    socket.io.reconnection(false);
    socket.off("disconnect");
    await close(socket);
  },

  // dropduringupgrade: the server drops a socket with s.Disconnect(true) while its connection
  // is between the WebSocket probe and the "upgrade" packet (the polling transport paused, the
  // "5" not sent yet), as happens when a server disconnects a client right after it connected.
  // A second connection asks for the drop; the first one then finishes its upgrade, and reports
  // how it ended: Node's engine.io flushes what was queued (the DISCONNECT packet) on the new
  // transport, which socket.io-client reports as "io server disconnect".
  async dropduringupgrade() {
    const main = io(url, { forceNew: true, reconnection: false, auth: { name: "main" } });
    const engine = main.io.engine;
    const mainConnected = connected(main, "main connect");
    let release;
    const held = new Promise((resolve) => (release = resolve));
    const paused = new Promise((resolve) => {
      engine.once("upgrading", () => {
        // The probe succeeded: engine.io-client now pauses polling and, once paused, sends the
        // "upgrade" packet. Pause only once the socket is connected (its CONNECT answer comes
        // by polling), and hold the upgrade packet until the server has dropped the socket.
        const polling = engine.transport;
        const pause = polling.pause.bind(polling);
        polling.pause = (onPause) => {
          mainConnected.then(() =>
            pause(() => {
              resolve();
              held.then(onPause);
            }),
          );
        };
      });
    });
    const reasons = [];
    main.on("disconnect", (reason) => reasons.push(reason));
    await mainConnected;
    await withTimeout(paused, "the polling transport to pause for the upgrade");
    out({ step: "main-paused", id: main.id, engine: engine.id, transport: engine.transport.name });

    const side = connect("/", { transports: ["websocket"], auth: { name: "side" } });
    await connected(side, "side connect");
    const dropped = await emitAck(side, "drop", main.id);
    expectCanon(dropped, ["dropped", main.id], "drop ack");

    const gone = reasons.length > 0 ? Promise.resolve() : waitEvent(main, "disconnect", "main's disconnect");
    release();
    await gone;
    out({ step: "main-disconnect", reason: reasons[0], transport: engine.transport.name });
    await close(side);
  },

  // recovery ARG: connection state recovery. A main socket in room "r" gets events n=1..3,
  // then its transport is cut (socket.io.engine.close()); while it is away a control socket
  // has the server broadcast n=4..8 to "r"; then it reconnects. ARG "within": the server's
  // window is long, so the socket must come back recovered with its id and get 4..8 replayed
  // exactly once, in order, before the new 9..10. ARG "auto": the same, but socket.io-client
  // reconnects by itself (after 200ms), as it does for real. ARG "polling": "within" over
  // HTTP long-polling. ARG "expired": the client waits
  // past the server's short window first, so it must come back not recovered, with a new id,
  // and get only the new events.
  async recovery(mode) {
    const auto = mode === "auto";
    const main = io(url, {
      forceNew: true,
      transports: mode === "polling" ? ["polling"] : ["websocket"],
      reconnection: auto,
      reconnectionDelay: 200,
      reconnectionDelayMax: 200,
      randomizationFactor: 0,
    });
    const ctl = connect("/", { transports: ["websocket"], auth: { ctl: true } });
    const got = [];
    let waiter = null;
    main.on("n", (i, offset) => {
      if (typeof offset !== "string") fail(`event n=${i} carries no offset: ${JSON.stringify(offset)}`);
      got.push(i);
      if (waiter && got.includes(waiter.n)) waiter.resolve();
    });
    const receive = (n) =>
      got.includes(n) ? Promise.resolve() : withTimeout(new Promise((resolve) => (waiter = { n, resolve })), `n=${n}`);
    const send = (from, to) => emitAck(ctl, "send", from, to);

    await Promise.all([connected(main, "main connect"), connected(ctl, "ctl connect")]);
    expect(!main.recovered, "recovered on the first connection");
    const firstID = main.id;
    out({ step: "first", id: firstID, recovered: main.recovered });
    await send(1, 3);
    await receive(3);

    const gone = waitEvent(main, "disconnect", "the main socket's disconnect");
    main.io.engine.close();
    const [reason] = await gone;
    out({ step: "disconnect", reason });
    const back = connected(main, "the reconnection");
    await send(4, 8);
    // The Go test sets the window to 200ms for "expired".
    if (mode === "expired") await new Promise((resolve) => setTimeout(resolve, 1000));

    if (!auto) main.connect();
    await back;
    out({ step: "second", id: main.id, recovered: main.recovered });
    await send(9, 10);
    await receive(10);
    // One more round trip, so a duplicate still on its way would be seen.
    await send(11, 11);
    await receive(11);
    out({ step: "events", got });
    const want = mode === "expired" ? [1, 2, 3, 9, 10, 11] : [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
    expectCanon(got, want, "events received");
    if (mode === "expired") {
      expect(!main.recovered && main.id !== firstID, `recovered=${main.recovered} id ${main.id} after the window`);
    } else {
      expect(main.recovered && main.id === firstID, `recovered=${main.recovered} id ${main.id} within the window`);
    }
    main.io.reconnection(false);
    main.disconnect();
    await close(ctl);
  },

  // chat [NSP] [MODE]: a puppet for chats with other clients, client2.js's legacy clients among
  // them (client2.js has the same scenario, with the same lines). It connects and prints
  // {"step":"connect","id","engine","transport"}; then, for every "say" the server sends it
  // (EVENT, ARGS...), it emits EVENT with ARGS and an ack, and prints
  // {"step":"ack","event":EVENT,"value":[...]}; it prints every other event it gets as
  // {"step":"event","event":...,"args":[...]}, and on "marker" it prints them all
  // ({"step":"events","id":...,"events":[{"event","args"}...]}) and ends. NSP "/chat" connects
  // with the auth token abc.
  async chat(nsp = "/", mode) {
    const opts = transportOpts(mode);
    if (nsp !== "/") opts.auth = { token: "abc" };
    const socket = connect(nsp, opts);
    const events = [];
    let pending = Promise.resolve();
    const marker = new Promise((resolve) => {
      socket.onAny((event, ...a) => {
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
    out({ step: "connect", id: socket.id, engine: socket.io.engine.id, transport: socket.io.engine.transport.name });
    await withTimeout(marker, "marker", OVERALL_TIMEOUT_MS);
    await pending;
    out({ step: "events", id: socket.id, events });
    await close(socket);
  },

  // maxpayload ARG: a victim sends an event larger than the server's maxPayload over ARG; it is
  // disconnected, and a bystander connected at the same time goes on exchanging events.
  async maxpayload(mode) {
    const opts = transportOpts(mode);
    const victim = connect("/", { ...opts, auth: { name: "victim" } });
    const bystander = connect("/", { ...opts, auth: { name: "bystander" } });
    await Promise.all([connected(victim, "victim connect"), connected(bystander, "bystander connect")]);
    const before = await emitAck(bystander, "echo", "before");
    expectCanon(before, ["before"], "bystander echo before");

    victim.expectClose = true;
    const gone = waitEvent(victim, "disconnect", "the victim's disconnect");
    victim.emit("big", "x".repeat(20000));
    const [reason] = await gone;
    out({ step: "victim-disconnect", reason, transport: victim.io.engine.transport.name });

    for (let i = 0; i < 3; i++) {
      const r = await emitAck(bystander, "echo", `after ${i}`, Buffer.from([i]));
      expectCanon(r, [`after ${i}`, Buffer.from([i])], `bystander echo ${i}`);
    }
    expect(bystander.connected, "bystander disconnected");
    out({ step: "bystander-ok", id: bystander.id, transport: bystander.io.engine.transport.name });
    await close(bystander);
  },
};

fail = run("client.js", [scenario, arg], async () => {
  if (!url || !scenarios[scenario]) {
    throw new Error(`usage: node client.js URL SCENARIO [ARG]; scenarios: ${Object.keys(scenarios).join(", ")}`);
  }
  await scenarios[scenario](arg);
});
