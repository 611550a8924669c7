"""This project's variants, through the public ``Encoder`` API exactly as a user calls it."""

from __future__ import annotations

import time

from ..harness.base import Skip, System

__all__ = ["SYSTEMS"]


class Rosberta(System):
    group = "ours"
    variant = "fp32"
    corpus_batching = "rosberta-onnx: sorted by token length, ≤32 texts and ≤16384 padded tokens per batch"

    def prepare(self) -> None:
        if self.variant != "auto" and self.variant not in self.ctx.manifest.variants:
            raise Skip(f"the artifact has no {self.variant} variant (it has {sorted(self.ctx.manifest.variants)})")
        import onnxruntime  # noqa: F401  (imported here so load time is the model's, not the library's)

    def load(self) -> None:
        from rosberta_onnx import Encoder

        t0 = time.perf_counter()
        self._enc = Encoder.load(
            self.ctx.artifact, variant=self.variant, threads=self.ctx.threads, **self._load_kwargs()
        )
        self.load_s = time.perf_counter() - t0
        rec = self.ctx.manifest.variant(self._enc.variant)
        self.config = {
            "variant": self.variant if self.variant == self._enc.variant else f"{self.variant} -> {self._enc.variant}",
            "file": rec.file,
            "providers": self._enc.providers,
            "threads": self.ctx.threads,
            "streams": self._enc.streams,
            "spinning": False,
            "verify_checksums": True,
        }
        self.notes.append("load time includes the sha256 check of the model files (Encoder.load's default)")
        if rec.gate and not rec.gate_passed:
            self.notes.append(f"this {self.variant} file FAILED its quality gate at export; `auto` would not pick it")

    def _load_kwargs(self) -> dict:
        return {}

    def encode(self, texts, *, own_batching):
        texts = list(texts)
        if own_batching:
            return self._enc.encode(texts)
        return self._enc.encode(
            texts, batch_size=len(texts), max_batch_tokens=max(16384, len(texts) * self._enc.max_length)
        )


class RosbertaFp32(Rosberta):
    name, label, variant = "rosberta-fp32", "rosberta-onnx fp32", "fp32"


class RosbertaInt8(Rosberta):
    name, label, variant = "rosberta-int8", "rosberta-onnx int8", "int8"


class RosbertaInt8Avx2(Rosberta):
    name, label, variant = "rosberta-int8-avx2", "rosberta-onnx int8-avx2 (unsigned weights)", "int8-avx2"


class RosbertaInt8OpenVino(Rosberta):
    name, label, variant = "rosberta-int8-openvino", "rosberta-onnx int8 on OpenVINO", "int8-openvino"

    def prepare(self) -> None:
        super().prepare()
        from rosberta_onnx.openvino_engine import openvino_available

        if not openvino_available():
            raise Skip("openvino is not installed (pip install 'rosberta-onnx[openvino]')")

    streams = 2  # the server's default (Encoder.load's is 1: the system below)

    def _load_kwargs(self) -> dict:
        opts = self.ctx.manifest.variant(self.variant).engine_options
        self.notes.append(
            f"the int8 variant's weights run by OpenVINO's CPU plugin with {dict(opts)}, as gated; "
            f"batches of 2+ split across its streams (one query is not)"
        )
        return {"streams": self.streams}


class RosbertaInt8OpenVinoOneStream(RosbertaInt8OpenVino):
    """The same engine without batch streams (``Encoder.load``'s default): what the split is worth, measured in the
    same rounds."""

    name, label, streams = "rosberta-int8-openvino-1stream", "rosberta-onnx int8 on OpenVINO, one stream", 1


class RosbertaAuto(Rosberta):
    """What ``Encoder.load(folder)`` gives a user who names no variant: the pick of ``variant="auto"`` here."""

    name, label, variant = "rosberta-auto", "rosberta-onnx auto", "auto"

    def load(self) -> None:
        super().load()
        self.notes.append(f"auto picked {self._enc.variant}: {self._enc.selection.reason}")


class RosbertaInt4(Rosberta):
    name, label, variant = "rosberta-int4", "rosberta-onnx int4 (4-bit weights)", "int4"


class RosbertaFp16(Rosberta):
    name, label, variant = "rosberta-fp16", "rosberta-onnx fp16 (GPU)", "fp16"

    def prepare(self) -> None:
        super().prepare()
        from rosberta_onnx.session import cuda_available

        if not cuda_available():
            raise Skip(
                "no CUDA device (fp16 is the GPU variant; on the CPU execution provider onnxruntime runs it "
                "slower than fp32)"
            )

    def _load_kwargs(self) -> dict:
        self.notes.append("runs on the GPU (CUDA execution provider) while the other systems run on the CPU")
        return {"providers": ["CUDAExecutionProvider", "CPUExecutionProvider"]}


SYSTEMS = (
    RosbertaAuto,
    RosbertaFp32,
    RosbertaInt8,
    RosbertaInt8Avx2,
    RosbertaInt8OpenVino,
    RosbertaInt4,
    RosbertaInt8OpenVinoOneStream,
    RosbertaFp16,
)
