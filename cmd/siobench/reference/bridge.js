// The reference bridge siobench measures siobridge against: what a team would write by hand on
// socket.io 4.8 to get siobridge's contract, tuned as the Socket.IO docs advise (the ws native
// add-ons bufferutil and utf-8-validate are installed, perMessageDeflate and HTTP compression
// are off).
//
//   PORT=7896 API_PORT=7897 WEBHOOK_URL=http://127.0.0.1:3000/hook node bridge.js
//
// The contract (see docs/webhooks.md and docs/api.md), as far as the benchmark uses it:
//   - Socket.IO clients on 127.0.0.1:PORT, path /socket.io/, WebSocket and long-polling;
//   - a `connect` webhook decides on each connection (2xx admits, applying data and join; 4xx
//     refuses with the reply's message and data);
//   - each client event is POSTed as an `event` webhook, one socket's in order, one at a time;
//     the reply's `ack` answers the client's callback and its `emit`, `join`, `leave`, `data`
//     and `disconnect` actions are applied; a `disconnect` webhook when a socket leaves;
//   - POST /emit (a single object or a batch array) on 127.0.0.1:API_PORT; GET /healthz.
// Binary travels as {"$binary":"<base64>"} both ways. Webhooks are retried on connection
// errors and 5xx, 5 times, with backoff from 100 ms, at most 64 in flight (siobridge's
// defaults).
"use strict";

const http = require("node:http");
const { Server } = require("socket.io");

const PORT = Number(process.env.PORT || 7896);
const API_PORT = Number(process.env.API_PORT || 7897);
const WEBHOOK_URL = process.env.WEBHOOK_URL || "";
const HOST = process.env.HOST || "127.0.0.1";

const RETRIES = 5;
const TIMEOUT_MS = 5000;
const RESERVED = new Set(["connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"]);

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

function postOnce(body) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      WEBHOOK_URL,
      {
        method: "POST",
        agent,
        timeout: TIMEOUT_MS,
        headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) },
      },
      (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString() }));
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
    req.end(body);
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// post delivers one webhook with retries and resolves to {status, reply} (reply: the parsed
// JSON object, or {}), or rejects when every attempt failed.
async function post(payload) {
  const body = JSON.stringify(payload);
  let wait = 100;
  for (let attempt = 0; ; attempt++) {
    try {
      const res = await postOnce(body);
      if ((res.status < 500 || res.status === 501) && res.status !== 408 && res.status !== 429) {
        let reply = {};
        try {
          const v = res.body ? JSON.parse(res.body) : {};
          if (v && typeof v === "object" && !Array.isArray(v)) reply = v;
        } catch {}
        return { status: res.status, reply };
      }
      if (attempt >= RETRIES) throw new Error("webhook answered " + res.status);
    } catch (err) {
      if (attempt >= RETRIES) throw err;
    }
    await sleep(wait);
    wait = Math.min(wait * 2, 5000);
  }
}

function toWire(v) {
  if (Buffer.isBuffer(v) || v instanceof ArrayBuffer || ArrayBuffer.isView(v)) {
    return { $binary: Buffer.from(v.buffer ? v.buffer.slice(v.byteOffset, v.byteOffset + v.byteLength) : v).toString("base64") };
  }
  if (Array.isArray(v)) return v.map(toWire);
  if (v && typeof v === "object") {
    const o = {};
    for (const k of Object.keys(v)) o[k] = toWire(v[k]);
    return o;
  }
  return v;
}

function fromWire(v) {
  if (Array.isArray(v)) return v.map(fromWire);
  if (v && typeof v === "object") {
    const keys = Object.keys(v);
    if (keys.length === 1 && keys[0] === "$binary" && typeof v.$binary === "string") return Buffer.from(v.$binary, "base64");
    const o = {};
    for (const k of keys) o[k] = fromWire(v[k]);
    return o;
  }
  return v;
}

function socketInfo(socket, connecting) {
  const h = socket.handshake;
  return {
    id: socket.id,
    rooms: connecting ? [] : [...socket.rooms],
    data: connecting ? null : socket.data ?? null,
    handshake: {
      address: h.address,
      headers: h.headers,
      query: h.query,
      auth: h.auth,
      time: h.time,
      issued: h.issued,
      secure: h.secure,
      xdomain: h.xdomain,
      url: h.url,
    },
  };
}

const io = new Server({
  perMessageDeflate: false,
  httpCompression: false,
  serveClient: false,
  transports: ["polling", "websocket"],
  pingInterval: 25000,
  pingTimeout: 20000,
  connectTimeout: 45000,
  maxHttpBufferSize: 1e6,
});

// emit sends one POST /emit body (already validated) and resolves to the sockets it reached.
async function emit(req) {
  const nsp = io.of(req.namespace || "/");
  let op = nsp;
  if (req.to && req.to.length) op = op.to(req.to);
  if (req.except && req.except.length) op = op.except(req.except);
  if (req.volatile) op = op.volatile;
  let count = nsp.sockets.size;
  if ((req.to && req.to.length) || (req.except && req.except.length)) {
    const sel = await nsp.adapter.sockets(new Set(req.to || []));
    const ex = req.except && req.except.length ? await nsp.adapter.sockets(new Set(req.except)) : new Set();
    count = 0;
    for (const id of sel) if (!ex.has(id)) count++;
  }
  op.emit(req.event, ...fromWire(req.args || []));
  return { sockets: count };
}

function checkEmit(req) {
  if (!req || typeof req !== "object" || Array.isArray(req)) return "not an object";
  if (typeof req.event !== "string" || req.event === "") return "event: required";
  if (RESERVED.has(req.event)) return `event: "${req.event}" is reserved`;
  if (req.args !== undefined && !Array.isArray(req.args)) return "args: must be an array";
  if (req.ack_timeout_ms !== undefined) return "ack_timeout_ms: not supported by the reference bridge";
  return null;
}

// applyActions runs a webhook reply's actions on a connected socket, in the documented order.
function applyActions(socket, reply, ackFn) {
  if ("data" in reply) socket.data = reply.data;
  if (Array.isArray(reply.join)) socket.join(reply.join);
  if (Array.isArray(reply.leave)) for (const r of reply.leave) socket.leave(r);
  if (ackFn && Array.isArray(reply.ack)) ackFn(...fromWire(reply.ack));
  if (Array.isArray(reply.emit)) {
    for (const e of reply.emit) {
      if (checkEmit(e) === null) emit({ namespace: socket.nsp.name, ...e }).catch(() => {});
    }
  }
  if (reply.disconnect === true) socket.disconnect();
}

// enqueue delivers a socket's webhooks one at a time, in order.
function enqueue(socket, payload, done) {
  const prev = socket.__webhooks || Promise.resolve();
  socket.__webhooks = prev.then(async () => {
    try {
      const { status, reply } = await post(payload);
      if (status >= 200 && status < 300 && done) done(reply);
    } catch (err) {
      console.error("webhook failed:", err.message);
    }
  });
}

if (WEBHOOK_URL) {
  io.use(async (socket, next) => {
    try {
      const { status, reply } = await post({ type: "connect", namespace: socket.nsp.name, socket: socketInfo(socket, true) });
      if (status >= 200 && status < 300) {
        if ("data" in reply) socket.data = reply.data;
        if (Array.isArray(reply.join)) socket.join(reply.join);
        const rest = { ...reply };
        delete rest.data;
        delete rest.join;
        if (Object.keys(rest).length) setImmediate(() => socket.connected && applyActions(socket, rest, null));
        return next();
      }
      const err = new Error(typeof reply.message === "string" ? reply.message : "Connection refused by the application");
      if ("data" in reply) err.data = reply.data;
      return next(err);
    } catch {
      return next(new Error("Connection refused by the application"));
    }
  });

  io.on("connection", (socket) => {
    socket.onAny((event, ...args) => {
      let ackFn = null;
      if (args.length && typeof args[args.length - 1] === "function") ackFn = args.pop();
      enqueue(
        socket,
        { type: "event", namespace: socket.nsp.name, socket: socketInfo(socket, false), event, args: toWire(args), ack: ackFn !== null },
        (reply) => applyActions(socket, reply, ackFn),
      );
    });
    socket.on("disconnect", (reason) => {
      enqueue(socket, { type: "disconnect", namespace: socket.nsp.name, socket: socketInfo(socket, false), reason }, null);
    });
  });
}

const publicServer = http.createServer();
io.attach(publicServer);

function send(res, status, obj) {
  const body = JSON.stringify(obj);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
  res.end(body);
}

const api = http.createServer((req, res) => {
  if (req.url === "/healthz" || req.url === "/readyz") {
    res.writeHead(200, { "content-type": "text/plain" });
    return res.end("ok\n");
  }
  if (req.url !== "/emit") return send(res, 404, { error: "not found" });
  if (req.method !== "POST") return send(res, 405, { error: "method not allowed" });
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", async () => {
    let body;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString());
    } catch {
      return send(res, 400, { error: "malformed JSON" });
    }
    const batch = Array.isArray(body);
    const items = batch ? body : [body];
    for (let i = 0; i < items.length; i++) {
      const bad = checkEmit(items[i]);
      if (bad) return send(res, 400, { error: batch ? `[${i}] ${bad}` : bad });
    }
    try {
      const results = [];
      for (const item of items) results.push(await emit(item));
      send(res, 200, batch ? results : results[0]);
    } catch (err) {
      send(res, 500, { error: err.message });
    }
  });
});

publicServer.listen(PORT, HOST, () => {
  api.listen(API_PORT, HOST, () => console.error(`reference bridge: public ${HOST}:${PORT}, api ${HOST}:${API_PORT}, webhook ${WEBHOOK_URL || "(none)"}`));
});

function stop() {
  io.close();
  api.close();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
