// @ts-check
/**
 * Pooling and L2 normalisation of the last hidden state, bit for bit as the Python runtime computes them with
 * numpy in float32 — so the same hidden state gives the same vector in both languages:
 *
 * - CLS: the first token's row.
 * - mean: the masked rows summed position by position in float32 (numpy reduces a non-innermost axis that way),
 *   divided by the token count.
 * - L2: `x / max(‖x‖, 1e-12)`, where ‖x‖² is summed with numpy's pairwise float32 summation (blocks of 128,
 *   eight running partial sums) — a plain double-precision sum differs in the last bit for ~1 value in 10.
 * @module
 */
import { ArtifactError } from "./errors.js";

const f32 = Math.fround;
const EPS = f32(1e-12);

/**
 * numpy's pairwise float32 sum of `a[start .. start+n)` (`FLOAT_pairwise_sum`).
 * @param {Float32Array} a @param {number} start @param {number} n
 * @returns {number}
 */
export function pairwiseSum(a, start, n) {
  if (n < 8) {
    let res = 0;
    for (let i = 0; i < n; i++) res = f32(res + a[start + i]);
    return res;
  }
  if (n <= 128) {
    const r = [a[start], a[start + 1], a[start + 2], a[start + 3], a[start + 4], a[start + 5], a[start + 6], a[start + 7]];
    let i = 8;
    for (; i < n - (n % 8); i += 8) {
      for (let j = 0; j < 8; j++) r[j] = f32(r[j] + a[start + i + j]);
    }
    let res = f32(f32(f32(r[0] + r[1]) + f32(r[2] + r[3])) + f32(f32(r[4] + r[5]) + f32(r[6] + r[7])));
    for (; i < n; i++) res = f32(res + a[start + i]);
    return res;
  }
  let n2 = Math.floor(n / 2);
  n2 -= n2 % 8;
  return f32(pairwiseSum(a, start, n2) + pairwiseSum(a, start + n2, n - n2));
}

/**
 * Pool a `(batch, seq, dim)` hidden state to `(batch, dim)`.
 * @param {Float32Array} hidden row-major `(batch, seq, dim)`
 * @param {readonly number[]} dims `[batch, seq, dim]` as the output tensor reports them
 * @param {BigInt64Array} mask `(batch, width)` attention mask of the batch that was fed
 * @param {number} width sequence length that was fed
 * @param {"cls" | "mean"} method
 * @returns {Float32Array}
 */
export function pool(hidden, dims, mask, width, method) {
  const [b, seq, dim] = dims;
  const out = new Float32Array(b * dim);
  if (method === "cls") {
    for (let r = 0; r < b; r++) out.set(hidden.subarray(r * seq * dim, r * seq * dim + dim), r * dim);
    return out;
  }
  if (method !== "mean") throw new ArtifactError(`pooling ${JSON.stringify(method)} is not supported; expected "cls" or "mean"`);
  if (seq !== width) {
    throw new ArtifactError(`mean pooling needs a hidden state for each of the ${width} positions, but the model returned ${seq}: ` +
      "this graph computes only the first token (made for CLS pooling). Re-export the model: rosberta-onnx export MODEL -o DIR --overwrite");
  }
  for (let r = 0; r < b; r++) {
    const acc = out.subarray(r * dim, (r + 1) * dim);
    let count = 0;
    for (let s = 0; s < seq; s++) {
      if (mask[r * width + s] === 0n) continue; // a masked row adds exact zeros in numpy: skipping it is the same sum
      count += 1;
      const row = (r * seq + s) * dim;
      for (let j = 0; j < dim; j++) acc[j] = f32(acc[j] + hidden[row + j]);
    }
    const n = Math.max(count, 1);
    for (let j = 0; j < dim; j++) acc[j] = f32(acc[j] / n);
  }
  return out;
}

/**
 * L2-normalise each `dim`-long row of `x` in place.
 * @param {Float32Array} x @param {number} dim
 * @returns {Float32Array} `x`
 */
export function l2Normalize(x, dim) {
  const sq = new Float32Array(dim);
  for (let start = 0; start < x.length; start += dim) {
    for (let j = 0; j < dim; j++) sq[j] = f32(x[start + j] * x[start + j]);
    const norm = Math.max(f32(Math.sqrt(pairwiseSum(sq, 0, dim))), EPS);
    for (let j = 0; j < dim; j++) x[start + j] = f32(x[start + j] / norm);
  }
  return x;
}
