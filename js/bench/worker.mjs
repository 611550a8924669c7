#!/usr/bin/env node
// A benchmark worker: one Encoder, driven over stdin/stdout one JSON line per request, so a Python benchmark can
// alternate this runtime with others round by round in one run. Each reply carries the call's own time, measured
// here (the pipe's cost is not the runtime's).
//
//   {"op": "load", "artifact": DIR, "variant": "int8", "backend": "native", "threads": 2}
//     -> {"ok": true, "variant": ..., "backend": ..., "threads": ..., "load_s": ..., "rss_mb": ...}
//   {"op": "encode", "texts": [...], "batchSize": 32, "maxBatchTokens": 16384}
//     -> {"ok": true, "seconds": ..., "vectors": BASE64 float32 (n, dim), "rss_mb": ...}
//   any failure -> {"ok": false, "error": "..."}
import { createInterface } from "node:readline";

import { Encoder } from "rosberta-onnx";

/** @type {Encoder | null} */
let enc = null;
const rssMb = () => process.memoryUsage().rss / 2 ** 20;

/** @param {any} msg */
async function handle(msg) {
  if (msg.op === "load") {
    const t0 = performance.now();
    enc = await Encoder.load(msg.artifact, { variant: msg.variant, backend: msg.backend, threads: msg.threads, onWarning: () => {} });
    return { variant: enc.variant, backend: enc.backend, threads: enc.threads, load_s: (performance.now() - t0) / 1e3, rss_mb: rssMb() };
  }
  if (msg.op === "encode") {
    if (!enc) throw new Error("load first");
    const t0 = performance.now();
    const res = await enc.encodeDetailed(msg.texts, { batchSize: msg.batchSize, maxBatchTokens: msg.maxBatchTokens });
    const seconds = (performance.now() - t0) / 1e3;
    return { seconds, vectors: Buffer.from(res.data.buffer, res.data.byteOffset, res.data.byteLength).toString("base64"), rss_mb: rssMb() };
  }
  throw new Error(`unknown op ${JSON.stringify(msg.op)}`);
}

for await (const line of createInterface({ input: process.stdin })) {
  let reply;
  try {
    reply = { ok: true, ...(await handle(JSON.parse(line))) };
  } catch (err) {
    reply = { ok: false, error: err instanceof Error ? `${err.name}: ${err.message}` : String(err) };
  }
  process.stdout.write(`${JSON.stringify(reply)}\n`);
}
