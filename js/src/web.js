// @ts-check
/**
 * The browser's side: artifacts at a URL (`fetch`), the WASM backend, threads when the page is cross-origin
 * isolated (multi-threaded WASM needs SharedArrayBuffer, which needs the COOP/COEP headers).
 * @module
 */
import { wasmSession } from "./engines.js";
import { urlSource } from "./sources.js";

/** @type {import("./encoder.js").Platform} */
export const webPlatform = {
  name: "the browser",
  backends: ["wasm"],
  defaultBackend: "wasm",
  defaultVerify: false,
  open: (location, options) => urlSource(location, options),
  int8Exact: () => true, // WASM: the same instructions on every CPU
  defaultThreads: () => (globalThis.crossOriginIsolated ? Math.max(1, Math.min(navigator.hardwareConcurrency || 1, 8)) : 1),
  async session(_backend, source, rec, options) {
    const model = await source.readBytes(rec.file);
    const externalData = await Promise.all(Object.keys(rec.files).filter((f) => f !== rec.file)
      .map(async (f) => ({ path: f, data: await source.readBytes(f) })));
    return wasmSession(model, externalData, { threads: options.threads, where: new URL(rec.file, source.where).href });
  },
};
