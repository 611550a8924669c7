"""OpenVINO as an optional engine: runs a variant whose manifest record says ``engine: openvino``.

The artifact stays ONNX; OpenVINO's runtime reads the file directly. :class:`OpenVinoSession` answers
the two calls the Encoder makes of an onnxruntime session (``run`` and ``get_providers``), so nothing
above this module knows which engine runs. Install it with ``pip install 'rosberta-onnx[openvino]'``.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ArtifactError, VariantError

__all__ = ["OpenVinoSession", "openvino_available", "openvino_version", "PROVIDER"]

PROVIDER = "OpenVINO:CPU"  # what get_providers() reports, so Encoder.providers says which engine runs


def openvino_available() -> bool:
    return importlib.util.find_spec("openvino") is not None


def openvino_version() -> str:
    if not openvino_available():
        return ""
    import openvino as ov

    return ov.get_version()


class OpenVinoSession:
    """A compiled OpenVINO model behind onnxruntime's ``run(output_names, feeds)``.

    OpenVINO infer requests are not thread-safe, so each concurrent ``run`` takes one from a pool (made
    on demand, kept for reuse); the compiled model itself is shared, as onnxruntime shares a session.
    """

    def __init__(self, path: Path, *, threads: int, options: Mapping[str, Any], variant: str) -> None:
        if not openvino_available():
            raise VariantError(
                f"variant {variant!r} runs on OpenVINO, which is not installed in this environment. Install it with "
                f"pip install 'rosberta-onnx[openvino]', or choose variant='int8' (the same weights on onnxruntime) "
                f"or variant='auto'."
            )
        import openvino as ov

        core = ov.Core()
        try:
            # the exporter writes dynamic batch and sequence axes, which OpenVINO compiles as such
            config = {**options, "INFERENCE_NUM_THREADS": int(threads)}
            self._compiled = core.compile_model(str(path), "CPU", config)
        except (RuntimeError, ValueError) as exc:  # openvino raises RuntimeError subclasses for bad files/options
            raise ArtifactError(
                f"OpenVINO {ov.get_version()} could not load {str(path)!r} with options {dict(options)}: "
                f"{' '.join(str(exc).split())}. The file "
                f"is damaged or from an incompatible exporter; re-export: rosberta-onnx export MODEL -o {path.parent} "
                f"--overwrite (or use variant='int8')"
            ) from exc
        self._inputs = {i.get_any_name() for i in self._compiled.inputs}
        self._outputs = [o.get_any_name() for o in self._compiled.outputs]
        self._pool: list = []
        self._lock = threading.Lock()

    def get_providers(self) -> list[str]:
        return [PROVIDER]

    def run(self, output_names, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        names = list(output_names) if output_names else self._outputs
        with self._lock:
            req = self._pool.pop() if self._pool else self._compiled.create_infer_request()
        try:
            req.infer({k: v for k, v in feeds.items() if k in self._inputs})
            # copies: the request's output buffers are reused by its next inference
            return [req.get_tensor(name).data.copy() for name in names]
        finally:
            with self._lock:
                self._pool.append(req)
