"""The PyTorch reference and the peers a user would pick instead of rosberta-onnx.

Each runs as its own documentation shows, with one change applied to all: the same thread count. Any
other departure from a peer's defaults is written into its ``notes`` with the reason.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..harness.base import Context, RawTokenizer, Skip, System, has_module, pool_normalize, sorted_batches

__all__ = ["SYSTEMS"]

ST_BATCH = 32  # sentence-transformers' default encode batch size
FASTEMBED_BATCH = 256  # fastembed's default embed batch size


def _reference(ctx: Context):
    """The transformers model, loaded once and shared by the fp32 and the bf16-autocast systems."""
    if "reference" not in ctx.shared:
        from rosberta_export.reference import Reference

        t0 = time.perf_counter()
        f = ctx.facts
        ref = Reference(
            ctx.need_reference(), pooling=f.pooling, normalize=True, max_length=f.max_length, threads=ctx.threads
        )
        ctx.shared["reference"] = (ref, time.perf_counter() - t0)
    return ctx.shared["reference"]


class TorchFp32(System):
    name, label, group = "torch-fp32", "transformers fp32 (PyTorch reference)", "reference"
    corpus_batching = "32 texts per batch in input order, padded to the longest (the model card's loop)"
    dtype_name = None

    def prepare(self) -> None:
        self.ctx.need_reference()
        self.ctx.need_torch()
        import torch

        torch.set_num_threads(self.ctx.threads)

    def load(self) -> None:
        import torch

        shared = "reference" in self.ctx.shared
        self._ref, self.load_s = _reference(self.ctx)
        self._dtype = getattr(torch, self.dtype_name) if self.dtype_name else None
        self.config = {
            "torch_threads": torch.get_num_threads(),
            "eager": True,
            "attn_implementation": getattr(self._ref.model.config, "_attn_implementation", "?"),
            "autocast": self.dtype_name,
        }
        if shared:
            self.notes.append(
                "shares the fp32 model object with torch-fp32 (autocast needs no second copy); "
                "its load time is that shared load"
            )

    def encode(self, texts, *, own_batching):
        return self._ref.embed(list(texts), batch_size=32 if own_batching else len(texts), dtype=self._dtype)


class TorchBf16(TorchFp32):
    name, label = "torch-bf16", "torch bf16 autocast"
    dtype_name = "bfloat16"


class StTorch(System):
    name, label = "st-torch", "sentence-transformers (torch)"
    corpus_batching = "sentence-transformers: sorted by length, 32 per batch"
    backend = "torch"

    def prepare(self) -> None:
        self.ctx.need_reference()
        self.ctx.need_torch()
        if not has_module("sentence_transformers"):
            raise Skip("sentence-transformers is not installed (pip install 'rosberta-onnx[bench]')")
        import sentence_transformers  # noqa: F401
        import torch

        torch.set_num_threads(self.ctx.threads)

    def load(self) -> None:
        from sentence_transformers import SentenceTransformer

        t0 = time.perf_counter()
        self._m = SentenceTransformer(str(self.ctx.reference), device="cpu", backend=self.backend)
        self.load_s = time.perf_counter() - t0
        self.config = {"backend": self.backend, "max_seq_length": self._m.max_seq_length, "device": "cpu"}

    def encode(self, texts, *, own_batching):
        return self._m.encode(
            list(texts),
            batch_size=ST_BATCH if own_batching else len(texts),
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )


class StOnnx(StTorch):
    name, label = "st-onnx", "sentence-transformers (ONNX backend)"
    backend = "onnx"

    def prepare(self) -> None:
        super().prepare()
        if not has_module("optimum"):
            # Try it anyway, so the reason below is the library's own words, not a guess.
            from sentence_transformers import SentenceTransformer

            try:
                SentenceTransformer(str(self.ctx.reference), device="cpu", backend="onnx")
            except Exception as exc:  # sentence-transformers raises a bare Exception here
                raise Skip(
                    f'SentenceTransformer(..., backend="onnx") failed: {exc} (it exports through optimum, '
                    f"which is not part of the bench extra)"
                ) from None

    def load(self) -> None:
        super().load()
        self.notes.append(
            "exported to ONNX by optimum at load time, as sentence-transformers does for a folder "
            "without onnx/model.onnx (included in its load time)"
        )


class OpenVino(System):
    label = ""
    corpus_batching = "sorted by length, 32 per batch (as sentence-transformers' OpenVINO backend would)"
    precision = "f32"

    def prepare(self) -> None:
        if not has_module("openvino"):
            raise Skip("openvino is not installed (pip install 'rosberta-onnx[bench]')")
        import openvino  # noqa: F401

    def _read(self, core):
        """Our fused model.onnx; OpenVINO may not read its onnxruntime contrib ops, then the plain export."""
        fused = self.ctx.artifact / self.ctx.manifest.variant("fp32").file
        try:
            return core.read_model(str(fused)), fused.name
        except Exception as exc:  # OpenVINO raises its own GeneralFailure/OpConversionFailure
            plain = self.ctx.plain_onnx()
            self.notes.append(
                f"runs the un-optimised export: OpenVINO could not read {fused.name} "
                f"({type(exc).__name__}: {str(exc).splitlines()[0][:160]})"
            )
            return core.read_model(str(plain)), "plain torch.onnx export"

    def _model(self, core):
        """(openvino.Model with dynamic batch and sequence axes, where it came from)."""
        import openvino as ov

        model, source = self._read(core)
        if not all(inp.get_partial_shape().is_dynamic for inp in model.inputs):
            model.reshape({inp.get_any_name(): ov.PartialShape([-1, -1]) for inp in model.inputs})
        return model, source

    def load(self) -> None:
        import openvino as ov

        t0 = time.perf_counter()
        core = ov.Core()
        model, source = self._model(core)
        cfg = {"INFERENCE_PRECISION_HINT": self.precision, "INFERENCE_NUM_THREADS": self.ctx.threads}
        self._compiled = core.compile_model(model, "CPU", cfg)
        self._req = self._compiled.create_infer_request()
        self._tok = RawTokenizer(self.ctx)
        self._inputs = [i.get_any_name() for i in self._compiled.inputs]
        self.load_s = time.perf_counter() - t0
        hint = self._compiled.get_property("INFERENCE_PRECISION_HINT")
        actual = hint.to_string() if hasattr(hint, "to_string") else str(hint)  # an ov.Type: "f32", "bf16"
        self.config = {
            "model": source,
            "INFERENCE_PRECISION_HINT": actual,
            "INFERENCE_NUM_THREADS": self.ctx.threads,
            "PERFORMANCE_HINT": str(self._compiled.get_property("PERFORMANCE_HINT")),
        }
        if self.precision == "bf16" and actual != "bf16":
            self.notes.append(f"asked for bf16, OpenVINO runs {actual}: this CPU has no bf16 support")
        self.notes.append(
            "tokenised with `tokenizers` from the artifact's tokenizer.json (OpenVINO has no tokenizer "
            "of its own here); CLS pooling and L2 in numpy"
        )

    def _run(self, texts: list[str]) -> np.ndarray:
        ids, mask = self._tok(texts)
        feeds = {"input_ids": ids, "attention_mask": mask}
        self._req.infer({k: v for k, v in feeds.items() if k in self._inputs})
        hidden = self._req.get_output_tensor(0).data
        return pool_normalize(hidden, mask, pooling=self.ctx.facts.pooling)

    def encode(self, texts, *, own_batching):
        texts = list(texts)
        if not own_batching:
            return self._run(texts)
        out = np.empty((len(texts), self.ctx.facts.dim), np.float32)
        for batch in sorted_batches(self._tok.lengths(texts), ST_BATCH):
            out[batch] = self._run([texts[i] for i in batch])
        return out


class OpenVinoFp32(OpenVino):
    name, label, precision = "openvino-fp32", "OpenVINO fp32", "f32"


class OpenVinoBf16(OpenVino):
    name, label, precision = "openvino-bf16", "OpenVINO bf16 hint", "bf16"


class OpenVinoInt8(OpenVino):
    """NNCF-quantised once in ``prepare`` (outside every timing) and saved as OpenVINO IR, as a user would ship
    it; ``load`` reads and compiles that IR, so load time and memory are those of the shipped model."""

    name, label, precision = "openvino-int8", "OpenVINO int8 (NNCF PTQ)", "f32"

    def prepare(self) -> None:
        super().prepare()
        if not has_module("nncf"):
            raise Skip("nncf is not installed (pip install 'rosberta-onnx[bench]')")
        import tempfile

        import openvino as ov

        from .nncf_int8 import RECIPE, nncf_quantize

        fp32, source = super()._model(ov.Core())
        self.ctx.log("quantising the fp32 model with NNCF (OpenVINO int8 peer)")
        quantised, seconds = nncf_quantize(fp32, RawTokenizer(self.ctx))
        self._dir = tempfile.TemporaryDirectory(prefix="rosberta-bench-ov-int8-")  # removed with this object
        self._ir = Path(self._dir.name) / "model.xml"
        ov.save_model(quantised, str(self._ir), compress_to_fp16=False)  # int8 weights stored int8, the rest fp32
        del quantised, fp32
        self._source = f"{source} quantised by NNCF, saved as OpenVINO IR"
        self.notes.append(
            f"{RECIPE}; quantised in {seconds:.0f} s before the run and saved as IR (not in its load "
            f"time); its peak-RSS process ran NNCF first and keeps what that pass left allocated, so "
            f"compare its peak over imports (memory.peak_over_imports_mb in results.json); "
            f"INFERENCE_PRECISION_HINT f32 keeps what NNCF left un-quantised in fp32"
        )

    @property
    def ir_path(self) -> Path:
        """The quantised model ``prepare`` saved (OpenVINO IR), for studies that compile it themselves."""
        return self._ir

    def _model(self, core):
        return core.read_model(str(self._ir)), self._source  # saved from a model with dynamic inputs (super()._model)


class OrtPlain(System):
    name, label = "ort-plain", "onnxruntime, plain export (fastembed-style)"
    corpus_batching = f"{FASTEMBED_BATCH} texts per batch in input order (fastembed's default), padded to the longest"

    def prepare(self) -> None:
        self.ctx.plain_onnx()  # raises Skip without a reference/torch; built outside any timing
        import onnxruntime  # noqa: F401

    def load(self) -> None:
        import onnxruntime as ort

        t0 = time.perf_counter()
        so = ort.SessionOptions()
        so.intra_op_num_threads = self.ctx.threads
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Non-default: onnxruntime's idle pool spins after each run and would steal CPU from the next
        # system in the alternating rounds. rosberta-onnx sessions run with spinning off too.
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.log_severity_level = 3
        self._sess = ort.InferenceSession(
            str(self.ctx.plain_onnx()), sess_options=so, providers=["CPUExecutionProvider"]
        )
        self._tok = RawTokenizer(self.ctx)
        self.load_s = time.perf_counter() - t0
        self.config = {
            "intra_op_num_threads": self.ctx.threads,
            "graph_optimization_level": "ORT_ENABLE_ALL",
            "allow_spinning": 0,
            "model": "torch.onnx export, no offline fusions",
        }
        if self.ctx.plain_export_s is not None:
            self.config["export_s"] = round(self.ctx.plain_export_s, 1)
        self.notes.append(
            "thread spinning off (onnxruntime's default is on): an idle spinning pool would steal CPU "
            "from the next system in the alternating rounds"
        )

    def _run(self, texts: list[str]) -> np.ndarray:
        ids, mask = self._tok(texts)
        hidden = self._sess.run(None, {"input_ids": ids, "attention_mask": mask})[0]
        return pool_normalize(hidden, mask, pooling=self.ctx.facts.pooling)

    def encode(self, texts, *, own_batching):
        texts = list(texts)
        size = FASTEMBED_BATCH if own_batching else len(texts)
        return np.concatenate([self._run(texts[i : i + size]) for i in range(0, len(texts), size)])


SYSTEMS = (TorchFp32, TorchBf16, StTorch, StOnnx, OpenVinoFp32, OpenVinoBf16, OpenVinoInt8, OrtPlain)
