"use strict";
// What the interop clients (client.js on socket.io-client 4.x, client2.js on 2.x) share: the
// values both send and expect (shared with interop_test.go and v2reference.js too), how they
// print observations and fail, and the bounded waits their scenarios are made of.

const util = require("node:util");

const OVERALL_TIMEOUT_MS = 20000;
const STEP_TIMEOUT_MS = 10000;

const NESTED = { a: [1, 2, { b: "é☃😀" }], n: null, t: true, f: 1.5 };
const TRICKY = "é☃😀 \"quoted\" back\\slash\nnew\tline\u0000nul\u2028ls\u2029ps </script>";
const QUESTION = "6×7?";
const BUF1 = Buffer.from([0, 1, 2, 127, 128, 254, 255]);
const ALL256 = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
const nestedBin = () => ({
  label: "nested",
  inner: { buf: Buffer.from("héllo", "utf8") },
  list: [1, Buffer.from([42]), Buffer.alloc(0)],
});
const toArrayBuffer = (b) => b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);

// out prints one observation as a JSON line.
function out(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

// run runs main for the script name with its arguments: on its end "done" is printed and the
// process exits 0; on its first failure, or after OVERALL_TIMEOUT_MS, the failure goes to
// stderr and the process exits 1. It returns fail, for failures that happen outside main's
// promise (an unexpected disconnect).
function run(name, argv, main) {
  let finished = false;
  const fail = (msg) => {
    if (finished) return;
    finished = true;
    process.stderr.write(`${name} ${argv.filter((a) => a !== undefined).join(" ")}: FAIL: ${msg}\n`);
    process.exit(1);
  };
  setTimeout(() => fail(`overall timeout of ${OVERALL_TIMEOUT_MS}ms`), OVERALL_TIMEOUT_MS);
  // Started on the next turn, so that the script's own definitions (fail's users among them)
  // are all made first.
  setImmediate(() =>
    main()
      .then(() => {
        out({ step: "done" });
        finished = true;
        process.exit(0);
      })
      .catch((e) => fail(e && e.stack ? e.stack : String(e))),
  );
  return fail;
}

function expect(cond, msg) {
  if (!cond) throw new Error(msg);
}

// canon turns binary into {"$bin": hex} and sorts object keys, so values compare and print alike
// whichever side built them.
function canon(v) {
  if (Buffer.isBuffer(v)) return { $bin: v.toString("hex") };
  if (v instanceof ArrayBuffer) return { $bin: Buffer.from(v).toString("hex") };
  if (ArrayBuffer.isView(v)) return { $bin: Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("hex") };
  if (Array.isArray(v)) return v.map(canon);
  if (v !== null && typeof v === "object") {
    const o = {};
    for (const k of Object.keys(v).sort()) o[k] = canon(v[k]);
    return o;
  }
  return v;
}

function expectCanon(got, want, what) {
  const g = canon(got);
  const w = canon(want);
  expect(util.isDeepStrictEqual(g, w), `${what}: got ${JSON.stringify(g)}, want ${JSON.stringify(w)}`);
}

// binTypes lists the constructor name of every binary value met in v, depth first.
function binTypes(v, acc = []) {
  if (Buffer.isBuffer(v)) acc.push("Buffer");
  else if (v instanceof ArrayBuffer) acc.push("ArrayBuffer");
  else if (ArrayBuffer.isView(v)) acc.push(v.constructor.name);
  else if (Array.isArray(v)) v.forEach((x) => binTypes(x, acc));
  else if (v !== null && typeof v === "object") Object.keys(v).sort().forEach((k) => binTypes(v[k], acc));
  return acc;
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

// waitEvent resolves with the arguments of the next `event` on emitter. Call it before whatever
// causes the event.
function waitEvent(emitter, event, what = event) {
  return withTimeout(new Promise((resolve) => emitter.once(event, (...args) => resolve(args))), what);
}

// emitAck emits and resolves with all the arguments of the acknowledgement.
function emitAck(socket, event, ...args) {
  return withTimeout(
    new Promise((resolve) => socket.emit(event, ...args, (...res) => resolve(res))),
    `the ack of ${event}`,
  );
}

function transportOpts(mode) {
  switch (mode) {
    case "polling":
      return { transports: ["polling"] };
    case "websocket":
      return { transports: ["websocket"] };
    case "default":
    case undefined:
      return {};
    default:
      throw new Error(`unknown transport mode ${mode}`);
  }
}

module.exports = {
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
};
