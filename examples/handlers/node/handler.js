"use strict";
// A minimal siobridge webhook handler on Node's standard library.
//
// siobridge POSTs one JSON webhook per connect, event and disconnect (docs/webhooks.md);
// this handler checks the signature and answers with actions:
//
//   connect     -> {"data": {"name": "guest"}, "join": ["lobby"]}
//   event chat  -> ack "ok", and send the chat to the lobby except the sender
//   disconnect  -> {}
//
// With webhook.batch_max above 1, siobridge POSTs event webhooks in batches
// (X-Siobridge-Type: batch): the body is a JSON array of event webhooks, signed as a whole,
// and the reply is an array of actions in the same order.
//
// A delivery siobridge sends again (a retry after a timeout) is handled once: the body's
// signed "id" is the key, and a delivery seen before gets the reply it got the first time.
//
// Run it with the secret siobridge signs with (webhook.secret), then point siobridge's
// webhook.url at it:
//
//   SIOBRIDGE_WEBHOOK_SECRET=change-me PORT=3000 node handler.js

const crypto = require("node:crypto");
const http = require("node:http");

const SECRET = process.env.SIOBRIDGE_WEBHOOK_SECRET || "";
const PORT = Number(process.env.PORT || 3000);
const TOLERANCE = 300; // seconds a signature's timestamp may be away from our clock
const MAX_BODY = 1 << 20;
const SEEN_MAX = 10000; // replies kept to answer repeated deliveries; a real app keeps them in its database

const seen = new Map(); // delivery id -> the reply it got, oldest first

// verify checks X-Siobridge-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">.
function verify(header, body) {
  const parts = {};
  for (const p of (header || "").split(",")) {
    const i = p.indexOf("=");
    if (i > 0) parts[p.slice(0, i)] = p.slice(i + 1);
  }
  const t = parts.t || "";
  // An old timestamp is a replay of a captured request.
  if (!/^\d+$/.test(t) || Math.abs(Date.now() / 1000 - Number(t)) > TOLERANCE) return false;
  const expected = Buffer.from(crypto.createHmac("sha256", SECRET).update(t + ".").update(body).digest("hex"));
  const given = Buffer.from(parts.v1 || "");
  return given.length === expected.length && crypto.timingSafeEqual(given, expected); // constant time
}

// actions is the reply to one webhook: what siobridge should do with the socket.
function actions(hook) {
  if (hook.type === "connect") {
    // Admit the client (a 4xx reply would refuse it), name it and put it in the lobby.
    return { data: { name: "guest" }, join: ["lobby"] };
  }
  if (hook.type === "event" && hook.event === "chat") {
    // Answer the client's ack callback and pass the chat on to the lobby, sender aside.
    return {
      ack: ["ok"],
      emit: [{ event: "chat", args: hook.args, to: ["lobby"], except: [hook.socket.id] }],
    };
  }
  return {}; // disconnect, other events: nothing to do
}

// handleOnce is actions(hook), or the reply this delivery got before: siobridge may send a
// webhook again when an answer did not reach it, and the app must not act twice.
function handleOnce(delivery, hook) {
  if (seen.has(delivery)) {
    console.log(`duplicate delivery ${delivery}`);
    return seen.get(delivery);
  }
  const reply = actions(hook);
  seen.set(delivery, reply);
  if (seen.size > SEEN_MAX) seen.delete(seen.keys().next().value);
  return reply;
}

function answer(res, status, reply) {
  const data = JSON.stringify(reply);
  res.writeHead(status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(data) });
  res.end(data);
}

const server = http.createServer((req, res) => {
  if (req.method !== "POST") return answer(res, 405, { error: "POST only" });
  const chunks = [];
  let size = 0;
  req.on("data", (c) => {
    size += c.length;
    if (size <= MAX_BODY) chunks.push(c);
  });
  req.on("end", () => {
    if (size > MAX_BODY) return answer(res, 413, { error: "body too large" });
    const body = Buffer.concat(chunks); // the raw bytes: the signature covers them exactly
    if (!verify(req.headers["x-siobridge-signature"], body)) return answer(res, 401, { error: "bad signature" });
    let parsed = null;
    try {
      parsed = JSON.parse(body);
    } catch {}
    // A batch of event webhooks: a JSON array, answered by an array in the same order.
    const batch = req.headers["x-siobridge-type"] === "batch";
    const hooks = batch ? parsed : [parsed];
    const isObject = (h) => h !== null && typeof h === "object" && !Array.isArray(h);
    if (!Array.isArray(hooks) || !hooks.every(isObject)) {
      return answer(res, 400, { error: "body is not a JSON " + (batch ? "array of objects" : "object") });
    }
    // The id in the signed body, not the X-Siobridge-Delivery header: a captured webhook sent
    // again under a new header still carries its own id.
    if (!hooks.every((h) => typeof h.id === "string" && h.id !== "")) {
      return answer(res, 400, { error: "body has no delivery id" });
    }
    const replies = hooks.map((h) => handleOnce(h.id, h));
    answer(res, 200, batch ? replies : replies[0]);
  });
});

if (!SECRET) {
  console.error("handler.js: set SIOBRIDGE_WEBHOOK_SECRET to siobridge's webhook.secret");
  process.exit(1);
}
server.listen(PORT, "127.0.0.1", () => {
  console.log(`listening on ${server.address().port}`); // PORT=0 picks a free port
});
