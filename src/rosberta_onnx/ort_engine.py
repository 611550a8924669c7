"""onnxruntime as an engine: threads, spinning, providers, and IO binding for fp16 on CUDA."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import ArtifactError

__all__ = ["OrtSession", "CPU", "CUDA"]

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"


class OrtSession:
    """An ``onnxruntime.InferenceSession`` with this project's settings, answering :class:`.session.Session`.

    Thread-safe for concurrent ``run`` calls, as onnxruntime's session is. ``streams`` is always 1: onnxruntime has
    no shared-weights way to run two halves of a batch at once from Python (a second session doubles the weights).
    """

    streams = 1

    def __init__(self, path: Path, *, providers: list[str], threads: int, spinning: bool, variant: str) -> None:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Spinning keeps idle threads busy-waiting between runs: a little lower latency for back-to-back
        # calls, but it burns CPU on an idle service. Off by default; see the benchmark for the measured cost.
        so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        so.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(str(path), sess_options=so, providers=providers)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf types
            raise ArtifactError(
                f"onnxruntime could not load {str(path)!r}: {exc}. The file is damaged or from an incompatible "
                f"exporter; re-export: rosberta-onnx export MODEL -o {path.parent} --overwrite"
            ) from exc
        # fp16 on CUDA: inputs copied once, the output allocated on the device and copied back once, instead of
        # onnxruntime staging each through host buffers per run
        self._iobinding = variant == "fp16" and CUDA in self._session.get_providers()

    def get_providers(self) -> list[str]:
        return list(self._session.get_providers())

    def run(self, output_names: list[str] | None, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        if not self._iobinding or not output_names:
            return self._session.run(output_names, feeds)
        binding = self._session.io_binding()
        for name, value in feeds.items():
            binding.bind_cpu_input(name, value)
        for name in output_names:
            binding.bind_output(name, "cuda")
        self._session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()
