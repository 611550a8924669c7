"""One benchmark run end to end: workloads, memory (separate processes), load, rounds, quality, report."""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from .harness.base import Context, Skip, log_stderr
from .harness.machine import machine_facts
from .harness.report import write_all
from .harness.results import save
from .harness.runner import load_systems, quality, run_workloads
from .harness.workloads import SETTINGS, build_workloads
from .memory import measure_all
from .systems import ON_REQUEST, SYSTEM_NAMES, make_system

__all__ = ["run_benchmark"]

BASELINE = "torch-fp32"
FALLBACK_BASELINE = "rosberta-fp32"
SCHEMA = 1
# What each peak-memory process encodes, in this order: one query, then the batch shapes, as a server sees them; an
# engine that keeps a model per kind of call (OpenVINO's batch streams compile a second one) shows both in its peak.
MEMORY_WORKLOADS = {"latency_1x16": "1×16", "throughput_8x128": "8×128", "throughput_1x512": "1×512"}


def _model_facts(ctx: Context) -> dict:
    m = ctx.manifest
    f = m.model
    stand_in = bool(m.source.get("stand_in"))
    shape = f"{f.architecture}, {f.num_layers} layers, hidden {f.hidden_size}, max length {f.max_length}"
    what = "STAND-IN with random weights" if stand_in else str(m.source.get("model"))
    return {
        "artifact": str(ctx.artifact),
        "source": dict(m.source),
        "reference": str(ctx.reference) if ctx.reference else None,
        "reference_origin": ctx.reference_reason,
        "stand_in": stand_in,
        "facts": {
            "architecture": f.architecture,
            "layers": f.num_layers,
            "hidden": f.hidden_size,
            "heads": f.num_heads,
            "max_length": f.max_length,
            "pooling": f.pooling,
        },
        "variants": {
            k: {
                "file": v.file,
                "size_mb": round(v.size_bytes / 1e6, 1),
                "recipe": v.recipe,
                "gate_passed": v.gate_passed,
            }
            for k, v in m.variants.items()
        },
        "short": f"{ctx.artifact.name} ({'stand-in, ' if stand_in else ''}{f.num_layers}L/{f.hidden_size})",
        "description": f"{what} ({shape}); artifact {ctx.artifact}",
    }


def _command() -> str:
    """The command line as a user would retype it (``sys.argv[0]`` is a file path under ``-m``)."""
    import shlex

    head = Path(sys.argv[0])
    prog = "python -m benchmarks" if head.parent.name == "benchmarks" else head.name
    return " ".join([prog, shlex.join(sys.argv[1:])]).strip()


def run_benchmark(
    artifact,
    *,
    reference=None,
    quick: bool = False,
    out="benchmarks/results",
    name: str | None = None,
    threads: int | None = None,
    rounds: int | None = None,
    systems: list[str] | None = None,
    workloads: list[str] | None = None,
    corpus_size: int | None = None,
    memory: bool = True,
    gap_s: float = 0.02,
    log=log_stderr,
) -> tuple[dict, dict[str, Path]]:
    """Run the benchmark and write its results; returns (results dict, written paths)."""
    from rosberta_onnx.hardware import physical_cores
    from rosberta_onnx.tokenize import TextTokenizer

    names = list(systems or SYSTEM_NAMES)
    bad = [n for n in names if n not in SYSTEM_NAMES + ON_REQUEST]
    if bad:
        raise ValueError(f"unknown system(s) {bad}; choose from {', '.join(SYSTEM_NAMES + ON_REQUEST)}")
    mode = "quick" if quick else "full"
    settings = SETTINGS[mode]
    if rounds is not None:
        settings = settings.with_rounds(rounds)
    if corpus_size is not None:
        settings = type(settings)(**{**settings.__dict__, "corpus_size": corpus_size})
    threads = threads or physical_cores()
    t_start = time.perf_counter()
    ctx = Context(artifact, reference=reference, threads=threads, log=log)
    try:
        f = ctx.facts
        tok = TextTokenizer(ctx.artifact / ctx.manifest.tokenizer_file, max_length=f.max_length, pad_id=f.pad_token_id)
        wls = build_workloads(
            lambda t: int(tok.tokenize([t], truncate=True).token_counts[0]), f.max_length, settings, only=workloads
        )
        log(f"{mode} run: {len(names)} systems, {len(wls)} workloads, {threads} threads, artifact {ctx.artifact}")
        if "ort-plain" in names:
            try:
                ctx.plain_onnx()  # before the memory children, so they reuse it instead of exporting again
            except Skip:
                pass
        objs = [make_system(n, ctx) for n in names]
        for s in objs:  # one-time offline work (peers' conversions), here so no memory child does it
            try:
                s.build()
            except Skip:
                pass  # prepare() raises it again and the system is reported as skipped

        mem = {}
        if memory:
            with tempfile.TemporaryDirectory(prefix="rosberta-bench-mem-") as d:
                texts_file = Path(d) / "texts.json"
                fixed = [list(w.texts) for w in wls if w.name in MEMORY_WORKLOADS]
                save(texts_file, fixed or [list(wls[0].texts)])
                mem = measure_all(
                    names,
                    artifact=ctx.artifact,
                    reference=ctx.reference,
                    threads=threads,
                    plain_onnx=ctx.plain_path,
                    texts_file=texts_file,
                    timeout_s=1800,
                    log=log,
                    jobs=2 if quick else 1,
                )

        status = load_systems(objs, log)
        # Without torch, our fp32 (parity-checked against torch at export) is the next-best yardstick.
        ok = [s.name for s in objs if status[s.name]["status"] == "ok"]
        baseline = next((n for n in (BASELINE, FALLBACK_BASELINE, *ok) if n in ok), BASELINE)
        if baseline != BASELINE:
            log(f"baseline {BASELINE} is not available; ratios are against {baseline}")
        results, corpus_vecs = run_workloads(
            objs, wls, status, baseline=baseline, warmup=settings.warmup, gap_s=gap_s, log=log
        )
        qual = quality(corpus_vecs, baseline)
        sys_records = []
        for s in objs:
            rec = {
                **s.info(),
                **status[s.name],
                "load_s": s.load_s if status[s.name]["status"] == "ok" else None,
                "memory": mem.get(s.name, {}),
                "quality": qual.get(s.name, {}),
            }
            sys_records.append(rec)
        lat = settings.latency_rounds * settings.latency_calls
        res = {
            "schema": SCHEMA,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "mode": mode,
            "command": _command(),
            "baseline": baseline,
            "machine": machine_facts(),
            "model": _model_facts(ctx),
            "settings": {
                "threads": threads,
                **{k: v for k, v in settings.__dict__.items() if k != "extra"},
                "latency_samples": lat,
                "gap_s": gap_s,
                "memory_workload": (
                    ", then ".join(MEMORY_WORKLOADS[w.name] for w in wls if w.name in MEMORY_WORKLOADS) or wls[0].name
                )
                + ", one call each",
                "memory_processes_at_once": 2 if quick else 1,
            },
            "systems": sys_records,
            "workloads": results,
            "elapsed_s": round(time.perf_counter() - t_start, 1),
        }
        folder = Path(out) / (name or f"{ctx.artifact.name}-{mode}")
        paths = write_all(res, folder)
        log(f"wrote {folder} in {res['elapsed_s']:.0f}s")
        return res, paths
    finally:
        for s in locals().get("objs", []):
            s.close()
        ctx.close()
