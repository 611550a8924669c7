// @ts-check
/**
 * Where an artifact's files come from: a URL (browsers, and Node for `http(s)://`), read with `fetch`. The Node
 * folder source lives in `node.js`, so a browser bundle never sees `node:` imports.
 * @module
 */
import { ArtifactError, ArtifactNotFoundError } from "./errors.js";
import { errorText } from "./tokenize.js";

/**
 * @typedef {object} Source
 * @property {string} where the folder or URL, for messages
 * @property {(rel: string) => Promise<string>} readText
 * @property {(rel: string) => Promise<Uint8Array>} readBytes
 * @property {(rel: string) => string | null} localPath a file path an engine can open itself, or null
 * @property {(rel: string) => Promise<string>} sha256 hex digest of the file
 */

/** @param {ArrayBuffer | Uint8Array} bytes */
async function subtleSha256(bytes) {
  const digest = await globalThis.crypto.subtle.digest("SHA-256", /** @type {BufferSource} */ (bytes));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * An artifact served over HTTP(S): `base` is the folder's URL. Fetched files are kept, so checking a checksum and
 * creating a session read a file once.
 * @param {string | URL} base
 * @param {{ fetch?: typeof globalThis.fetch }} [options]
 * @returns {Source}
 */
export function urlSource(base, { fetch = globalThis.fetch } = {}) {
  const root = new URL(String(base).endsWith("/") ? String(base) : `${base}/`, globalThis.location?.href);
  /** @type {Map<string, Promise<Uint8Array>>} */
  const cache = new Map();
  /** @param {string} rel @returns {Promise<Uint8Array>} */
  const get = (rel) => {
    if (!cache.has(rel)) {
      cache.set(rel, (async () => {
        const url = new URL(rel, root).href;
        let res;
        try {
          res = await fetch(url);
        } catch (err) {
          throw new ArtifactNotFoundError(`could not fetch ${url} (${errorText(err)}); check the artifact URL and that it is served`, { cause: err });
        }
        if (!res.ok) {
          throw new ArtifactNotFoundError(`${url} answered HTTP ${res.status}: ${root.href} is not an exported rosberta-onnx folder, ` +
            "or the file is not served. Serve the folder exported by: rosberta-onnx export MODEL -o DIR");
        }
        return new Uint8Array(await res.arrayBuffer());
      })());
    }
    return /** @type {Promise<Uint8Array>} */ (cache.get(rel));
  };
  return {
    where: root.href,
    readBytes: get,
    readText: async (rel) => new TextDecoder().decode(await get(rel)),
    localPath: () => null,
    sha256: async (rel) => subtleSha256(await get(rel)),
  };
}

/**
 * Check each file against its sha256 from the manifest.
 * @param {Source} source
 * @param {Record<string, string>} files relative name -> expected sha256
 */
export async function verifyFiles(source, files) {
  for (const [rel, expected] of Object.entries(files)) {
    const actual = await source.sha256(rel);
    if (actual !== expected) {
      throw new ArtifactError(`${source.where}${source.where.endsWith("/") ? "" : "/"}${rel} does not match its checksum in ` +
        `manifest.json (sha256 ${actual.slice(0, 12)}…, expected ${expected.slice(0, 12)}…): the file is corrupt or was replaced. ` +
        "Re-export: rosberta-onnx export MODEL -o DIR --overwrite");
    }
  }
}
