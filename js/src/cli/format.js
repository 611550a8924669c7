// @ts-check
/**
 * Output and input formats shared with the Python CLI, byte for byte where it matters: JSONL rows with the
 * same keys, separators and float spelling (Python's `repr` of the value rounded to 7 decimals), `.npy` files,
 * and `str.splitlines()`'s notion of a line.
 * @module
 */
import { InputFormatError } from "../errors.js";

/**
 * Python's `repr(round(x, 7))`: the shortest digits that round-trip, fixed notation for 1e-4 <= |x| < 1e16,
 * else `1.5e-05` style.
 * @param {number} x
 * @returns {string}
 */
export function pyFloat(x) {
  const v = Number(x.toFixed(7));
  if (v === 0) return Object.is(v, -0) ? "-0.0" : "0.0";
  const [mantissa, expText] = v.toExponential().split("e");
  const exp = Number(expText);
  const sign = mantissa.startsWith("-") ? "-" : "";
  const digits = mantissa.replace("-", "").replace(".", "");
  if (exp < -4 || exp >= 16) {
    const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    return `${sign}${m}e${exp < 0 ? "-" : "+"}${String(Math.abs(exp)).padStart(2, "0")}`;
  }
  if (exp >= 0) return `${sign}${digits.slice(0, exp + 1).padEnd(exp + 1, "0")}.${digits.slice(exp + 1) || "0"}`;
  return `${sign}0.${"0".repeat(-exp - 1)}${digits}`;
}

/**
 * One JSONL row as `json.dumps` writes the Python CLI's.
 * @param {number} index @param {number} tokens @param {boolean} truncated @param {Float32Array} vector
 */
export function jsonlRow(index, tokens, truncated, vector) {
  const values = Array.from(vector, pyFloat).join(", ");
  return `{"index": ${index}, "tokens": ${tokens}, "truncated": ${truncated}, "embedding": [${values}]}\n`;
}

/**
 * A float32 `(rows, cols)` array as a `.npy` file (format 1.0, header padded to 64 bytes as numpy does).
 * @param {Float32Array} data @param {number} rows @param {number} cols
 * @returns {Uint8Array}
 */
export function npyBytes(data, rows, cols) {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${rows}, ${cols}), }`;
  const total = 10 + header.length + 1;
  header += " ".repeat((64 - (total % 64)) % 64) + "\n";
  const out = new Uint8Array(10 + header.length + data.byteLength);
  out.set([0x93, ...new TextEncoder().encode("NUMPY"), 1, 0, header.length & 0xff, header.length >> 8], 0);
  out.set(new TextEncoder().encode(header), 10);
  const body = new DataView(out.buffer, 10 + header.length);
  data.forEach((x, i) => body.setFloat32(i * 4, x, true));
  return out;
}

/**
 * Python's `str.splitlines()`: every Unicode line boundary it knows, no empty last line for a final break.
 * @param {string} text
 * @returns {string[]}
 */
export function splitLines(text) {
  if (text === "") return [];
  const lines = text.split(/\r\n|[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]/u);
  if (/(?:\r\n|[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029])$/u.test(text)) lines.pop();
  return lines;
}

/**
 * Texts from an input file's bytes, as the Python CLI reads them: UTF-8 (invalid sequences become U+FFFD and are
 * counted), one text per line, or JSONL objects with a string `text` field (blank lines skipped).
 * @param {Uint8Array} raw @param {string} name for messages @param {boolean} jsonl
 * @returns {{ texts: string[], replaced: number }}
 */
export function readTexts(raw, name, jsonl) {
  const text = new TextDecoder("utf-8", { ignoreBOM: true }).decode(raw);
  let genuine = 0; // U+FFFD that were in the input already (EF BF BD)
  for (let i = 0; i + 2 < raw.length; i++) if (raw[i] === 0xef && raw[i + 1] === 0xbf && raw[i + 2] === 0xbd) genuine++;
  const replaced = (text.match(/\ufffd/gu)?.length ?? 0) - genuine;
  const lines = splitLines(text);
  if (!jsonl) return { texts: lines, replaced };
  /** @type {string[]} */
  const texts = [];
  lines.forEach((line, k) => {
    if (!line.trim()) return;
    let obj;
    try {
      obj = JSON.parse(line);
    } catch (err) {
      throw new InputFormatError(`${name}:${k + 1}: not valid JSON (${err instanceof Error ? err.message : err}); each line must be an object with a 'text' field`);
    }
    if (typeof obj !== "object" || obj === null || Array.isArray(obj) || typeof obj.text !== "string") {
      throw new InputFormatError(`${name}:${k + 1}: expected an object with a string 'text' field`);
    }
    texts.push(obj.text);
  });
  return { texts, replaced };
}
