// @ts-check
/**
 * Node's side: artifact folders on disk, streamed sha256, physical-core count, and the native backend.
 * @module
 */
import { createHash } from "node:crypto";
import { createReadStream, readFileSync } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import os from "node:os";
import path from "node:path";

import { ArtifactError, ArtifactNotFoundError } from "./errors.js";
import { nativeSession, wasmSession } from "./engines.js";
import { urlSource } from "./sources.js";
import { errorText } from "./tokenize.js";

/**
 * @param {string} folder
 * @returns {import("./sources.js").Source}
 */
export function folderSource(folder) {
  const root = path.resolve(folder);
  /** @param {string} rel */
  const full = (rel) => path.join(root, rel);
  /** @param {string} rel @param {unknown} err */
  const missing = (rel, err) => {
    const code = /** @type {any} */ (err)?.code;
    if (code === "ENOENT") {
      return rel === "manifest.json"
        ? new ArtifactNotFoundError(`${JSON.stringify(full(rel))} not found: ${JSON.stringify(root)} is not an exported rosberta-onnx folder ` +
          `(or its export did not finish). Export it with: rosberta-onnx export MODEL -o ${root}`)
        : new ArtifactNotFoundError(`${JSON.stringify(full(rel))} is missing from the model folder. Re-export: rosberta-onnx export MODEL -o ${root} --overwrite`);
    }
    return new ArtifactError(`cannot read ${JSON.stringify(full(rel))} (${errorText(err)})`, { cause: err });
  };
  return {
    where: root,
    async readText(rel) {
      try {
        return await readFile(full(rel), "utf8");
      } catch (err) {
        throw missing(rel, err);
      }
    },
    async readBytes(rel) {
      try {
        return new Uint8Array(await readFile(full(rel)));
      } catch (err) {
        throw missing(rel, err);
      }
    },
    localPath: full,
    async sha256(rel) {
      try {
        await stat(full(rel));
      } catch (err) {
        throw missing(rel, err);
      }
      const hash = createHash("sha256");
      for await (const chunk of createReadStream(full(rel), { highWaterMark: 1 << 20 })) hash.update(chunk);
      return hash.digest("hex");
    },
  };
}

/**
 * Physical cores this process may use (hyper-threads share one core's int8 units), as the Python runtime counts
 * them; logical CPUs where the topology is not readable.
 * @returns {number}
 */
export function physicalCores() {
  const logical = os.availableParallelism();
  const cores = new Set();
  for (let c = 0; c < logical; c++) {
    try {
      const base = `/sys/devices/system/cpu/cpu${c}/topology`;
      cores.add(`${readFileSync(`${base}/physical_package_id`, "utf8").trim()}:${readFileSync(`${base}/core_id`, "utf8").trim()}`);
    } catch {
      cores.add(`?:${c}`);
    }
  }
  return Math.max(1, Math.min(cores.size, logical));
}

/** x86 flags with which onnxruntime's U8xS8 int8 kernel multiplies exactly (no 16-bit intermediate). */
const EXACT_INT8_FLAGS = ["avx512_vnni", "avx_vnni", "amx_int8"];

/**
 * Whether onnxruntime's U8xS8 int8 products are exact on this CPU: every ARM64 CPU; on x86 only with VNNI or AMX,
 * read from /proc/cpuinfo's flags (Linux). Where the flags cannot be read the answer is no, which makes `auto`
 * take int8-avx2, exact everywhere (slower with VNNI: `variant: "int8"` there).
 * @param {string} [cpuinfo] the text of /proc/cpuinfo (default: read it)
 * @param {string} [arch] default process.arch
 * @returns {boolean}
 */
export function int8ExactHere(cpuinfo, arch = process.arch) {
  if (arch === "arm64") return true;
  if (arch !== "x64") return false;
  let text = cpuinfo;
  if (text === undefined) {
    try {
      text = readFileSync("/proc/cpuinfo", "utf8");
    } catch {
      return false;
    }
  }
  const flags = new Set((/^flags\s*:(.*)$/m.exec(text)?.[1] ?? "").trim().split(/\s+/));
  return EXACT_INT8_FLAGS.some((f) => flags.has(f));
}

/** @type {import("./encoder.js").Platform} */
export const nodePlatform = {
  name: "node",
  backends: ["native", "wasm"],
  defaultBackend: "native",
  defaultVerify: true,
  open: (location, options) => (/^https?:\/\//i.test(String(location)) ? urlSource(location, options) : folderSource(String(location))),
  defaultThreads: physicalCores,
  int8Exact: (backend) => backend === "wasm" || int8ExactHere(),
  async session(backend, source, rec, options) {
    if (backend === "native") {
      const p = source.localPath(rec.file);
      if (p !== null) return nativeSession(p, options);
      // an artifact at a URL: the native engine takes the bytes, with external data written next to nothing on disk
      throw new ArtifactError(`the native backend opens artifact folders on disk; ${source.where} is a URL. Download the folder, or use backend: 'wasm'`);
    }
    const model = await source.readBytes(rec.file);
    const externalData = await Promise.all(Object.keys(rec.files).filter((f) => f !== rec.file)
      .map(async (f) => ({ path: f, data: await source.readBytes(f) })));
    return wasmSession(model, externalData, { threads: options.threads, where: `${source.where}/${rec.file}` });
  },
};
