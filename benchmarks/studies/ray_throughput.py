"""Rows/s of ``embed-corpus`` on one machine: 1 actor x T threads vs T actors x 1 thread vs plain
``Encoder.encode`` in one process with T threads (T = the CPUs), on the same STS sentences.

    python benchmarks/ray_throughput.py --model models/full-onnx --variant int8 --rows 200 --rounds 3

Configurations alternate round by round (so a noisy neighbour hits them all alike) and the figures
are medians over rounds. Two rates per run:

* ``end_to_end``: rows / wall time of the whole call, including (for Ray) starting the actor pool
  and loading one model per actor; what a short job sees.
* ``steady``: rows / time spent embedding (the plain encode call; for Ray, the busiest actor's
  shard time); what a long job converges to once loading is amortised.

Writes ``ray_throughput.json`` and ``ray_throughput.md`` under ``--out``.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path

from ..harness.machine import cpu_facts
from ..harness.results import save

TASK = "search_document"


def sentences(n: int, seed: int = 0) -> list[str]:
    from rosberta_export.corpus import sts_sentences

    pool = sorted(set(sts_sentences("dev")))  # RU and EN, deduplicated, then a fixed shuffle
    random.Random(seed).shuffle(pool)
    if n > len(pool):
        raise SystemExit(f"--rows {n} is more than the {len(pool)} distinct STS dev sentences")
    return pool[:n]


def write_shards(texts: list[str], folder: Path, shards: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True)
    per = -(-len(texts) // shards)
    for k in range(shards):
        part = texts[k * per : (k + 1) * per]
        pq.write_table(
            pa.table({"id": list(range(k * per, k * per + len(part))), "text": part}), folder / f"s{k:02d}.parquet"
        )


def run_plain(enc, texts: list[str], batch_size: int) -> dict:
    t0 = time.perf_counter()
    enc.encode(texts, task=TASK, batch_size=batch_size)
    dt = time.perf_counter() - t0
    return {"wall_s": dt, "embed_s": dt, "load_s": 0.0}


def run_ray(model: str, variant: str, src: Path, out: Path, *, actors: int, threads: int, batch_size: int) -> dict:
    from rosberta_ray import embed_corpus

    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    s = embed_corpus(
        model, src, out, task=TASK, variant=variant, actors=actors, threads_per_actor=threads, batch_size=batch_size
    )
    wall = time.perf_counter() - t0
    if s.failed:
        raise SystemExit(f"shards failed: {[(r.shard, r.failure) for r in s.failed]}")
    busy: dict[str, float] = defaultdict(float)
    for r in s.results:
        busy[r.worker] += r.seconds
    return {
        "wall_s": wall,
        "embed_s": max(busy.values()),
        "load_s": max(r.load_seconds for r in s.results),
        "workers": len(busy),
        "rows": s.rows,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="models/full-onnx")
    p.add_argument("--variant", default="int8")
    p.add_argument("--rows", type=int, default=200, help="sentences per run (each configuration runs --rounds times)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--shards", type=int, default=8, help="input shards (the unit a Ray actor takes)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--out", default="benchmarks/results/ray")
    a = p.parse_args(argv)

    cpus = os.cpu_count() or 1
    texts = sentences(a.rows)
    tmp = Path(tempfile.mkdtemp(prefix="ray-bench-"))
    write_shards(texts, tmp / "in", a.shards)
    # Ray reads its auth settings at import: a token held in the environment, none written to ~/.ray.
    os.environ.setdefault("RAY_AUTH_MODE", "token")
    os.environ.setdefault("RAY_AUTH_TOKEN", uuid.uuid4().hex)
    os.environ.setdefault("RAY_DISABLE_USAGE_STATS", "1")
    import ray

    from rosberta_onnx import Encoder

    ray.init(
        address="local",
        num_cpus=cpus,
        include_dashboard=False,
        object_store_memory=500 * 1024**2,
        _temp_dir=str(tmp / "ray"),
        log_to_driver=False,
    )
    configs = {
        f"plain Encoder.encode, 1 process x {cpus} threads": None,
        f"Ray, 1 actor x {cpus} threads": (1, cpus),
        f"Ray, {cpus} actors x 1 thread": (cpus, 1),
    }
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    enc = Encoder.load(a.model, variant=a.variant, threads=cpus)
    plain_load = time.perf_counter() - t0
    enc.encode(texts[:8], task=TASK)  # warm-up: first-run allocations out of the timings
    runs: dict[str, list[dict]] = {name: [] for name in configs}
    names = list(configs)
    try:
        for r in range(a.rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                spec = configs[name]
                load_at_start = os.getloadavg()[0]  # other work on the box shows here; it skews a run
                res = (
                    run_plain(enc, texts, a.batch_size)
                    if spec is None
                    else run_ray(
                        a.model,
                        a.variant,
                        tmp / "in",
                        tmp / "out",
                        actors=spec[0],
                        threads=spec[1],
                        batch_size=a.batch_size,
                    )
                )
                res.update(round=r, loadavg_1m_at_start=load_at_start)
                runs[name].append(res)
                print(
                    f"round {r} {name}: {a.rows / res['wall_s']:.2f} rows/s end-to-end, "
                    f"{a.rows / res['embed_s']:.2f} rows/s steady",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)
    load1 = os.getloadavg()

    summary = {}
    for name, rs in runs.items():
        summary[name] = {
            "end_to_end_rows_s": statistics.median(a.rows / x["wall_s"] for x in rs),
            "steady_rows_s": statistics.median(a.rows / x["embed_s"] for x in rs),
            "load_s": statistics.median(x["load_s"] for x in rs) if configs[name] else plain_load,
        }
    base = summary[names[0]]
    for s in summary.values():
        s["end_to_end_vs_plain"] = s["end_to_end_rows_s"] / base["end_to_end_rows_s"]
        s["steady_vs_plain"] = s["steady_rows_s"] / base["steady_rows_s"]
    result = {
        "what": "embed-corpus throughput on one machine (rows/s, medians over rounds)",
        "model": str(a.model),
        "variant": a.variant,
        "task": TASK,
        "rows_per_run": a.rows,
        "rounds": a.rounds,
        "shards": a.shards,
        "batch_size": a.batch_size,
        "texts": "STS-B dev sentences, RU+EN, deduplicated, shuffled",
        "machine": {
            "cpus": cpus,
            "cpu": cpu_facts()["description"],
            "python": platform.python_version(),
            "loadavg_before": load0,
            "loadavg_after": load1,
        },
        "versions": _versions(),
        "summary": summary,
        "runs": runs,
        "plain_load_s": plain_load,
    }
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    save(out / "ray_throughput.json", result)
    save(out / "ray_throughput.md", markdown(result))
    print(markdown(result))
    return 0


def markdown(r: dict) -> str:
    lines = [
        f"# embed-corpus throughput: {r['variant']} on {r['machine']['cpus']} CPUs ({r['machine']['cpu']})",
        "",
        f"{r['rows_per_run']} sentences per run ({r['texts']}) in {r['shards']} Parquet shards, batch size {r['batch_size']}, "
        f"task {r['task']}; {r['rounds']} rounds, configurations alternating; medians. Model: `{r['model']}`. "
        f"Load average before/after: {r['machine']['loadavg_before'][0]:.2f} / {r['machine']['loadavg_after'][0]:.2f}.",
        "",
        "| configuration | end-to-end rows/s | vs plain | steady rows/s | vs plain | model load s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, s in r["summary"].items():
        lines.append(
            f"| {name} | {s['end_to_end_rows_s']:.2f} | {s['end_to_end_vs_plain']:.2f}x | {s['steady_rows_s']:.2f} | "
            f"{s['steady_vs_plain']:.2f}x | {s['load_s']:.1f} |"
        )
    lines += [
        "",
        "end-to-end: rows / wall time of the whole call (Ray: actor start and one model load per actor included; "
        "plain: the model was loaded once before). steady: rows / embedding time (Ray: the busiest actor's shard time).",
        "",
    ]
    return "\n".join(lines)


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("onnxruntime", "ray", "pyarrow", "numpy", "rosberta-onnx"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "absent"
    return out


if __name__ == "__main__":
    sys.exit(main())
