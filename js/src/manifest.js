// @ts-check
/**
 * The artifact contract, read from `manifest.json` — the same file the Python runtime reads, written by the
 * exporter (`rosberta_onnx.manifest` is its schema). Every model fact this package uses (dimension, pooling,
 * max length, pad id, prompt table, input names, file names and checksums, gate verdicts) comes from here and
 * nowhere else. A cross-runtime test checks that both runtimes read the same facts from the same file.
 * @module
 */
import { ArtifactError, VariantError } from "./errors.js";

export const FORMAT_VERSION = 1;
export const MANIFEST_NAME = "manifest.json";
export const VARIANTS = /** @type {const} */ (["fp32", "fp16", "int8", "int8-avx2", "int8-openvino", "int4"]);
/** The quantised variants, each judged by the exporter's quality gate; `auto` takes one only if it passed. */
export const GATED_VARIANTS = /** @type {const} */ (["int8", "int8-avx2", "int8-openvino", "int4"]);
export const POOLINGS = /** @type {const} */ (["cls", "mean"]);

/**
 * @typedef {object} ModelFacts
 * @property {string} architecture
 * @property {number} dim hidden size: the embedding dimension
 * @property {number} numLayers
 * @property {number} padTokenId
 * @property {number} maxLength usable tokens per text, specials included
 * @property {"cls" | "mean"} pooling
 * @property {boolean} normalize
 * @property {Record<string, string>} prompts task name -> prefix
 * @property {string[]} inputNames what the graph is fed, as int64
 * @property {string} outputName
 */

/**
 * @typedef {object} VariantRecord
 * @property {string} name
 * @property {string} file the ONNX file, relative to the artifact
 * @property {Record<string, string>} files every file the variant needs -> sha256
 * @property {number} sizeBytes
 * @property {string} recipe how it was made, in words
 * @property {string} engine what runs it: "onnxruntime" here; others are refused
 * @property {boolean} gatePassed the quality gate's verdict (false for variants without one)
 * @property {Record<string, any>} gate the gate record as written
 * @property {Record<string, any>} parity the parity figures measured at export
 * @property {string} isa the instruction set the gate was measured on ("" when not recorded)
 */

/**
 * @typedef {object} Manifest
 * @property {number} formatVersion
 * @property {Record<string, any>} source
 * @property {ModelFacts} model
 * @property {string} tokenizerFile
 * @property {string} tokenizerSha256
 * @property {Record<string, VariantRecord>} variants
 * @property {Record<string, any> | null} reference the reference set (`reference.json`, `reference.npy`) `verify` reads
 * @property {string} created
 */

/** @param {unknown} v @returns {v is Record<string, any>} */
const isObject = (v) => typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * Validate and convert a parsed manifest.
 * @param {unknown} data
 * @param {string} [where] where it came from, for messages
 * @returns {Manifest}
 */
export function parseManifest(data, where = MANIFEST_NAME) {
  const fix = "re-export it: rosberta-onnx export MODEL -o DIR --overwrite";
  if (!isObject(data)) throw new ArtifactError(`${where} does not hold a JSON object; ${fix}`);
  if (data.format_version !== FORMAT_VERSION) {
    throw new ArtifactError(`${where}: format_version ${JSON.stringify(data.format_version)} is not supported by this rosberta-onnx ` +
      `(it reads version ${FORMAT_VERSION}). Re-export the model with this version: rosberta-onnx export MODEL -o DIR --overwrite`);
  }
  /** @param {boolean} ok @param {string} field */
  const need = (ok, field) => {
    if (!ok) throw new ArtifactError(`${where} is missing or has a malformed field (${field}). The folder was not written by a complete export; ${fix}`);
  };
  const m = data.model;
  need(isObject(m), "model");
  for (const k of ["hidden_size", "num_layers", "pad_token_id", "max_length"]) need(Number.isInteger(m[k]), `model.${k}`);
  need(POOLINGS.includes(m.pooling), "model.pooling");
  need(typeof m.normalize === "boolean", "model.normalize");
  need(isObject(m.prompts) && Object.values(m.prompts).every((p) => typeof p === "string"), "model.prompts");
  const inputNames = m.input_names ?? ["input_ids", "attention_mask"];
  need(Array.isArray(inputNames) && inputNames.every((n) => typeof n === "string"), "model.input_names");
  need(m.max_length >= 2, "model.max_length");
  need(typeof data.tokenizer_file === "string" && typeof data.tokenizer_sha256 === "string", "tokenizer_file");
  need(isObject(data.variants), "variants");
  /** @type {Record<string, VariantRecord>} */
  const variants = {};
  for (const [name, v] of Object.entries(data.variants)) {
    need(isObject(v) && typeof v.file === "string" && isObject(v.files), `variants.${name}`);
    variants[name] = {
      name, file: v.file, files: v.files, sizeBytes: Number(v.size_bytes ?? 0), recipe: String(v.recipe ?? ""),
      engine: v.engine ?? "onnxruntime", gatePassed: Boolean(v.gate?.passed), gate: v.gate ?? {}, parity: v.parity ?? {},
      isa: String(v.isa ?? ""),
    };
  }
  return {
    formatVersion: data.format_version,
    source: isObject(data.source) ? data.source : {},
    model: {
      architecture: String(m.architecture ?? ""), dim: m.hidden_size, numLayers: m.num_layers, padTokenId: m.pad_token_id,
      maxLength: m.max_length, pooling: m.pooling, normalize: m.normalize, prompts: { ...m.prompts }, inputNames: [...inputNames],
      outputName: m.output_name ?? "last_hidden_state",
    },
    tokenizerFile: data.tokenizer_file,
    tokenizerSha256: data.tokenizer_sha256,
    variants,
    reference: isObject(data.reference) ? data.reference : null,
    created: String(data.created ?? ""),
  };
}

/**
 * The record of `name`, or a VariantError naming what the artifact has.
 * @param {Manifest} manifest @param {string} name
 * @returns {VariantRecord}
 */
export function variantRecord(manifest, name) {
  const rec = manifest.variants[name];
  if (!rec) {
    throw new VariantError(`variant ${JSON.stringify(name)} is not in this artifact; it has ${JSON.stringify(Object.keys(manifest.variants).sort())}. ` +
      `Export it with: rosberta-onnx export MODEL -o DIR --variants ${name} --overwrite`);
  }
  return rec;
}
