// Long texts as windows: the JS runtime's windows are the Python runtime's (same rows, same token spans, from the same
// word-start rule read from tokenizer.json), and so are their vectors; the window rule on its own.
import assert from "node:assert/strict";
import { test } from "node:test";

import { Encoder } from "rosberta-onnx";

import { checkWindow, windows, wordRule, wordStarts } from "../src/chunking.js";

import { NO_FIXTURES, compare, fixtures, vectors } from "./helpers.js";

const FIX = fixtures();

for (const fx of FIX.length ? FIX : [null]) {
  test(`${fx?.name ?? "fixtures"}: planChunks and encodeChunks give Python's windows and vectors`, { skip: fx ? false : NO_FIXTURES }, async () => {
    const enc = await Encoder.load(fx.data.artifact, { variant: "fp32", onWarning: () => {} });
    try {
      for (const run of fx.data.chunks) {
        const opts = { task: run.task, window: run.window ?? undefined, overlap: run.overlap ?? undefined };
        const plans = enc.planChunks(run.texts, opts);
        plans.forEach((p, i) => {
          const want = run.plans[i];
          const label = `${JSON.stringify(run.task)} window ${run.window} text ${i}`;
          assert.deepEqual(p.tokenSpans, want.token_spans, label);
          assert.deepEqual(p.rows, want.rows, label);
          assert.equal(p.tokens, want.tokens, label);
          assert.equal(p.total, want.total, label);
        });
        const chunks = await enc.encodeChunks(run.texts, { ...opts, batchSize: 5 });
        chunks.forEach((c, i) => {
          const got = new Float32Array(c.vectors.length * enc.dim);
          c.vectors.forEach((v, k) => got.set(v, k * enc.dim));
          const cmp = compare(got, vectors(run.vectors[i]), enc.dim);
          assert.ok(cmp.min >= 0.99999, `${JSON.stringify(run.task)} window ${run.window} text ${i}: cosine ${cmp.min}`);
        });
      }
      // a text that fits is one window whose vector is its encode vector
      const [one] = await enc.encodeChunks(["a short text"]);
      const [whole] = await enc.encode(["a short text"]);
      assert.deepEqual(one.tokenSpans, [[0, one.tokens]]);
      assert.ok(compare(one.vectors[0], whole, enc.dim).min >= 0.99999);
      assert.throws(() => enc.planChunks(["x"], { window: 100000 }), /window=100000 does not fit/);
      assert.throws(() => enc.planChunks(["x"], { window: 8, overlap: 8 }), /overlap must be a whole number of tokens from 0 to window - 1 \(7\), got 8/);
    } finally {
      await enc.dispose();
    }
  });
}

test("windows start at word starts, cover every token, never exceed the window, and match token windows without a rule", () => {
  let seed = 7;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  for (let round = 0; round < 2000; round++) {
    const n = Math.floor(rand() * 200);
    const window = 1 + Math.floor(rand() * 30);
    const overlap = Math.floor(rand() * window);
    const p = [0.05, 0.3, 0.9][round % 3];
    const starts = Array.from({ length: n }, (_, i) => i === 0 || rand() < p);
    const spans = windows(n, window, overlap, starts);
    assert.equal(spans[0][0], 0);
    assert.equal(spans.at(-1)?.[1], n);
    const covered = new Set();
    for (const [a, b] of spans) {
      assert.ok((b - a > 0 && b - a <= window) || n === 0);
      for (let i = a; i < b; i++) covered.add(i);
    }
    assert.equal(covered.size, n);
    for (let k = 1; k < spans.length; k++) {
      const [a, b] = spans[k - 1];
      const [c, d] = spans[k];
      assert.ok(a < c && c <= b && b < d, JSON.stringify({ n, window, overlap, spans }));
    }
  }
  assert.deepEqual(windows(10, 4, 1), [[0, 4], [3, 7], [6, 10]]);
  assert.deepEqual(windows(10, 4, 1, [true, false, true, false, false, true, true, false, true, false]), [[0, 4], [2, 6], [5, 9], [6, 10]]);
  assert.deepEqual(windows(12, 4, 1, [true, ...new Array(11).fill(false)]), [[0, 4], [4, 8], [8, 12]]);
  assert.throws(() => checkWindow(0, 0, 10), /window must be a whole number of tokens >= 1, got 0/);
});

test("the word rule is read from each tokenizer family's model section", () => {
  const wp = wordRule({ type: "WordPiece", continuing_subword_prefix: "##" });
  assert.deepEqual(wordStarts(["the", "uk", "##ule", "##le", ".", "漢"], wp), [true, true, false, false, true, true]);
  const bpe = wordRule({ type: "BPE", continuing_subword_prefix: null });
  assert.deepEqual(wordStarts(["The", "\u0120uk", "ule", "le", ".", "\u010a", "\u0120", "\u00e6"], bpe),
    [true, true, false, false, false, true, true, false]);
  assert.deepEqual(wordStarts(["\u2581Hel", "lo", "\u2581world"], wordRule({ type: "Unigram" })), [true, false, true]);
  assert.deepEqual(wordStarts(["a", "b"], wordRule({ type: "WordLevel" })), [true, true]);
});
