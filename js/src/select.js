// @ts-check
/**
 * Which variant runs: what `auto` picks, and which named variants a backend refuses. One module, so the rules
 * read in one place:
 *
 * - `auto`: the first quantised variant onnxruntime runs that passed its quality gate at export and is exact on this
 *   CPU (`int8` or `int8-avx2`, then `int4`), else `fp32` (the Python runtime also re-measures a variant gated on
 *   another instruction set and times the candidates; here the rules alone decide: `rosberta-onnx verify` measures);
 * - onnxruntime's `int8` multiplies U8xS8: exact with VNNI/AMX and on ARM64; on x86 without VNNI pairs of products
 *   pass through 16 bits and saturate (MiniLM: cosine 0.992 against fp32 on an emulated Haswell). There `auto` takes
 *   `int8-avx2` (the same weights stored as U8: U8xU8 products are exact on every x86) and leaves `int8` out; where
 *   `int8` is exact it leaves `int8-avx2` out (its kernel is ~1.8x slower there). The platform says which
 *   (`int8Exact`: Node reads the CPU's flags; the WASM kernels are the same instructions on every CPU);
 * - `int8-openvino` runs on OpenVINO, which has no JavaScript runtime: refused, naming `int8` (same weights);
 * - `fp16` is a GPU variant: onnxruntime's CPU kernels run it slower than fp32, so it is refused unless
 *   `allowCpuFp16` (e.g. to check it);
 * - WASM holds the model in a 4 GB heap, more than twice over while it loads (the full-size fp32 file, 1.4 GB,
 *   peaked at 3.3 GB in Chromium on five short texts; longer batches add activations): files over
 *   {@link WASM_MAX_MODEL_BYTES} are refused there, naming `int8`, unless `allowLargeWasm`.
 * @module
 */
import { VariantError } from "./errors.js";
import { GATED_VARIANTS, VARIANTS, variantRecord } from "./manifest.js";

export const WASM_MAX_MODEL_BYTES = 1024 * 1024 * 1024;
export const ENGINE = "onnxruntime";

/**
 * @typedef {object} Selection
 * @property {string} requested what the caller asked for
 * @property {string} variant what runs
 * @property {string} reason why, in words
 * @property {string} [warning] the choice is a poor fit for this CPU, in words
 */

/**
 * @typedef {object} SelectOptions
 * @property {boolean} [allowCpuFp16]
 * @property {boolean} [allowLargeWasm]
 * @property {boolean} [int8Exact] whether onnxruntime's U8xS8 int8 is exact here (default true)
 */

const SATURATES = "onnxruntime's U8xS8 int8 products saturate on x86 without VNNI (cosine 0.992 against fp32 measured on MiniLM)";

/** @param {number} bytes */
const mb = (bytes) => `${Math.round(bytes / 1e6)} MB`;

/**
 * Why `name` cannot run on `backend`, or null when it can.
 * @param {import("./manifest.js").Manifest} manifest
 * @param {string} name
 * @param {"native" | "wasm"} backend
 * @param {{ allowCpuFp16?: boolean, allowLargeWasm?: boolean }} options
 * @returns {string | null}
 */
export function refusal(manifest, name, backend, { allowCpuFp16 = false, allowLargeWasm = false } = {}) {
  const rec = variantRecord(manifest, name);
  if (rec.engine !== ENGINE) {
    const twin = GATED_VARIANTS.includes(/** @type {any} */ (name)) && manifest.variants.int8 ? "variant 'int8' (the same weights on onnxruntime)" : "variant 'fp32'";
    return `variant ${JSON.stringify(name)} runs on ${rec.engine}, which has no JavaScript runtime; use ${twin} or 'auto'`;
  }
  if (name === "fp16" && !allowCpuFp16) {
    return "variant 'fp16' is a GPU variant: onnxruntime's CPU and WASM kernels run it by casting around fp16 ops, slower than " +
      "fp32. Use variant 'int8' or 'fp32', or pass allowCpuFp16: true to run it anyway (e.g. to check its correctness)";
  }
  if (backend === "wasm" && rec.sizeBytes > WASM_MAX_MODEL_BYTES && !allowLargeWasm) {
    const small = manifest.variants.int8 ? ` Use variant 'int8' (${mb(manifest.variants.int8.sizeBytes)})` : " Export an int8 variant";
    return `variant ${JSON.stringify(name)} is ${mb(rec.sizeBytes)}: onnxruntime-web (WASM) holds a model more than twice over in its ` +
      "4 GB heap while loading (the full-size fp32 file peaked at 3.3 GB in Chromium on five short texts; longer batches " +
      `would not fit), so files over ${WASM_MAX_MODEL_BYTES / 2 ** 30} GiB are refused there.${small}, the native backend ` +
      "in Node, or pass allowLargeWasm: true to try anyway";
  }
  return null;
}

/**
 * @param {import("./manifest.js").Manifest} manifest
 * @param {string} requested "auto" or a variant name
 * @param {"native" | "wasm"} backend
 * @param {SelectOptions} [options]
 * @returns {Selection}
 */
export function chooseVariant(manifest, requested, backend, options = {}) {
  if (requested === "auto") {
    const skipped = [];
    const exact = options.int8Exact ?? true;
    for (const name of GATED_VARIANTS) {
      const rec = manifest.variants[name];
      if (!rec || rec.engine !== ENGINE) continue; // OpenVINO's twin: no JavaScript runtime, and int8 has its weights
      if (name === "int8" && !exact) {
        skipped.push(`int8 left out: ${SATURATES}`);
        continue;
      }
      if (name === "int8-avx2" && exact) continue; // the slower U8xU8 kernel, only where int8 is not exact
      if (!rec.gatePassed) {
        skipped.push(`${name} failed its quality gate at export`);
        continue;
      }
      const why = refusal(manifest, name, backend, options);
      if (why === null) {
        const notes = skipped.length ? `; ${skipped.join("; ")}` : "";
        return { requested, variant: name, reason: `auto: ${name} (passed its quality gate at export${notes})` };
      }
      skipped.push(why);
    }
    if (manifest.variants.fp32) {
      const why = refusal(manifest, "fp32", backend, options);
      if (why === null) {
        const warning = !exact && manifest.variants.int8?.gatePassed && !manifest.variants["int8-avx2"]
          ? `${SATURATES}; auto runs fp32. Re-export to get int8-avx2, which is exact here` : undefined;
        return { requested, variant: "fp32", reason: `auto: fp32 (${skipped.join("; ") || "no quantised variant"})`, warning };
      }
      skipped.push(why);
    }
    throw new VariantError(`variant 'auto' found nothing it may use on the ${backend} backend: the artifact has ` +
      `${JSON.stringify(Object.keys(manifest.variants).sort())}. ${skipped.join(" ")}`.trim());
  }
  if (!VARIANTS.includes(/** @type {any} */ (requested))) {
    throw new VariantError(`unknown variant ${JSON.stringify(requested)}; choose one of ${JSON.stringify(["auto", ...VARIANTS])}`);
  }
  const why = refusal(manifest, requested, backend, options);
  if (why !== null) throw new VariantError(why);
  if (requested === "int8" && !(options.int8Exact ?? true)) {
    const advice = manifest.variants["int8-avx2"] ? "Consider variant 'int8-avx2' (exact here)" : "Consider variant 'fp32'";
    return { requested, variant: requested, reason: "requested", warning: `${SATURATES}. ${advice}` };
  }
  return { requested, variant: requested, reason: "requested" };
}
