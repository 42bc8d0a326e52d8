"use strict";
// The reference the legacy-client scenarios (client2.js, and legacy.html in Chromium) were
// checked against: Node's socket.io 4.8 server with allowEIO3, which is what siobridge's
// allow_eio3 must behave like. socketio/interop_v2ref_test.go runs every scenario against it,
// so that the scenarios stay honest; the same scenarios then run against siobridge.
//
//   node v2reference.js [--host 127.0.0.1] [--ping-interval MS] [--ping-timeout MS]
//
// socket.io is the one pinned in socketio/redisadapter/testdata/node (`make deps`).
//
// Protocol with the Go test: one JSON object per line.
//   stdout: {"type":"ready","port":N}, then what it observes:
//           {"type":"request","method":"GET","path":"/socket.io/","query":{...},"upgrade":false}
//             for every HTTP request, WebSocket upgrades included ("upgrade":true);
//           {"type":"connection","nsp":"/","id":"...","eio":"3","query":{...},"auth":{...}};
//           {"type":"event","nsp":"/","id":"...","event":"...","args":[...]};
//           {"type":"disconnect","nsp":"/","id":"...","reason":"..."}.
//   stdin:  {"seq":N,"cmd":"emit","nsp":"/","to":[...],"except":[...],"event":"...","args":[...]},
//           answered with {"type":"reply","seq":N} or {"type":"error","seq":N,"message":...}.
// Binary values are written as {"$bin":"<hex>"} both ways. It exits when stdin ends.
//
// What it answers (the same as socketio/interop_test.go's coreHandlers, and the chat app of
// examples/chat):
//   "/" and "/chat": json → emits "json" (NESTED, TRICKY, 42); bin → emits "bin" (BUF1,
//     nestedBin, ALL256); ack → acks ("ok", NESTED, <01 02 03>); echo → acks its arguments;
//     ask → asks "question" (QUESTION, <06 07>) with an ack and emits "answered" with the
//     answer; sendMsg → emits "reviceMsg" with its arguments to the others of the namespace (to
//     the room when the second argument names one the sender is in) and acks "sent";
//     joinRoom/leaveRoom → joins/leaves and acks the socket's rooms; whoami → acks
//     {nsp, id, auth, query}.
//   "/chat" refuses a connect whose token (auth, or the query for a 2.x client: its namespace
//   query becomes the auth) is not "abc", with the error "not allowed".

const http = require("node:http");
const path = require("node:path");
const readline = require("node:readline");
const { Server } = require(path.join(__dirname, "../../redisadapter/testdata/node/node_modules/socket.io"));

const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

function flag(name, def) {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : def;
}

// The values client.js and client2.js send and expect (interop_test.go has them too).
const { NESTED, TRICKY, QUESTION, BUF1, ALL256, nestedBin } = require("./common.js");

function toWire(v) {
  if (Buffer.isBuffer(v)) return { $bin: v.toString("hex") };
  if (v instanceof ArrayBuffer) return { $bin: Buffer.from(v).toString("hex") };
  if (ArrayBuffer.isView(v)) return { $bin: Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("hex") };
  if (Array.isArray(v)) return v.map(toWire);
  if (v && typeof v === "object") {
    const o = {};
    for (const [k, x] of Object.entries(v)) o[k] = toWire(x);
    return o;
  }
  return v;
}

function fromWire(v) {
  if (Array.isArray(v)) return v.map(fromWire);
  if (v && typeof v === "object") {
    if (typeof v.$bin === "string" && Object.keys(v).length === 1) return Buffer.from(v.$bin, "hex");
    const o = {};
    for (const [k, x] of Object.entries(v)) o[k] = fromWire(x);
    return o;
  }
  return v;
}

function handlers(socket) {
  const nsp = socket.nsp.name;
  out({
    type: "connection",
    nsp,
    id: socket.id,
    eio: String(socket.conn.protocol),
    transport: socket.conn.transport.name,
    query: socket.handshake.query,
    auth: socket.handshake.auth,
  });
  socket.onAny((event, ...args) => {
    if (typeof args[args.length - 1] === "function") args = args.slice(0, -1);
    out({ type: "event", nsp, id: socket.id, event, args: toWire(args) });
  });
  socket.on("disconnect", (reason) => out({ type: "disconnect", nsp, id: socket.id, reason }));

  socket.on("json", () => socket.emit("json", NESTED, TRICKY, 42));
  socket.on("bin", () => socket.emit("bin", BUF1, nestedBin(), ALL256));
  socket.on("ack", (...args) => args.pop()("ok", NESTED, Buffer.from([1, 2, 3])));
  socket.on("echo", (...args) => args.pop()(...args));
  socket.on("ask", () => {
    // emitWithAck would give the first argument of the answer only.
    socket.timeout(10000).emit("question", QUESTION, Buffer.from([6, 7]), (err, ...answer) => {
      if (err) socket.emit("answered", "the question's ack: " + err.message);
      else socket.emit("answered", ...answer);
    });
  });
  socket.on("sendMsg", (...args) => {
    const ack = typeof args[args.length - 1] === "function" ? args.pop() : () => {};
    const room = typeof args[1] === "string" && socket.rooms.has(args[1]) ? args[1] : null;
    (room ? socket.to(room) : socket.broadcast).emit("reviceMsg", ...args);
    ack("sent");
  });
  socket.on("joinRoom", (room, ack) => {
    socket.join(room);
    ack([...socket.rooms]);
  });
  socket.on("leaveRoom", (room, ack) => {
    socket.leave(room);
    ack([...socket.rooms]);
  });
  socket.on("whoami", (ack) => ack({ nsp, id: socket.id, auth: socket.handshake.auth, query: socket.handshake.query }));
}

async function main() {
  const host = flag("--host", "127.0.0.1");
  const pingInterval = Number(flag("--ping-interval", 25000));
  const pingTimeout = Number(flag("--ping-timeout", 20000));

  const httpServer = http.createServer();
  const io = new Server(httpServer, { allowEIO3: true, pingInterval, pingTimeout });
  // After engine.io has taken over the server's listeners: these see every request first.
  const logRequest = (upgrade) => (req) => {
    const u = new URL(req.url, "http://x");
    out({ type: "request", method: req.method, path: u.pathname, query: Object.fromEntries(u.searchParams), upgrade });
  };
  httpServer.prependListener("request", logRequest(false));
  httpServer.prependListener("upgrade", logRequest(true));

  io.on("connection", handlers);
  const chat = io.of("/chat");
  chat.use((socket, next) => {
    const token = socket.handshake.auth && socket.handshake.auth.token;
    if (token !== "abc") return next(new Error("not allowed"));
    next();
  });
  chat.on("connection", handlers);

  await new Promise((resolve) => httpServer.listen(0, host, resolve));

  const rl = readline.createInterface({ input: process.stdin });
  rl.on("line", (line) => {
    let c;
    try {
      c = JSON.parse(line);
      if (c.cmd !== "emit") throw new Error(`unknown command ${c.cmd}`);
      let op = io.of(c.nsp || "/");
      if (c.to && c.to.length) op = op.to(c.to);
      if (c.except && c.except.length) op = op.except(c.except);
      op.emit(c.event, ...fromWire(c.args || []));
      out({ type: "reply", seq: c.seq });
    } catch (err) {
      out({ type: "error", seq: c && c.seq, message: String(err && err.message ? err.message : err) });
    }
  });
  rl.on("close", () => {
    io.close();
    process.exit(0);
  });

  out({ type: "ready", port: httpServer.address().port, host, pingInterval, pingTimeout });
}

main().catch((err) => {
  out({ type: "fatal", message: String(err && err.stack ? err.stack : err) });
  process.exit(1);
});
