// Bad input and broken artifacts: each a clear error, never a crash or a NaN.
import assert from "node:assert/strict";
import { cpSync, mkdtempSync, rmSync, writeFileSync, readFileSync, unlinkSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, test } from "node:test";

import { ArtifactError, ArtifactNotFoundError, Encoder, InputTooLongError, InputTypeError, TaskError } from "rosberta-onnx";

import { NO_FIXTURES, fixtures } from "./helpers.js";

const FIX = fixtures();
const skip = FIX.length ? false : NO_FIXTURES;
const tmp = mkdtempSync(path.join(os.tmpdir(), "rosberta-js-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** A copy of the first fixture's artifact, changed by `edit`. */
function broken(/** @type {string} */ name, /** @type {(dir: string) => void} */ edit) {
  const dir = path.join(tmp, name);
  cpSync(FIX[0].data.artifact, dir, { recursive: true });
  edit(dir);
  return dir;
}

test("bad texts and tasks: errors that name the index, the type and the valid tasks", { skip }, async () => {
  const enc = await Encoder.load(FIX[0].data.artifact, { variant: "fp32" });
  try {
    await assert.rejects(enc.encode(/** @type {any} */ (["ok", 7])), (err) => err instanceof InputTypeError && /texts\[1\] is number/.test(err.message));
    await assert.rejects(enc.encode(["x"], { task: "nope" }), TaskError);
    const long = "слово word ".repeat(enc.maxLength);
    await assert.rejects(enc.encode(["short", long], { truncate: false }),
      (err) => err instanceof InputTooLongError && /texts\[1\] has \d+ tokens, more than this model's max length/.test(err.message));
    await assert.rejects(enc.encode(["x"], { batchSize: 0 }), RangeError);
    const odd = await enc.encode(["", "   \t\n", "\x00", "a\ud800", "👨‍👩‍👧‍👦".repeat(50)]);
    for (const v of odd) assert.ok(v.every(Number.isFinite) && Math.abs(Math.hypot(...v) - 1) < 1e-5);
  } finally {
    await enc.dispose();
  }
  await assert.rejects(Encoder.load(FIX[0].data.artifact, { threads: 0 }), /threads must be a whole number >= 1/);
  await assert.rejects(Encoder.load(FIX[0].data.artifact, { backend: /** @type {any} */ ("gpu") }), /backend "gpu" is not available/);
});

test("a missing folder, a missing file, a corrupt file: one error naming the file and the fix", { skip }, async () => {
  await assert.rejects(Encoder.load(path.join(tmp, "nowhere")), (err) => err instanceof ArtifactNotFoundError &&
    /not an exported rosberta-onnx folder.*rosberta-onnx export MODEL -o/.test(err.message));
  const noTok = broken("no-tokenizer", (d) => unlinkSync(path.join(d, "tokenizer.json")));
  await assert.rejects(Encoder.load(noTok, { variant: "fp32" }), (err) => err instanceof ArtifactNotFoundError && /tokenizer\.json.*is missing/.test(err.message));
  const flipped = broken("checksum", (d) => {
    const f = path.join(d, "model.onnx");
    const bytes = readFileSync(f);
    bytes[bytes.length - 1] ^= 1;
    writeFileSync(f, bytes);
  });
  await assert.rejects(Encoder.load(flipped, { variant: "fp32" }), (err) => err instanceof ArtifactError &&
    /model\.onnx does not match its checksum in manifest\.json .*Re-export/.test(err.message));
  // with verify off, the engine reads the damaged file: still an ArtifactError, not a crash
  const garbage = broken("garbage", (d) => writeFileSync(path.join(d, "model.onnx"), "not onnx"));
  await assert.rejects(Encoder.load(garbage, { variant: "fp32", verify: false }), (err) => err instanceof ArtifactError &&
    /onnxruntime-node could not load/.test(err.message));
  const badJson = broken("manifest", (d) => writeFileSync(path.join(d, "manifest.json"), "{"));
  await assert.rejects(Encoder.load(badJson), (err) => err instanceof ArtifactError && /is not valid JSON/.test(err.message));
});
