"use strict";
// Socket.IO clients driven by siobridge's end-to-end tests (cmd/siobridge/e2e_test.go), using
// the real socket.io-client pinned in socketio/testdata/interop (install with `make deps`; the
// test sets NODE_PATH to its node_modules).
//
//   node clients.js [--v2]
//
// With --v2 the clients are socket.io-client 2.x (the alias socket.io-client-v2 beside 4.8:
// Engine.IO v3, for a siobridge with allow_eio3); the commands and the output are the same,
// but for a refused namespace, which 2.x reports as its "error" event (type "error", with
// "data" the value it carries) rather than connect_error, and "recovered", which 2.x lacks.
//
// It reads commands from stdin, one JSON object per line, and writes everything its clients
// observe to stdout, one JSON object per line, so that each scenario's logic lives in the Go
// test:
//
//   {"op":"connect","client":0,"url":"http://127.0.0.1:N","opts":{...}}  io(url, opts), a new connection
//   {"op":"emit","client":0,"event":"e","args":[...],"ack":7}           socket.emit; with "ack", a callback
//   {"op":"answer","client":0,"ref":3,"args":[...]}                     call the ack callback of event ref 3
//   {"op":"close","client":0}                                           socket.disconnect()
//   {"op":"cut","client":0}                                             socket.io.engine.close(): the transport drops
//   {"op":"reconnect","client":0}                                       socket.connect() again
//
// Output, each line with the client's number:
//
//   {"type":"ready"}                                                    once, at start
//   {"client":0,"type":"connect","id":"...","engine":"<Engine.IO id>","transport":"polling","recovered":false}
//   {"client":0,"type":"connect_error","message":"...","data":...}
//   {"client":0,"type":"error","data":...}                              2.x only
//   {"client":0,"type":"event","event":"e","args":[...],"ackRef":3,"transport":"websocket"}
//   {"client":0,"type":"ack","ref":7,"args":[...]}
//   {"client":0,"type":"disconnect","reason":"..."}
//
// Binary travels as {"$bin":"<base64>"} in commands; in the output it is
// {"$bin":"<base64>","$type":"<constructor>"} so that the test can check it arrived as a Buffer.
// Closing stdin disconnects every client and exits 0; a bad command, or the overall timeout,
// exits non-zero with a message on stderr.

const v2 = process.argv.includes("--v2");
const io = v2 ? require("socket.io-client-v2") : require("socket.io-client").io;
const readline = require("node:readline");

const OVERALL_TIMEOUT_MS = 60000;

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

function die(msg) {
  process.stderr.write(`clients.js: FAIL: ${msg}\n`);
  process.exit(1);
}

setTimeout(() => die(`overall timeout of ${OVERALL_TIMEOUT_MS}ms`), OVERALL_TIMEOUT_MS).unref();

// toWire turns {"$bin":"<base64>"} objects into Buffers, at any depth.
function toWire(v) {
  if (Array.isArray(v)) return v.map(toWire);
  if (v !== null && typeof v === "object") {
    const keys = Object.keys(v);
    if (keys.length === 1 && keys[0] === "$bin") return Buffer.from(v.$bin, "base64");
    const o = {};
    for (const k of keys) o[k] = toWire(v[k]);
    return o;
  }
  return v;
}

// fromWire turns binary values into {"$bin","$type"} objects, at any depth.
function fromWire(v) {
  if (Buffer.isBuffer(v)) return { $bin: v.toString("base64"), $type: "Buffer" };
  if (v instanceof ArrayBuffer) return { $bin: Buffer.from(v).toString("base64"), $type: "ArrayBuffer" };
  if (ArrayBuffer.isView(v)) {
    return { $bin: Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("base64"), $type: v.constructor.name };
  }
  if (Array.isArray(v)) return v.map(fromWire);
  if (v !== null && typeof v === "object") {
    const o = {};
    for (const k of Object.keys(v)) o[k] = fromWire(v[k]);
    return o;
  }
  return v;
}

const sockets = new Map(); // client number → socket
const callbacks = new Map(); // "client/ref" → the ack callback of an event from the server
let nextRef = 1;

function transportOf(socket) {
  const engine = socket.io.engine;
  return engine && engine.transport ? engine.transport.name : null;
}

function connect(client, url, opts) {
  if (sockets.has(client)) throw new Error(`client ${client} exists already`);
  const socket = io(url, { forceNew: true, reconnection: false, ...opts });
  sockets.set(client, socket);
  socket.on("connect", () =>
    out({
      client,
      type: "connect",
      id: socket.id,
      engine: socket.io.engine.id,
      transport: transportOf(socket),
      recovered: socket.recovered,
    }),
  );
  socket.on("connect_error", (err) =>
    out({ client, type: "connect_error", message: err.message, data: err.data === undefined ? null : fromWire(err.data) }),
  );
  socket.on("disconnect", (reason) => out({ client, type: "disconnect", reason }));
  // 2.x: a refused namespace (with the server's message).
  if (v2) socket.on("error", (data) => out({ client, type: "error", data: fromWire(data) }));
  onAny(socket, (event, ...args) => {
    const msg = { client, type: "event", event, transport: transportOf(socket) };
    if (args.length > 0 && typeof args[args.length - 1] === "function") {
      const ref = nextRef++;
      callbacks.set(`${client}/${ref}`, args.pop());
      msg.ackRef = ref;
    }
    msg.args = fromWire(args);
    out(msg);
  });
}

// onAny calls fn with every event the server sends the socket, its ack callback last when it
// wants one. 2.x has no socket.onAny: its onevent, which makes the callback, is replaced.
function onAny(socket, fn) {
  if (!v2) {
    socket.onAny(fn);
    return;
  }
  socket.onevent = function (packet) {
    const args = (packet.data || []).slice();
    if (packet.id != null) args.push(this.ack(packet.id));
    fn(...args);
  };
}

function socketOf(client) {
  const socket = sockets.get(client);
  if (!socket) throw new Error(`no client ${client}`);
  return socket;
}

function run(cmd) {
  switch (cmd.op) {
    case "connect":
      connect(cmd.client, cmd.url, cmd.opts || {});
      break;
    case "emit": {
      const args = toWire(cmd.args || []);
      if (cmd.ack !== undefined) {
        const ref = cmd.ack;
        args.push((...res) => out({ client: cmd.client, type: "ack", ref, args: fromWire(res) }));
      }
      socketOf(cmd.client).emit(cmd.event, ...args);
      break;
    }
    case "answer": {
      const key = `${cmd.client}/${cmd.ref}`;
      const cb = callbacks.get(key);
      if (!cb) throw new Error(`no ack callback ${key}`);
      callbacks.delete(key);
      cb(...toWire(cmd.args || []));
      break;
    }
    case "close":
      socketOf(cmd.client).disconnect();
      break;
    case "cut":
      socketOf(cmd.client).io.engine.close();
      break;
    case "reconnect":
      socketOf(cmd.client).connect();
      break;
    default:
      throw new Error(`unknown op ${JSON.stringify(cmd.op)}`);
  }
}

const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
rl.on("line", (line) => {
  if (line.trim() === "") return;
  try {
    run(JSON.parse(line));
  } catch (e) {
    die(`command ${line}: ${e.stack || e}`);
  }
});
rl.on("close", () => {
  for (const socket of sockets.values()) socket.disconnect();
  // Let the DISCONNECT packets go out before exiting.
  setTimeout(() => process.exit(0), 100);
});

out({ type: "ready" });
