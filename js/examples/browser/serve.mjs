#!/usr/bin/env node
// Serve the example page, the package and an artifact folder from one origin, with the headers multi-threaded
// WASM needs (SharedArrayBuffer requires a cross-origin isolated page):
//
//     node examples/browser/serve.mjs MODEL_DIR [--port 8000] [--host 127.0.0.1]
//
// /          this folder (index.html, main.js, texts.json)
// /pkg/      the package: src/ and the two dependencies the page imports from node_modules/
// /model/    MODEL_DIR, an artifact folder written by `rosberta-onnx export`
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import http from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const PKG = path.resolve(HERE, "../..");
const TYPES = { ".html": "text/html; charset=utf-8", ".js": "text/javascript", ".mjs": "text/javascript", ".json": "application/json",
  ".wasm": "application/wasm", ".onnx": "application/octet-stream", ".data": "application/octet-stream", ".map": "application/json" };
// what /pkg/ may serve: the page needs nothing else from the package folder
const PKG_ALLOWED = ["src/", "node_modules/onnxruntime-web/dist/", "node_modules/@huggingface/tokenizers/dist/"];

/**
 * The file `urlPath` maps to, or null when it is outside the served roots.
 * @param {string} urlPath @param {string} modelDir
 */
function resolve(urlPath, modelDir) {
  const clean = decodeURIComponent(urlPath.split("?")[0]);
  /** @param {string} root @param {string} rel */
  const inside = (root, rel) => {
    const p = path.resolve(root, `.${path.posix.normalize(`/${rel}`)}`);
    return p === root || p.startsWith(root + path.sep) ? p : null;
  };
  if (clean.startsWith("/model/")) return inside(modelDir, clean.slice("/model/".length));
  if (clean.startsWith("/pkg/")) {
    const rel = path.posix.normalize(clean.slice("/pkg/".length));
    return PKG_ALLOWED.some((a) => rel.startsWith(a)) ? inside(PKG, rel) : null;
  }
  return inside(HERE, clean === "/" ? "index.html" : clean.slice(1));
}

/**
 * Start the server; resolves to it once listening (port 0 picks a free one: read `server.address().port`).
 * @param {{ modelDir: string, port?: number, host?: string }} options
 * @returns {Promise<http.Server>}
 */
export function startServer({ modelDir, port = 8000, host = "127.0.0.1" }) {
  const root = path.resolve(modelDir);
  const server = http.createServer(async (req, res) => {
    res.setHeader("Cross-Origin-Opener-Policy", "same-origin");
    res.setHeader("Cross-Origin-Embedder-Policy", "require-corp");
    res.setHeader("Cross-Origin-Resource-Policy", "same-origin");
    const file = resolve(req.url ?? "/", root);
    const info = file ? await stat(file).catch(() => null) : null;
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405).end();
    } else if (!file || !info?.isFile()) {
      res.writeHead(404, { "Content-Type": "text/plain" }).end("not found\n");
    } else {
      res.writeHead(200, { "Content-Type": TYPES[path.extname(file)] ?? "application/octet-stream", "Content-Length": info.size });
      if (req.method === "HEAD") res.end();
      else createReadStream(file).pipe(res);
    }
  });
  return new Promise((ok, fail) => {
    server.once("error", fail);
    server.listen(port, host, () => ok(server));
  });
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { port: { type: "string", default: "8000" },
    host: { type: "string", default: "127.0.0.1" } } });
  if (positionals.length !== 1) {
    process.stderr.write("usage: node examples/browser/serve.mjs MODEL_DIR [--port 8000] [--host 127.0.0.1]\n");
    process.exit(2);
  }
  const server = await startServer({ modelDir: positionals[0], port: Number(values.port), host: values.host });
  const { port } = /** @type {import("node:net").AddressInfo} */ (server.address());
  process.stderr.write(`serving ${path.resolve(positionals[0])} at http://${values.host}:${port}/ (Ctrl-C to stop)\n`);
}
