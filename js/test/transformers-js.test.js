// The artifact opened unchanged by transformers.js (`rosberta-onnx interop DIR --transformers-js` writes the
// onnx/ layout it reads): its feature-extraction pipeline against the Python runtime's vectors on the same files.
// Texts within the max length must agree (fp32 and q8 = our gated int8); over-long texts differ because
// transformers.js truncates by cutting the closing special token, which the test measures and reports.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";

import { NO_FIXTURES, compare, fixtures, vectors } from "./helpers.js";

const FIX = fixtures().filter((fx) => existsSync(path.join(fx.data.artifact, "onnx")));
const MIN_COS = 0.99999; // texts that fit: the same graph on the same onnxruntime kernels
const MIN_COS_CUT = 0.99; // over-long texts: one token (the closing special token) differs out of max length
const DTYPES = { fp32: "fp32", int8: "q8" };

for (const fx of FIX.length ? FIX : [null]) {
  for (const [variant, dtype] of Object.entries(DTYPES)) {
    const label = `${fx?.name ?? "fixtures"} ${variant} (transformers.js dtype ${dtype})`;
    const skip = fx ? false : `${NO_FIXTURES}, and rosberta-onnx interop ARTIFACT --transformers-js`;
    test(`${label}: transformers.js gives our vectors, and its truncation gap is measured`, { skip }, async (t) => {
      const { pipeline, env } = await import("@huggingface/transformers");
      env.allowRemoteModels = false;
      env.localModelPath = path.dirname(fx.data.artifact) + path.sep;
      const { pooling, dim } = fx.data.facts.model; // what the Python runtime read from the manifest
      const run = fx.data.runs.find((/** @type {any} */ r) => r.variant === variant && r.task === null);
      // the STS sentences and the texts at and past the max length: tokenisation of the other edge cases (NUL,
      // lone surrogates, empty) is each tokenizer's own business and not what this test is about
      const picked = fx.data.names.map((/** @type {string} */ n, /** @type {number} */ i) => [n, i])
        .filter(([n]) => n.startsWith("sts[") || n === "exactly_max_length" || n === "max_plus_one");
      const texts = picked.map(([, i]) => fx.data.texts[i]);
      const extractor = await pipeline("feature-extraction", path.basename(fx.data.artifact), { dtype });
      const out = await extractor(texts, { pooling: pooling === "cls" ? "cls" : "mean", normalize: true });
      const theirs = /** @type {Float32Array} */ (out.data);
      const ours = vectors(run.vectors);
      const want = new Float32Array(picked.length * dim);
      picked.forEach(([, i], r) => want.set(ours.subarray(i * dim, (i + 1) * dim), r * dim));
      const cmp = compare(theirs, want, dim);
      const cut = picked.map(([, i]) => run.truncated[i]);
      const fits = cmp.rows_cos.filter((_, r) => !cut[r]);
      const over = cmp.rows_cos.filter((_, r) => cut[r]);
      t.diagnostic(`texts that fit: ${fits.length}, min cos ${Math.min(...fits).toFixed(7)}; ` +
        `over-long: ${over.length}, cos ${over.map((c) => c.toFixed(5)).join(", ")}`);
      assert.ok(Math.min(...fits) >= MIN_COS, `texts that fit: min cos ${Math.min(...fits)} < ${MIN_COS}`);
      assert.ok(over.length > 0, "the fixture has no over-long text, so the truncation gap was not measured");
      assert.ok(Math.min(...over) >= MIN_COS_CUT, `over-long: cos ${Math.min(...over)} < ${MIN_COS_CUT}`);
      await extractor.dispose();
    });
  }
}
