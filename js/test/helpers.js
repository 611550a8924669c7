// Shared by the tests that need artifacts: where the Python runtime's fixtures are, and how to compare vectors.
import { existsSync, readFileSync, readdirSync } from "node:fs";
import path from "node:path";

/**
 * Fixture folders written by `python js/test/make_fixtures.py ARTIFACT... --out $ROSBERTA_JS_FIXTURES` (CI does).
 * @returns {{ name: string, dir: string, data: any }[]}
 */
export function fixtures() {
  const root = process.env.ROSBERTA_JS_FIXTURES;
  if (!root || !existsSync(root)) return [];
  return readdirSync(root).filter((d) => existsSync(path.join(root, d, "fixtures.json")))
    .map((d) => ({ name: d, dir: path.join(root, d), data: JSON.parse(readFileSync(path.join(root, d, "fixtures.json"), "utf8")) }));
}

export const NO_FIXTURES = "needs the Python runtime's vectors: python js/test/make_fixtures.py ARTIFACT --out DIR, " +
  "then ROSBERTA_JS_FIXTURES=DIR npm test (.ci/run does both)";

/** @param {string} b64 @returns {Float32Array} */
export function vectors(b64) {
  const buf = Buffer.from(b64, "base64");
  return new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
}

/**
 * Per-row cosine of two `(n, dim)` blocks (float64 arithmetic): each row's, the smallest and the median, and how
 * many rows are bit-identical.
 * @param {Float32Array} a @param {Float32Array} b @param {number} dim
 */
export function compare(a, b, dim) {
  if (a.length !== b.length) throw new Error(`shapes differ: ${a.length / dim} vs ${b.length / dim} rows`);
  let min = 1;
  let worst = 0;
  let identical = 0;
  /** @type {number[]} */
  const rowsCos = [];
  for (let r = 0; r < a.length / dim; r++) {
    let dot = 0, na = 0, nb = 0, same = true;
    for (let j = r * dim; j < (r + 1) * dim; j++) {
      dot += a[j] * b[j]; na += a[j] * a[j]; nb += b[j] * b[j];
      same &&= a[j] === b[j];
    }
    const cos = dot / Math.max(Math.sqrt(na * nb), 1e-30);
    rowsCos.push(cos);
    if (cos < min) { min = cos; worst = r; }
    identical += Number(same);
  }
  const sorted = [...rowsCos].sort((x, y) => x - y);
  const median = sorted[Math.floor(sorted.length / 2)];
  return { min, median, worst, identical, rows: a.length / dim, rows_cos: rowsCos };
}

/** The 10 MB text from its recipe (the fixture stores the recipe, not the text). */
export function bigText(/** @type {{ unit: string, times: number, length: number }} */ big) {
  return big.unit.repeat(big.times).slice(0, big.length);
}
