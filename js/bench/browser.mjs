#!/usr/bin/env node
// Peak memory of the browser tab running an artifact: the example page in headless Chromium (multi-threaded WASM),
// one JSON line per variant with the load and encode times and the renderer process's peak RSS (VmHWM).
//
//     node bench/browser.mjs MODEL_DIR [--variants int8,fp32]
import { parseArgs } from "node:util";

import { CHROMIUM, openPage } from "./page.mjs";

const { values, positionals } = parseArgs({ allowPositionals: true, options: { variants: { type: "string", default: "int8" } } });
if (positionals.length !== 1 || !CHROMIUM) {
  process.stderr.write(`usage: node bench/browser.mjs MODEL_DIR [--variants int8,fp32]${CHROMIUM ? "" : " (needs Chromium)"}\n`);
  process.exit(2);
}
for (const variant of values.variants.split(",")) {
  const got = await openPage({ modelDir: positionals[0], variant, timeoutMs: 900_000 });
  const row = got.error ? { variant, error: got.error } : {
    variant, threads: got.threads, isolated: got.isolated, load_s: got.loadMs / 1e3, encode_5_texts_s: got.encodeMs / 1e3,
    renderer_peak_mb: got.rendererPeakMb,
  };
  process.stdout.write(`${JSON.stringify({ model: positionals[0], chromium: CHROMIUM, ...row })}\n`);
}
