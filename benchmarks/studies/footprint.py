"""Footprint: what each variant costs on disk, in memory and at start-up, beside its speed and its quality.

    python -m benchmarks.studies.footprint ARTIFACT --reference CKPT --quality QUALITY_ARTIFACT
        [--systems rosberta-fp32,rosberta-int8,...] [--cold-runs 3] [--rounds 5] [--out DIR]

Per system (the Python runtime's variants, and the JS runtime's in Node and in WASM):

- **file MB**: the variant's files, from the manifest;
- **memory**: resident set of the process that holds the model (the Node worker for JS rows), each system in a
  fresh process: after load, and the peak after a 1×16 call and after an 8×128 call;
- **cold start**: a new process to the first vector, through the CLI (``rosberta-onnx encode`` and the JS package's
  ``rosberta-onnx encode``) on one line of text, checksums verified as by default; median of ``--cold-runs``;
- **speed**: 1×16 latency and 8×128 throughput as ratios to torch fp32, measured in one process, the systems
  alternating round by round (the benchmark harness);
- **quality**: each variant's gate record as its export measured it, on ``QUALITY_ARTIFACT`` (trained weights:
  MiniLM) and on ``ARTIFACT`` (the full-size stand-in: random weights, the cosine figures only mean something).

JS rows share the Python variant's file and gate record: the JS parity tests hold them to the Python runtime's
vectors (native: identical kernels; WASM: see docs/javascript.md).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from ..harness.machine import cpu_facts
from ..harness.results import save
from ..harness.runner import as_run

SYSTEMS = (
    "rosberta-fp32",
    "rosberta-int8",
    "rosberta-int8-openvino",
    "rosberta-int4",
    "node-int8",
    "node-int4",
    "wasm-int8",
    "wasm-int4",
)
BASELINE = "torch-fp32"
_ROOT = Path(__file__).resolve().parents[2]
_JS_CLI = _ROOT / "js" / "bin" / "rosberta-onnx.js"


def _texts(artifact: Path) -> tuple[list[str], list[str]]:
    """The 1×16 and 8×128 inputs of the benchmark's workloads (exactly 16 and 128 tokens)."""
    from rosberta_onnx import Encoder

    from ..harness.workloads import DOC_PREFIX, QUERY_PREFIX, exact_length_texts

    enc = Encoder.load(artifact, variant="fp32", verify=False)
    count = lambda t: int(enc.count_tokens([t])[0])
    return exact_length_texts(count, 16, 1, prefix=QUERY_PREFIX), exact_length_texts(count, 128, 8, prefix=DOC_PREFIX)


def _child(a) -> dict:
    """One system in this fresh process: resident memory after load, and peaks after a 1×16 and an 8×128 call."""
    from ..harness.base import Context, Skip
    from ..harness.rss import peak_mb, reset_peak, rss_mb
    from ..systems import make_system

    ctx = Context(a.artifact, reference=None, threads=a.threads)
    system = make_system(a.child, ctx)
    one, eight = json.loads(Path(a.texts).read_text(encoding="utf-8"))
    try:
        system.prepare()
        before = rss_mb()
        reset_peak()
        system.load()
        pid = system.worker_pid or "self"
        out = {
            "rss_before_load_mb": round(before, 1) if pid == "self" else None,
            "rss_after_load_mb": round(rss_mb(pid), 1),
            "peak_after_load_mb": round(peak_mb(pid), 1),
        }
        system.encode(one, own_batching=False)
        out["peak_after_1x16_mb"] = round(peak_mb(pid), 1)
        system.encode(eight, own_batching=False)
        out["peak_after_8x128_mb"] = round(peak_mb(pid), 1)
        out["rss_end_mb"] = round(rss_mb(pid), 1)
        if "variant" in system.config:  # what it loaded (auto: its pick)
            out["variant"] = system.config["variant"]
        return out
    except Skip as exc:
        return {"skipped": str(exc)}
    finally:
        system.close()
        ctx.close()


def _memory(name: str, a, texts_file: Path, log) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.studies.footprint", str(a.artifact), "--child", name]
    cmd += ["--threads", str(a.threads), "--texts", str(texts_file)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(_ROOT), os.environ.get("PYTHONPATH")]))}
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(_ROOT), timeout=1800)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    if r.returncode != 0 or not lines:
        tail = (r.stderr.strip().splitlines() or ["(no output)"])[-1][:300]
        log(f"memory {name}: failed — {tail}")
        return {"error": tail}
    fig = json.loads(lines[-1])
    log(f"memory {name}: {fig}")
    return fig


def _cold_cmd(name: str, artifact: Path, threads: int) -> list[str] | None:
    """The CLI command that loads ``name``'s variant and encodes one line from stdin."""
    variant = name.split("-", 1)[1]
    if name.startswith("rosberta-"):
        cli = Path(sys.executable).with_name("rosberta-onnx")
        return [str(cli), "encode", str(artifact), "--variant", variant, "--threads", str(threads), "-o", os.devnull]
    if name.startswith(("node-", "wasm-")):
        backend = "native" if name.startswith("node-") else "wasm"
        return ["node", str(_JS_CLI), "encode", str(artifact), "--variant", variant, "--backend", backend,
                "--threads", str(threads), "-o", os.devnull]  # fmt: skip
    return None


def _cold_start(name: str, a, log) -> dict:
    cmd = _cold_cmd(name, a.artifact, a.threads)
    if cmd is None:
        return {}
    times = []
    for _ in range(a.cold_runs):
        t0 = time.perf_counter()
        r = subprocess.run(cmd, input="Сколько стоит билет? How much is a ticket?\n", capture_output=True, text=True)
        if r.returncode != 0:
            tail = (r.stderr.strip().splitlines() or ["(no output)"])[-1][:300]
            log(f"cold start {name}: failed — {tail}")
            return {"error": tail}
        times.append(time.perf_counter() - t0)
    log(f"cold start {name}: {[round(t, 2) for t in times]}")
    return {"cold_start_s": statistics.median(times), "cold_start_runs": times}


def _speed(a, names: list[str], one: list[str], eight: list[str], log) -> dict:
    """1×16 and 8×128 in one process, every system in turn each round, as ratios to torch fp32."""
    from ..harness.base import Context
    from ..harness.runner import load_systems, run_workloads
    from ..harness.workloads import Workload
    from ..systems import make_system

    ctx = Context(a.artifact, reference=a.reference, threads=a.threads, log=log)
    systems = [make_system(n, ctx) for n in [BASELINE, *names]]
    try:
        status = load_systems(systems, log)
        workloads = [
            Workload("latency_1x16", "latency", tuple(one), 16, a.rounds, 10),
            Workload("throughput_8x128", "throughput", tuple(eight), 128, a.rounds, 1),
        ]
        results, _ = run_workloads(systems, workloads, status, baseline=BASELINE, warmup=1, gap_s=0.2, log=log)
    finally:
        for s in systems:
            s.close()
        ctx.close()
    return {"status": status, "workloads": results}


def _gate(manifest, variant: str) -> dict:
    rec = manifest.variants.get(variant)
    if rec is None or not rec.gate:
        return {}
    fig = rec.gate.get("figures", {})
    return {
        "passed": rec.gate_passed,
        "cos_min": rec.parity.get("cos_min"),
        "cos_mean": rec.parity.get("cos_mean"),
        "top10": fig.get("top10_overlap", {}),
        "pairs": fig.get("pairs_per_lang"),
    }


def _variant(name: str) -> str:
    return name.split("-", 1)[1]


def table(res: dict) -> str:
    def f(x, fmt):
        return "–" if x is None else format(x, fmt)

    rows = [
        "| system | file MB | RSS after load MB | peak after 1×16 MB | peak after 8×128 MB | cold start s | "
        "1×16 × torch | 8×128 × torch | MiniLM cos min | MiniLM top-10 en/ru | MiniLM gate | full-size cos min |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    speed = res["speed"]["workloads"]
    for name, r in res["systems"].items():
        m, q, full = r["memory"], r["quality"], r["fullsize_quality"]
        if "skipped" in m or "error" in m:
            rows.append(f"| {name} | {f(r['file_mb'], '.0f')} | {m.get('skipped') or m.get('error')} |" + " |" * 9)
            continue
        lat = speed.get("latency_1x16", {}).get("systems", {}).get(name, {}).get("ratio_median")
        thr = speed.get("throughput_8x128", {}).get("systems", {}).get(name, {}).get("ratio_median")
        top = "/".join(f"{v:.3f}" for v in q.get("top10", {}).values()) or "–"
        gate = "–" if not q else ("pass" if q["passed"] else "FAIL")
        rows.append(
            f"| {name} | {f(r['file_mb'], '.0f')} | {f(m['rss_after_load_mb'], '.0f')} | "
            f"{f(m['peak_after_1x16_mb'], '.0f')} | {f(m['peak_after_8x128_mb'], '.0f')} | "
            f"{f(r['cold'].get('cold_start_s'), '.2f')} | {f(lat, '.2f')} | {f(thr, '.2f')} | "
            f"{f(q.get('cos_min'), '.5f')} | {top} | {gate} | {f(full.get('cos_min'), '.5f')} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.studies.footprint", description=__doc__.split("\n\n")[0])
    p.add_argument("artifact", nargs="?", type=Path)
    p.add_argument("--reference", help="the checkpoint the artifact was exported from (torch fp32, the baseline)")
    p.add_argument("--quality", type=Path, help="an artifact of trained weights (MiniLM) for the gate columns")
    p.add_argument("--systems", default=",".join(SYSTEMS))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--cold-runs", type=int, default=3)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--out", type=Path, default=_ROOT / "benchmarks" / "results" / "footprint")
    p.add_argument("--page", type=Path, help="also write the table into this page's footprint section (docs/edge.md)")
    p.add_argument("--render", type=Path, help="measure nothing: publish this footprint.json again")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--texts", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        a.artifact = Path(a.artifact)
        print(json.dumps(_child(a)), flush=True)
        return 0
    if a.render:
        a.out = a.render.parent
        return _publish(json.loads(a.render.read_text(encoding="utf-8")), a)
    if a.artifact is None:
        p.error("ARTIFACT is required")
    from rosberta_onnx import Manifest

    log = lambda msg: print(f"[footprint] {msg}", file=sys.stderr, flush=True)
    names = [n for n in a.systems.split(",") if n]
    manifest = Manifest.read(a.artifact)
    quality = Manifest.read(a.quality) if a.quality else None
    one, eight = _texts(a.artifact)
    a.out.mkdir(parents=True, exist_ok=True)
    texts_file = a.out / "texts.json"
    save(texts_file, [one, eight])
    systems = {}
    for name in names:
        v = _variant(name)
        rec = manifest.variants.get(v)
        systems[name] = {
            "variant": v,
            "file_mb": rec.size_bytes / 1e6 if rec else None,
            "memory": _memory(name, a, texts_file, log),
            "cold": _cold_start(name, a, log) if rec else {},
            "quality": _gate(quality, v) if quality else {},
            "fullsize_quality": _gate(manifest, v),
        }
    texts_file.unlink()
    res = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": cpu_facts(),
        "artifact": str(a.artifact),
        "quality_artifact": str(a.quality) if a.quality else None,
        "threads": a.threads,
        "systems": systems,
        "speed": _speed(a, names, one, eight, log),
        "rounds": a.rounds,
        "reproduce": "python -m benchmarks.studies.footprint " + as_run(argv),
    }
    save(a.out / "footprint.json", res)
    return _publish(res, a)


def _markdown(res: dict, rounds: int) -> str:
    m = res["machine"]["description"]
    return (
        f"Footprint of `{res['artifact']}` on {m}, {res['threads']} threads; memory per fresh process; cold start = "
        f"new process → first vector through the CLI (checksums verified), median of runs; speed as ratios to torch "
        f"fp32 measured alternating in one process ({rounds} rounds); the MiniLM columns are its export's gate "
        f"record (trained weights), the last is the full-size stand-in's own (random weights: cosine only).\n\n"
        + table(res)
        + f"\n\nReproduce: `{res['reproduce']}`\n"
    )


def _publish(res: dict, a) -> int:
    """footprint.md beside the JSON, and the marked section of ``--page`` (docs/edge.md) when given."""
    from ..harness.pages import publish_section

    md = _markdown(res, res.get("rounds", a.rounds))
    save(a.out / "footprint.md", md)
    if a.page:
        publish_section(a.page, "footprint", md, "python -m benchmarks.studies.footprint")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
