// @ts-check
/**
 * rosberta-onnx for browsers: the same Encoder, loading an artifact from a URL and running it on onnxruntime-web
 * (WASM). Serve the page with `Cross-Origin-Opener-Policy: same-origin` and `Cross-Origin-Embedder-Policy:
 * require-corp` for multi-threaded WASM (examples/browser/serve.mjs does).
 * @module
 */
import { setDefaultPlatform } from "./encoder.js";
import { webPlatform } from "./web.js";

setDefaultPlatform(webPlatform);

export * from "./exports.js";

