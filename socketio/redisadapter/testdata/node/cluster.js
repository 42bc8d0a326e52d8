// A Node.js Socket.IO server in a siobridge cluster: socket.io with @socket.io/redis-adapter
// (classic pub/sub, or with ADAPTER=redis-sharded its createShardedAdapter on Redis 7 sharded
// pub/sub; node-redis 4 clients) on the Redis at REDIS_URL, listening on a loopback port, plus
// an @socket.io/redis-emitter and socket.io-client clients on demand. ADAPTER=redis-streams
// uses @socket.io/redis-streams-adapter instead; RECOVERY_MS=<ms> turns connection state
// recovery on.
//
// Protocol with the Go test: one JSON object per line.
//   stdout: {"type":"ready","port":N,"serverCount":N}, then replies and events.
//   stdin:  commands {"seq":N,"cmd":...}; each is answered with {"type":"reply","seq":N,...}
//           or {"type":"error","seq":N,"message":...}.
// Binary values are written as {"$bin":"<hex>"} both ways. The process exits when stdin ends.
"use strict";

const http = require("node:http");
const readline = require("node:readline");
const { Server } = require("socket.io");
const { createAdapter, createShardedAdapter } = require("@socket.io/redis-adapter");
const { Emitter } = require("@socket.io/redis-emitter");
const { createClient, createCluster } = require("redis");
const ioc = require("socket.io-client");

const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

// toWire turns Buffers/ArrayBuffers into {"$bin": hex} for printing.
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

// fromWire turns {"$bin": hex} back into Buffers.
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

// streamsAdapter is ADAPTER=redis-streams: @socket.io/redis-streams-adapter on the node-redis
// client, loaded only then; null for the other adapters.
function streamsAdapter(client) {
  if (process.env.ADAPTER !== "redis-streams") return null;
  const { createAdapter: createStreamsAdapter } = require("@socket.io/redis-streams-adapter");
  return createStreamsAdapter(client);
}

// recoveryOption turns connection state recovery on when RECOVERY_MS is set (its window).
function recoveryOption() {
  const ms = Number(process.env.RECOVERY_MS || 0);
  return ms > 0 ? { connectionStateRecovery: { maxDisconnectionDuration: ms } } : {};
}

async function main() {
  const url = process.env.REDIS_URL;
  // REDIS_CLUSTER (host:port seeds, comma-separated) puts the clients on a Redis Cluster.
  const seeds = process.env.REDIS_CLUSTER;
  const newClient = seeds
    ? () => createCluster({ rootNodes: seeds.split(",").map((addr) => ({ url: `redis://${addr}` })) })
    : () => createClient({ url });
  const pub = newClient();
  const sub = newClient();
  const emitterClient = newClient();
  for (const c of [pub, sub, emitterClient]) c.on("error", (err) => out({ type: "redis-error", message: String(err) }));
  await Promise.all([pub.connect(), sub.connect(), emitterClient.connect()]);

  const httpServer = http.createServer();
  const adapter =
    process.env.ADAPTER === "redis-sharded"
      ? createShardedAdapter(pub, sub)
      : createAdapter(pub, sub, { requestsTimeout: Number(process.env.REQUESTS_TIMEOUT || 2000) });
  const io = new Server(httpServer, { adapter: streamsAdapter(pub) || adapter, ...recoveryOption() });
  const emitter = new Emitter(emitterClient);
  const clients = new Map();

  io.on("connection", (socket) => {
    out({ type: "connection", id: socket.id });
    socket.on("disconnect", (reason) => out({ type: "server-disconnect", id: socket.id, reason }));
  });

  await new Promise((resolve) => httpServer.listen(0, "127.0.0.1", resolve));
  const port = httpServer.address().port;

  const target = (c) => {
    let op = c.nsp ? io.of(c.nsp) : io;
    if (c.rooms && c.rooms.length) op = op.to(c.rooms);
    if (c.except && c.except.length) op = op.except(c.except);
    return op;
  };

  const commands = {
    // A socket.io-client connected to this Node.js server; its events are printed.
    async client(c) {
      const socket = ioc(`http://127.0.0.1:${port}${c.nsp || "/"}`, { transports: ["websocket"], reconnection: false });
      clients.set(c.name, socket);
      socket.onAny((event, ...args) => {
        const last = args[args.length - 1];
        if (typeof last === "function") {
          args.pop();
          last(c.ackWith === undefined ? `ack from ${c.name}` : c.ackWith);
        }
        out({ type: "client-event", name: c.name, event, args: toWire(args) });
      });
      await new Promise((resolve, reject) => {
        socket.on("connect", resolve);
        socket.on("connect_error", reject);
      });
      return { id: socket.id };
    },
    // A socket.io-client that recovers its connection: connected to the server at c.port (a
    // siobridge node, or this server when absent), it reconnects only when told to
    // (reconnect), to any server, as its own reconnection would. Its connects are printed
    // with socket.recovered, its events with their offsets.
    async recoveringClient(c) {
      const url = `http://127.0.0.1:${c.port || port}${c.nsp || "/"}`;
      const socket = ioc(url, { transports: ["websocket"], reconnection: false });
      clients.set(c.name, socket);
      socket.onAny((event, ...args) => out({ type: "client-event", name: c.name, event, args: toWire(args) }));
      socket.on("connect", () => out({ type: "client-connect", name: c.name, id: socket.id, recovered: socket.recovered }));
      await new Promise((resolve, reject) => {
        socket.once("connect", resolve);
        socket.once("connect_error", reject);
      });
      return { id: socket.id };
    },
    // drop closes a client's connection as a network failure would for the server (its
    // WebSocket closes), keeping the client's session for reconnect.
    async drop(c) {
      const socket = clients.get(c.name);
      if (!socket) throw new Error(`no client ${c.name}`);
      const gone = new Promise((resolve) => socket.once("disconnect", resolve));
      socket.io.engine.close();
      await gone;
      return {};
    },
    // reconnect connects a dropped client again, to the server at c.port (this one when
    // absent), and answers once it is connected.
    async reconnect(c) {
      const socket = clients.get(c.name);
      if (!socket) throw new Error(`no client ${c.name}`);
      socket.io.uri = `http://127.0.0.1:${c.port || port}`;
      await new Promise((resolve, reject) => {
        socket.once("connect", resolve);
        socket.once("connect_error", reject);
        socket.connect();
      });
      return { id: socket.id, recovered: socket.recovered };
    },
    async join(c) {
      const s = io.of(c.nsp || "/").sockets.get(c.id);
      if (!s) throw new Error(`no socket ${c.id}`);
      s.join(c.room);
      return {};
    },
    async leave(c) {
      const s = io.of(c.nsp || "/").sockets.get(c.id);
      if (!s) throw new Error(`no socket ${c.id}`);
      s.leave(c.room);
      return {};
    },
    async emit(c) {
      target(c).emit(c.event, ...fromWire(c.args || []));
      return {};
    },
    async emitWithAck(c) {
      const responses = await target(c).timeout(c.timeout || 3000).emitWithAck(c.event, ...fromWire(c.args || []));
      return { responses: toWire(responses) };
    },
    async fetchSockets(c) {
      const sockets = await target(c).fetchSockets();
      return {
        sockets: sockets.map((s) => ({ id: s.id, rooms: [...s.rooms].sort(), data: s.data, handshake: s.handshake })),
      };
    },
    async socketsJoin(c) {
      target(c).socketsJoin(c.join);
      return {};
    },
    async socketsLeave(c) {
      target(c).socketsLeave(c.leave);
      return {};
    },
    async disconnectSockets(c) {
      target(c).disconnectSockets(!!c.close);
      return {};
    },
    async allRooms(c) {
      const rooms = await io.of(c.nsp || "/").adapter.allRooms();
      return { rooms: [...rooms].sort() };
    },
    async serverCount() {
      return { count: await io.of("/").adapter.serverCount() };
    },
    // The emitter's operations, as an app outside the cluster would use them.
    async emitter(c) {
      let op = c.nsp ? emitter.of(c.nsp) : emitter;
      if (c.rooms && c.rooms.length) op = op.to(c.rooms);
      if (c.except && c.except.length) op = op.except(c.except);
      switch (c.action) {
        case "emit":
          op.emit(c.event, ...fromWire(c.args || []));
          break;
        case "socketsJoin":
          op.socketsJoin(c.join);
          break;
        case "socketsLeave":
          op.socketsLeave(c.leave);
          break;
        case "disconnectSockets":
          op.disconnectSockets(!!c.close);
          break;
        default:
          throw new Error(`unknown emitter action ${c.action}`);
      }
      return {};
    },
  };

  const rl = readline.createInterface({ input: process.stdin });
  rl.on("line", async (line) => {
    let c;
    try {
      c = JSON.parse(line);
      const fn = commands[c.cmd];
      if (!fn) throw new Error(`unknown command ${c.cmd}`);
      out({ type: "reply", seq: c.seq, ...(await fn(c)) });
    } catch (err) {
      out({ type: "error", seq: c && c.seq, message: String(err && err.message ? err.message : err) });
    }
  });
  rl.on("close", async () => {
    for (const s of clients.values()) s.close();
    io.close();
    await Promise.allSettled([pub.quit(), sub.quit(), emitterClient.quit()]);
    process.exit(0);
  });

  out({ type: "ready", port, serverCount: await io.of("/").adapter.serverCount() });
}

main().catch((err) => {
  out({ type: "fatal", message: String(err && err.stack ? err.stack : err) });
  process.exit(1);
});
