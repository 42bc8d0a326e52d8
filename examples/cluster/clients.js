// socket.io-client 4.8 clients for cluster_test.go, connected through the example's nginx.
//
//   NODE_PATH=<repo>/socketio/testdata/interop/node_modules node clients.js <base url>
//
// stdin: one JSON command per line.
//   {"cmd":"open","name":"polling","opts":{"transports":["polling"],"query":{"sticky":"p1"}}}
//   {"cmd":"emit","name":"polling","event":"ping","args":[1],"seq":3}   (with an ack callback)
// stdout: one JSON object per line.
//   {"type":"open","name":..,"transport":..}             (the Engine.IO session's first transport)
//   {"type":"connect","name":..,"id":..,"transport":..}
//   {"type":"upgrade","name":..,"transport":"websocket"}
//   {"type":"event","name":..,"event":..,"args":[..],"transport":..}
//   {"type":"ack","name":..,"seq":..,"args":[..],"transport":..}
//   {"type":"error","name":..,"message":..,"description":..,"body":..}  (a transport error: the
//       body of a refused polling request, such as {"code":1,"message":"Session ID unknown"})
//   {"type":"connect_error","name":..,"message":..}
//   {"type":"disconnect","name":..,"reason":..}
// Clients do not reconnect: a session that breaks shows as an error and a disconnect. The
// process closes every client and exits when stdin ends.
"use strict";

const readline = require("node:readline");
const { io } = require("socket.io-client");

const base = process.argv[2];
const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const clients = new Map();

function open(name, opts) {
  const socket = io(base, { ...opts, reconnection: false, forceNew: true });
  clients.set(name, socket);
  const transport = () => (socket.io.engine ? socket.io.engine.transport.name : "");
  socket.io.on("open", () => {
    out({ type: "open", name, transport: transport() });
    socket.io.engine.on("upgrade", (t) => out({ type: "upgrade", name, transport: t.name }));
  });
  socket.on("connect", () => out({ type: "connect", name, id: socket.id, transport: transport() }));
  socket.on("connect_error", (err) => out({ type: "connect_error", name, message: String(err && err.message) }));
  socket.on("disconnect", (reason) => out({ type: "disconnect", name, reason }));
  socket.io.on("error", (err) => {
    const xhr = err && err.context;
    out({
      type: "error",
      name,
      message: String(err && err.message),
      description: err && err.description !== undefined ? String(err.description) : "",
      body: xhr && typeof xhr.responseText === "string" ? xhr.responseText : "",
    });
  });
  socket.onAny((event, ...args) => out({ type: "event", name, event, args, transport: transport() }));
}

const rl = readline.createInterface({ input: process.stdin });
rl.on("line", (line) => {
  const c = JSON.parse(line);
  switch (c.cmd) {
    case "open":
      open(c.name, c.opts || {});
      break;
    case "emit": {
      const socket = clients.get(c.name);
      socket.emit(c.event, ...(c.args || []), (...args) => {
        out({ type: "ack", name: c.name, seq: c.seq, args, transport: socket.io.engine.transport.name });
      });
      break;
    }
    default:
      out({ type: "fatal", message: `unknown command ${c.cmd}` });
  }
});
rl.on("close", () => {
  for (const s of clients.values()) s.close();
  process.exit(0);
});
out({ type: "ready" });
