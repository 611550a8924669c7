"""Our server beside infinity-emb under the same load: requests/s, p50/p99 latency, errors and peak memory.

    python -m benchmarks.studies.load_peers ARTIFACT --checkpoint CKPT --infinity-python .venv-infinity/bin/python
        [--variant auto] [--concurrency 16,64] [--duration 20] [--max-requests 4000] [--rounds 2] [--out DIR]

Both servers run at once on 127.0.0.1, each a real process as its users start it: ``rosberta-onnx serve --variant
V`` (dynamic batching, max-wait 5 ms) and ``infinity_emb v2`` with its optimum/onnxruntime engine on the CPU
(:mod:`..harness.infinity_server`), serving **the same int8 file**: the variant our server runs when that is an
onnxruntime one, else the onnxruntime int8 variant faithful on this CPU (``int8``, or ``int8-avx2`` without VNNI),
so that the rows compare servers, not models. Infinity takes the query with its task prefix written out
(``search_query: ...``), ours takes the same query with ``task``: the same tokens reach both models.

Before any load, each server's vectors for a few queries are compared with the exported fp32's (cosine): a server
that computes something else is a failed row, not a fast one. Then for each round, each concurrency and each server
in turn (the order alternating round by round), closed-loop clients (the load_serve study's) run until
``--duration`` seconds or ``--max-requests``; the table gives medians over rounds. Peak memory is each server
process's high-water mark at the end. Loopback only; bounded in time and count.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ..harness.infinity_server import InfinityServer, infinity_folder
from ..harness.live_server import LiveServer
from ..harness.machine import cpu_facts
from ..harness.results import save
from ..harness.rss import peak_mb
from ..harness.runner import as_run
from .load_serve import QUERIES, closed_loop

__all__ = ["main"]

_ROOT = Path(__file__).resolve().parents[2]
OURS, INFINITY = "rosberta-onnx serve", "infinity-emb"
CHECK_TEXTS = QUERIES[:8]


def onnxruntime_int8(manifest, picked: str) -> str:
    """The int8 file both servers run: ``picked`` when onnxruntime runs it, else the onnxruntime int8 variant that
    is exact on this CPU."""
    from rosberta_onnx.hardware import cpu_isa, int8_native

    if manifest.variants[picked].engine == "onnxruntime" and picked != "fp32":
        return picked
    return "int8" if int8_native(cpu_isa()) or "int8-avx2" not in manifest.variants else "int8-avx2"


def _vectors(url: str, texts: list[str], *, task: str | None, prefix: str) -> np.ndarray:
    import httpx

    body: dict = {"input": [prefix + t for t in texts], "model": "rosberta", "encoding_format": "base64"}
    if task:
        body["task"] = task
    r = httpx.post(url + "/v1/embeddings", json=body, timeout=300)
    r.raise_for_status()
    return np.stack([np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in r.json()["data"]])


def summarize(runs: list[dict]) -> dict:
    """Medians over rounds of one server at one concurrency; errors and requests summed."""

    def med(key: str) -> float | None:
        values = [r[key] for r in runs if r[key] is not None]
        return round(statistics.median(values), 1) if values else None

    return {
        "rounds": len(runs),
        "requests": sum(r["requests"] for r in runs),
        "errors": sum(r["errors"] for r in runs),
        "first_errors": [e for r in runs for e in r["first_errors"]][:3],
        "requests_per_s": med("requests_per_s"),
        "p50_ms": med("p50_ms"),
        "p99_ms": med("p99_ms"),
        "each_round_requests_per_s": [r["requests_per_s"] for r in runs],
    }


def table(res: dict) -> str:
    rows = [
        "| server | clients | requests/s (median) | p50 ms | p99 ms | requests | errors | req/s each round |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, srv in res["servers"].items():
        for c, s in srv["load"].items():
            each = ", ".join(str(x) for x in s["each_round_requests_per_s"])
            rows.append(
                f"| {name} | {c} | {s['requests_per_s']} | {s['p50_ms']} | {s['p99_ms']} | {s['requests']} "
                f"| {s['errors']} | {each} |"
            )
    rows += ["", "| server | runs | cosine min vs exported fp32 | peak RSS MB |", "|---|---|---:|---:|"]
    for name, srv in res["servers"].items():
        rows.append(f"| {name} | {srv['runs']} | {srv['cos_min_vs_fp32']:.6f} | {srv['peak_rss_mb']:.0f} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.studies.load_peers", description=__doc__.split("\n\n")[0])
    p.add_argument("artifact", type=Path)
    p.add_argument("--checkpoint", type=Path, required=True, help="the checkpoint (config, tokenizer) for infinity")
    p.add_argument("--infinity-python", required=True, help="a Python with infinity-emb[server,optimum] installed")
    p.add_argument("--variant", default="auto", help="our server's variant (default: auto's pick here)")
    p.add_argument("--concurrency", default="16,64")
    p.add_argument("--duration", type=float, default=20.0)
    p.add_argument("--max-requests", type=int, default=4000)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--out", type=Path, default=_ROOT / "benchmarks" / "results" / "load-peers")
    a = p.parse_args(argv)
    from rosberta_onnx import Encoder, Manifest

    log = lambda msg: print(f"[load-peers] {msg}", file=sys.stderr, flush=True)
    manifest = Manifest.read(a.artifact)
    facts = manifest.model
    picked = Encoder.load(a.artifact, variant=a.variant).variant
    both = onnxruntime_int8(manifest, picked)
    task = "search_query" if "search_query" in facts.prompts else None  # a model without prompts: plain text
    ref = Encoder.load(a.artifact, variant="fp32").encode(CHECK_TEXTS, task=task)
    prefix = facts.prompts.get("search_query", "")
    levels = [int(c) for c in a.concurrency.split(",") if c]
    rec = manifest.variants[both]
    servers: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix=".load-peers-", dir=a.artifact.parent) as tmp:
        folder = infinity_folder(
            a.checkpoint,
            a.artifact / rec.file,
            [a.artifact / f for f in rec.files if f != rec.file],
            Path(tmp) / "m",
            max_length=facts.max_length,
        )
        log(f"starting both servers on {both}")
        with (
            LiveServer(a.artifact, "--variant", both, "--max-wait-ms", "5", start_timeout=600) as ours,
            InfinityServer(a.infinity_python, folder, pooling=facts.pooling) as inf,
        ):
            setup = {
                OURS: (ours.url, {"task": task, "prefix": "", "metrics": True}, ours.proc.pid),
                INFINITY: (inf.url, {"task": None, "prefix": prefix, "metrics": False}, inf.proc.pid),
            }
            for name, (url, kw, _) in setup.items():
                got = _vectors(url, CHECK_TEXTS, task=kw["task"], prefix=kw["prefix"])
                cos = float((got * ref).sum(1).min())
                servers[name] = {"runs": both, "cos_min_vs_fp32": cos, "load": {}}
                log(f"{name}: cosine min {cos:.6f} against the exported fp32 on {len(CHECK_TEXTS)} queries")
                asyncio.run(
                    closed_loop(url, concurrency=8, duration=2.0, max_requests=32, dim=facts.dim, seed=99, **kw)
                )
            runs: dict[str, dict[int, list]] = {n: {c: [] for c in levels} for n in setup}
            for r in range(a.rounds):
                for c in levels:
                    for name in list(setup) if r % 2 == 0 else list(setup)[::-1]:
                        url, kw, _ = setup[name]
                        res = asyncio.run(
                            closed_loop(
                                url,
                                concurrency=c,
                                duration=a.duration,
                                max_requests=a.max_requests,
                                dim=facts.dim,
                                seed=1000 * r + c,
                                **kw,
                            )
                        )
                        runs[name][c].append(res)
                        log(
                            f"round {r + 1} {name} c={c}: {res['requests_per_s']} req/s, p50 {res['p50_ms']} ms, "
                            f"p99 {res['p99_ms']} ms, {res['errors']} errors"
                        )
            for name, (_, _, pid) in setup.items():
                servers[name]["peak_rss_mb"] = peak_mb(pid)
                servers[name]["load"] = {c: summarize(runs[name][c]) for c in levels}
            servers[INFINITY]["notes"] = [
                ln.strip() for ln in inf.logs().splitlines() if "Optimization failed" in ln or "Using " in ln
            ][:4]
            servers[OURS]["flags"] = ["--variant", both, "--max-wait-ms", "5"]
            servers[INFINITY]["flags"] = ["--model-id", ".", *inf.flags]
    res = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": cpu_facts(),
        "artifact": str(a.artifact),
        "stand_in": bool(manifest.source.get("stand_in")),
        "duration_s": a.duration,
        "max_requests": a.max_requests,
        "rounds": a.rounds,
        "servers": servers,
        "reproduce": "python -m benchmarks.studies.load_peers " + as_run(argv),
    }
    save(a.out / "load_peers.json", res)
    md = (
        f"Servers under load on {res['machine']['description']}: `{res['artifact']}`, both serving `{both}`; "
        f"closed-loop clients on loopback, one `search_query` per request (base64), each run bounded to "
        f"{a.duration} s or {a.max_requests} requests, {a.rounds} rounds alternating the servers.\n\n"
        + table(res)
        + f"\n\nReproduce: `{res['reproduce']}`\n"
    )
    save(a.out / "load_peers.md", md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
