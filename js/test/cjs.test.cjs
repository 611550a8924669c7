// CommonJS users: require("rosberta-onnx") gives the same API (dist/index.cjs, built by npm run build).
const assert = require("node:assert/strict");
const { test } = require("node:test");

test("require() works and exposes the same names as import", async () => {
  const cjs = require("rosberta-onnx");
  const esm = await import("rosberta-onnx");
  assert.deepEqual(Object.keys(cjs).sort(), Object.keys(esm).sort());
  assert.equal(typeof cjs.Encoder.load, "function");
  assert.ok(new cjs.TaskError("x") instanceof cjs.RosbertaError);
});
