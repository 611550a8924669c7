"""The JavaScript runtime (``js/``) as benchmark systems: Node with onnxruntime-node, and onnxruntime-web's WASM
build in Node, on the same artifact as the Python runtime.

Each system is a long-lived ``node js/bench/worker.mjs`` process driven one JSON line per call, so it alternates
with the other systems round by round in the same run. The worker times each call itself and the runner uses that
time: the pipe between the processes is not part of either runtime's cost.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np

from ..harness.base import Skip, System

__all__ = ["SYSTEMS", "JS_DIR"]

JS_DIR = Path(__file__).resolve().parents[2] / "js"  # the repository's js/ package


class NodeRuntime(System):
    group = "ours"
    variant = "int8"
    backend = "native"
    corpus_batching = "rosberta-onnx (JS): sorted by token length, ≤32 texts and ≤16384 padded tokens per batch"

    def prepare(self) -> None:
        node = shutil.which("node")
        if node is None:
            raise Skip("node is not installed (Node 20+)")
        if not (JS_DIR / "node_modules" / "onnxruntime-node").is_dir():
            raise Skip(f"the JS package's dependencies are not installed: cd {JS_DIR} && npm ci")
        if self.variant not in self.ctx.manifest.variants:
            raise Skip(f"the artifact has no {self.variant} variant")
        self._node = node

    def _call(self, msg: dict) -> dict:
        self._proc.stdin.write(json.dumps(msg, ensure_ascii=False) + "\n")
        self._proc.stdin.flush()
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the node worker exited ({self._proc.poll()}): {self._proc.stderr.read()[-2000:]}")
        reply = json.loads(line)
        if not reply.get("ok"):
            raise RuntimeError(reply.get("error"))
        return reply

    def load(self) -> None:
        self._proc = subprocess.Popen(
            [self._node, str(JS_DIR / "bench" / "worker.mjs")],
            cwd=JS_DIR,
            text=True,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "NODE_NO_WARNINGS": "1"},
        )
        self.worker_pid = self._proc.pid
        t0 = time.perf_counter()
        try:
            got = self._call(
                {
                    "op": "load",
                    "artifact": str(self.ctx.artifact.resolve()),
                    "variant": self.variant,
                    "backend": self.backend,
                    "threads": self.ctx.threads,
                }
            )
        except RuntimeError as exc:
            self.close()
            if "VariantError" in str(exc):  # refused on this backend (e.g. fp32 over the WASM heap): say why
                raise Skip(str(exc).removeprefix("VariantError: ")) from None
            raise
        self.load_s = time.perf_counter() - t0
        self.config = {
            "variant": got["variant"],
            "backend": got["backend"],
            "threads": got["threads"],
            "node": subprocess.run([self._node, "--version"], capture_output=True, text=True).stdout.strip(),
        }
        self.notes.append(
            "times measured inside the Node process per call (the pipe to the benchmark is not counted); "
            "load time includes the sha256 check of the model files"
        )

    def encode(self, texts, *, own_batching):
        texts = list(texts)
        limits = (
            {"batchSize": 32, "maxBatchTokens": 16384}
            if own_batching
            else {"batchSize": len(texts), "maxBatchTokens": max(16384, len(texts) * self.ctx.facts.max_length)}
        )
        got = self._call({"op": "encode", "texts": texts, **limits})
        self.own_time_s = got["seconds"]
        return np.frombuffer(base64.b64decode(got["vectors"]), dtype="<f4").reshape(len(texts), self.ctx.facts.dim)

    def close(self) -> None:
        proc = getattr(self, "_proc", None)
        if proc is not None and proc.poll() is None:
            proc.stdin.close()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


class NodeInt8(NodeRuntime):
    name, label, variant, backend = "node-int8", "rosberta-onnx JS int8 (Node, onnxruntime-node)", "int8", "native"


class NodeFp32(NodeRuntime):
    name, label, variant, backend = "node-fp32", "rosberta-onnx JS fp32 (Node, onnxruntime-node)", "fp32", "native"


class WasmInt8(NodeRuntime):
    name, label, variant, backend = "wasm-int8", "rosberta-onnx JS int8 (WASM, onnxruntime-web in Node)", "int8", "wasm"


class WasmFp32(NodeRuntime):
    name, label, variant, backend = "wasm-fp32", "rosberta-onnx JS fp32 (WASM, onnxruntime-web in Node)", "fp32", "wasm"


class NodeInt4(NodeRuntime):
    name, label, variant, backend = "node-int4", "rosberta-onnx JS int4 (Node, onnxruntime-node)", "int4", "native"


class WasmInt4(NodeRuntime):
    name, label, variant, backend = "wasm-int4", "rosberta-onnx JS int4 (WASM, onnxruntime-web in Node)", "int4", "wasm"


SYSTEMS = (NodeFp32, NodeInt8, WasmFp32, WasmInt8, NodeInt4, WasmInt4)
