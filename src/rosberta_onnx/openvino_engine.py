"""OpenVINO as an optional engine: runs a variant whose manifest record says ``engine: openvino``.

The artifact stays ONNX; OpenVINO's runtime reads the file directly. :class:`OpenVinoSession` answers
the two calls the Encoder makes of an onnxruntime session (``run`` and ``get_providers``), so nothing
above this module knows which engine runs. Install it with ``pip install 'rosberta-onnx[openvino]'``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ArtifactError, VariantError

__all__ = ["OpenVinoSession", "openvino_available", "openvino_version", "split_rows", "PROVIDER"]

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

    With ``streams`` > 1 the model is compiled a second time as that many OpenVINO streams sharing the
    ``threads``, and a batch of two or more rows is split into that many parts run at once, one part per stream.
    One query still gets every thread. On 2 cores, two streams of one thread each ran batches of 2-32 texts
    1-22% faster than one stream of two threads (fewer barriers between the threads; docs/int8.md "Batch
    streams"). It costs memory: each compiled model repacks the weights for its kernels on its first call, so
    once single queries and batches have both run the process holds ~380 MB more at full size (peak 1207 vs
    829 MB, benchmarks/results/full-onnx-streams-memory).

    OpenVINO infer requests are not thread-safe, so each concurrent ``run`` takes its requests from a pool
    (made on demand, kept for reuse); the compiled models are shared, as onnxruntime shares a session.
    """

    def __init__(self, path: Path, *, threads: int, options: Mapping[str, Any], variant: str, streams: int = 1) -> None:
        if not openvino_available():
            raise VariantError(
                f"variant {variant!r} runs on OpenVINO, which is not installed in this environment. Install it with "
                f"pip install 'rosberta-onnx[openvino]', or choose variant='int8' (the same weights on onnxruntime) "
                f"or variant='auto'."
            )
        import openvino as ov

        core = ov.Core()
        self.streams = max(1, min(int(streams), int(threads)))
        try:
            # the exporter writes dynamic batch and sequence axes, which OpenVINO compiles as such
            config = {**options, "INFERENCE_NUM_THREADS": int(threads)}
            model = core.read_model(str(path))
            self._compiled = core.compile_model(model, "CPU", config)
            self._split = (
                core.compile_model(model, "CPU", {**config, "NUM_STREAMS": self.streams}) if self.streams > 1 else None
            )
        except (RuntimeError, ValueError) as exc:  # openvino raises RuntimeError subclasses for bad files/options
            raise ArtifactError(
                f"OpenVINO {ov.get_version()} could not load {str(path)!r} with options {dict(options)}: "
                f"{' '.join(str(exc).split())}. The file "
                f"is damaged or from an incompatible exporter; re-export: rosberta-onnx export MODEL -o {path.parent} "
                f"--overwrite (or use variant='int8')"
            ) from exc
        self._inputs = {i.get_any_name() for i in self._compiled.inputs}
        self._outputs = [o.get_any_name() for o in self._compiled.outputs]
        self._pools: dict[bool, list] = {False: [], True: []}  # requests of the one-stream / split model
        self._lock = threading.Lock()

    def get_providers(self) -> list[str]:
        return [PROVIDER]

    def run(self, output_names: list[str] | None, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        names = list(output_names) if output_names else self._outputs
        feeds = {k: v for k, v in feeds.items() if k in self._inputs}
        rows = len(next(iter(feeds.values())))
        if self._split is None or rows < 2:
            return self._infer(self._compiled, [feeds], names, lambda outs: [o.copy() for o in outs[0]])
        parts = [{k: v[part] for k, v in feeds.items()} for part in split_rows(rows, self.streams)]
        return self._infer(
            self._split, parts, names, lambda outs: [np.concatenate([o[i] for o in outs]) for i in range(len(names))]
        )

    def _infer(
        self,
        compiled: Any,
        parts: list[dict],
        names: list[str],
        collect: Callable[[list[list[np.ndarray]]], list[np.ndarray]],
    ) -> list[np.ndarray]:
        """Run each of ``parts`` on its own request of ``compiled`` at once; ``collect`` turns the outputs
        (per part, per name: views of the requests' buffers) into arrays of their own before the requests
        go back to the pool, where their next inference reuses those buffers."""
        pool = self._pools[compiled is self._split]
        with self._lock:
            reqs = [pool.pop() if pool else compiled.create_infer_request() for _ in parts]
        started = []
        try:
            for req, part in zip(reqs, parts):
                req.start_async(part)
                started.append(req)
            for req in started:
                req.wait()
            return collect([[req.get_tensor(name).data for name in names] for req in reqs])
        finally:
            for req in started:  # after a failure the others may still run: a request goes back to the pool idle
                with contextlib.suppress(Exception):
                    req.wait()
            with self._lock:
                pool.extend(reqs)


def split_rows(rows: int, parts: int) -> list[slice]:
    """``rows`` cut into at most ``parts`` contiguous slices whose sizes differ by at most one."""
    parts = max(1, min(parts, rows))
    bounds = [rows * i // parts for i in range(parts + 1)]
    return [slice(a, b) for a, b in zip(bounds, bounds[1:])]
