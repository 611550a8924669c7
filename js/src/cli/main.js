// @ts-check
/**
 * `rosberta-onnx` for Node: a thin command line over the Encoder, with the Python CLI's commands, flags and
 * output formats.
 *
 *     rosberta-onnx encode DIR [-i FILE|-] [-o FILE] [--input-format lines|jsonl] [--format npy|jsonl]
 *                          [--task T] [--variant V] [--backend native|wasm] [--threads N] [--batch-size N]
 *     rosberta-onnx info DIR [--json]
 *     rosberta-onnx verify DIR [--variant V ...|all] [--backend native|wasm] [--threads N] [--json FILE]
 *
 * Errors print one line (`error: ...`) with no stack trace; exit status 2 for bad input or usage, 1 for a failed
 * check (e.g. a non-finite output).
 * @module
 */
import { readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";

import { Encoder, RosbertaError, verify } from "../index.js";
import {
  ArtifactError, InputFormatError, InputTooLongError, InputTypeError, TaskError, VariantError,
} from "../errors.js";
import { MANIFEST_NAME, parseManifest } from "../manifest.js";
import { folderSource, int8ExactHere } from "../node.js";
import { jsonlRow, npyBytes, readTexts } from "./format.js";

const USAGE = `usage: rosberta-onnx encode DIR [-i FILE|-] [-o FILE] [--input-format lines|jsonl] [--format npy|jsonl]
                          [--task T] [--variant auto|fp32|fp16|int8|int4] [--backend native|wasm] [--threads N] [--batch-size N]
       rosberta-onnx info DIR [--json]
       rosberta-onnx verify DIR [--variant V ...|all] [--backend native|wasm] [--threads N] [--json FILE]`;

/** An error in how the command was called: exit status 2, like bad input. */
class UsageError extends Error {}

/** Bad input or usage (exit 2) as opposed to a failed check (exit 1), by error class: one table. */
const EXIT_2 = [UsageError, RangeError, ArtifactError, VariantError, TaskError, InputTypeError, InputTooLongError, InputFormatError];

/**
 * @param {string | undefined} value @param {string} flag
 * @returns {number | undefined}
 */
function whole(value, flag) {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${flag} must be a whole number >= 1, got ${JSON.stringify(value)}`);
  return n;
}

/**
 * @param {string | undefined} value @param {string} flag @param {string[]} choices
 */
function oneOf(value, flag, choices) {
  if (value !== undefined && !choices.includes(value)) {
    throw new UsageError(`${flag} ${JSON.stringify(value)} is not one of ${choices.join(", ")}`);
  }
  return value;
}

/**
 * Write `data` to `file` via a temporary sibling and a rename, so readers never see half a file. A device or pipe
 * (`/dev/null`, `/dev/stdout`, a named pipe) is written in place: a rename would put a regular file where it was.
 */
async function writeAtomic(/** @type {string} */ file, /** @type {Uint8Array | string} */ data) {
  const target = await stat(file).catch(() => null);
  if (target && !target.isFile() && !target.isDirectory()) {
    await writeFile(file, data);
    return;
  }
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  try {
    await writeFile(tmp, data);
    await rename(tmp, file);
  } finally {
    await rm(tmp, { force: true });
  }
}

/** @param {string[]} args */
async function encode(args) {
  const { values, positionals } = parseArgs({
    args, allowPositionals: true, strict: true,
    options: {
      input: { type: "string", short: "i", default: "-" }, output: { type: "string", short: "o" },
      "input-format": { type: "string" }, format: { type: "string" }, task: { type: "string" },
      variant: { type: "string", default: "auto" }, backend: { type: "string" }, threads: { type: "string" },
      "batch-size": { type: "string", default: "32" },
    },
  });
  if (positionals.length !== 1) throw new UsageError(`encode takes one artifact folder, got ${positionals.length}\n${USAGE}`);
  const inputFormat = oneOf(values["input-format"], "--input-format", ["lines", "jsonl"]);
  const format = oneOf(values.format, "--format", ["npy", "jsonl"]) ?? ((values.output ?? "").endsWith(".jsonl") ? "jsonl" : "npy");
  const backend = /** @type {"native" | "wasm" | undefined} */ (oneOf(values.backend, "--backend", ["native", "wasm"]));
  const input = values.input ?? "-";
  let raw;
  try {
    raw = input === "-" ? await readStdin() : new Uint8Array(await readFile(input));
  } catch (err) {
    throw new UsageError(`cannot read ${JSON.stringify(input)} (${/** @type {any} */ (err).code ?? err})`);
  }
  const jsonl = inputFormat === "jsonl" || (inputFormat === undefined && input.endsWith(".jsonl"));
  const { texts, replaced } = readTexts(raw, input, jsonl);
  if (replaced) process.stderr.write(`warning: ${replaced} invalid UTF-8 sequence(s) in ${input} were replaced with U+FFFD\n`);
  const enc = await Encoder.load(positionals[0], { variant: values.variant, backend, threads: whole(values.threads, "--threads"),
    onWarning: (message) => process.stderr.write(`warning: ${message}\n`) });
  try {
    const res = await enc.encodeDetailed(texts, { task: values.task ?? null, batchSize: whole(values["batch-size"], "--batch-size") });
    const [n, dim] = res.dims;
    /** @type {Uint8Array | string} */
    const out = format === "npy" ? npyBytes(res.data, n, dim)
      : res.embeddings.map((v, i) => jsonlRow(i, res.tokenCounts[i], res.truncated[i], v)).join("");
    if (!values.output || values.output === "-") await new Promise((done) => process.stdout.write(out, done));
    else await writeAtomic(values.output, out);
    const cut = res.truncated.filter(Boolean).length;
    process.stderr.write(`[encode] ${n} texts -> (${n}, ${dim}) float32 with ${enc.variant} on ${enc.backend}` +
      (cut ? `; ${cut} truncated to ${enc.maxLength} tokens` : "") + "\n");
  } finally {
    await enc.dispose();
  }
}

/** @returns {Promise<Uint8Array>} */
async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return new Uint8Array(Buffer.concat(chunks));
}

/** @param {string[]} args */
async function info(args) {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, strict: true, options: { json: { type: "boolean" } } });
  if (positionals.length !== 1) throw new UsageError(`info takes one artifact folder\n${USAGE}`);
  const source = folderSource(positionals[0]);
  let data;
  try {
    data = JSON.parse(await source.readText(MANIFEST_NAME));
  } catch (err) {
    if (err instanceof RosbertaError) throw err;
    throw new ArtifactError(`${source.where}/${MANIFEST_NAME} is not valid JSON (${err}); re-export the folder`);
  }
  const m = parseManifest(data, `${source.where}/${MANIFEST_NAME}`);
  if (values.json) {
    const variants = Object.fromEntries(Object.values(m.variants).map((v) => [v.name,
      { file: v.file, files: v.files, engine: v.engine, gatePassed: v.gatePassed, sizeBytes: v.sizeBytes }]));
    process.stdout.write(`${JSON.stringify({ model: m.model, tokenizerFile: m.tokenizerFile, variants }, null, 2)}\n`);
    return;
  }
  const f = m.model;
  process.stdout.write(`source: ${m.source.model} @ ${m.source.revision}${m.source.stand_in ? "  [STAND-IN: random weights]" : ""}\n` +
    `model: ${f.architecture}, ${f.numLayers} layers, dim ${f.dim}, max length ${f.maxLength}, pooling ${f.pooling}, ` +
    `normalize ${f.normalize}, tasks ${JSON.stringify(Object.keys(f.prompts))}\n`);
  for (const v of Object.values(m.variants)) {
    const gate = Object.keys(v.gate).length ? `, quality gate ${v.gatePassed ? "pass" : "FAIL"}` : "";
    const runs = v.engine === "onnxruntime" ? "" : ` (runs on ${v.engine}: not available in JavaScript)`;
    process.stdout.write(`${v.name}: ${v.file}, ${Math.round(v.sizeBytes / 1e6)} MB${gate}${runs}\n`);
  }
}

/** @param {number | undefined} x @param {number} digits */
const fixed = (x, digits) => (x === undefined ? "–" : x.toFixed(digits));

/**
 * Re-measure variants against the artifact's reference set here; exit status 1 when one fails.
 * @param {string[]} args
 * @returns {Promise<number>}
 */
async function verifyCommand(args) {
  const { values, positionals } = parseArgs({
    args, allowPositionals: true, strict: true,
    options: { variant: { type: "string", multiple: true }, backend: { type: "string" }, threads: { type: "string" }, json: { type: "string" } },
  });
  if (positionals.length !== 1) throw new UsageError(`verify takes one artifact folder\n${USAGE}`);
  const backend = /** @type {"native" | "wasm" | undefined} */ (oneOf(values.backend, "--backend", ["native", "wasm"]));
  const report = await verify(positionals[0], { variants: values.variant, backend, threads: whole(values.threads, "--threads") });
  const exact = report.backend === "wasm" || int8ExactHere();
  const lines = [
    `CPU: ${os.cpus()[0]?.model ?? "unknown"} (${process.arch}; onnxruntime int8 ${exact ? "exact" : "saturates: no VNNI"} on ${report.backend})`,
    `reference: ${report.reference}`,
    "",
    "| variant | gated on | cos min | cos mean | max abs | here |",
    "|---|---|---:|---:|---:|---|",
  ];
  for (const c of report.checks) {
    const judged = Object.entries(c.thresholds).map(([k, t]) => `${k} ${t}`).join(", ");
    const verdict = c.error ? `FAIL: ${c.error}` : c.passed ? `pass (judged: ${judged})` : `FAIL: ${c.failures.join("; ")} (judged: ${judged})`;
    lines.push(`| ${c.variant} | ${report.exportIsa[c.variant] || "–"} | ${fixed(c.cosMin, 6)} | ${fixed(c.cosMean, 6)} | ` +
      `${c.maxAbs === undefined ? "–" : c.maxAbs.toExponential(2)} | ${verdict} |`);
  }
  lines.push("", `verdict: ${report.passed ? "pass" : "FAIL"} on ${process.arch} (${report.backend})`);
  process.stdout.write(`${lines.join("\n")}\n`);
  if (values.json) await writeAtomic(values.json, `${JSON.stringify(report, null, 1)}\n`);
  return report.passed ? 0 : 1;
}

/**
 * Run the CLI; resolves to the exit status.
 * @param {string[]} argv the arguments after the program name
 * @returns {Promise<number>}
 */
export async function main(argv) {
  const [command, ...rest] = argv;
  try {
    if (command === "encode") await encode(rest);
    else if (command === "info") await info(rest);
    else if (command === "verify") return await verifyCommand(rest);
    else if (command === "-h" || command === "--help") process.stdout.write(`${USAGE}\n`);
    else throw new UsageError(command ? `unknown command ${JSON.stringify(command)}\n${USAGE}` : USAGE);
    return 0;
  } catch (err) {
    const usage = err instanceof TypeError && /** @type {any} */ (err).code?.startsWith?.("ERR_PARSE_ARGS");
    process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
    if (process.env.ROSBERTA_DEBUG && err instanceof Error) process.stderr.write(`${err.stack}\n`);
    return usage || EXIT_2.some((cls) => err instanceof cls) ? 2 : 1;
  }
}
