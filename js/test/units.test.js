// The pieces with no model: batching, prompts, pooling arithmetic, manifest checks, CLI formats.
import assert from "node:assert/strict";
import { test } from "node:test";

import { planBatches } from "../src/batching.js";
import { jsonlRow, npyBytes, pyFloat, readTexts, splitLines } from "../src/cli/format.js";
import { asTextList } from "../src/encoder.js";
import { ArtifactError, InputTypeError, TaskError, VariantError } from "../src/errors.js";
import { parseManifest } from "../src/manifest.js";
import { l2Normalize, pairwiseSum, pool } from "../src/pooling.js";
import { applyPrompt, knownPrefix, promptWarning } from "../src/prompts.js";
import { WASM_MAX_MODEL_BYTES, chooseVariant } from "../src/select.js";
import { int8ExactHere } from "../src/node.js";
import { judge, parseNpy } from "../src/verify.js";

const PROMPTS = { search_query: "search_query: ", search_document: "search_document: " };

test("batches are length-sorted, bounded by count and padded tokens, and cover every text once", () => {
  const lengths = [5, 300, 12, 12, 40, 512, 7, 300];
  const batches = planBatches(lengths, { batchSize: 3, maxBatchTokens: 700 });
  assert.deepEqual(batches.flat().sort((a, b) => a - b), [...lengths.keys()]);
  for (const b of batches) {
    assert.ok(b.length <= 3);
    const width = Math.max(...b.map((i) => lengths[i]));
    assert.ok(b.length === 1 || b.length * width <= 700, `batch ${b} pads to ${b.length * width}`);
  }
  assert.deepEqual(batches[0], [5]); // the 512-token text alone: two of them would pad past the budget
  assert.deepEqual(planBatches([3, 3, 3], { batchSize: 2, maxBatchTokens: 100 }), [[0, 1], [2]]); // ties in input order
  assert.throws(() => planBatches([1], { batchSize: 0, maxBatchTokens: 1 }), /batchSize must be a whole number >= 1, got 0/);
});

test("prefixes come from the table, never twice, and an unknown task lists the valid ones", () => {
  const { texts, alreadyPrefixed } = applyPrompt(["a", "  search_document: b", "search_query:c"], "search_query", PROMPTS);
  assert.deepEqual(texts, ["search_query: a", "  search_document: b", "search_query:c"]);
  assert.deepEqual(alreadyPrefixed, { search_document: [1], search_query: [2] });
  assert.match(promptWarning("search_query", alreadyPrefixed, PROMPTS) ?? "", /2 text\(s\) already start.*first at index 1/);
  assert.deepEqual(applyPrompt(["x"], null, PROMPTS).texts, ["x"]);
  assert.throws(() => applyPrompt(["x"], "query", PROMPTS), (err) => err instanceof TaskError &&
    /unknown task "query"; valid tasks for this model: "search_query", "search_document"/.test(err.message));
  assert.throws(() => applyPrompt(["x"], "search_query", {}), /no prompt table/);
  assert.equal(knownPrefix("clustering: x", PROMPTS), null);
});

test("texts are checked and lone surrogates become U+FFFD", () => {
  assert.deepEqual(asTextList("one"), ["one"]);
  assert.deepEqual(asTextList(["a\ud800b", "\udfff"]), ["a\ufffdb", "\ufffd"]);
  assert.throws(() => asTextList(["ok", 3]), (err) => err instanceof InputTypeError && /texts\[1\] is number, not string/.test(err.message));
  assert.throws(() => asTextList(["ok", ["nested"]]), /nested arrays are not flattened/);
  assert.throws(() => asTextList(null), /got null/);
  assert.throws(() => asTextList(new Uint8Array(2)), /Decode bytes first/);
});

test("pairwise float32 sum follows numpy's blocks, not a running sum", () => {
  // numpy: np.full(1000, 0.1, dtype=np.float32).sum() == np.float32(100.000015); a running float32 sum drifts further
  const a = new Float32Array(1000).fill(0.1);
  let running = 0;
  for (const x of a) running = Math.fround(running + x);
  assert.equal(pairwiseSum(a, 0, a.length), Math.fround(100.000015));
  assert.notEqual(pairwiseSum(a, 0, a.length), running);
  assert.equal(pairwiseSum(new Float32Array([1, 2, 3]), 0, 3), 6);
});

test("CLS and mean pooling, then L2", () => {
  // batch 2, seq 3, dim 2
  const hidden = new Float32Array([1, 2, 3, 4, 5, 6, /* row 2 */ 7, 8, 9, 10, 11, 12]);
  const mask = new BigInt64Array([1n, 1n, 0n, 1n, 1n, 1n]);
  assert.deepEqual([...pool(hidden, [2, 3, 2], mask, 3, "cls")], [1, 2, 7, 8]);
  assert.deepEqual([...pool(hidden, [2, 3, 2], mask, 3, "mean")], [2, 3, 9, 10]);
  assert.throws(() => pool(hidden, [2, 1, 2], mask, 3, "mean"), (err) => err instanceof ArtifactError && /only the first token/.test(err.message));
  const v = l2Normalize(new Float32Array([3, 4, 0, 0]), 2);
  assert.deepEqual([...v], [0.6000000238418579, 0.800000011920929, 0, 0]); // a zero row stays zero, not NaN
});

test("Python's float spelling, splitlines and JSONL rows", () => {
  const cases = [[0.1234567891, "0.1234568"], [1e-7, "1e-07"], [-5.4e-5, "-5.4e-05"], [0.00012, "0.00012"], [1, "1.0"],
    [-3e-8, "-0.0"], [1.2e-8, "0.0"], [-1, "-1.0"]];
  for (const [x, want] of cases) assert.equal(pyFloat(/** @type {number} */ (x)), want, `${x}`);
  assert.deepEqual(splitLines("a\r\nb\rc\u2028d\x85e\n"), ["a", "b", "c", "d", "e"]);
  assert.deepEqual(splitLines(""), []);
  assert.deepEqual(splitLines("\n\n"), ["", ""]);
  assert.equal(jsonlRow(3, 7, true, new Float32Array([0.5, -0.25])), '{"index": 3, "tokens": 7, "truncated": true, "embedding": [0.5, -0.25]}\n');
  const bytes = npyBytes(new Float32Array([1, 2]), 1, 2);
  assert.equal((10 + new DataView(bytes.buffer).getUint16(8, true)) % 64, 0);
  assert.equal(new TextDecoder().decode(bytes.subarray(1, 6)), "NUMPY");
});

test("input files: invalid UTF-8 is replaced and counted, JSONL errors name file and line", () => {
  const raw = new Uint8Array([...new TextEncoder().encode("ok \ufffd\n"), 0xed, 0xa0, 0x80, 0x0a]);
  assert.deepEqual(readTexts(raw, "in.txt", false), { texts: ["ok \ufffd", "\ufffd\ufffd\ufffd"], replaced: 3 });
  const jsonl = new TextEncoder().encode('{"text": "a"}\n\n{"txt": 1}\n');
  assert.throws(() => readTexts(jsonl, "in.jsonl", true), /in\.jsonl:3: expected an object with a string 'text' field/);
  assert.throws(() => readTexts(new TextEncoder().encode("{oops\n"), "x.jsonl", true), /x\.jsonl:1: not valid JSON/);
});

/** @param {Record<string, any>} variants */
function manifest(variants) {
  return parseManifest({
    format_version: 1, source: {}, tokenizer_file: "tokenizer.json", tokenizer_sha256: "0",
    model: { hidden_size: 8, num_layers: 1, pad_token_id: 1, max_length: 16, pooling: "cls", normalize: true, prompts: {} },
    variants,
  });
}

test("the manifest's contract: version, fields and what auto picks", () => {
  assert.throws(() => parseManifest({ format_version: 2 }), /format_version 2 is not supported.*reads version 1/);
  assert.throws(() => parseManifest({ format_version: 1, model: { hidden_size: 8 } }), /malformed field \(model\.num_layers\)/);
  const rec = (/** @type {object} */ extra) => ({ file: "m.onnx", files: {}, size_bytes: 1000, ...extra });
  const gated = manifest({ fp32: rec({}), int8: rec({ gate: { passed: true } }), "int8-openvino": rec({ engine: "openvino", gate: { passed: true } }) });
  assert.equal(chooseVariant(gated, "auto", "native").variant, "int8");
  const failed = manifest({ fp32: rec({}), int8: rec({ gate: { passed: false } }) });
  assert.match(chooseVariant(failed, "auto", "native").reason, /auto: fp32 \(int8 failed its quality gate/);
  assert.throws(() => chooseVariant(gated, "int8-openvino", "native"), (err) => err instanceof VariantError &&
    /runs on openvino, which has no JavaScript runtime; use variant 'int8' \(the same weights on onnxruntime\)/.test(err.message));
  assert.throws(() => chooseVariant(gated, "fp16", "native"), /not in this artifact/);
  assert.throws(() => chooseVariant(gated, "int5", "native"), /unknown variant "int5"/);
  assert.throws(() => chooseVariant(gated, "int4", "native"), /not in this artifact/);
  // int4 comes after int8, and only when it passed its gate
  const small = manifest({ fp32: rec({}), int8: rec({ gate: { passed: false } }), int4: rec({ gate: { passed: true } }) });
  assert.equal(chooseVariant(small, "auto", "wasm").variant, "int4");
  const none = manifest({ fp32: rec({}), int4: rec({ gate: { passed: false } }) });
  assert.match(chooseVariant(none, "auto", "native").reason, /auto: fp32 \(int4 failed its quality gate/);
  assert.equal(chooseVariant(none, "int4", "native").variant, "int4"); // named, it runs whatever its gate said
  const big = manifest({ fp32: rec({ size_bytes: WASM_MAX_MODEL_BYTES + 1 }), int8: rec({ size_bytes: 5e8, gate: { passed: false } }) });
  assert.throws(() => chooseVariant(big, "fp32", "wasm"), /4 GB heap.*over 1 GiB are refused there\. Use variant 'int8' \(500 MB\)/);
  assert.equal(chooseVariant(big, "fp32", "wasm", { allowLargeWasm: true }).variant, "fp32");
  assert.throws(() => chooseVariant(big, "auto", "wasm"), /found nothing it may use on the wasm backend/);
  assert.equal(chooseVariant(big, "fp32", "native").variant, "fp32");
});

test("auto takes int8 where its U8xS8 kernel is exact, int8-avx2 on x86 without VNNI, and says why", () => {
  const rec = (/** @type {object} */ extra) => ({ file: "m.onnx", files: {}, size_bytes: 1000, ...extra });
  const both = manifest({ fp32: rec({}), int8: rec({ gate: { passed: true } }), "int8-avx2": rec({ gate: { passed: true } }) });
  assert.equal(chooseVariant(both, "auto", "native", { int8Exact: true }).variant, "int8");
  const avx2 = chooseVariant(both, "auto", "native", { int8Exact: false });
  assert.equal(avx2.variant, "int8-avx2");
  assert.match(avx2.reason, /int8 left out: onnxruntime's U8xS8 int8 products saturate on x86 without VNNI/);
  assert.equal(avx2.warning, undefined);
  const named = chooseVariant(both, "int8", "native", { int8Exact: false });
  assert.equal(named.variant, "int8"); // named, it runs, with a warning naming the exact twin
  assert.match(named.warning ?? "", /saturate.*Consider variant 'int8-avx2'/);
  const old = manifest({ fp32: rec({}), int8: rec({ gate: { passed: true } }) }); // exported before int8-avx2 existed
  const fallback = chooseVariant(old, "auto", "native", { int8Exact: false });
  assert.equal(fallback.variant, "fp32");
  assert.match(fallback.warning ?? "", /Re-export to get int8-avx2/);
  const failedTwin = manifest({ fp32: rec({}), int8: rec({ gate: { passed: true } }), "int8-avx2": rec({ gate: { passed: false } }) });
  assert.match(chooseVariant(failedTwin, "auto", "native", { int8Exact: false }).reason, /auto: fp32 \(int8 left out.*int8-avx2 failed its quality gate/);
});

test("int8 is exact on ARM64 and on x86 with VNNI or AMX, read from /proc/cpuinfo's flags", () => {
  const cpuinfo = (/** @type {string} */ flags) => `processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu sse2 ${flags}\n\n`;
  assert.equal(int8ExactHere(cpuinfo("avx2 fma"), "x64"), false); // Haswell
  assert.equal(int8ExactHere(cpuinfo("avx2 avx512f avx512bw"), "x64"), false); // Skylake-SP: AVX-512 without VNNI
  assert.equal(int8ExactHere(cpuinfo("avx2 avx512f avx512_vnni"), "x64"), true);
  assert.equal(int8ExactHere(cpuinfo("avx2 avx_vnni"), "x64"), true); // Alder Lake
  assert.equal(int8ExactHere(cpuinfo("avx2 amx_int8"), "x64"), true);
  assert.equal(int8ExactHere("Features\t: fp asimd\n", "arm64"), true);
  assert.equal(int8ExactHere("", "x64"), false); // unreadable flags: the exact twin, not a guess
});

test("reference vectors: .npy parsing and the cosine criteria verify judges", () => {
  const header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
  const padded = header.padEnd(117, " ") + "\n"; // 10 + 118 = 128 bytes before the data, as numpy aligns it
  const values = new Float32Array([1, 0, 0, 0, 1, 0]);
  const bytes = new Uint8Array(128 + 24);
  bytes.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, padded.length, 0]);
  bytes.set(new TextEncoder().encode(padded), 10);
  bytes.set(new Uint8Array(values.buffer), 128);
  const npy = parseNpy(bytes, "ref.npy");
  assert.deepEqual([npy.rows, npy.cols, Array.from(npy.data)], [2, 3, [1, 0, 0, 0, 1, 0]]);
  assert.throws(() => parseNpy(bytes.subarray(0, 140), "ref.npy"), (err) => err instanceof ArtifactError && /ref\.npy is not a float32 2-D \.npy file/.test(err.message));
  const got = new Float32Array([1, 0, 0, 0, 0.6, 0.8]);
  const fig = judge(npy.data, got, 3, ["a", "b"], { cos_min: 0.995, cos_mean: 0.5 });
  assert.ok(Math.abs(fig.cosMin - 0.6) < 1e-7 && fig.worstCase === "b");
  assert.deepEqual(fig.failures, ["cosine min 0.60000 < 0.995 (worst: b)"]);
});
