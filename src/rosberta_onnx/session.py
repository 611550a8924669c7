"""Building the session that runs a variant (onnxruntime, or OpenVINO where the manifest says so):
providers, threads, spinning, and which variant ``auto`` picks."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import ArtifactError, VariantError
from .manifest import INT8_VARIANTS, Manifest, VARIANTS, VariantRecord
from .openvino_engine import OpenVinoSession, openvino_available

__all__ = ["physical_cores", "resolve_providers", "choose_variant", "auto_candidates", "make_session", "cuda_available",
           "engine_available", "default_streams"]

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"


def physical_cores() -> int:
    """Physical cores this process may run on (hyper-threads share one core's int8/fp32 units)."""
    try:
        cpus = os.sched_getaffinity(0)
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, (os.cpu_count() or 2) // 2)
    cores = set()
    for c in cpus:
        base = Path(f"/sys/devices/system/cpu/cpu{c}/topology")
        try:
            cores.add((base.joinpath("physical_package_id").read_text().strip(), base.joinpath("core_id").read_text().strip()))
        except OSError:
            cores.add(("?", str(c)))
    return max(1, len(cores))


def cuda_available() -> bool:
    import onnxruntime as ort

    return CUDA in ort.get_available_providers()


def resolve_providers(providers: list[str] | None) -> list[str]:
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


def auto_candidates(manifest: Manifest, providers: list[str]) -> list[str]:
    """What ``auto`` may pick here, best first: fp16 on a CUDA device; on the CPU every int8 variant that
    passed its quality gate and whose engine is installed (onnxruntime's before OpenVINO's: the default
    engine, unless a measurement says otherwise -- see :func:`.hardware.fastest_variant`), then fp32."""
    if CUDA in providers and "fp16" in manifest.variants:
        return ["fp16"]
    out = []
    if CUDA not in providers:
        out = [v for v in INT8_VARIANTS if v in manifest.variants and manifest.variants[v].gate_passed
               and engine_available(manifest.variants[v])]
    return out + ["fp32"] * ("fp32" in manifest.variants)


def choose_variant(manifest: Manifest, requested: str, providers: list[str], *, allow_cpu_fp16: bool = False) -> str:
    """``auto``: the first of :func:`auto_candidates`; else the variant named, if it may run here."""
    on_cuda = CUDA in providers
    if requested == "auto":
        candidates = auto_candidates(manifest, providers)
        if candidates:
            return candidates[0]
        raise VariantError(
            f"variant='auto' found nothing it may use here: the artifact has {sorted(manifest.variants)}, "
            f"providers are {providers}. Export fp32 too, or name a variant explicitly."
        )
    if requested not in VARIANTS:
        raise VariantError(f"unknown variant {requested!r}; choose one of {('auto',) + VARIANTS}")
    manifest.variant(requested)  # raises if absent
    if requested == "fp16" and not on_cuda and not allow_cpu_fp16:
        raise VariantError(
            "variant 'fp16' is a GPU variant: on the CPU execution provider onnxruntime runs it by casting around "
            "fp16 ops, slower than fp32. Use variant='fp32' or 'int8' on CPU, install the gpu extra for CUDA, "
            "or pass allow_cpu_fp16=True to run it anyway (e.g. to check its correctness)."
        )
    return requested


def default_streams(threads: int) -> int:
    """Batch streams for the OpenVINO engine when the caller names none: two where there are two threads to
    share (measured faster for batches on 2 cores; see :class:`.openvino_engine.OpenVinoSession`), else one."""
    return 2 if threads >= 2 else 1


def make_session(path: Path, *, providers: list[str], threads: int | None, spinning: bool,
                 record: VariantRecord | None = None, streams: int = 1):
    """The session for ``path``; ``record`` (its manifest entry) says which engine runs it and how. ``streams``
    is the OpenVINO engine's batch streams, already resolved by the caller (the Encoder's default is
    :func:`default_streams`); onnxruntime ignores it."""
    if record is not None and record.engine == "openvino":
        # ``spinning`` is an onnxruntime thread-pool setting; OpenVINO runs its own pool and has no such switch.
        threads = threads if threads is not None else physical_cores()
        return OpenVinoSession(path, threads=threads, options=record.engine_options, variant=record.name,
                               streams=streams)
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads if threads is not None else physical_cores()
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Spinning keeps idle threads busy-waiting between runs: a little lower latency for back-to-back
    # calls, but it burns CPU on an idle service. Off by default; see the benchmark for the measured cost.
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    so.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), sess_options=so, providers=providers)
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf types
        raise ArtifactError(
            f"onnxruntime could not load {str(path)!r}: {exc}. The file is damaged or from an incompatible "
            f"exporter; re-export: rosberta-onnx export MODEL -o {path.parent} --overwrite"
        ) from exc
