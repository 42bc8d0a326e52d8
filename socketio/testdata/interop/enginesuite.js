"use strict";
// Cases of the official Engine.IO test suite (test-suite/test-suite.js in
// socketio/engine.io-protocol), run with a real WebSocket client (ws) and fetch against
// siobridge's Go tests (socketio/interop_engine_test.go):
//
//   node enginesuite.js URL CASE
//
// The Go server at URL serves Engine.IO v4 on /socket.io/ and sends every message back;
// GET /pending?sid=ID answers 204 once that session has a GET pending, so that a case can
// order its requests as the suite means them without waiting on a timer. The script prints
// one JSON object per line for each observation, asserts on them itself, and exits 0 with a
// {"step":"done"} line, or non-zero with a message on stderr on the first failure or after a
// 20s overall timeout.

const path = require("node:path");

// The ws that socket.io-client itself uses (a dependency of engine.io-client), resolved from
// there rather than from wherever npm happened to place it.
const WebSocket = require(
  require.resolve("ws", { paths: [path.dirname(require.resolve("engine.io-client"))] }),
);

const [url, name] = process.argv.slice(2);
const OVERALL_TIMEOUT_MS = 20000;
const STEP_TIMEOUT_MS = 10000;

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

let finished = false;
function fail(msg) {
  if (finished) return;
  finished = true;
  process.stderr.write(`enginesuite.js ${name}: FAIL: ${msg}\n`);
  process.exit(1);
}

setTimeout(() => fail(`overall timeout of ${OVERALL_TIMEOUT_MS}ms`), OVERALL_TIMEOUT_MS);

function expect(cond, msg) {
  if (!cond) throw new Error(msg);
}

function withTimeout(promise, what, ms = STEP_TIMEOUT_MS) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms}ms waiting for ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

const engineURL = (query) => `${url}/socket.io/?EIO=4&${query}`;
const wsURL = (query) => engineURL(query).replace(/^http/, "ws");

async function request(query, init) {
  const res = await withTimeout(fetch(engineURL(query), init), `${(init && init.method) || "GET"} ${query}`);
  return { status: res.status, body: await res.text() };
}

// handshake opens a polling session and returns its sid.
async function handshake() {
  const { status, body } = await request("transport=polling");
  expect(status === 200 && body.startsWith("0{"), `handshake: ${status} ${body}`);
  return JSON.parse(body.slice(1)).sid;
}

// pending resolves once the server has the session's GET pending.
async function pending(sid) {
  const res = await withTimeout(fetch(`${url}/pending?sid=${sid}`), "the GET to be pending");
  expect(res.status === 204, `/pending: ${res.status} ${await res.text()}`);
}

// inbox keeps a WebSocket's messages until they are asked for, in order.
function inbox(socket) {
  const queue = [];
  const waiting = [];
  socket.on("message", (data, isBinary) => {
    const msg = isBinary ? data : data.toString();
    if (waiting.length > 0) waiting.shift()(msg);
    else queue.push(msg);
  });
  return (what) =>
    withTimeout(
      new Promise((resolve) => (queue.length > 0 ? resolve(queue.shift()) : waiting.push(resolve))),
      what,
    );
}

function opened(socket, what) {
  return withTimeout(
    new Promise((resolve, reject) => {
      socket.once("open", resolve);
      socket.once("error", reject);
    }),
    what,
  );
}

const cases = {
  // "close / HTTP long-polling / forcefully closes the session": the GET pending when the
  // client posts a close packet is answered 200 with a noop; the next GET gets 400.
  async "forced-close"() {
    const sid = await handshake();
    const poll = request(`transport=polling&sid=${sid}`);
    await pending(sid);
    const post = await request(`transport=polling&sid=${sid}`, { method: "POST", body: "1" });
    out({ step: "post", ...post });
    expect(post.status === 200 && post.body === "ok", `POST of the close packet: ${post.status} ${post.body}`);
    const first = await poll;
    out({ step: "poll", ...first });
    expect(first.status === 200 && first.body === "6", `the pending GET: ${first.status} ${JSON.stringify(first.body)}, want 200 "6"`);
    const next = await request(`transport=polling&sid=${sid}`);
    out({ step: "next-poll", ...next });
    expect(next.status === 400, `the next GET: ${next.status} ${next.body}, want 400`);
  },

  // "upgrade / ignores WebSocket connection with same sid after upgrade": a second WebSocket
  // with the sid of an upgraded session is opened and then closed by the server; the
  // session's own WebSocket goes on.
  async "second-websocket"() {
    const sid = await handshake();
    const socket = new WebSocket(wsURL(`transport=websocket&sid=${sid}`));
    const next = inbox(socket);
    await opened(socket, "the WebSocket to open");
    socket.send("2probe");
    const probe = await next("3probe");
    expect(probe === "3probe", `probe answer ${probe}`);
    socket.send("5");
    // The echo comes over the WebSocket once the server has taken the "5" before it.
    socket.send("4before");
    const before = await next("the echo of 4before");
    out({ step: "upgraded", echo: before });
    expect(before === "4before", `echo after the upgrade: ${before}`);

    const socket2 = new WebSocket(wsURL(`transport=websocket&sid=${sid}`));
    // A refused handshake is an error ("Unexpected server response: 400"), then a close 1006.
    const seen = { opened: false, error: null, messages: [] };
    socket2.on("open", () => (seen.opened = true));
    socket2.on("error", (err) => (seen.error = err.message));
    socket2.on("message", (data) => seen.messages.push(data.toString()));
    const closed = await withTimeout(
      new Promise((resolve) => socket2.addEventListener("close", resolve, { once: true })),
      "the second WebSocket to be closed",
    );
    out({ step: "second", ...seen, code: closed.code, wasClean: closed.wasClean });
    expect(seen.opened && seen.error === null, `the second WebSocket was refused, not closed: ${JSON.stringify(seen)}`);
    expect(seen.messages.length === 0, `the second WebSocket got messages: ${seen.messages}`);
    expect(closed.code === 1005 && closed.wasClean, `the second WebSocket's close: code ${closed.code}, clean ${closed.wasClean}`);

    socket.send("4hello");
    const after = await next("the echo of 4hello");
    out({ step: "after", echo: after });
    expect(after === "4hello", `echo after the second WebSocket: ${after}`);
    const done = new Promise((resolve) => socket.once("close", resolve));
    socket.close();
    await withTimeout(done, "the WebSocket to close");
  },
};

async function main() {
  if (!url || !cases[name]) {
    throw new Error(`usage: node enginesuite.js URL CASE; cases: ${Object.keys(cases).join(", ")}`);
  }
  await cases[name]();
  out({ step: "done" });
  finished = true;
  process.exit(0);
}

main().catch((e) => fail(e && e.stack ? e.stack : String(e)));
