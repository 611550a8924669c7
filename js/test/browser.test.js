// The example page in headless Chromium: loads an artifact from its own origin over WASM (multi-threaded: the
// server sends COOP/COEP) and gives Python's vectors for the same texts.
import assert from "node:assert/strict";
import { test } from "node:test";

import { CHROMIUM, openPage } from "../bench/page.mjs";
import { NO_FIXTURES, compare, fixtures } from "./helpers.js";

const FIX = fixtures();

for (const fx of FIX.length ? FIX : [null]) {
  for (const variant of ["int8", "fp32"]) {
    // WASM int8 is exact on every CPU: Python's exact int8 (int8-avx2 on x86 without VNNI) is its reference
    const want = fx?.data.example[fx?.data.wasm_reference?.[variant] ?? variant];
    // CI sets ROSBERTA_REQUIRE_BROWSER: there a missing Chromium fails the test instead of skipping it
    const noBrowser = !CHROMIUM && !process.env.ROSBERTA_REQUIRE_BROWSER;
    const skip = noBrowser ? "no Chromium: apt-get install chromium (or set CHROMIUM_PATH)" : !fx ? NO_FIXTURES : !want ? `no ${variant}` : false;
    test(`browser page, ${fx?.name ?? "fixtures"} ${variant}: Python's vectors, multi-threaded WASM`, { skip, timeout: 600_000 }, async () => {
      assert.ok(CHROMIUM, "no Chromium at /usr/bin/chromium or CHROMIUM_PATH");
      const got = await openPage({ modelDir: fx.data.artifact, variant });
      assert.equal(got.error, undefined, got.error);
      assert.equal(got.variant, variant);
      assert.ok(got.isolated && got.threads > 1, `cross-origin isolated ${got.isolated}, threads ${got.threads}`);
      const dim = want.query.length;
      const minCos = variant === "int8" ? 0.9995 : 0.99999;
      const c = compare(Float32Array.from([got.query, ...got.documents].flat()), Float32Array.from([want.query, ...want.documents].flat()), dim);
      console.log(`# browser ${fx.name} ${variant}: cos min ${c.min.toFixed(7)}, load ${got.loadMs.toFixed(0)} ms, encode ${got.encodeMs.toFixed(0)} ms, ` +
        `renderer peak ${got.rendererPeakMb?.toFixed(0)} MB`);
      assert.ok(c.min >= minCos, `cos ${c.min}`);
    });
  }
}
