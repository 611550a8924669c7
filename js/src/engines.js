// @ts-check
/**
 * The two ways this package runs an ONNX file, behind one small session: `run(feeds)` → the output tensor.
 *
 * - `native`: onnxruntime-node (Node only): the same C++ kernels as the Python runtime, so the same vectors.
 *   It reads the file and its external data (`model.onnx.data`) from disk by itself.
 * - `wasm`: onnxruntime-web's WebAssembly build (browsers, and Node on request): the file's bytes are passed in,
 *   with each external-data file under the name the graph records (`externalData`).
 * @module
 */
import { ArtifactError, RosbertaError } from "./errors.js";
import { errorText } from "./tokenize.js";

/**
 * @typedef {object} Feed
 * @property {BigInt64Array} data
 * @property {number[]} dims
 */

/**
 * @typedef {object} Session
 * @property {(feeds: Record<string, Feed>, output: string) => Promise<{ data: Float32Array, dims: number[] }>} run
 * @property {() => Promise<void>} release
 */

/**
 * @typedef {object} SessionOptions
 * @property {number} threads
 * @property {boolean} spinning keep idle threads spinning between runs (native only)
 */

/**
 * @param {any} ort the onnxruntime module (node or web): both share onnxruntime-common's API
 * @param {any} session
 * @returns {Session}
 */
function wrap(ort, session) {
  return {
    async run(feeds, output) {
      /** @type {Record<string, any>} */
      const tensors = {};
      for (const [name, f] of Object.entries(feeds)) tensors[name] = new ort.Tensor("int64", f.data, f.dims);
      const result = await session.run(tensors, [output]);
      const t = result[output];
      const data = t.data instanceof Float32Array ? t.data : Float32Array.from(/** @type {ArrayLike<number>} */ (t.data));
      return { data, dims: [...t.dims].map(Number) };
    },
    async release() {
      await session.release();
    },
  };
}

/**
 * @param {unknown} err @param {string} where @param {string} engine
 * @returns {ArtifactError}
 */
function loadError(err, where, engine) {
  return new ArtifactError(`${engine} could not load ${where}: ${errorText(err)}. The file is damaged or from an incompatible ` +
    "exporter; re-export: rosberta-onnx export MODEL -o DIR --overwrite", { cause: err });
}

/**
 * onnxruntime-node on a file path.
 * @param {string} modelPath
 * @param {SessionOptions} options
 * @returns {Promise<Session>}
 */
export async function nativeSession(modelPath, { threads, spinning }) {
  let ort;
  try {
    ort = await import("onnxruntime-node");
  } catch (err) {
    throw new RosbertaError(`the native backend needs the npm package onnxruntime-node, which did not load (${errorText(err)}). ` +
      "Install it (npm install onnxruntime-node), or use backend: 'wasm'", { cause: err });
  }
  try {
    const session = await ort.InferenceSession.create(modelPath, {
      intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: "sequential", graphOptimizationLevel: "all",
      logSeverityLevel: 3,
      // Spinning keeps idle threads busy-waiting between runs: a little less latency, a busy CPU while idle.
      extra: { session: { intra_op: { allow_spinning: spinning ? "1" : "0" } } },
    });
    return wrap(ort, session);
  } catch (err) {
    throw loadError(err, modelPath, "onnxruntime-node");
  }
}

/**
 * onnxruntime-web (WASM) on the model's bytes. Its thread count is global to the page/process and fixed by the
 * first session made: later sessions share it.
 * @param {Uint8Array} model
 * @param {{ path: string, data: Uint8Array }[]} externalData
 * @param {{ threads: number, where: string }} options
 * @returns {Promise<Session>}
 */
export async function wasmSession(model, externalData, { threads, where }) {
  let ort;
  try {
    ort = await import("onnxruntime-web");
  } catch (err) {
    throw new RosbertaError(`the wasm backend needs the npm package onnxruntime-web, which did not load (${errorText(err)}). ` +
      "Install it: npm install onnxruntime-web", { cause: err });
  }
  ort.env.logLevel = "error";
  if (!wasmConfigured) {
    ort.env.wasm.numThreads = threads;
    wasmConfigured = true;
  }
  try {
    const session = await ort.InferenceSession.create(model, {
      executionProviders: ["wasm"], graphOptimizationLevel: "all", externalData,
    });
    return wrap(ort, session);
  } catch (err) {
    throw loadError(err, where, "onnxruntime-web");
  }
}

let wasmConfigured = false;
