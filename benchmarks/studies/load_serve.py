"""Load test of ``rosberta-onnx serve``: requests/s and p50/p99 latency of short queries at 1, 8 and 64
concurrent clients, with dynamic batching on and off.

    python -m benchmarks.studies.load_serve --model models/full-onnx --variant int8 [--duration 15] [--out benchmarks/results/serve]

Each mode starts its own server (the real CLI, on 127.0.0.1, a free port), warms it up, then for each
concurrency runs closed-loop clients (each sends one query, waits for the answer, sends the next) until
``--duration`` seconds or ``--max-requests`` have passed; requests already sent are then awaited and
counted. Every response is checked (status 200, one vector of the model's dimension). The clients run
in this process on the same machine as the server, so they take some of its CPU: the figures are for
the whole loopback system, not the server alone. Writes ``serve_load.json``, ``serve_load.md`` and
``serve_load.png`` under ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import platform
import random
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..harness.results import save

__all__ = ["main", "QUERIES", "closed_loop"]

QUERIES = [
    "Сколько программистов нужно, чтобы вкрутить лампочку?",
    "How many programmers does it take to change a bulb?",
    "погода в Москве завтра",
    "weather in Moscow tomorrow",
    "рецепт борща с фасолью",
    "borscht recipe with beans",
    "как выучить английский быстро",
    "fastest way to learn Russian",
    "лучшие книги Толстого",
    "best Tolstoy novels",
    "что такое эмбеддинги",
    "what are sentence embeddings",
    "курс доллара к рублю",
    "dollar to ruble exchange rate",
    "симптомы простуды у детей",
    "cold symptoms in children",
    "как починить кран",
    "how to fix a leaking tap",
    "история Санкт-Петербурга",
    "history of Saint Petersburg",
    "дешёвые билеты в Сочи",
    "cheap flights to Sochi",
    "почему небо голубое",
    "why is the sky blue",
    "расписание электричек",
    "suburban train timetable",
    "как работает трансформер",
    "how does a transformer model work",
    "отзывы о ноутбуке",
    "laptop reviews 2024",
]

MODES = {
    "on": ("dynamic batching on (max-wait 5 ms)", ["--max-wait-ms", "5"]),
    "on-0ms": ("dynamic batching on (max-wait 0 ms)", ["--max-wait-ms", "0"]),
    "off": ("dynamic batching off (one encoder call per request)", ["--no-batching"]),
}


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def closed_loop(
    url: str,
    *,
    concurrency: int,
    duration: float,
    max_requests: int,
    dim: int,
    seed: int,
    task: str | None = "search_query",
    prefix: str = "",
    metrics: bool = True,
) -> dict:
    """Closed-loop clients against an OpenAI-style ``/v1/embeddings``: each query is ``prefix`` + one of
    :data:`QUERIES`, sent with ``task`` (this server's field; None for a server that takes the prefixed text);
    ``metrics``: read this server's batch counters from ``/metrics`` before and after."""
    import httpx

    rng = random.Random(seed)
    latencies: list[float] = []
    errors: list[str] = []
    sent = 0
    stop_at = time.perf_counter() + duration

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal sent
        while time.perf_counter() < stop_at and sent < max_requests:
            sent += 1
            body = {"input": prefix + rng.choice(QUERIES), "model": "rosberta", "encoding_format": "base64"}
            if task:
                body["task"] = task
            t0 = time.perf_counter()
            try:
                r = await http.post("/v1/embeddings", json=body)
                ok = r.status_code == 200 and len(base64.b64decode(r.json()["data"][0]["embedding"])) == 4 * dim
                if not ok:
                    errors.append(f"{r.status_code} {r.text[:200]}")
            except httpx.HTTPError as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            latencies.append(time.perf_counter() - t0)

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as http:
        before = (await http.get("/metrics")).text if metrics else ""
        start = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
        after = (await http.get("/metrics")).text if metrics else ""
    lat = np.array(latencies) * 1000
    batches = _metric(after, "rosberta_batch_requests_count") - _metric(before, "rosberta_batch_requests_count")
    merged = _metric(after, "rosberta_batch_requests_sum") - _metric(before, "rosberta_batch_requests_sum")
    return {
        "concurrency": concurrency,
        "requests": len(latencies),
        "errors": len(errors),
        "first_errors": errors[:3],
        "seconds": round(elapsed, 3),
        "requests_per_s": round(len(latencies) / elapsed, 2) if elapsed else None,
        "p50_ms": round(float(np.percentile(lat, 50)), 1) if lat.size else None,
        "p99_ms": round(float(np.percentile(lat, 99)), 1) if lat.size else None,
        "mean_ms": round(float(lat.mean()), 1) if lat.size else None,
        "requests_per_batch": round(merged / batches, 2) if batches else None,
        # Other processes on the machine take CPU from both server and clients; say how busy it was.
        "load_avg_1m_after": round(os.getloadavg()[0], 2),
    }


def run_mode(mode: str, args: argparse.Namespace) -> dict:
    import httpx

    from ..harness.live_server import LiveServer

    label, flags = MODES[mode]
    extra = ["--variant", args.variant, *flags] + (["--threads", str(args.threads)] if args.threads else [])
    with LiveServer(args.model, *extra, start_timeout=300) as srv:
        info = httpx.get(srv.url + "/info", timeout=30).json()
        # Warm-up outside the measurement: a few single and concurrent requests.
        asyncio.run(closed_loop(srv.url, concurrency=8, duration=2.0, max_requests=32, dim=info["dim"], seed=99))
        runs = []
        for c in args.concurrency:
            res = asyncio.run(
                closed_loop(
                    srv.url,
                    concurrency=c,
                    duration=args.duration,
                    max_requests=args.max_requests,
                    dim=info["dim"],
                    seed=c,
                )
            )
            print(
                f"[{mode}] c={c:>3}: {res['requests_per_s']} req/s, p50 {res['p50_ms']} ms, "
                f"p99 {res['p99_ms']} ms, {res['requests']} requests, {res['errors']} errors, "
                f"{res['requests_per_batch']} req/batch",
                flush=True,
            )
            runs.append(res)
    return {"mode": mode, "label": label, "server_flags": extra, "info": info, "runs": runs}


def _machine() -> dict:
    try:
        from ..harness.machine import describe, machine_facts

        facts = machine_facts()
        return {**facts, "description": describe(facts)}
    except Exception as exc:
        return {"description": f"{platform.processor() or platform.machine()} ({exc})"}


def write_report(result: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    save(out / "serve_load.json", result)
    a = result["args"]
    info = result["modes"][0]["info"]
    lines = [
        "# `rosberta-onnx serve` under load: short queries",
        "",
        f"Model: `{a['model']}` variant **{info['model_dtype']}** (dim {info['dim']}"
        + (", STAND-IN random weights: the speed is real, the vectors meaningless" if info.get("stand_in") else "")
        + f"). Machine: {result['machine'].get('description')}.",
        f"Closed-loop clients on the same machine (loopback, httpx, `/v1/embeddings`, one `search_query` per request,"
        f" base64), each configuration bounded to {a['duration']} s or {a['max_requests']} requests; "
        f"measured {result['when']}.",
        f"Server: `rosberta-onnx serve` with max-batch-tokens {info['max_batch_tokens']}, max-batch-size "
        f"{info['max_batch_requests']}, run-batch-tokens {info.get('run_batch_tokens')}, one encoder worker, "
        f"ONNX Runtime threads = physical cores; per mode: "
        + "; ".join(f"{m['mode']}: `{' '.join(m['server_flags'])}`" for m in result["modes"])
        + ".",
        "",
        "| batching | clients | requests/s | p50 ms | p99 ms | requests | errors | requests per encoder call "
        "| 1-min load avg after |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m in result["modes"]:
        for r in m["runs"]:
            lines.append(
                f"| {m['label']} | {r['concurrency']} | {r['requests_per_s']} | {r['p50_ms']} | "
                f"{r['p99_ms']} | {r['requests']} | {r['errors']} | {r['requests_per_batch']} | "
                f"{r['load_avg_1m_after']} |"
            )
    lines += [
        "",
        f"The machine has {result['machine'].get('logical_cpus', '?')} logical CPUs; a load average above "
        "that means other processes were competing for them during the run, and the figures are lower "
        "bounds.",
        "",
        f"Command: `{result['command']}`",
        "",
        "![chart](serve_load.png)",
        "",
    ]
    save(out / "serve_load.md", "\n".join(lines))
    _chart(result, out / "serve_load.png")


def _chart(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for m in result["modes"]:
        cs = [r["concurrency"] for r in m["runs"]]
        ax1.plot(cs, [r["requests_per_s"] for r in m["runs"]], marker="o", label=m["label"])
        (line,) = ax2.plot(cs, [r["p50_ms"] for r in m["runs"]], marker="o", label=f"{m['mode']} p50")
        ax2.plot(
            cs,
            [r["p99_ms"] for r in m["runs"]],
            marker="x",
            linestyle="--",
            color=line.get_color(),
            label=f"{m['mode']} p99",
        )
    ticks = sorted({r["concurrency"] for m in result["modes"] for r in m["runs"]})
    for ax in (ax1, ax2):
        ax.set_xscale("log", base=2)
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.set_xlabel("concurrent clients")
        ax.grid(alpha=0.3)
    ax1.set_ylim(bottom=0)
    ax1.set_ylabel("requests/s")
    ax1.set_title("throughput")
    ax2.set_yscale("log")
    ax2.set_ylabel("latency, ms")
    ax2.set_title("latency (p50 solid, p99 dashed)")
    ax1.legend(fontsize=8)
    ax2.legend(fontsize=7, ncol=2)
    info = result["modes"][0]["info"]
    fig.suptitle(f"rosberta-onnx serve, {info['model_dtype']}, short queries, loopback")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.studies.load_serve", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="artifact folder, e.g. models/full-onnx")
    p.add_argument("--variant", default="int8", choices=["auto", "fp32", "int8"])
    p.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8, 64])
    p.add_argument("--modes", type=lambda s: s.split(","), default=["on", "off"], help=f"from {list(MODES)}")
    p.add_argument("--duration", type=float, default=15.0, help="seconds of new requests per configuration (max 60)")
    p.add_argument("--max-requests", type=int, default=3000, help="requests per configuration, at most")
    p.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads in the server")
    p.add_argument("--out", default="benchmarks/results/serve")
    args = p.parse_args(argv)
    if not 0 < args.duration <= 60:
        p.error("--duration must be in (0, 60] seconds: this is a bounded benchmark")
    unknown = [m for m in args.modes if m not in MODES]
    if unknown:
        p.error(f"unknown mode(s) {unknown}; choose from {list(MODES)}")
    result = {
        "when": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python -m benchmarks.studies.load_serve " + " ".join(sys.argv[1:] if argv is None else argv),
        "args": {k: v for k, v in vars(args).items()},
        "machine": _machine(),
        "modes": [run_mode(mode, args) for mode in args.modes],
    }
    write_report(result, Path(args.out))
    print((Path(args.out) / "serve_load.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
