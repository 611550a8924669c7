// @ts-check
/**
 * Does this artifact hold on *this* CPU and backend? Each variant re-measured against the reference set the export
 * ships (`reference.json`: texts; `reference.npy`: their PyTorch fp32 vectors), with the same criteria the Python
 * runtime's `verify` judges: a quantised variant's gate cosine thresholds, fp32/fp16's parity thresholds.
 *
 *     import { verify } from "rosberta-onnx";
 *     const report = await verify("models/ru-en-rosberta", { variants: ["int8"] });
 *     if (!report.passed) console.error(report.checks);
 *
 * int8 kernels differ by instruction set (and WASM's from native ones), so an export's gate verdict is a fact about
 * the export machine; this is the same measurement here.
 * @module
 */
import { Encoder, platformOf } from "./encoder.js";
import { ArtifactError, VariantError } from "./errors.js";
import { GATED_VARIANTS, MANIFEST_NAME, VARIANTS, parseManifest } from "./manifest.js";
import { ENGINE } from "./select.js";
import { verifyFiles } from "./sources.js";

const COSINE_CRITERIA = ["cos_min", "cos_mean", "max_abs"];

/**
 * @typedef {object} VariantCheck
 * @property {string} variant
 * @property {boolean} passed
 * @property {number} [cosMin] against the reference vectors
 * @property {number} [cosMean]
 * @property {number} [maxAbs]
 * @property {string} [worstCase] the reference case with the lowest cosine
 * @property {Record<string, number>} thresholds the judged criteria and their thresholds
 * @property {string[]} failures each judged criterion missed, in words
 * @property {string} [error] the variant could not run at all (a corrupt file, a refused variant)
 */

/**
 * @typedef {object} VerifyReport
 * @property {string} location
 * @property {string} backend
 * @property {string} reference the reference set in words
 * @property {VariantCheck[]} checks
 * @property {Record<string, string>} exportIsa variant -> the instruction set its gate was measured on
 * @property {boolean} passed every check passed (and there was at least one)
 */

/**
 * A little-endian float32 C-order 2-D `.npy` file, as the exporter writes `reference.npy`.
 * @param {Uint8Array} bytes @param {string} where for messages
 * @returns {{ data: Float32Array, rows: number, cols: number }}
 */
export function parseNpy(bytes, where) {
  const bad = (/** @type {string} */ why) => new ArtifactError(`${where} is not a float32 2-D .npy file (${why}); re-export the artifact`);
  const magic = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59];
  if (bytes.length < 10 || magic.some((b, i) => bytes[i] !== b)) throw bad("no NUMPY magic");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const major = bytes[6];
  const headerLen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const start = major === 1 ? 10 : 12;
  const header = new TextDecoder("latin1").decode(bytes.subarray(start, start + headerLen));
  if (!/'descr':\s*'<f4'/.test(header)) throw bad(`dtype is not '<f4': ${header.trim()}`);
  if (/'fortran_order':\s*True/.test(header)) throw bad("Fortran order");
  const shape = /'shape':\s*\((\d+),\s*(\d+)\)/.exec(header);
  if (!shape) throw bad(`shape is not 2-D: ${header.trim()}`);
  const [rows, cols] = [Number(shape[1]), Number(shape[2])];
  const offset = start + headerLen;
  if (bytes.length - offset !== rows * cols * 4) throw bad(`${bytes.length - offset} data bytes for shape (${rows}, ${cols})`);
  const data = new Float32Array(rows * cols);
  new Uint8Array(data.buffer).set(bytes.subarray(offset)); // copied: the data may not be 4-byte aligned in `bytes`
  return { data, rows, cols };
}

/**
 * The thresholds a variant is judged by on this CPU: the gate's cosine criteria for a quantised variant, the parity
 * thresholds for fp32/fp16 (the Python runtime's `trust.criteria_of`, cosine criteria only).
 * @param {import("./manifest.js").VariantRecord} rec
 * @returns {Record<string, number>}
 */
function judgedThresholds(rec) {
  const gated = GATED_VARIANTS.includes(/** @type {any} */ (rec.name));
  const thresholds = (gated ? rec.gate.thresholds : rec.parity.thresholds) ?? {};
  const judged = gated ? (rec.gate.judged ?? Object.keys(thresholds)) : Object.keys(thresholds);
  return Object.fromEntries(judged.filter((/** @type {string} */ k) => COSINE_CRITERIA.includes(k) && k in thresholds).map((/** @type {string} */ k) => [k, Number(thresholds[k])]));
}

/**
 * Cosine figures of `got` against the reference rows, and the judged criteria it misses.
 * @param {Float32Array} ref @param {Float32Array} got @param {number} dim @param {string[]} names
 * @param {Record<string, number>} thresholds
 */
export function judge(ref, got, dim, names, thresholds) {
  let cosMin = Infinity;
  let cosSum = 0;
  let maxAbs = 0;
  let worst = 0;
  for (let r = 0; r < names.length; r++) {
    let dot = 0;
    let na = 0;
    let nb = 0;
    for (let j = r * dim; j < (r + 1) * dim; j++) {
      dot += ref[j] * got[j];
      na += ref[j] * ref[j];
      nb += got[j] * got[j];
      maxAbs = Math.max(maxAbs, Math.abs(ref[j] - got[j]));
    }
    const cos = dot / Math.max(Math.sqrt(na * nb), 1e-30);
    cosSum += cos;
    if (cos < cosMin) [cosMin, worst] = [cos, r];
  }
  const cosMean = cosSum / names.length;
  const failures = [];
  if ("cos_min" in thresholds && cosMin < thresholds.cos_min) {
    failures.push(`cosine min ${cosMin.toFixed(5)} < ${thresholds.cos_min} (worst: ${names[worst]})`);
  }
  if ("cos_mean" in thresholds && cosMean < thresholds.cos_mean) failures.push(`cosine mean ${cosMean.toFixed(5)} < ${thresholds.cos_mean}`);
  if ("max_abs" in thresholds && maxAbs > thresholds.max_abs) {
    failures.push(`max abs ${maxAbs.toExponential(2)} > ${thresholds.max_abs.toExponential(0)}`);
  }
  return { cosMin, cosMean, maxAbs, worstCase: names[worst], failures };
}

/**
 * Re-measure `variants` (default: fp32 and every quantised variant that passed its gate and runs on onnxruntime;
 * `["all"]`: every variant onnxruntime runs) against the artifact's reference set, on this CPU and backend. A variant
 * that cannot run is a failed check naming why, not an exception; an artifact without a reference set (or with a
 * changed one) is an ArtifactError.
 * @param {string | URL} location
 * @param {{ variants?: string[], backend?: "native" | "wasm", threads?: number,
 *   platform?: import("./encoder.js").Platform, fetch?: typeof globalThis.fetch }} [options]
 * @returns {Promise<VerifyReport>}
 */
export async function verify(location, options = {}) {
  const platform = platformOf(options);
  const source = platform.open(location, { fetch: options.fetch });
  const manifest = parseManifest(JSON.parse(await source.readText(MANIFEST_NAME)), `${source.where}/${MANIFEST_NAME}`);
  const ref = manifest.reference;
  if (!ref || typeof ref.file !== "string" || typeof ref.files !== "object") {
    throw new ArtifactError(`${source.where} ships no reference set (reference.json, reference.npy), so nothing can be re-measured; ` +
      "re-export it with this version of rosberta-onnx: rosberta-onnx export MODEL -o DIR --overwrite");
  }
  await verifyFiles(source, ref.files);
  const data = JSON.parse(await source.readText(ref.file));
  const names = data.cases.map((/** @type {any} */ c) => String(c.name));
  const texts = data.cases.map((/** @type {any} */ c) => String(c.text));
  const vectors = parseNpy(await source.readBytes(data.vectors.file), `${source.where}/${data.vectors.file}`);
  if (vectors.rows !== texts.length || vectors.cols !== manifest.model.dim) {
    throw new ArtifactError(`${source.where}/${data.vectors.file} holds (${vectors.rows}, ${vectors.cols}) vectors for ${texts.length} ` +
      `texts of dimension ${manifest.model.dim}; re-export the artifact`);
  }
  const runs = (/** @type {string} */ v) => manifest.variants[v]?.engine === ENGINE;
  let picked = options.variants;
  if (picked === undefined) {
    picked = ["fp32", ...GATED_VARIANTS.filter((v) => manifest.variants[v]?.gatePassed)].filter((v) => manifest.variants[v] && runs(v));
  } else if (picked.length === 1 && picked[0] === "all") {
    picked = Object.keys(manifest.variants).filter(runs);
  }
  for (const v of picked) {
    if (!VARIANTS.includes(/** @type {any} */ (v))) throw new VariantError(`unknown variant ${JSON.stringify(v)}; choose from ${VARIANTS.join(", ")} (or 'all')`);
    if (!manifest.variants[v]) throw new VariantError(`variant ${JSON.stringify(v)} is not in this artifact; it has ${Object.keys(manifest.variants).sort().join(", ")}`);
  }
  /** @type {VariantCheck[]} */
  const checks = [];
  let backend = options.backend ?? platform.defaultBackend;
  for (const v of picked) {
    const thresholds = judgedThresholds(manifest.variants[v]);
    if (!Object.keys(thresholds).length) {
      checks.push({ variant: v, passed: false, thresholds, failures: [], error: `the manifest records no cosine thresholds for ${v}: nothing to judge it by` });
      continue;
    }
    let enc;
    try {
      enc = await Encoder.load(location, { variant: v, backend: options.backend, threads: options.threads, platform,
        fetch: options.fetch, allowCpuFp16: true, onWarning: () => {} });
      backend = enc.backend;
      const got = await enc.encode(texts, { task: null });
      const flat = new Float32Array(texts.length * manifest.model.dim);
      got.forEach((row, i) => flat.set(row, i * manifest.model.dim));
      if (!flat.every(Number.isFinite)) {
        checks.push({ variant: v, passed: false, thresholds, failures: [], error: "non-finite values (NaN/inf) in the vectors" });
        continue;
      }
      const fig = judge(vectors.data, flat, manifest.model.dim, names, thresholds);
      checks.push({ variant: v, passed: fig.failures.length === 0, thresholds, ...fig });
    } catch (err) {
      if (!(err instanceof Error)) throw err;
      checks.push({ variant: v, passed: false, thresholds, failures: [], error: err.message });
    } finally {
      await enc?.dispose();
    }
  }
  return {
    location: source.where,
    backend,
    reference: `${texts.length} texts with ${data.made_by || "PyTorch fp32"} vectors`,
    checks,
    exportIsa: Object.fromEntries(picked.map((v) => [v, manifest.variants[v].isa])),
    passed: checks.length > 0 && checks.every((c) => c.passed),
  };
}
