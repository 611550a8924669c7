// The JS command line against the Python one on the same input file, and its errors.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { closeSync, cpSync, linkSync, lstatSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import { NO_FIXTURES, compare, fixtures } from "./helpers.js";

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../bin/rosberta-onnx.js");
const FIX = fixtures();

/** @param {string[]} args @param {string} [input] */
function cli(args, input) {
  return spawnSync(process.execPath, [BIN, ...args], { input, encoding: "utf8", maxBuffer: 1 << 28 });
}

for (const fx of FIX.length ? FIX : [null]) {
  for (const variant of ["fp32", "int8"]) {
    test(`encode ${fx?.name ?? ""} ${variant}: the Python CLI's JSONL for the same file`, { skip: fx ? false : NO_FIXTURES }, () => {
      const want = readFileSync(path.join(fx.dir, `cli-python-${variant}.jsonl`), "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
      const args = ["encode", fx.data.artifact, "-i", path.join(fx.dir, "cli-input.txt"), "--format", "jsonl", "--variant", variant];
      if (fx.data.runs.some((/** @type {any} */ r) => r.task)) args.push("--task", "search_query");
      const r = cli(args);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stderr, /invalid UTF-8 sequence\(s\) in .*cli-input\.txt were replaced with U\+FFFD/);
      const got = r.stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l));
      assert.equal(got.length, want.length);
      for (const [i, row] of got.entries()) {
        assert.deepEqual({ ...row, embedding: 0 }, { ...want[i], embedding: 0 }, `row ${i}`);
        const c = compare(Float32Array.from(row.embedding), Float32Array.from(want[i].embedding), row.embedding.length);
        assert.ok(c.min >= 0.99999, `row ${i}: cos ${c.min}`);
      }
      const pythonBytes = readFileSync(path.join(fx.dir, `cli-python-${variant}.jsonl`), "utf8");
      const same = r.stdout.split("\n").filter((l, i) => l === pythonBytes.split("\n")[i]).length - 1;
      console.log(`# ${fx.name} ${variant}: ${same}/${got.length} JSONL lines byte-identical to the Python CLI's`);
    });
  }
}

test("encode -o a named pipe (as /dev/null or /dev/stdout) writes through it: the pipe is not replaced by a file",
  { skip: FIX.length ? false : NO_FIXTURES, timeout: 120_000 }, async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "rosberta-pipe-"));
    try {
      const fifo = path.join(dir, "vectors.jsonl");
      assert.equal(spawnSync("mkfifo", [fifo]).status, 0, "mkfifo failed");
      const keep = `${fifo}.link`; // a second name for the pipe: were it replaced, the waiting reader is let go
      linkSync(fifo, keep);
      const reading = readFile(fifo, "utf8"); // opening a pipe waits for its writer
      const child = spawn(process.execPath, [BIN, "encode", FIX[0].data.artifact, "-o", fifo, "--format", "jsonl", "--variant", "fp32"]);
      let stderr = "";
      child.stderr.on("data", (d) => { stderr += d; });
      child.stdin.end("one line\n");
      const status = await new Promise((resolve) => child.on("close", resolve));
      const replaced = !lstatSync(fifo).isFIFO();
      if (replaced) closeSync(openSync(keep, "w"));
      assert.ok(!replaced, "the pipe was replaced by a file");
      assert.equal(status, 0, stderr);
      const rows = (await reading).split("\n").filter(Boolean).map((l) => JSON.parse(l));
      assert.equal(rows.length, 1);
      assert.ok(rows[0].embedding.length > 0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

test("errors are one line with no stack trace, exit 2 for bad input", { skip: FIX.length ? false : NO_FIXTURES }, () => {
  const art = FIX[0].data.artifact;
  const hasOpenVino = JSON.parse(readFileSync(path.join(art, "manifest.json"), "utf8")).variants["int8-openvino"];
  for (const [args, input, pattern] of /** @type {[string[], string | undefined, RegExp][]} */ ([
    [["encode", "/no/such/folder"], "x\n", /not an exported rosberta-onnx folder/],
    [["encode", art, "--task", "query"], "x\n", /unknown task "query"/],
    [["encode", art, "--variant", "int8-openvino"], "x\n", hasOpenVino ? /no JavaScript runtime; use variant 'int8'/ : /not in this artifact/],
    [["encode", art, "--threads", "0"], "x\n", /--threads must be a whole number >= 1, got "0"/],
    [["encode", art, "--bogus"], "x\n", /Unknown option '--bogus'/],
    [["encode", art, "--input-format", "jsonl"], '{"text": 1}\n', /-:1: expected an object with a string 'text' field/],
    [["frobnicate"], undefined, /unknown command "frobnicate"/],
  ])) {
    const r = cli(args, input);
    assert.equal(r.status, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, /^error: /);
    assert.match(r.stderr, pattern);
    assert.ok(!/\n\s+at /.test(r.stderr), `stack trace in: ${r.stderr}`);
  }
});

test("info --json: the same facts from manifest.json as the Python runtime reads", { skip: FIX.length ? false : NO_FIXTURES }, () => {
  for (const fx of FIX) {
    const r = cli(["info", fx.data.artifact, "--json"]);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), fx.data.facts);
  }
});

for (const fx of FIX.length ? FIX : [null]) {
  test(`verify ${fx?.name ?? ""}: each variant's verdict and figures are the Python verify's`, { skip: fx ? false : NO_FIXTURES }, () => {
    const r = cli(["verify", fx.data.artifact, "--variant", "all"]);
    const runs = Object.entries(fx.data.verify).filter(([v]) => fx.data.facts.variants[v].engine === "onnxruntime");
    const allPass = runs.every(([, want]) => want.passed); // MiniLM's int4 fails its gate, here as at export
    assert.equal(r.status, allPass ? 0 : 1, r.stdout + r.stderr);
    assert.match(r.stdout, /^CPU: .*\nreference: \d+ texts with PyTorch fp32/);
    assert.match(r.stdout, allPass ? /verdict: pass on / : /verdict: FAIL on /);
    for (const [variant, want] of runs) {
      const row = r.stdout.split("\n").find((l) => l.startsWith(`| ${variant} |`));
      assert.ok(row, `no row for ${variant} in:\n${r.stdout}`);
      const cosMin = Number(row.split("|")[3]);
      assert.ok(Math.abs(cosMin - want.cos_min) < 1e-5, `${variant}: JS cos min ${cosMin}, Python ${want.cos_min}`);
      assert.equal(row.includes("| pass"), want.passed, `${variant}: ${row}`);
    }
  });
}

test("verify fails (exit 1) on a variant whose weights were altered, and refuses a changed reference set (exit 2)",
  { skip: FIX.length ? false : NO_FIXTURES }, () => {
    const src = FIX.find((f) => f.name.includes("minilm"))?.data.artifact ?? FIX[0].data.artifact;
    const dir = mkdtempSync(path.join(tmpdir(), "rosberta-verify-"));
    try {
      cpSync(src, dir, { recursive: true });
      const manifestPath = path.join(dir, "manifest.json");
      const m = JSON.parse(readFileSync(manifestPath, "utf8"));
      const data = Object.keys(m.variants.int8.files).find((f) => f !== m.variants.int8.file) ?? m.variants.int8.file;
      const bytes = readFileSync(path.join(dir, data));
      // the int8 weights and their scales, garbled the way a broken quantiser would: every 7th byte of the middle half
      for (let i = bytes.length >> 2; i < (3 * bytes.length) >> 2; i += 7) bytes[i] ^= 0x5a;
      writeFileSync(path.join(dir, data), bytes);
      m.variants.int8.files[data] = createHash("sha256").update(bytes).digest("hex"); // the checksum agrees: only verify can tell
      writeFileSync(manifestPath, JSON.stringify(m));
      const bad = cli(["verify", dir, "--variant", "int8"]);
      assert.equal(bad.status, 1, bad.stdout + bad.stderr);
      assert.match(bad.stdout, /\| int8 \|.*FAIL/);
      assert.match(bad.stdout, /verdict: FAIL/);
      const ok = cli(["verify", dir, "--variant", "fp32"]);
      assert.equal(ok.status, 0, ok.stdout + ok.stderr);
      const npy = readFileSync(path.join(dir, "reference.npy"));
      npy[npy.length - 1] ^= 1;
      writeFileSync(path.join(dir, "reference.npy"), npy);
      const changed = cli(["verify", dir]);
      assert.equal(changed.status, 2, changed.stdout + changed.stderr);
      assert.match(changed.stderr, /^error: .*reference\.npy does not match its checksum/);
      delete m.reference;
      writeFileSync(manifestPath, JSON.stringify(m));
      const none = cli(["verify", dir]);
      assert.equal(none.status, 2);
      assert.match(none.stderr, /ships no reference set .* re-export/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
