// @ts-check
/**
 * The Encoder: an exported artifact (folder or URL) in, L2-normalised float32 embeddings out — the same
 * contract as the Python runtime's `rosberta_onnx.Encoder`, on the same files:
 *
 * - task prefixes from the manifest's prompt table, never twice; an unknown task lists the valid ones;
 * - truncation to the manifest's max length that keeps the closing special token;
 * - texts sorted by token length and cut into batches by count and padded-token budget, results in input order;
 * - pooling and normalisation exactly as the manifest says (numpy's float32 summation order);
 * - lone surrogates become U+FFFD, a non-string is an InputTypeError naming its index.
 * @module
 */
import { planBatches } from "./batching.js";
import { checkWindow, windows } from "./chunking.js";
import { ArtifactError, InputTypeError, RosbertaError, VariantError } from "./errors.js";
import { MANIFEST_NAME, parseManifest, variantRecord } from "./manifest.js";
import { l2Normalize, pool } from "./pooling.js";
import { applyPrompt, knownPrefix, promptWarning } from "./prompts.js";
import { chooseVariant } from "./select.js";
import { verifyFiles } from "./sources.js";
import { TextTokenizer, errorText } from "./tokenize.js";

/**
 * What an entry point (Node or browser) provides: how to open an artifact and make sessions.
 * @typedef {object} Platform
 * @property {string} name
 * @property {readonly ("native" | "wasm")[]} backends
 * @property {"native" | "wasm"} defaultBackend
 * @property {boolean} defaultVerify
 * @property {(location: string | URL, options: { fetch?: typeof globalThis.fetch }) => import("./sources.js").Source} open
 * @property {() => number} defaultThreads
 * @property {(backend: "native" | "wasm") => boolean} int8Exact whether onnxruntime's U8xS8 int8 is exact on this
 *   backend and CPU (false on x86 without VNNI: see select.js)
 * @property {(backend: "native" | "wasm", source: import("./sources.js").Source, rec: import("./manifest.js").VariantRecord,
 *   options: import("./engines.js").SessionOptions) => Promise<import("./engines.js").Session>} session
 */

/**
 * @typedef {object} LoadOptions
 * @property {string} [variant] "auto" (default: the gated int8 that is exact on this CPU, else fp32) or a variant
 *   name: "fp32" | "fp16" | "int8" | "int8-avx2" | "int4"
 * @property {"native" | "wasm"} [backend] Node: "native" (default, onnxruntime-node) or "wasm"; browsers: "wasm"
 * @property {number} [threads] default: the physical cores (Node), the logical ones when the page is cross-origin isolated
 * @property {boolean} [spinning] keep idle native threads spinning between runs (default false: no CPU burnt while idle)
 * @property {boolean} [verify] check each file against its sha256 in the manifest (default: true in Node, false in browsers)
 * @property {boolean} [allowCpuFp16] run the fp16 (GPU) variant on the CPU anyway
 * @property {boolean} [allowLargeWasm] load a file over 1 GiB on WASM anyway (it may not fit the 4 GB heap)
 * @property {(message: string) => void} [onWarning] where warnings go (default: process.emitWarning / console.warn)
 * @property {typeof globalThis.fetch} [fetch] for artifacts at a URL
 */

/**
 * @typedef {object} EncodeOptions
 * @property {string | null} [task] a name from the manifest's prompt table, or null (default) for texts as given
 * @property {number} [batchSize] texts per batch, at most (default 32)
 * @property {number} [maxBatchTokens] padded tokens per batch, at most (default 16384)
 * @property {boolean} [normalize] default: the model's (L2 for RoSBERTa)
 * @property {boolean} [truncate] false: throw InputTooLongError on a text over the max length (default true)
 */

/**
 * @typedef {object} Encoded
 * @property {Float32Array[]} embeddings one row per text, in input order (views into `data`)
 * @property {Float32Array} data the same vectors as one row-major `(n, dim)` block
 * @property {[number, number]} dims `[n, dim]`
 * @property {number[]} tokenCounts tokens per text before truncation (prefix and specials included)
 * @property {boolean[]} truncated per text: cut to the max length
 */

/**
 * @typedef {object} ChunkOptions
 * @property {string | null} [task] a name from the manifest's prompt table (repeated in every window), or null
 * @property {number} [window] tokens of the text per window (default: all the max length leaves beside the special
 *   tokens and the task prefix)
 * @property {number} [overlap] tokens consecutive windows share, about, in whole words (default `window / 8`, rounded down)
 * @property {number} [batchSize] windows per batch, at most (default 32)
 * @property {number} [maxBatchTokens] padded tokens per batch, at most (default 16384)
 * @property {boolean} [normalize] default: the model's
 */

/**
 * One text's windows before they run.
 * @typedef {object} ChunkPlan
 * @property {number[][]} rows per window: specials, task prefix, the window's own ids, specials
 * @property {[number, number][]} tokenSpans `[start, end)` over the text's own tokens (prefix and specials excluded)
 * @property {number} tokens the text's own tokens
 * @property {number} total the whole text's tokens as the model would see it untruncated
 */

/**
 * One text's chunk vectors and where each chunk is.
 * @typedef {object} Chunks
 * @property {Float32Array[]} vectors one per window, normalised as the manifest says (unless `normalize: false`)
 * @property {[number, number][]} tokenSpans `[start, end)` over the text's own tokens
 * @property {number} tokens the text's own tokens
 */

/** Texts tokenised at a time, as in the Python runtime: the same batches, hence the same vectors. */
const CHUNK = 4096;

/** @type {Platform | null} */
let defaultPlatform = null;

/** @param {Platform} platform */
export function setDefaultPlatform(platform) {
  defaultPlatform = platform;
}

/**
 * @param {string} name @param {unknown} value
 * @returns {number | undefined}
 */
function count(name, value) {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1) {
    throw new RangeError(`${name} must be a whole number >= 1 (or undefined for the default), got ${JSON.stringify(value)}`);
  }
  return value;
}

/**
 * Validate `texts` (a string is one text) and clean lone surrogates, as the Python runtime does.
 * @param {unknown} texts
 * @returns {string[]}
 */
export function asTextList(texts) {
  if (typeof texts === "string") return [texts.toWellFormed()];
  if (!Array.isArray(texts)) {
    const kind = texts === null ? "null" : texts instanceof Uint8Array ? "Uint8Array" : typeof texts;
    throw new InputTypeError(`texts must be a string or an array of strings, got ${kind}. ` +
      (texts instanceof Uint8Array ? "Decode bytes first: new TextDecoder().decode(bytes)." : "Wrap a single text in an array."));
  }
  return texts.map((t, i) => {
    if (typeof t !== "string") {
      const kind = t === null ? "null" : Array.isArray(t) ? "array" : typeof t;
      const hint = Array.isArray(t) ? " (nested arrays are not flattened; pass one flat array)" : "";
      throw new InputTypeError(`texts[${i}] is ${kind}, not string${hint}. Every text must be a string.`);
    }
    return t.toWellFormed();
  });
}

/** @param {string} message */
function defaultWarn(message) {
  const proc = /** @type {any} */ (globalThis).process;
  if (proc?.emitWarning) proc.emitWarning(message, "PromptWarning");
  else console.warn(`[rosberta-onnx] ${message}`);
}

/**
 * The platform to load with: the caller's, else the entry point's.
 * @param {{ platform?: Platform }} options
 * @returns {Platform}
 */
export function platformOf(options) {
  const platform = options.platform ?? defaultPlatform;
  if (!platform) throw new RosbertaError("no platform registered: import Encoder from 'rosberta-onnx', not from its source files");
  return platform;
}

export class Encoder {
  /**
   * @param {{ manifest: import("./manifest.js").Manifest, variant: string, backend: "native" | "wasm", selection: string,
   *   session: import("./engines.js").Session, tokenizer: TextTokenizer, location: string, threads: number,
   *   onWarning: (message: string) => void }} parts
   * @private
   */
  constructor(parts) {
    this.manifest = parts.manifest;
    /** the variant that runs */
    this.variant = parts.variant;
    /** "native" or "wasm" */
    this.backend = parts.backend;
    /** why this variant was chosen */
    this.selection = parts.selection;
    /** the folder or URL it was loaded from */
    this.location = parts.location;
    this.threads = parts.threads;
    this._session = parts.session;
    this._tokenizer = parts.tokenizer;
    this._warn = parts.onWarning;
  }

  /**
   * Load an artifact folder (Node) or URL written by `rosberta-onnx export`.
   * @param {string | URL} location
   * @param {LoadOptions & { platform?: Platform }} [options]
   * @returns {Promise<Encoder>}
   */
  static async load(location, options = {}) {
    const platform = platformOf(options);
    const backend = options.backend ?? platform.defaultBackend;
    if (!platform.backends.includes(backend)) {
      throw new VariantError(`backend ${JSON.stringify(backend)} is not available in ${platform.name}; choose one of ${JSON.stringify(platform.backends)}`);
    }
    const threads = count("threads", options.threads) ?? platform.defaultThreads();
    const verify = options.verify ?? platform.defaultVerify;
    const source = platform.open(location, { fetch: options.fetch });
    let data;
    const text = await source.readText(MANIFEST_NAME);
    try {
      data = JSON.parse(text);
    } catch (err) {
      throw new ArtifactError(`${source.where}/${MANIFEST_NAME} is not valid JSON (${errorText(err)}); re-export the folder`);
    }
    const manifest = parseManifest(data, `${source.where}/${MANIFEST_NAME}`);
    const choice = chooseVariant(manifest, options.variant ?? "auto", backend, { ...options, int8Exact: platform.int8Exact(backend) });
    const warn = options.onWarning ?? defaultWarn;
    if (choice.warning) warn(choice.warning);
    const rec = variantRecord(manifest, choice.variant);
    if (verify) await verifyFiles(source, { ...rec.files, [manifest.tokenizerFile]: manifest.tokenizerSha256 });
    const facts = manifest.model;
    const tokenizer = new TextTokenizer(JSON.parse(await source.readText(manifest.tokenizerFile)),
      { maxLength: facts.maxLength, padId: facts.padTokenId, source: `${source.where}/${manifest.tokenizerFile}` });
    const session = await platform.session(backend, source, rec, { threads, spinning: Boolean(options.spinning) });
    return new Encoder({ manifest, variant: choice.variant, backend, selection: choice.reason, session, tokenizer,
      location: source.where, threads, onWarning: warn });
  }

  /** the embedding dimension */
  get dim() {
    return this.manifest.model.dim;
  }

  /** usable tokens per text, specials included */
  get maxLength() {
    return this.manifest.model.maxLength;
  }

  /** the task names of the prompt table */
  get tasks() {
    return Object.keys(this.manifest.model.prompts);
  }

  /**
   * @param {unknown} texts @param {string | null | undefined} task
   * @returns {string[]}
   */
  _prepare(texts, task) {
    const prompts = this.manifest.model.prompts;
    const { texts: out, alreadyPrefixed } = applyPrompt(asTextList(texts), task, prompts);
    const warning = task ? promptWarning(task, alreadyPrefixed, prompts) : null;
    if (warning) this._warn(warning);
    return out;
  }

  /**
   * Each text's windows (the Python runtime's `Encoder.plan` with `long="chunk"`): the same rows and token spans.
   * @param {string | string[]} texts
   * @param {Omit<ChunkOptions, "batchSize" | "maxBatchTokens" | "normalize">} [options]
   * @returns {ChunkPlan[]}
   */
  planChunks(texts, { task = null, window, overlap } = {}) {
    const list = asTextList(texts);
    const prepared = this._prepare(list, task);
    const prompts = this.manifest.model.prompts;
    return prepared.map((text, i) => {
      // where the text's own words start: after the prefix added, or after the one it already carried
      const given = list[i];
      const found = task === null ? null : knownPrefix(given, prompts);
      const start = task === null ? 0
        : found === null ? text.length - given.length
          : given.length - given.replace(/^\s+/u, "").length + prompts[found].replace(/\s+$/u, "").length;
      const split = this._tokenizer.split(text, start);
      const room = this._tokenizer.maxLength - split.head.length - split.tail.length;
      const w = window ?? room;
      const ov = overlap ?? Math.floor(w / 8);
      checkWindow(w, ov, room);
      const tokenSpans = windows(split.content.length, w, ov, split.starts);
      return {
        rows: tokenSpans.map(([a, b]) => [...split.head, ...split.content.slice(a, b), ...split.tail]),
        tokenSpans,
        tokens: split.content.length,
        total: split.head.length + split.content.length + split.tail.length,
      };
    });
  }

  /**
   * Each text as overlapping windows of its own tokens, one vector per window (the Python runtime's
   * `encode_chunks`: the same windows, the same vectors). A text that fits is one window, whose vector is its
   * `encode` vector. Windows of all texts are batched together.
   * @param {string | string[]} texts
   * @param {ChunkOptions} [options]
   * @returns {Promise<Chunks[]>}
   */
  async encodeChunks(texts, { task = null, window, overlap, batchSize = 32, maxBatchTokens = 16384, normalize } = {}) {
    const plans = this.planChunks(texts, { task, window, overlap });
    const rows = plans.flatMap((p) => p.rows);
    const norm = normalize ?? this.manifest.model.normalize;
    const dim = this.dim;
    const data = new Float32Array(rows.length * dim);
    for (const batch of planBatches(rows.map((r) => r.length), { batchSize, maxBatchTokens })) {
      const vecs = await this._run(batch.map((i) => rows[i]), norm);
      batch.forEach((i, j) => data.set(vecs.subarray(j * dim, (j + 1) * dim), i * dim));
    }
    let at = 0;
    return plans.map((p) => {
      const vectors = p.rows.map((_, k) => data.subarray((at + k) * dim, (at + k + 1) * dim));
      at += p.rows.length;
      return { vectors, tokenSpans: p.tokenSpans, tokens: p.tokens };
    });
  }

  /**
   * Token ids per text as the model sees them (prefix and special tokens included).
   * @param {string | string[]} texts
   * @param {{ task?: string | null, truncate?: boolean }} [options]
   * @returns {number[][]}
   */
  tokenize(texts, { task = null, truncate = true } = {}) {
    return this._tokenizer.tokenize(this._prepare(texts, task), { truncate }).ids;
  }

  /**
   * Tokens per text before truncation (prefix and special tokens included).
   * @param {string | string[]} texts
   * @param {{ task?: string | null }} [options]
   * @returns {number[]}
   */
  countTokens(texts, { task = null } = {}) {
    return this._tokenizer.tokenize(this._prepare(texts, task)).tokenCounts;
  }

  /**
   * Embed `texts`: one Float32Array of `dim` values per text, in input order. Results do not depend on
   * `batchSize`, `maxBatchTokens` or a text's batch neighbours.
   * @param {string | string[]} texts
   * @param {EncodeOptions} [options]
   * @returns {Promise<Float32Array[]>}
   */
  async encode(texts, options = {}) {
    return (await this.encodeDetailed(texts, options)).embeddings;
  }

  /** @param {string | string[]} texts @param {Omit<EncodeOptions, "task">} [options] */
  encodeQueries(texts, options = {}) {
    return this.encode(texts, { ...options, task: "search_query" });
  }

  /** @param {string | string[]} texts @param {Omit<EncodeOptions, "task">} [options] */
  encodeDocuments(texts, options = {}) {
    return this.encode(texts, { ...options, task: "search_document" });
  }

  /**
   * Like {@link Encoder.encode}, plus the vectors as one `(n, dim)` block, each text's token count and whether it was cut.
   * @param {string | string[]} texts
   * @param {EncodeOptions} [options]
   * @returns {Promise<Encoded>}
   */
  async encodeDetailed(texts, { task = null, batchSize = 32, maxBatchTokens = 16384, normalize, truncate = true } = {}) {
    const items = this._prepare(texts, task);
    const norm = normalize ?? this.manifest.model.normalize;
    const n = items.length;
    const dim = this.dim;
    const data = new Float32Array(n * dim);
    const tokenCounts = new Array(n);
    const truncated = new Array(n);
    if (!truncate) {
      // every length is checked before any compute is spent
      for (let start = 0; start < n; start += CHUNK) this._tokenizer.tokenize(items.slice(start, start + CHUNK), { truncate: false });
    }
    for (let start = 0; start < n; start += CHUNK) {
      const tok = this._tokenizer.tokenize(items.slice(start, start + CHUNK));
      tok.tokenCounts.forEach((c, i) => { tokenCounts[start + i] = c; truncated[start + i] = tok.truncated[i]; });
      const lengths = tok.ids.map((x) => x.length);
      for (const batch of planBatches(lengths, { batchSize, maxBatchTokens })) {
        const vecs = await this._run(batch.map((i) => tok.ids[i]), norm);
        batch.forEach((i, j) => data.set(vecs.subarray(j * dim, (j + 1) * dim), (start + i) * dim));
      }
    }
    const embeddings = Array.from({ length: n }, (_, i) => data.subarray(i * dim, (i + 1) * dim));
    return { embeddings, data, dims: [n, dim], tokenCounts, truncated };
  }

  /**
   * @param {number[][]} rows @param {boolean} norm
   * @returns {Promise<Float32Array>}
   */
  async _run(rows, norm) {
    const facts = this.manifest.model;
    const { ids, mask, width } = this._tokenizer.pad(rows);
    const dims = [rows.length, width];
    /** @type {Record<string, import("./engines.js").Feed>} */
    const all = { input_ids: { data: ids, dims }, attention_mask: { data: mask, dims } };
    /** @type {Record<string, import("./engines.js").Feed>} */
    const feeds = {};
    for (const name of facts.inputNames) {
      if (!all[name]) throw new RosbertaError(`the manifest names graph input ${JSON.stringify(name)}, which this runtime does not know how to feed`);
      feeds[name] = all[name];
    }
    const out = await this._session.run(feeds, facts.outputName);
    const vecs = pool(out.data, out.dims, mask, width, facts.pooling);
    if (norm) l2Normalize(vecs, facts.dim);
    for (let k = 0; k < vecs.length; k++) {
      if (!Number.isFinite(vecs[k])) {
        throw new RosbertaError(`the ${this.variant} model produced a non-finite embedding (row ${Math.floor(k / facts.dim)} of a batch of ` +
          `${rows.length}); this variant overflows on this input. Use variant 'fp32' for it, and please report the text.`);
      }
    }
    return vecs;
  }

  /** Free the session's memory. The encoder cannot be used afterwards. */
  async dispose() {
    await this._session.release();
  }
}
