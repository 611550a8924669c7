// The Python server as a Node application sees it: the `openai` npm client (which asks for base64 by default and
// decodes it) against `rosberta-onnx serve` on 127.0.0.1, its vectors against this package's own for the same texts.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { test } from "node:test";

import OpenAI from "openai";

import { Encoder } from "../src/index.js";
import { NO_FIXTURES, compare, fixtures } from "./helpers.js";

const PYTHON = process.env.ROSBERTA_PYTHON; // a Python with rosberta-onnx[serve] (.ci/run: the torch-free venv)
const FX = fixtures()[0];
const SKIP = !FX ? NO_FIXTURES : !PYTHON ? "set ROSBERTA_PYTHON to a Python with rosberta-onnx[serve] installed" : false;
const TEXTS = ["Сколько стоит билет до Казани?", "How much is a ticket?", "я", ""];

/** Start the server on a free port; resolves with its URL once /ready answers 200. @param {string} artifact */
async function startServer(artifact) {
  const proc = spawn(PYTHON, ["-m", "rosberta_onnx.cli", "serve", artifact, "--host", "127.0.0.1", "--port", "0",
    "--variant", "fp32"], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ROSBERTA_API_KEY: "js-key" } });
  let err = "";
  proc.stderr.on("data", (d) => { err += d; });
  const url = await new Promise((resolve, reject) => {
    let out = "";
    proc.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/rosberta-serve: listening on (\S+)/);
      if (m) resolve(m[1]);
    });
    proc.on("exit", (code) => reject(new Error(`the server exited (${code}) before listening:\n${err.slice(-2000)}`)));
  });
  for (let i = 0; i < 600; i++) {
    const r = await fetch(`${url}/ready`).catch(() => null);
    if (r?.status === 200) return { proc, url };
    await new Promise((res) => setTimeout(res, 100));
  }
  proc.kill();
  throw new Error(`the server at ${url} was not ready in 60 s:\n${err.slice(-2000)}`);
}

test("the openai npm client (base64 and float) gets this package's vectors from the Python server", { skip: SKIP }, async () => {
  const { proc, url } = await startServer(FX.data.artifact);
  try {
    const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: "js-key", maxRetries: 0, timeout: 30_000 });
    const enc = await Encoder.load(FX.data.artifact, { variant: "fp32" });
    const task = enc.tasks.includes("search_query") ? "search_query" : null; // MiniLM has no prompt table
    const want = await enc.encode(TEXTS, { task });
    const dim = enc.dim;
    for (const encoding_format of /** @type {const} */ ([undefined, "float"])) {
      // @ts-ignore -- `task` is this server's extension to the OpenAI body (the Python client's extra_body)
      const res = await client.embeddings.create({ model: "rosberta", input: TEXTS, task, encoding_format });
      assert.equal(res.data.length, TEXTS.length);
      const got = Float32Array.from(res.data.flatMap((d) => Array.from(d.embedding)));
      const c = compare(got, Float32Array.from(want.flatMap((row) => Array.from(row))), dim);
      assert.ok(c.min >= 0.99999, `${encoding_format ?? "base64 (default)"}: cos ${c.min} at row ${c.worst}`);
      assert.ok(res.usage.prompt_tokens > 0);
    }
    await assert.rejects(client.embeddings.create({ model: "rosberta", input: [[1, 2, 3]] }), (e) =>
      e instanceof OpenAI.APIError && e.status === 422 && /token-id arrays are not supported/.test(e.message));
    await enc.dispose();
  } finally {
    proc.kill("SIGTERM");
  }
});
