"""The engines that run an ONNX file, behind one small :class:`Session` protocol, and how a session is opened.

A variant's manifest record names its engine (``onnxruntime``, or ``openvino`` for ``int8-openvino``) and the
options it was gated with; :func:`open_session` builds the matching session, and nothing above this module knows
which engine runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from .errors import VariantError
from .hardware import physical_cores
from .manifest import VariantRecord
from .openvino_engine import OpenVinoSession, openvino_available, openvino_version
from .ort_engine import CPU, CUDA, OrtSession

__all__ = [
    "Session",
    "CPU",
    "CUDA",
    "open_session",
    "resolve_providers",
    "cuda_available",
    "engine_available",
    "engine_versions",
    "DEFAULT_STREAMS",
]


class Session(Protocol):
    """What the Encoder asks of an engine."""

    streams: int  # parts a batch of 2+ rows is split into and run at once (1: not split)

    def run(self, output_names: list[str] | None, feeds: dict[str, np.ndarray]) -> list[np.ndarray]: ...

    def get_providers(self) -> list[str]: ...


def cuda_available() -> bool:
    import onnxruntime as ort

    return CUDA in ort.get_available_providers()


def resolve_providers(providers: list[str] | None) -> list[str]:
    """onnxruntime execution providers: CUDA first where this build has it, else the CPU; named ones checked."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if providers is None:
        return [CUDA, CPU] if CUDA in available else [CPU]
    missing = [p for p in providers if p not in available]
    if missing:
        raise VariantError(
            f"execution provider(s) {missing} are not available in this onnxruntime build (available: {available}). "
            + ("For CUDA: pip uninstall -y onnxruntime && pip install 'rosberta-onnx[gpu]'." if CUDA in missing else "")
        )
    return list(providers)


def engine_available(record: VariantRecord) -> bool:
    return record.engine == "onnxruntime" or (record.engine == "openvino" and openvino_available())


def engine_versions() -> dict[str, str]:
    """The installed engines' versions (what a timing or a result depends on)."""
    import onnxruntime as ort

    return {"onnxruntime": ort.__version__, "openvino": openvino_version()}


# Batch streams for the OpenVINO engine when the caller names none: one, the lean choice. A second stream compiles
# the model a second time (~320-380 MB more at full size) for a few percent more throughput on batches measured on
# 2 cores and none for a single query (see .openvino_engine.OpenVinoSession); a server, whose concurrent clients
# make the batches, asks for two itself. The engine caps any count at the threads.
DEFAULT_STREAMS = 1


def open_session(
    path: Path,
    record: VariantRecord,
    *,
    providers: list[str],
    threads: int | None = None,
    spinning: bool = False,
    streams: int = 1,
) -> Session:
    """The session for ``path``, by the engine its ``record`` names. ``streams`` is the OpenVINO engine's batch
    streams, already resolved by the caller (the Encoder's default is :data:`DEFAULT_STREAMS`); onnxruntime ignores
    it. ``spinning`` is an onnxruntime thread-pool setting; OpenVINO runs its own pool and has no such switch."""
    threads = threads if threads is not None else physical_cores()
    if record.engine == "openvino":
        return OpenVinoSession(
            path, threads=threads, options=record.engine_options, variant=record.name, streams=streams
        )
    return OrtSession(path, providers=providers, threads=threads, spinning=spinning, variant=record.name)
